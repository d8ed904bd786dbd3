"""The segmentation bundle under the Model Zoo's unit-test form (ci/unit_tests/test_<bundle>.py): train on demo data
with property checks, evaluate that model, and inference with the shipped model, from a copy in the Zoo's layout."""

import unittest
from pathlib import Path
from tempfile import TemporaryDirectory

import nibabel as nib

from tests.helpers import TINY_SEGMENTATION, write_phantom_images
from tests.zoo.utils import bundle_copy, run_checked, workflow


class TestBrainMRISegmentation(unittest.TestCase):
    def setUp(self):
        self.folder = TemporaryDirectory()
        self.bundle = bundle_copy("brain_mri_segmentation", Path(self.folder.name))
        self.outputs = Path(self.folder.name) / "outputs"

    def tearDown(self):
        self.folder.cleanup()

    def test_train_eval_config(self):
        overrides = {**TINY_SEGMENTATION, "output_dir": str(self.outputs), "ckpt_dir": str(self.outputs / "models")}
        run_checked(workflow(self.bundle, "train", ["train.json"], **overrides))
        # evaluate.json overrides train.json: no properties of its own to check, as in the Zoo
        run_checked(workflow(self.bundle, "eval", ["train.json", "evaluate.json"], **overrides), check=False)
        self.assertTrue((self.outputs / "eval").is_dir())

    def test_infer_config(self):
        """The shipped model on generated scans in a dataset_dir, as the Zoo's tests make fake data (``--demo true``
        would also switch to the demo phantom's classes, which the shipped model does not have)."""
        scans = Path(self.folder.name) / "scans"
        write_phantom_images(scans, 2)
        run_checked(workflow(self.bundle, "infer", ["inference.json"], dataset_dir=str(scans),
                             output_dir=str(self.outputs), num_workers=0))
        predictions = sorted((self.outputs / "predictions").rglob("*_seg.nii.gz"))
        self.assertTrue(predictions)
        self.assertTrue(set(nib.load(predictions[0]).get_fdata().ravel().tolist()) <= set(range(9)))


if __name__ == "__main__":
    unittest.main()
