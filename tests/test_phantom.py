import numpy as np
import pytest
from monai.transforms import LoadImage

from monai_ssl.data import PHANTOM_LABEL_NAMES, make_phantom, write_phantom_dataset


def test_same_seed_same_subject_and_all_labels_present():
    image, label = make_phantom(3, shape=(48, 40, 32), channels=2)
    again, again_label = make_phantom(3, shape=(48, 40, 32), channels=2)
    assert image.shape == (2, 48, 40, 32) and label.shape == (1, 48, 40, 32)
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(label, again_label)
    assert set(np.unique(label)) == set(PHANTOM_LABEL_NAMES.values())
    assert not np.array_equal(make_phantom(4, shape=(48, 40, 32))[1], label)


def test_lesion_is_bright_in_the_second_contrast():
    image, label = make_phantom(0, channels=2)
    lesion, brain = label[0] == 3, label[0] == 1
    assert image[1][lesion].mean() > image[1][brain].mean()


def test_bad_arguments():
    with pytest.raises(ValueError):
        make_phantom(0, channels=3)
    with pytest.raises(ValueError):
        make_phantom(0, shape=(8, 8, 8))


def test_dataset_files_load_with_monai(tmp_path):
    entries = write_phantom_dataset(str(tmp_path), num_subjects=2, shape=(32, 32, 32), spacing=2.0)
    assert len(entries) == 2 and (tmp_path / "datalist.json").exists()
    image = LoadImage(image_only=True, ensure_channel_first=True)(entries[1]["image"])
    label = LoadImage(image_only=True, ensure_channel_first=True)(entries[1]["label"])
    assert image.shape == (1, 32, 32, 32) and label.shape == (1, 32, 32, 32)
    np.testing.assert_allclose(image.pixdim[:3], [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(np.asarray(label), make_phantom(1, shape=(32, 32, 32))[1])
    assert not list(tmp_path.glob("*.tmp*"))
