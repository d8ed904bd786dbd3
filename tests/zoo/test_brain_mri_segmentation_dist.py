"""The segmentation bundle under the Model Zoo's multi-GPU unit-test form (ci/unit_tests/test_<bundle>_dist.py):
train.json + multi_gpu_train.json merged with the overrides, exported into the bundle's configs/, run by torchrun
(2 processes; gloo on CPU), then evaluated."""

import unittest
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.helpers import TINY_SEGMENTATION
from tests.zoo.utils import bundle_copy, export_and_run_torchrun, run_checked, workflow


class TestBrainMRISegmentationMultiGPU(unittest.TestCase):
    def test_train_mgpu_config(self):
        with TemporaryDirectory() as folder:
            bundle = bundle_copy("brain_mri_segmentation", Path(folder))
            outputs = Path(folder) / "outputs"
            overrides = {**TINY_SEGMENTATION, "max_epochs": 1, "output_dir": str(outputs),
                         "ckpt_dir": str(outputs / "models")}
            export_and_run_torchrun(bundle, ["train.json", "multi_gpu_train.json"], overrides, "train_override.json")
            self.assertTrue((outputs / "models" / "model.pt").is_file())
            run_checked(workflow(bundle, "eval", ["train.json", "evaluate.json"], **overrides), check=False)


if __name__ == "__main__":
    unittest.main()
