"""Atlas label files in the segmentation bundle: ids gathered into classes, and SynthSeg-style synthesis of
training crops from their label maps."""

import numpy as np
import pytest
import torch
from monai.transforms import Compose

from monai_ssl.bundle import segmentation_label_mapping, segmentation_synthesis

NAMES = {"background": 0, "grey": 1, "white": 2}


def test_ids_are_gathered_into_classes_and_others_are_background():
    (mapping,) = segmentation_label_mapping(NAMES, {"grey": [100, 101], "white": [81]})
    label = torch.tensor([[0, 1, 81, 100, 101, 46]]).reshape(1, 1, 2, 3)
    assert mapping({"label": label})["label"].flatten().tolist() == [0, 0, 2, 1, 1, 0]
    assert segmentation_label_mapping(NAMES, None) == []


@pytest.mark.parametrize("sources, message", [({"grey": [1]}, "missing ['white']"),
                                              ({"grey": [1], "white": [2], "csf": [3]}, "unknown ['csf']"),
                                              ({"grey": [1], "white": [1]}, "one class only")])
def test_bad_label_sources_name_the_fix(sources, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        segmentation_label_mapping(NAMES, sources)


def test_synthesis_replaces_the_share_of_images_asked_for():
    label = torch.zeros(1, 16, 16, 16, dtype=torch.int16)
    label[:, 4:12, 4:12, 4:12] = 100
    label[:, 6:10, 6:10, 6:10] = 81
    image = torch.full((1, 16, 16, 16), 0.5)
    pipeline = Compose(segmentation_synthesis(0.5))
    pipeline.set_random_state(seed=0)
    synthesised = [not torch.equal(pipeline({"image": image, "label": label})["image"], image) for _ in range(200)]
    assert 70 < sum(synthesised) < 130
    out = Compose(segmentation_synthesis(1.0))({"image": image, "label": label})
    assert torch.equal(out["label"], label) and out["image"].shape == image.shape
    # by default the scan outside the labelled anatomy stays (DLMUSE labels the brain, not the head around it)
    assert torch.equal(out["image"][label == 0], image[label == 0])
    assert 0 <= out["image"].min() and out["image"].max() <= 1 and len(np.unique(out["image"].numpy())) > 100
    painted = Compose(segmentation_synthesis(1.0, unlabelled_classes=3))({"image": image, "label": label})
    assert not torch.equal(painted["image"][label == 0], image[label == 0])  # or it is painted too
    assert segmentation_synthesis(0.0) == []
    with pytest.raises(ValueError, match="synthesis_prob must be in"):
        segmentation_synthesis(1.5)


def test_the_bundle_synthesises_from_the_classes_not_the_atlas_ids(tmp_path):
    """In the segmentation bundle's training pipeline the synthesis comes after the label mapping: one intensity per
    class and draw, not a patchwork of the atlas ids inside a class."""
    from monai.bundle import ConfigParser
    from monai.transforms import MapLabelValued

    from monai_ssl.transforms import RandLabelMapSynthesisd
    from tests.helpers import SEGMENTATION

    parser = ConfigParser()
    parser.read_config(str(SEGMENTATION / "train.json"))
    parser.update({"label_names": NAMES, "label_sources": {"grey": [100, 101], "white": [81]}, "synthesis_prob": 1.0,
                   "bundle_root": str(tmp_path)})
    transforms = parser.get_parsed_content("train#preprocessing").transforms
    kinds = [type(t) for t in transforms]
    assert kinds.index(MapLabelValued) < kinds.index(RandLabelMapSynthesisd)
    synthesis = transforms[kinds.index(RandLabelMapSynthesisd)]
    # the default chosen on tuning subjects (benchmarks/results/synthesis_probe.md): the scan kept around the labels
    assert synthesis.unlabelled_classes == 0 and synthesis.keep_unlabelled

    parser.update({"synthesis_unlabelled_classes": 3})
    synthesis = next(t for t in parser.get_parsed_content("train#preprocessing", lazy=False).transforms
                     if isinstance(t, RandLabelMapSynthesisd))
    assert synthesis.unlabelled_classes == 3 and not synthesis.keep_unlabelled  # the whole crop painted
