"""What the MONAI Model Zoo's CI (``ci/verify_bundle.py``) checks on a contributed bundle, on both bundles.

Required files, metadata validated against the Zoo's schema (vendored: ``tests/data/meta_schema_20240725.json``,
copied verbatim from the MONAI-extra-test-data 0.8.1 release, Apache-2.0), ``verify_net_in_out`` and
``ckpt_export`` on ``configs/inference.json`` alone, and the inference workflow's ``check_properties() == []``.
"""

import json
import re
from pathlib import Path

import jsonschema
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow, ckpt_export, verify_net_in_out

from tests.helpers import PRETRAINING, SEGMENTATION

SCHEMA = Path(__file__).parent / "data" / "meta_schema_20240725.json"
BUNDLES = [PRETRAINING.parent, SEGMENTATION.parent]
IDS = ["pretext_pretraining", "brain_mri_segmentation"]
REQUIRED_FILES = ["LICENSE", "configs/metadata.json", "configs/inference.json", "configs/train.json",
                  "configs/multi_gpu_train.json", "configs/logging.conf", "docs/README.md", "docs/data_license.txt"]
README_SECTIONS = ["Model Overview", "Data", "Training Configuration", "Performance", "MONAI Bundle Commands",
                   "References", "License"]


def metadata(bundle: Path) -> dict:
    return json.loads((bundle / "configs" / "metadata.json").read_text())


def inference_parser(bundle: Path) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    return parser


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_required_files(bundle):
    assert [name for name in REQUIRED_FILES if not (bundle / name).is_file()] == []


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_metadata_validates_against_the_zoo_schema(bundle):
    meta = metadata(bundle)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validate(meta, schema)
    assert meta["schema"].endswith(SCHEMA.name)
    assert meta["version"] in meta["changelog"]


def test_the_schema_check_bites():
    meta = metadata(PRETRAINING.parent)
    del meta["network_data_format"]["inputs"]["image"]["value_range"]
    with pytest.raises(jsonschema.ValidationError, match="value_range"):
        jsonschema.validate(meta, json.loads(SCHEMA.read_text()))


def test_network_data_format_says_what_each_bundle_outputs():
    pretraining = metadata(PRETRAINING.parent)["network_data_format"]["outputs"]["pred"]
    segmentation = metadata(SEGMENTATION.parent)["network_data_format"]["outputs"]["pred"]
    assert pretraining["format"] == "features" and segmentation["format"] == "segmentation"
    labels = inference_parser(SEGMENTATION.parent).get_parsed_content("label_names")
    assert {int(k): v for k, v in segmentation["channel_def"].items()} == {v: k for k, v in labels.items()}


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_docs_follow_the_zoo_readme_template(bundle):
    text = re.sub(r"^```.*?^```", "", (bundle / "docs" / "README.md").read_text(), flags=re.MULTILINE | re.DOTALL)
    headings = re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE)
    assert [s for s in README_SECTIONS if s not in headings] == []
    positions = [headings.index(s) for s in README_SECTIONS]
    assert positions == sorted(positions)


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_verify_net_in_out_on_the_inference_config_alone(bundle):
    verify_net_in_out(net_id="network_def", meta_file=str(bundle / "configs" / "metadata.json"),
                      config_file=str(bundle / "configs" / "inference.json"), n=1)


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_inference_workflow_has_every_required_property(bundle):
    workflow = ConfigWorkflow(config_file=str(bundle / "configs" / "inference.json"), workflow_type="infer")
    workflow.initialize()
    assert workflow.check_properties() == []


@pytest.mark.parametrize("bundle", BUNDLES, ids=IDS)
def test_ckpt_export_gives_a_torchscript_model_equal_to_the_eager_one(bundle, tmp_path):
    network = inference_parser(bundle).get_parsed_content("network_def")
    weights = bundle / "models" / "model.pt"
    if not weights.is_file():  # the segmentation bundle ships no fine-tuned weights: export freshly built ones
        weights = tmp_path / "model.pt"
        torch.save(network.state_dict(), weights)
    exported = tmp_path / "model.ts"
    # as the Zoo runs it: no key_in_ckpt, so model.pt must be a plain state_dict of network_def
    ckpt_export(net_id="network_def", filepath=str(exported), ckpt_file=str(weights),
                meta_file=str(bundle / "configs" / "metadata.json"),
                config_file=str(bundle / "configs" / "inference.json"))
    network.load_state_dict(torch.load(weights, weights_only=True))
    network.eval()
    scripted = torch.jit.load(str(exported))
    image = torch.rand(1, 1, 32, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(image), network(image), rtol=1e-5, atol=1e-6)
