"""MONAI transforms that turn an unlabelled volume into a pretext-task input and its pseudo-label."""

from monai_ssl.transforms.colorization import (
    RandIntensityColorization,
    RandIntensityColorizationd,
    RandIntensityColorizationD,
    RandIntensityColorizationDict,
)
from monai_ssl.transforms.contrastive import (
    RandContrastiveViews,
    RandContrastiveViewsd,
    RandContrastiveViewsD,
    RandContrastiveViewsDict,
)
from monai_ssl.transforms.cpc import RandCPCPatches, RandCPCPatchesd, RandCPCPatchesD, RandCPCPatchesDict
from monai_ssl.transforms.jigsaw import (
    RandVolumeJigsaw,
    RandVolumeJigsawd,
    RandVolumeJigsawD,
    RandVolumeJigsawDict,
    max_hamming_permutations,
)
from monai_ssl.transforms.masked_volume import (
    RandVolumeMasking,
    RandVolumeMaskingd,
    RandVolumeMaskingD,
    RandVolumeMaskingDict,
)
from monai_ssl.transforms.relative_position import (
    RandRelativePatchPosition,
    RandRelativePatchPositiond,
    RandRelativePatchPositionD,
    RandRelativePatchPositionDict,
    neighbour_offsets,
)
from monai_ssl.transforms.restoration import (
    RandRestorationDegradation,
    RandRestorationDegradationd,
    RandRestorationDegradationD,
    RandRestorationDegradationDict,
)
from monai_ssl.transforms.synthesis import (
    RandLabelMapSynthesis,
    RandLabelMapSynthesisd,
    RandLabelMapSynthesisD,
    RandLabelMapSynthesisDict,
)
from monai_ssl.transforms.rotation import (
    RandSliceRotation,
    RandSliceRotationd,
    RandSliceRotationD,
    RandSliceRotationDict,
)

__all__ = [
    "RandCPCPatches",
    "RandCPCPatchesd",
    "RandCPCPatchesD",
    "RandCPCPatchesDict",
    "RandContrastiveViews",
    "RandContrastiveViewsd",
    "RandContrastiveViewsD",
    "RandContrastiveViewsDict",
    "RandIntensityColorization",
    "RandIntensityColorizationd",
    "RandIntensityColorizationD",
    "RandIntensityColorizationDict",
    "RandLabelMapSynthesis",
    "RandLabelMapSynthesisd",
    "RandLabelMapSynthesisD",
    "RandLabelMapSynthesisDict",
    "RandRelativePatchPosition",
    "RandRelativePatchPositiond",
    "RandRelativePatchPositionD",
    "RandRelativePatchPositionDict",
    "RandRestorationDegradation",
    "RandRestorationDegradationd",
    "RandRestorationDegradationD",
    "RandRestorationDegradationDict",
    "RandSliceRotation",
    "RandSliceRotationd",
    "RandSliceRotationD",
    "RandSliceRotationDict",
    "RandVolumeJigsaw",
    "RandVolumeJigsawd",
    "RandVolumeJigsawD",
    "RandVolumeJigsawDict",
    "RandVolumeMasking",
    "RandVolumeMaskingd",
    "RandVolumeMaskingD",
    "RandVolumeMaskingDict",
    "max_hamming_permutations",
    "neighbour_offsets",
]
