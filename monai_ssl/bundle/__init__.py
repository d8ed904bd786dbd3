"""Building blocks that the bundles' JSON configs call (``$monai_ssl.bundle.<name>(...)``), usable from Python as
they are: data sources, pipelines, metrics and start-up checks."""

from monai_ssl.bundle.checks import (
    bundle_root,
    bundle_settings,
    check_segmentation_setup,
    check_segmentation_weights,
    check_settings,
    install_error_summary,
    quiet_third_party_warnings,
    root_cause,
)
from monai_ssl.bundle.data_sources import (
    DEMO_PHANTOM_SHAPE,
    IMAGE_KEY,
    LABEL_MAP_KEY,
    inference_files,
    is_label_map,
    list_images,
    rank_partition,
    require_files,
    segmentation_files,
    shipped_encoder_path,
    training_files,
    validation_files,
)
from monai_ssl.bundle.metrics import per_class_dice
from monai_ssl.bundle.pipelines import (
    MODALITIES,
    RAS_LABELS,
    check_pretext_setup,
    intensity_preset,
    label_map_preprocessing,
    preprocessing,
    pretext_dataset,
)

__all__ = [
    "DEMO_PHANTOM_SHAPE",
    "IMAGE_KEY",
    "LABEL_MAP_KEY",
    "MODALITIES",
    "RAS_LABELS",
    "bundle_root",
    "bundle_settings",
    "check_pretext_setup",
    "check_segmentation_setup",
    "check_segmentation_weights",
    "check_settings",
    "inference_files",
    "install_error_summary",
    "intensity_preset",
    "is_label_map",
    "label_map_preprocessing",
    "list_images",
    "per_class_dice",
    "preprocessing",
    "pretext_dataset",
    "quiet_third_party_warnings",
    "rank_partition",
    "require_files",
    "root_cause",
    "segmentation_files",
    "shipped_encoder_path",
    "training_files",
    "validation_files",
]
