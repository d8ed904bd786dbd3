"""DICOM series: validation (what to exclude and why), geometric slice sorting, and conversion to a NIfTI volume
with the same voxel order and RAS affine as MONAI's ITK reader."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from monai_ssl.utils import atomic_path

__all__ = ["SeriesProblem", "validate_series", "split_volumes", "drop_pixel_copies", "pixel_digest", "series_geometry",
           "convert_series",
           "write_nifti_atomically", "FOUR_D_MODES"]

# what to do with a 4D series (several volumes at the same slice positions)
FOUR_D_MODES = ("split", "first", "mean", "skip")

# SOP classes that are not cross-sectional images (structured reports, RT objects, presentation states, ...)
_NON_IMAGE_MODALITIES = {"SR", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "PR", "KO", "REG", "SEG", "DOC", "AU",
                         "ECG", "PLAN", "FID", "RWV"}
_NON_IMAGE_SOP_PREFIXES = ("1.2.840.10008.5.1.4.1.1.88.",  # structured reports
                           "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
                           "1.2.840.10008.5.1.4.1.1.481.",  # radiotherapy objects
                           "1.2.840.10008.5.1.4.1.1.66",  # raw data, registration, segmentation
                           "1.2.840.10008.5.1.4.1.1.104.")  # encapsulated documents
_SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_ENHANCED_SOP_CLASSES = {"1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.4.1",
                         "1.2.840.10008.5.1.4.1.1.2.2", "1.2.840.10008.5.1.4.1.1.4.3"}
# relative tolerance on slice spacing, and absolute tolerances in mm and direction cosines
_SPACING_TOLERANCE = 0.05
_POSITION_TOLERANCE_MM = 0.05
_ORIENTATION_TOLERANCE = 1e-3


class SeriesProblem(Exception):
    """A series that must not be accepted, with a reason code and a sentence without patient data."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _same(values: Sequence, tolerance: float) -> bool:
    array = np.asarray(values, dtype=float)
    return bool(np.all(np.abs(array - array[0]) <= tolerance))


def validate_series(records: Sequence[dict], modalities: Sequence[str] | None, min_slices: int) -> None:
    """Raise :class:`SeriesProblem` if the slices of one SeriesInstanceUID must not become a volume.

    Checks, in order: object type (non-image, secondary capture, derived, localizer, enhanced multi-frame),
    modality filter, complete geometry, consistent size, pixel spacing and orientation, slice count, gantry tilt,
    and uniform slice spacing with no duplicate or missing slice.
    """
    first = records[0]
    sop, modality = first["sop_class"], first["modality"]
    image_types = {t for r in records for t in r["image_type"].split("\\") if t}
    if modality in _NON_IMAGE_MODALITIES or sop.startswith(_NON_IMAGE_SOP_PREFIXES):
        raise SeriesProblem("non_image_object", f"modality {modality or '?'} is not a cross-sectional image")
    if sop.startswith(_SECONDARY_CAPTURE_PREFIX):
        raise SeriesProblem("secondary_capture", "secondary capture, not an acquired image")
    if image_types & {"LOCALIZER", "SCOUT"}:
        raise SeriesProblem("localizer", "localizer or scout image")
    if "DERIVED" in image_types:
        raise SeriesProblem("derived_image", "derived image (reformat, projection or map), not an acquisition")
    if any(r["frames"] > 1 and r["frame"] < 0 for r in records) or (sop in _ENHANCED_SOP_CLASSES
                                                                     and any(r["frame"] < 0 for r in records)):
        # enhanced objects are split into frames when read; what is left has no per-frame geometry
        raise SeriesProblem("multiframe_unsupported", "a multi-frame object without per-frame functional groups")
    if modalities and modality not in modalities:
        raise SeriesProblem("modality_excluded", f"modality {modality or '?'} not in {list(modalities)}")
    if any(r["orientation"] is None or r["position"] is None or r["pixel_spacing"] is None for r in records):
        raise SeriesProblem("missing_geometry", "a slice lacks orientation, position or pixel spacing")
    if len({(r["rows"], r["columns"]) for r in records}) > 1:
        raise SeriesProblem("inconsistent_size", "slices of different sizes")
    if not _same([r["pixel_spacing"] for r in records], 1e-4):
        raise SeriesProblem("inconsistent_pixel_spacing", "slices with different pixel spacings")
    if not _same([r["orientation"] for r in records], _ORIENTATION_TOLERANCE):
        raise SeriesProblem("inconsistent_orientation", "slices with different orientations")
    if len(records) < max(min_slices, 2):
        raise SeriesProblem("too_few_slices", f"{len(records)} slice(s), fewer than {max(min_slices, 2)}")
    if any(abs(r["gantry_tilt"]) > 1e-3 for r in records):
        raise SeriesProblem("gantry_tilt", "gantry tilt: slices are sheared, not a rectilinear volume")
    series_geometry(records)  # raises on sheared, duplicate, missing or uneven slices


def split_volumes(records: Sequence[dict]) -> list[list[dict]]:
    """The volumes of a series: one for a 3D series; for a 4D series (fMRI, perfusion, diffusion: every slice
    position holds the same number of slices), one per time point, in acquisition order.

    At each position the slices are ordered by the attributes that tell volumes apart (temporal position,
    acquisition number, trigger time, b-value; :data:`~monai_ssl.ingest.records.VOLUME_KEYWORDS`), then by
    instance number; the k-th slice of every position belongs to volume k.

    Slices at one position that nothing tells apart (the same attributes and instance number) are copies, not a
    time series: the series is returned whole, and :func:`validate_series` reports ``duplicate_slice``.

    Raises:
        SeriesProblem: ``frames_inconsistent`` when positions hold different numbers of slices (a volume short).
    """
    if any(r["orientation"] is None or r["position"] is None for r in records):
        return [list(records)]  # validate_series names the missing geometry
    normal = _slice_normal(records[0]["orientation"])
    distances = np.array([r["position"] for r in records], dtype=float) @ normal
    # positions closer than the tolerance are one position
    order = np.argsort(distances, kind="stable")
    groups: list[list[int]] = []
    for index in order:
        if groups and distances[index] - distances[groups[-1][0]] < _POSITION_TOLERANCE_MM:
            groups[-1].append(int(index))
        else:
            groups.append([int(index)])
    counts = {len(group) for group in groups}
    if counts == {1}:
        return [list(records)]
    if len(counts) > 1:
        sizes = [len(group) for group in groups]
        if np.median(sizes) == 1:  # a 3D series with a repeated slice: validate_series reports duplicate_slice
            return [list(records)]
        raise SeriesProblem("frames_inconsistent", f"slice positions hold from {min(sizes)} to {max(sizes)} slices: "
                            "a volume of this time series is incomplete")
    key = lambda i: (tuple(records[i].get("volume_tags") or ()), records[i].get("instance", 0))  # noqa: E731
    if any(len({key(i) for i in group}) < len(group) for group in groups):
        # slices that nothing tells apart are copies (a series exported twice), not time points:
        # validate_series reports them as duplicate_slice
        return [list(records)]
    ranked = [sorted(group, key=key) for group in groups]
    return [[records[group[k]] for group in ranked] for k in range(len(ranked[0]))]


def pixel_digest(path: str) -> str:
    """SHA-256 of a file's *decoded* pixel data (with its shape and type): the same image stored in two lossless
    transfer syntaxes has one digest. A file that cannot be decoded gets a digest of its path (no copy of any)."""
    files = _DecodedFiles()
    try:
        files._decode(path)
    except SeriesProblem:
        return hashlib.sha256(f"undecodable {path}".encode()).hexdigest()
    pixels = np.ascontiguousarray(files.pixels)
    return hashlib.sha256(f"{pixels.shape} {pixels.dtype}".encode() + pixels.tobytes()).hexdigest()


def drop_pixel_copies(records: Sequence[dict]) -> tuple[list[dict], list[dict]]:
    """``(kept, copies)``: a slice is a copy when another one has the same position, the same volume attributes and
    instance number, and the same decoded pixels (e.g. one series exported in several transfer syntaxes with new
    SOP Instance UIDs). Only slices that share a position are decoded here. Slices at one position that differ
    in their pixels stay (time points, or a genuine conflict that :func:`validate_series` reports)."""
    groups: dict[tuple, list[int]] = {}
    for index, record in enumerate(records):
        if record.get("position") is None:
            return list(records), []  # validate_series names the missing geometry
        place = tuple(np.round(np.asarray(record["position"], dtype=float) / _POSITION_TOLERANCE_MM).astype(int))
        key = (place, tuple(record.get("volume_tags") or ()), record.get("instance", 0), record.get("frame", -1),
               record.get("tile", -1))
        groups.setdefault(key, []).append(index)
    copies: set[int] = set()
    digests: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        seen: set[str] = set()
        for index in members:
            path = records[index]["path"]
            digest = digests.setdefault(path, pixel_digest(path))
            if digest in seen:
                copies.add(index)
            seen.add(digest)
    return ([r for i, r in enumerate(records) if i not in copies],
            [r for i, r in enumerate(records) if i in copies])


def _slice_normal(orientation: Sequence[float]) -> np.ndarray:
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    return np.cross(row, column)


def series_geometry(records: Sequence[dict]) -> tuple[list[int], float]:
    """Order of the slices along the slice normal (ImagePositionPatient projected on it), and the slice spacing.

    Raises:
        SeriesProblem: duplicate slices, missing slices, uneven spacing, or positions off the normal (tilt).
    """
    normal = _slice_normal(records[0]["orientation"])
    positions = np.array([r["position"] for r in records], dtype=float)
    distances = positions @ normal
    order = np.argsort(distances, kind="stable")
    steps = np.diff(distances[order])
    if np.any(steps < _POSITION_TOLERANCE_MM):
        raise SeriesProblem("duplicate_slice", "two slices at the same position")
    spacing = float(np.min(steps))
    offsets = np.diff(positions[order], axis=0)
    in_plane = offsets - np.outer(offsets @ normal, normal)
    if np.any(np.linalg.norm(in_plane, axis=1) > max(_POSITION_TOLERANCE_MM, _SPACING_TOLERANCE * spacing)):
        raise SeriesProblem("gantry_tilt", "slice positions are not stacked along the slice normal")
    if np.any(np.abs(steps - spacing) > _SPACING_TOLERANCE * spacing):
        ratios = steps / spacing
        if np.all(np.abs(ratios - np.round(ratios)) <= _SPACING_TOLERANCE):
            missing = int(np.sum(np.round(ratios) - 1))
            raise SeriesProblem("missing_slice", f"{missing} slice(s) missing from a regular {spacing:.3g} mm grid")
        raise SeriesProblem("nonuniform_spacing",
                            f"slice spacing varies from {steps.min():.3g} to {steps.max():.3g} mm")
    return [int(i) for i in order], spacing


def _ras_affine(first: dict, last: dict, count: int) -> np.ndarray:
    """Voxel (column, row, slice) to RAS millimetres. DICOM positions are LPS; NIfTI and MONAI use RAS."""
    row_direction = np.asarray(first["orientation"][:3])
    column_direction = np.asarray(first["orientation"][3:])
    row_spacing, column_spacing = first["pixel_spacing"]  # DICOM: spacing between rows, then between columns
    affine = np.eye(4)
    affine[:3, 0] = row_direction * column_spacing
    affine[:3, 1] = column_direction * row_spacing
    affine[:3, 2] = (np.asarray(last["position"]) - np.asarray(first["position"])) / (count - 1)
    affine[:3, 3] = first["position"]
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine


def convert_series(records: Sequence[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Decode the slices (any transfer syntax pydicom's installed decoders handle: JPEG 2000, JPEG lossless,
    JPEG-LS, RLE, ...), apply the modality LUT (RescaleSlope/RescaleIntercept, CT in HU, or a Modality LUT
    Sequence) and stack them in geometric order.

    Returns:
        ``(volume, affine)``: float32 ``(columns, rows, slices)`` and its 4x4 RAS affine, as MONAI's ITK reader.

    Raises:
        SeriesProblem: undecodable or truncated pixel data, a slice without pixel data, or a rescale or modality
            LUT that cannot be applied.
    """
    from pydicom.pixels import apply_modality_lut

    order, _ = series_geometry(records)
    ordered = [records[i] for i in order]
    slices = []
    files = _DecodedFiles()
    for record in ordered:
        ds, pixels = files.slice(record)
        if pixels.shape != (record["rows"], record["columns"]):
            raise SeriesProblem("undecodable_pixels", f"decoded slice shape {pixels.shape} differs from the header")
        try:
            if record["rescale"] is not None:  # a frame: its own pixel value transformation
                slope, intercept = record["rescale"]
                values = pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)
            else:  # pydicom's modality LUT: RescaleSlope/RescaleIntercept (CT in HU) or a Modality LUT Sequence
                values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float32)
        except Exception as error:  # noqa: BLE001 - a malformed rescale or LUT is a skipped series, not a crash
            raise SeriesProblem("invalid_rescale",
                                f"the modality LUT or rescale cannot be applied ({type(error).__name__})")
        if not np.all(np.isfinite(values)):
            raise SeriesProblem("invalid_rescale", "the modality LUT or rescale gives non-finite values")
        slices.append(values.T)  # (rows, columns) -> (columns, rows)
    volume = np.stack(slices, axis=-1)
    return volume, _ras_affine(ordered[0], ordered[-1], len(ordered))


class _DecodedFiles:
    """The pixel data of the file decoded last. The slices of a mosaic or a multi-frame object come one after the
    other in geometric order, so each file is decoded once, not once per slice (its size times its slice count)."""

    def __init__(self) -> None:
        self.path, self.ds, self.pixels = None, None, None

    def _decode(self, path: str) -> None:
        import pydicom

        if path == self.path:
            return
        try:
            ds = pydicom.dcmread(path)
            if "PixelData" not in ds:
                raise SeriesProblem("no_pixel_data", "a slice has no pixel data")
            pixels = ds.pixel_array
        except SeriesProblem:
            raise
        except Exception as error:  # decoders raise many types; none may stop the run
            raise SeriesProblem("undecodable_pixels", f"pixel data cannot be decoded ({type(error).__name__})")
        self.path, self.ds, self.pixels = path, ds, pixels

    def slice(self, record: dict) -> tuple:
        """The dataset and the stored pixel values ``(rows, columns)`` of one slice record."""
        self._decode(record["path"])
        pixels = self.pixels
        if record["frame"] >= 0:
            if pixels.ndim != 3 or record["frame"] >= pixels.shape[0]:
                raise SeriesProblem("undecodable_pixels", f"frame {record['frame'] + 1} is not in the pixel data "
                                    f"(decoded shape {pixels.shape})")
            pixels = pixels[record["frame"]]
        if record["tile"] >= 0:
            row, column = divmod(record["tile"], record["mosaic_tiles"])
            rows, columns = record["rows"], record["columns"]
            pixels = pixels[row * rows:(row + 1) * rows, column * columns:(column + 1) * columns]
        return self.ds, pixels


def write_nifti_atomically(volume: np.ndarray, affine: np.ndarray, path: str) -> None:
    """Write a NIfTI file under a temporary name, then rename it: a crash never leaves a partial file that a
    later run would trust."""
    import nibabel as nib

    image = nib.Nifti1Image(volume, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    with atomic_path(path, suffix=".nii.gz") as temporary:
        nib.save(image, temporary)
