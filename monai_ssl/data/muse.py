"""Brain-region groupings of the MUSE atlas, for DLMUSE label maps (e.g. the IXI T1 of ``../shared/data``).

MUSE labels 145 brain structures (ids 4..207) plus cortical CSF (id 1). Two groupings turn them into segmentation
classes; an id a grouping does not list (always cortical CSF and the small unnamed ids 46 and 69) is background:

- :data:`MUSE_COARSE`, 8 tissue classes, left and right together: cortical grey matter (every cortical gyrus:
  the lobes' grey matter below), cerebral white matter (MUSE's white-matter composite less the cerebellum: lobar
  white matter, internal capsules, fornix, corpus callosum, ventral diencephalon), lateral ventricles (with the
  inferior horns), deep grey nuclei (caudate, putamen, pallidum, thalamus, accumbens, basal forebrain),
  hippocampus and amygdala, cerebellar grey matter (hemispheres and vermis), cerebellar white matter, brainstem.
  The thin third and fourth ventricles are background here.
- :data:`MUSE_FINE`, 49 structures: the cortex as the grey matter of each lobe (frontal, limbic, occipital,
  parietal, temporal; MUSE's composite definitions), the lobar white matter, and the subcortical structures, each
  side apart; the third and fourth ventricles, vermis, brainstem and corpus callosum.

Reference:
    Doshi et al., "MUSE: MUlti-atlas region Segmentation utilizing Ensembles of registration algorithms and
    parameters, and locally optimal atlas selection", NeuroImage 2016.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["MUSE_COARSE", "MUSE_FINE", "MUSE_GROUPINGS", "MUSE_LATERAL_PAIRS", "label_names", "label_sources"]

_LOBE_GREY = {  # (right, left): MUSE's composites Frontal_GM_R/L, Limbic_GM_R/L, ... as listed with the atlas
    "frontal": ((102, 104, 112, 118, 120, 124, 136, 140, 142, 146, 150, 152, 162, 164, 172, 174, 178, 182, 186, 190,
                 192, 204),
                (103, 105, 113, 119, 121, 125, 137, 141, 143, 147, 151, 153, 163, 165, 173, 175, 179, 183, 187, 191,
                 193, 205)),
    "limbic": ((100, 116, 138, 166, 170), (101, 117, 139, 167, 171)),
    "occipital": ((108, 114, 128, 134, 144, 156, 160, 196), (109, 115, 129, 135, 145, 157, 161, 197)),
    "parietal": ((106, 148, 168, 176, 194, 198), (107, 149, 169, 177, 195, 199)),
    "temporal": ((122, 132, 154, 180, 184, 200, 202, 206), (123, 133, 155, 181, 185, 201, 203, 207)),
}

_CORTEX = tuple(sorted(i for sides in _LOBE_GREY.values() for ids in sides for i in ids))

MUSE_COARSE: dict[str, tuple[int, ...]] = {
    "cortical_grey": _CORTEX,
    "cerebral_white": (61, 62, 81, 82, 83, 84, 85, 86, 87, 88, 89, 90, 91, 92, 93, 94, 95),
    "lateral_ventricles": (49, 50, 51, 52),
    "deep_grey": (23, 30, 36, 37, 55, 56, 57, 58, 59, 60, 75, 76),
    "hippocampus_amygdala": (31, 32, 47, 48),
    "cerebellum_grey": (38, 39, 71, 72, 73),
    "cerebellum_white": (40, 41),
    "brainstem": (35,),
}

_PAIRED = {  # name: (right id(s), left id(s))
    "lateral_ventricle": ((49, 51), (50, 52)), "accumbens": ((23,), (30,)), "amygdala": ((31,), (32,)),
    "caudate": ((36,), (37,)), "cerebellum_cortex": ((38,), (39,)), "cerebellum_white": ((40,), (41,)),
    "hippocampus": ((47,), (48,)), "pallidum": ((55,), (56,)), "putamen": ((57,), (58,)),
    "thalamus": ((59,), (60,)), "ventral_dc": ((61,), (62,)), "basal_forebrain": ((76,), (75,)),
    "frontal_white": ((81,), (82,)), "occipital_white": ((83,), (84,)), "parietal_white": ((85,), (86,)),
    "temporal_white": ((87,), (88,)), "internal_capsule_fornix": ((89, 91, 93), (90, 92, 94)),
}
MUSE_FINE: dict[str, tuple[int, ...]] = {
    **{f"{lobe}_grey_{side}": ids[i] for lobe, ids in _LOBE_GREY.items()
       for i, side in enumerate(("r", "l"))},
    **{f"{name}_{side}": ids[i] for name, ids in _PAIRED.items() for i, side in enumerate(("r", "l"))},
    "third_ventricle": (4,), "fourth_ventricle": (11,), "brainstem": (35,), "corpus_callosum": (95,),
    "vermis": (71, 72, 73),
}
MUSE_GROUPINGS = {"coarse": MUSE_COARSE, "fine": MUSE_FINE}
# (right id, left id) of every structure MUSE labels on both sides: a left-right flip of a training crop must swap
# them (the segmentation bundle's lateral_pairs), or the fine grouping learns each side's name on both sides
MUSE_LATERAL_PAIRS: tuple[tuple[int, int], ...] = tuple(
    pair for right, left in [*_LOBE_GREY.values(), *_PAIRED.values()] for pair in zip(right, left))


def label_names(groups: Mapping[str, Sequence[int]]) -> dict[str, int]:
    """The segmentation bundle's ``label_names`` of a grouping: background 0, then the groups in order."""
    return {"background": 0, **{name: index for index, name in enumerate(groups, start=1)}}


def label_sources(groups: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """The segmentation bundle's ``label_sources`` of a grouping: the atlas ids of each class."""
    return {name: sorted(ids) for name, ids in groups.items()}
