import json

import pytest
from monai.bundle import ConfigParser

from monai_ssl.bundle import default_labels
from tests.helpers import PRETRAINING, SEGMENTATION

# the Model Zoo's mandatory metadata keys
MANDATORY = ["version", "changelog", "monai_version", "pytorch_version", "numpy_version",
             "required_packages_version", "task", "description", "authors", "copyright", "network_data_format"]


@pytest.mark.parametrize("configs", [PRETRAINING, SEGMENTATION], ids=["pretext_pretraining", "brain_mri_segmentation"])
def test_bundle_files_and_metadata(configs):
    bundle = configs.parent
    for name in ("LICENSE", "docs/README.md", "configs/train.json", "configs/multi_gpu_train.json",
                 "configs/logging.conf", "configs/metadata.json"):
        assert (bundle / name).is_file(), name
    metadata = json.loads((configs / "metadata.json").read_text())
    assert [k for k in MANDATORY if k not in metadata] == []
    assert metadata["version"] in metadata["changelog"]
    # what the Zoo's model pages show: numbers only
    assert metadata["eval_metrics"] and all(isinstance(v, (int, float)) for v in metadata["eval_metrics"].values())
    # the Zoo's changelogs are one short line per version
    assert all(len(entry) <= 120 and "\n" not in entry for entry in metadata["changelog"].values())
    network_format = metadata["network_data_format"]
    assert network_format["inputs"]["image"]["num_channels"] == 1
    # the pretraining UNet's 4 output feature maps; the segmentation model's classes
    expected = 4 if configs == PRETRAINING else len(default_labels()["label_names"])
    assert network_format["outputs"]["pred"]["num_channels"] == expected


@pytest.mark.parametrize("configs", [PRETRAINING, SEGMENTATION], ids=["pretext_pretraining", "brain_mri_segmentation"])
def test_boolean_flags_are_json_booleans_and_workflow_lists_exist(configs):
    for path in configs.glob("*.json"):
        config = json.loads(path.read_text())
        for key in ("resume", "use_pretrained"):
            if key in config:
                assert isinstance(config[key], bool), f"{path.name}: {key}"
        if "encoder_only" in config:  # true, false, or null: decided from the pretraining tasks
            assert config["encoder_only"] is None or isinstance(config["encoder_only"], bool), path.name
        if path.name in ("train.json", "multi_gpu_train.json", "evaluate.json", "inference.json"):
            assert {"initialize", "run", "finalize"} <= set(config), path.name


def test_the_networks_of_both_bundles_match():
    configs = [json.loads((folder / name).read_text()) for folder in (PRETRAINING, SEGMENTATION)
               for name in ("train.json", "inference.json")]
    # the same UNet everywhere, up to the name of its output channels (feature maps vs classes)
    unify = lambda network: {**network, "out_channels": None}  # noqa: E731
    assert all(unify(c["network_def"]) == unify(configs[0]["network_def"]) for c in configs)
    assert {c["in_channels"] for c in configs} == {1}
    # the segmentation bundle's classes are its shipped model's, in both its configs
    for name in ("train.json", "inference.json"):
        parser = ConfigParser()
        parser.read_config(str(SEGMENTATION / name))
        assert parser.get_parsed_content("label_names") == default_labels()["label_names"]


def test_both_bundles_state_the_versions_ci_tests():
    """.ci/lowest_versions installs the segmentation bundle's stated versions and tests both bundles with them."""
    stated = [{k: json.loads((c / "metadata.json").read_text())[k] for k in ("monai_version", "pytorch_version",
                                                                             "numpy_version")}
              for c in (PRETRAINING, SEGMENTATION)]
    assert stated[0] == stated[1]
