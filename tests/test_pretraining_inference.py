"""The pretraining bundle's inference.json: per-volume encoder embeddings of the shipped weights."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow
from monai.data import MetaTensor

from monai_ssl.embedding import EmbeddingWriter, EncoderEmbedding
from tests.helpers import PRETRAINING, small_unet, write_phantom_images

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



def test_subjects_with_the_same_file_name_get_one_embedding_each(tmp_path):
    """BraTS and BIDS keep one file name per subject (``subject/Flair.nii.gz``): the embeddings mirror the input
    folders instead of overwriting each other."""
    for subject, path in zip(("subject_a", "subject_b"), write_phantom_images(tmp_path / "scans", 2)):
        (tmp_path / "scans" / subject).mkdir()
        path.rename(tmp_path / "scans" / subject / "Flair.nii.gz")
    flow = ConfigWorkflow(config_file=INFERENCE, workflow_type="infer", dataset_dir=str(tmp_path / "scans"),
                          output_dir=str(tmp_path / "out"), num_workers=0)
    flow.initialize()
    flow.run()
    files = sorted(p.relative_to(tmp_path / "out" / "embeddings") for p in (tmp_path / "out").rglob("*.npy"))
    assert [str(f) for f in files] == ["subject_a/Flair_embedding.npy", "subject_b/Flair_embedding.npy"]
    assert not np.allclose(*[np.load(tmp_path / "out" / "embeddings" / f) for f in files])


def test_embedding_writer_follows_monai_folder_layout(tmp_path):
    writer = EmbeddingWriter(str(tmp_path / "out"), data_root_dir=str(tmp_path / "data"), separate_folder=True)
    image = MetaTensor(torch.zeros(1, 4, 4, 4), meta={"filename_or_obj": str(tmp_path / "data" / "s1" / "T1.nii.gz")})
    engine = SimpleNamespace(state=SimpleNamespace(output=[{"image": image, "pred": torch.ones(3)}]))
    writer(engine)
    assert np.array_equal(np.load(tmp_path / "out" / "s1" / "T1" / "T1_embedding.npy"), np.ones(3, np.float32))
