"""The pretraining bundle under the Model Zoo's unit-test form (ci/unit_tests/test_<bundle>.py): train on demo data
with property checks, then inference with the shipped weights, from a copy in the Zoo's layout."""

import unittest
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from tests.helpers import TINY_PRETRAINING
from tests.zoo.utils import bundle_copy, run_checked, workflow


class TestPretextPretraining(unittest.TestCase):
    def setUp(self):
        self.folder = TemporaryDirectory()
        self.bundle = bundle_copy("pretext_pretraining", Path(self.folder.name))
        self.outputs = Path(self.folder.name) / "outputs"

    def tearDown(self):
        self.folder.cleanup()

    def test_train_config(self):
        run_checked(workflow(self.bundle, "train", ["train.json"], **TINY_PRETRAINING,
                             output_dir=str(self.outputs), ckpt_dir=str(self.outputs / "models")))
        self.assertTrue((self.outputs / "models" / "model.pt").is_file())

    def test_infer_config(self):
        run_checked(workflow(self.bundle, "infer", ["inference.json"], demo=True, output_dir=str(self.outputs)))
        embeddings = sorted((self.outputs / "embeddings").rglob("*_embedding.npy"))
        self.assertTrue(embeddings)
        self.assertEqual(np.load(embeddings[0]).shape, (128,))


if __name__ == "__main__":
    unittest.main()
