"""The pretraining bundle under the Model Zoo's multi-GPU unit-test form (ci/unit_tests/test_<bundle>_dist.py):
train.json + multi_gpu_train.json merged with the overrides, exported into the bundle's configs/, run by torchrun
(2 processes; gloo on CPU)."""

import unittest
from pathlib import Path
from tempfile import TemporaryDirectory

from tests.helpers import TINY_PRETRAINING
from tests.zoo.utils import bundle_copy, export_and_run_torchrun


class TestPretextPretrainingMultiGPU(unittest.TestCase):
    def test_train_mgpu_config(self):
        with TemporaryDirectory() as folder:
            bundle = bundle_copy("pretext_pretraining", Path(folder))
            outputs = Path(folder) / "outputs"
            export_and_run_torchrun(bundle, ["train.json", "multi_gpu_train.json"],
                                    {**TINY_PRETRAINING, "output_dir": str(outputs),
                                     "ckpt_dir": str(outputs / "models")}, "train_override.json")
            self.assertTrue((outputs / "models" / "model.pt").is_file())


if __name__ == "__main__":
    unittest.main()
