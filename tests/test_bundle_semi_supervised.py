"""The segmentation bundle's semi-supervised option: off by default (no unlabelled data read), on it trains a mean
teacher on unlabelled scans, logs the consistency, and refuses what cannot work with the fix."""

import json
import logging

import pytest
from monai.bundle import ConfigWorkflow
from monai.transforms import RandGaussianNoised
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from monai_ssl import MeanTeacher
from monai_ssl.bundle import unlabelled_scans
from tests.helpers import SEGMENTATION, TINY_SEGMENTATION, outputs, write_phantom_images

TRAIN = str(SEGMENTATION / "train.json")


def workflow(tmp_path, **overrides) -> ConfigWorkflow:
    flow = ConfigWorkflow(config_file=TRAIN, workflow_type="train",
                          **{**outputs(tmp_path), **TINY_SEGMENTATION, "max_epochs": 1, **overrides})
    flow.initialize()
    return flow


def test_off_by_default_and_reads_no_unlabelled_data(tmp_path):
    flow = workflow(tmp_path)
    assert flow.parser.get_parsed_content("semi#files") == []
    assert flow.parser.get_parsed_content("semi#handlers") == []
    assert not (tmp_path / "demo_unlabelled").exists()


def test_the_demo_trains_a_mean_teacher_and_logs_the_consistency(tmp_path):
    flow = workflow(tmp_path, semi_supervised=True, consistency_weight=0.5, ema_decay=0.95)
    handler = flow.parser.get_parsed_content("semi#mean_teacher")
    assert isinstance(handler, MeanTeacher) and (handler.weight, handler.ema_decay) == (0.5, 0.95)
    assert len(flow.parser.get_parsed_content("semi#files")) == 8  # the demo's unlabelled phantoms
    flow.run()
    trainer = flow.parser.get_parsed_content("train#trainer")
    assert handler.teacher is not None and trainer.state.iteration > 0
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    consistency = events.Scalars("train_consistency")
    assert len(consistency) == trainer.state.iteration and all(e.value > 0 for e in consistency)
    assert (tmp_path / "models" / "model.pt").exists()


def test_unlabelled_crops_take_their_own_instances_of_the_bundles_intensity_augmentation(tmp_path):
    noise = [{"_target_": "RandGaussianNoised", "keys": "image", "prob": 1.0, "std": 0.05}]
    flow = workflow(tmp_path, semi_supervised=True, **{"train#intensity_augmentation": noise})
    labelled = [t for t in flow.parser.get_parsed_content("train#preprocessing").transforms
                if isinstance(t, RandGaussianNoised)]
    unlabelled = flow.parser.get_parsed_content("semi#dataset").transform.transforms[-1]
    assert len(labelled) == 1 and isinstance(unlabelled, RandGaussianNoised)
    assert unlabelled is not labelled[0]  # each pipeline draws its own
    assert unlabelled.rand_gaussian_noise.std == labelled[0].rand_gaussian_noise.std == 0.05


def test_a_pretraining_datalist_serves_its_label_maps_skipped_and_its_channels_checked(tmp_path, caplog):
    images = write_phantom_images(tmp_path / "scans", 2, size=32)
    datalist = tmp_path / "pool.json"
    datalist.write_text(json.dumps({"training": [{"image": str(p)} for p in images] + [{"label_map": "anatomy.nii"}]}))
    with caplog.at_level(logging.WARNING):
        scans = unlabelled_scans(None, str(datalist), str(tmp_path))
    assert scans == [{"image": str(p)} for p in images]
    assert "skips 1 'label_map' entries" in caplog.text
    with pytest.raises(ValueError, match=r'the model takes 2 channel.*\(--unlabelled_datalist\) whose "training"'):
        unlabelled_scans(None, str(datalist), str(tmp_path), in_channels=2)
    datalist.write_text(json.dumps({"training": [{"label_map": "anatomy.nii"}]}))
    with pytest.raises(ValueError, match="set --semi_supervised false"):
        unlabelled_scans(None, str(datalist), str(tmp_path))


def test_the_multi_gpu_config_keeps_the_option_so_that_it_is_refused_not_dropped():
    multi_gpu = json.loads((SEGMENTATION / "multi_gpu_train.json").read_text())
    assert "@semi#handlers" in multi_gpu["train#trainer#train_handlers"]
