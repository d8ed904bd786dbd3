"""The pretraining bundle's inference.json: per-volume encoder embeddings of the shipped weights."""

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_ssl.embedding import EncoderEmbedding
from tests.helpers import PRETRAINING, small_unet

INFERENCE = str(PRETRAINING / "inference.json")


def test_encoder_embedding_is_the_pooled_deepest_encoder_features():
    network = small_unet()
    embedding = EncoderEmbedding(network)
    image = torch.rand(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    expected = network.model[1].submodule[1].submodule(network.model[1].submodule[0](network.model[0](image)))
    torch.testing.assert_close(embedding(image), expected.mean(dim=(2, 3, 4)))
    assert embedding(image).shape == (2, 32)


def test_inference_saves_one_embedding_per_volume_from_model_pt(tmp_path):
    flow = ConfigWorkflow(config_file=INFERENCE, workflow_type="infer", demo=True, output_dir=str(tmp_path),
                          num_workers=0)
    flow.initialize()
    assert flow.check_properties() == []
    flow.run()
    files = sorted((tmp_path / "embeddings").glob("*_embedding.npy"))
    assert [f.name for f in files] == [f"phantom_{i:03d}_image_embedding.npy" for i in (1, 2, 3)]
    vectors = np.stack([np.load(f) for f in files])
    assert vectors.shape == (3, 128) and vectors.dtype == np.float32
    # the shipped model.pt was loaded: its embedding differs from a freshly initialised network's
    network = flow.parser.get_parsed_content("network_def")
    shipped = torch.load(PRETRAINING.parent / "models" / "model.pt", weights_only=True)
    assert all(torch.equal(v, network.state_dict()[k]) for k, v in shipped.items())
    assert not np.allclose(vectors[0], vectors[1])


def test_inference_without_data_says_how_to_give_it(tmp_path):
    flow = ConfigWorkflow(config_file=INFERENCE, workflow_type="infer", output_dir=str(tmp_path))
    flow.initialize()
    with pytest.raises(RuntimeError) as error:
        flow.run()
    assert "--demo true runs on generated demo phantoms" in str(error.value.__cause__)
    assert not (tmp_path / "embeddings").exists()

