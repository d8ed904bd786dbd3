"""Slice rotation pretext task: rotate a volume by k * 90 degrees in one of several planes and predict (plane, k).

References:
    Gidaris et al., "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018.
    Taleb et al., "3D Self-Supervised Methods for Medical Imaging", NeurIPS 2020 (10-class 3D rotation).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.data import MetaTensor, get_track_meta
from monai.transforms import BorderPad, CenterSpatialCrop, InvertibleTransform, RandomizableTransform, Rotate90
from monai.utils import TraceKeys, TransformBackends, convert_to_dst_type, convert_to_tensor

from monai_ssl.transforms.utils import RandArrayWrapperd

__all__ = [
    "RandSliceRotation",
    "RandSliceRotationd",
    "RandSliceRotationD",
    "RandSliceRotationDict",
]

NON_SQUARE_MODES = ("crop", "error")


class RandSliceRotation(RandomizableTransform, InvertibleTransform):
    """
    Rotate a channel-first volume by ``k * 90`` degrees in one of ``planes``, or not at all.

    With ``P`` planes there are ``1 + 3 * P`` classes. Label 0 is no rotation; label ``1 + 3 * p + (k - 1)``
    is ``torch.rot90(img, k, dims=(planes[p][0] + 1, planes[p][1] + 1))`` for ``k`` in 1..3.
    ``planes=((0, 1), (0, 2), (1, 2))`` gives Taleb et al.'s 10-class 3D rotation task.

    A rotation in a plane that is not square would change the output shape, and the shape alone would give
    the label away. With ``non_square="crop"`` (the default) every group of axes linked by ``planes`` is first
    centre-cropped to its smallest size, for every label including 0, so all outputs share one shape;
    ``non_square="error"`` raises a ``ValueError`` instead. MetaTensor geometry is updated by MONAI's
    ``CenterSpatialCrop`` and ``Rotate90``; a MetaTensor output records one ``RandSliceRotation`` operation
    holding both, so that ``inverse`` (and ``Compose.inverse``) rotates back and pads the crop with zeros.

    Args:
        planes: pairs of distinct spatial axes, the planes of rotation.
        non_square: ``"crop"`` or ``"error"``, see above.
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, planes: Sequence[Sequence[int]] = ((0, 1),), non_square: str = "crop") -> None:
        RandomizableTransform.__init__(self, prob=1.0)
        self.planes = tuple(tuple(int(a) for a in plane) for plane in planes)
        if not self.planes:
            raise ValueError("planes must list at least one pair of spatial axes, e.g. ((0, 1),).")
        for plane in self.planes:
            if len(plane) != 2 or plane[0] == plane[1] or min(plane) < 0:
                raise ValueError(f"each plane must be two distinct non-negative spatial axes, got {plane}.")
        if len({frozenset(p) for p in self.planes}) != len(self.planes):
            raise ValueError(f"planes must not repeat a plane, got {self.planes}.")
        if non_square not in NON_SQUARE_MODES:
            raise ValueError(f"non_square must be one of {NON_SQUARE_MODES}, got {non_square!r}.")
        self.non_square = non_square
        self.num_classes = 1 + 3 * len(self.planes)
        self._label: int | None = None

    @property
    def label(self) -> int:
        """Class of the last sample."""
        if self._label is None:
            raise RuntimeError("no sample drawn yet: call the transform (or randomize()) first.")
        return self._label

    def decode(self, label: int) -> tuple[tuple[int, int] | None, int]:
        """The ``(plane, k)`` of a label; ``(None, 0)`` for label 0."""
        if not 0 <= label < self.num_classes:
            raise ValueError(f"label must be in [0, {self.num_classes}), got {label}.")
        if label == 0:
            return None, 0
        plane_index, k_minus_one = divmod(label - 1, 3)
        return self.planes[plane_index], k_minus_one + 1

    def square_shape(self, spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """The spatial shape after making every rotation plane square (the input shape if already square)."""
        shape = list(spatial_shape)
        if max(max(p) for p in self.planes) >= len(shape):
            raise ValueError(f"planes {self.planes} name an axis beyond the image's spatial shape {tuple(shape)}.")
        changed = True
        while changed:  # propagate the minimum through planes that share an axis
            changed = False
            for a, b in self.planes:
                smallest = min(shape[a], shape[b])
                if shape[a] != smallest or shape[b] != smallest:
                    shape[a] = shape[b] = smallest
                    changed = True
        return tuple(shape)

    def randomize(self, data: None = None) -> None:
        self._label = int(self.R.randint(self.num_classes))

    def __call__(self, img: NdarrayOrTensor, randomize: bool = True) -> NdarrayOrTensor:
        """
        Args:
            img: channel-first volume ``(C, *spatial)``, numpy array, tensor or MetaTensor.
            randomize: draw a new label; ``False`` reuses the last one.
        """
        if randomize:
            self.randomize()
        spatial = tuple(img.shape[1:])
        target_shape = self.square_shape(spatial)
        if target_shape != spatial and self.non_square == "error":
            raise ValueError(
                f"rotation planes {self.planes} of an image of spatial shape {spatial} are not square; "
                f"crop it to {target_shape} first or use non_square='crop'."
            )
        out = convert_to_tensor(img, track_meta=get_track_meta())
        before = len(out.applied_operations) if isinstance(out, MetaTensor) else 0
        if target_shape != spatial:
            out = CenterSpatialCrop(target_shape)(out)
        plane, k = self.decode(self.label)
        if plane is not None:
            out = Rotate90(k, plane)(out)
        if isinstance(out, MetaTensor) and get_track_meta():
            # the crop and rotation records become one record of this transform, which inverse() undoes
            steps = {op[TraceKeys.CLASS_NAME]: op for op in out.applied_operations[before:]}
            del out.applied_operations[before:]
            self.push_transform(out, extra_info={"crop": steps.get("CenterSpatialCrop"), "rotate": steps.get("Rotate90")})
        return convert_to_dst_type(out, img)[0]

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Rotate back, then pad what the crop removed with zeros (MONAI's crop inverse)."""
        steps = self.pop_transform(data)[TraceKeys.EXTRA_INFO]
        out = data
        if steps["rotate"] is not None:
            out = Rotate90().inverse_transform(out, steps["rotate"])
        if steps["crop"] is not None:
            pad = BorderPad(steps["crop"][TraceKeys.EXTRA_INFO]["cropped"])
            with pad.trace_transform(False):
                out = pad(out)
        return out


class RandSliceRotationd(RandArrayWrapperd, InvertibleTransform):
    """
    Dictionary-based wrapper of :py:class:`RandSliceRotation`: every key gets the same rotation, and the class
    is written to ``label_key`` as a 0-d int64 tensor. Invertible like the array transform.

    Args:
        keys: keys of the volumes to rotate.
        label_key: where to write the class.
        planes, non_square: see :py:class:`RandSliceRotation`.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = RandSliceRotation.backend

    def __init__(
        self,
        keys: KeysCollection,
        label_key: str = "rotation_label",
        planes: Sequence[Sequence[int]] = ((0, 1),),
        non_square: str = "crop",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, RandSliceRotation(planes, non_square), allow_missing_keys)
        self.label_key = label_key
        self.rotation = self.array_transform

    @property
    def num_classes(self) -> int:
        return self.rotation.num_classes

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = super().__call__(data)
        d[self.label_key] = torch.tensor(self.rotation.label, dtype=torch.long)
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.rotation.inverse(d[key])
        return d


RandSliceRotationD = RandSliceRotationDict = RandSliceRotationd
