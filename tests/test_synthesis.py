import nibabel as nib
import numpy as np

from monai_ssl.data.synthesis import BRAIN_REGIONS, group_labels, synthesize_t1
from tests.conftest import shared_path


def toy_anatomy() -> np.ndarray:
    labels = np.zeros((24, 24, 24), np.int32)
    labels[4:20, 4:20, 4:20] = 3  # cortex
    labels[7:17, 7:17, 7:17] = 2  # white matter
    labels[10:14, 10:14, 10:14] = 4  # lateral ventricle
    labels[0:2] = 530  # an extra-cerebral id
    return labels


def test_group_labels_maps_ids_to_region_indices():
    labels = np.array([0, 2, 41, 3, 42, 4, 44, 10, 60, 7, 47, 16, 24, 530, 14])
    assert group_labels(labels).tolist() == [0, 2, 2, 1, 1, 3, 3, 4, 4, 5, 5, 6, 0, 0, 0]
    assert list(BRAIN_REGIONS) == ["cortex", "white_matter", "lateral_ventricles", "deep_grey", "cerebellum",
                                   "brainstem"]


def test_synthesis_is_deterministic_and_t1_like():
    labels = toy_anatomy()
    image = synthesize_t1(labels, seed=3)
    np.testing.assert_array_equal(image, synthesize_t1(labels, seed=3))
    assert not np.array_equal(image, synthesize_t1(labels, seed=4))
    assert image.dtype == np.float32 and image.min() >= 0 and image.max() <= 1
    white, cortex, ventricle = (float(image[labels == k].mean()) for k in (2, 3, 4))
    assert white > cortex > ventricle


def test_real_anatomy():
    source = nib.load(str(shared_path("synthseg_label_maps", "training_seg_01.nii.gz")))
    labels = np.asarray(source.dataobj).astype(np.int32)[::4, ::4, ::4]
    image = synthesize_t1(labels, seed=0, spacing=4.0)
    regions = group_labels(labels)
    assert set(np.unique(regions)) == set(range(7))
    assert image[regions == 2].mean() > image[regions == 1].mean()  # white matter brighter than cortex
