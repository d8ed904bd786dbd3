import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.metrics import DiceMetric

from monai_ssl import PretextModel
from monai_ssl.bundle import (
    check_pretext_setup,
    inference_files,
    intensity_preset,
    is_label_map,
    list_images,
    per_class_dice,
    pretext_dataset,
    require_files,
    segmentation_files,
    training_files,
)
from monai_ssl.data import write_phantom_dataset
from tests.conftest import shared_path
from tests.helpers import small_unet


def test_list_images_is_recursive_sorted_and_explains_failures(tmp_path):
    write_phantom_dataset(str(tmp_path / "b" / "deep"), 1, (32, 32, 32))
    write_phantom_dataset(str(tmp_path / "a"), 1, (32, 32, 32))
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    files = list_images(str(tmp_path), exclude_label_maps=False)
    assert [f.split(str(tmp_path))[1] for f in files] == [
        "/a/phantom_000_image.nii.gz", "/a/phantom_000_label.nii.gz",
        "/b/deep/phantom_000_image.nii.gz", "/b/deep/phantom_000_label.nii.gz"]
    # by default the label maps are recognised by content and left out
    assert [f.split(str(tmp_path))[1] for f in list_images(str(tmp_path))] == [
        "/a/phantom_000_image.nii.gz", "/b/deep/phantom_000_image.nii.gz"]
    with pytest.raises(ValueError, match="is not a folder"):
        list_images(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no NIfTI file"):
        list_images(str(tmp_path / "empty"))


def test_label_maps_and_masks_are_told_from_scans_by_content_not_name(tmp_path):
    affine = np.eye(4)
    rng = np.random.default_rng(0)
    scan = rng.normal(100, 30, (24, 24, 24))
    cases = {
        "seg.nii.gz": (rng.integers(0, 5, (24, 24, 24)).astype(np.int16), "5 distinct integer values"),
        "brainmask.nii.gz": ((scan > 100).astype(np.float32), "2 distinct integer values"),
        "mask.nii.gz": (scan.astype(np.float32), ""),  # a scan whatever its name
        "int_scan.nii.gz": (scan.astype(np.int16), ""),  # integer-valued but many grey levels
    }
    for name, (data, _) in cases.items():
        nib.save(nib.Nifti1Image(data, affine), str(tmp_path / name))
    assert {name: is_label_map(str(tmp_path / name)) for name in cases} == {n: r for n, (_, r) in cases.items()}


def test_real_brats_label_and_scan(tmp_path):
    subject = shared_path("brats_deepmedic", "train", "brats_2013_pat0005_1")
    assert is_label_map(str(subject / "OTMultiClass.nii.gz"))
    assert is_label_map(str(subject / "Flair_subtrMeanDivStd.nii.gz")) == ""


def test_a_dicom_folder_points_to_the_indexer(tmp_path):
    (tmp_path / "IM0001").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    with pytest.raises(ValueError, match="convert them with `monai-ssl index"):
        list_images(str(tmp_path))


def test_demo_data_only_when_asked_for(tmp_path):
    for make_files in (lambda: training_files(None, None, str(tmp_path)),
                       lambda: segmentation_files(None, None, str(tmp_path)),
                       lambda: require_files(inference_files(None, None, str(tmp_path)))):
        with pytest.raises(ValueError, match="--demo true runs on generated demo phantoms"):
            make_files()
    assert not (tmp_path / "demo_data").exists() and not (tmp_path / "demo_unlabelled").exists()
    with pytest.raises(ValueError, match="drop --demo to use your data"):
        training_files(str(tmp_path), None, str(tmp_path), demo=True)


def test_demo_unlabelled_subjects_differ_from_the_labelled_ones(tmp_path):
    unlabelled = training_files(None, None, str(tmp_path), demo=True, num_demo_subjects=2)
    train, validation = segmentation_files(None, None, str(tmp_path), demo=True)
    assert len(unlabelled) == 2 and len(train) == 1 and len(validation) == 3
    import nibabel as nib

    pretraining_images = [nib.load(e["image"]).get_fdata() for e in unlabelled]
    for entry in train + validation:
        image = nib.load(entry["image"]).get_fdata()
        assert not any((image == other).all() for other in pretraining_images)
    assert [e["image"] for e in inference_files(None, None, str(tmp_path), demo=True)] == [e["image"] for e in validation]


def test_segmentation_files_from_a_decathlon_folder_and_a_datalist(tmp_path):
    for name in ("imagesTr", "labelsTr"):
        (tmp_path / name).mkdir()
    for index in range(5):
        for name in ("imagesTr", "labelsTr"):
            (tmp_path / name / f"case{index}.nii.gz").write_bytes(b"")
    train, validation = segmentation_files(str(tmp_path), None, str(tmp_path / "out"), num_labelled=2)
    assert [t["image"].split("/")[-1] for t in train] == ["case0.nii.gz", "case1.nii.gz"]
    assert [v["label"].split("/")[-2:] for v in validation] == [["labelsTr", "case4.nii.gz"]]
    (tmp_path / "labelsTr" / "case3.nii.gz").unlink()
    with pytest.raises(ValueError, match="1 images have no label"):
        segmentation_files(str(tmp_path), None, str(tmp_path / "out"))
    datalist = tmp_path / "list.json"
    datalist.write_text(json.dumps({"training": [{"image": "imagesTr/case0.nii.gz", "label": "labelsTr/case0.nii.gz"}],
                                    "validation": [{"image": "imagesTr/case1.nii.gz", "label": "labelsTr/case1.nii.gz"}]}))
    train, validation = segmentation_files(None, str(datalist), str(tmp_path / "out"))
    assert train[0]["image"] == str(tmp_path / "imagesTr" / "case0.nii.gz")
    with pytest.raises(ValueError, match="num_labelled must be between 1 and 1"):
        segmentation_files(None, str(datalist), str(tmp_path / "out"), num_labelled=2)
    with pytest.raises(ValueError, match="does not exist"):
        training_files(None, str(tmp_path / "absent.json"), str(tmp_path))


def test_intensity_presets():
    image = {"image": torch.tensor([[[[-2000.0, -1000.0, 0.0, 1000.0, 3000.0]]]])}
    ct = intensity_preset("image", "CT")(image)["image"].flatten().tolist()
    assert ct == [0.0, 0.0, 0.5, 1.0, 1.0]
    mr = intensity_preset("image", "MR", mr_percentiles=(0, 100))(image)["image"].flatten()
    assert float(mr.min()) == 0.0 and float(mr.max()) == 1.0
    with pytest.raises(ValueError, match="modality must be one of"):
        intensity_preset("image", "PET")


def test_setup_checks_name_the_setting_to_change():
    model = PretextModel(small_unet(), ["colorization"])
    with pytest.raises(ValueError, match="multiples of 4"):
        check_pretext_setup(model, (30, 32, 32))
    check_pretext_setup(model, (32, 32, 32))
    with pytest.raises(ValueError, match="shrink to"):
        check_pretext_setup(PretextModel(small_unet(), [{"name": "jigsaw", "args": {"gap": 4, "jitter": 2}}]),
                            (24, 24, 24))
    with pytest.raises(ValueError, match="too small for patch_size"):
        pretext_dataset([], PretextModel(small_unet(), ["relative_position"]), "MR", None, (32, 32, 32))


def test_per_class_dice_selects_each_foreground_channel():
    metrics = per_class_dice({"background": 0, "brain": 1, "lesion": 3})
    assert sorted(metrics) == ["val_dice_brain", "val_dice_lesion"]
    pred = torch.zeros(4, 4, 4, 4)
    label = torch.zeros(4, 4, 4, 4)
    pred[1, :2] = label[1, :2] = 1
    pred[3, :1] = 1
    label[3, :2] = 1
    output = [{"pred": pred, "label": label}]

    def dice(name):
        preds, labels = metrics[name]._output_transform(output)
        assert preds[0].shape == (1, 4, 4, 4)
        return float(DiceMetric(include_background=True)(torch.stack(preds), torch.stack(labels)).mean())

    assert dice("val_dice_brain") == pytest.approx(1.0) and dice("val_dice_lesion") == pytest.approx(2 / 3)
    metrics = per_class_dice({"background": 0, "brain": 1, "lesion": 3}, {"any": [1, 3]})
    # union of channels 1 and 3: prediction covers rows 0-1 (brain) and row 0 (lesion), label rows 0-1 of both
    assert dice("val_dice_any") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="label group 'bad'"):
        per_class_dice({"background": 0, "brain": 1}, {"bad": [2]})
