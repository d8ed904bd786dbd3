"""Per-file discovery: what a file is, recognised by its content, and the header fields indexing needs.

Nothing here raises on bad input: every function returns a record, and a record that cannot be used carries a
reason code. Records hold no patient data: identifiers are salted SHA-256 hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = ["salted_hash", "walk_files", "read_file_record", "expand_slices", "read_nifti_bytes", "shard_key", "NIFTI",
           "DICOM", "SKIPPED"]

NIFTI, DICOM, SKIPPED = "nifti", "dicom", "skipped"
# attributes that tell apart the volumes of a 4D series (fMRI, perfusion, diffusion) at one slice position
VOLUME_KEYWORDS = ("TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime", "DiffusionBValue")
# dimension index pointers that place a frame within one 3D stack, not in time
_IN_STACK_POSITION, _STACK_ID = 0x00209057, 0x00209056
_NIFTI_MAGICS = (b"n+1\x00", b"ni1\x00", b"n+2\x00", b"ni2\x00")
_GZIP_MAGIC = b"\x1f\x8b"


def salted_hash(salt: str, *parts: Any) -> str:
    """Hex SHA-256 of the salt and the parts: a stable key that reveals nothing without the salt."""
    digest = hashlib.sha256(salt.encode())
    for part in parts:
        digest.update(b"\x00" + str(part).encode())
    return digest.hexdigest()


def walk_files(root: str) -> Iterator[str]:
    """Every regular file (or symlink to one) under ``root``, lazily.

    Symlinked folders are not followed, so a symlink loop cannot make the walk endless; a looping file symlink is
    yielded and reported as unreadable by :func:`read_file_record`.
    """
    for folder, subfolders, files in os.walk(root, followlinks=False):
        subfolders.sort()
        for name in sorted(files):
            yield os.path.join(folder, name)


def _skip(reason: str, detail: str) -> dict:
    return {"kind": SKIPPED, "reason": reason, "detail": detail}


def _is_nifti(head: bytes, path: str) -> bool:
    if head[:2] == _GZIP_MAGIC:
        try:
            with gzip.open(path, "rb") as f:
                head = f.read(352)
        except (OSError, EOFError):
            return False
    if len(head) >= 348 and head[344:348] in _NIFTI_MAGICS:  # NIfTI-1
        return True
    return len(head) >= 8 and head[4:8] in _NIFTI_MAGICS  # NIfTI-2 keeps its magic at byte 4


def read_nifti_bytes(path: str) -> tuple[bytes, bool]:
    """The uncompressed NIfTI bytes of a file recognised by content, whatever its name, and whether it was
    gzipped (nibabel chooses the format by file name, which a misnamed file would defeat)."""
    with open(path, "rb") as f:
        payload = f.read()
    compressed = payload[:2] == _GZIP_MAGIC
    return (gzip.decompress(payload) if compressed else payload), compressed


def _looks_like_dicom(head: bytes) -> bool:
    if head[128:132] == b"DICM":
        return True
    # files without the 128-byte preamble start with a group 0x0002 or 0x0008 tag, little endian
    return head[:2] in (b"\x02\x00", b"\x08\x00") and len(head) >= 8


class _BadHeaderValue(Exception):
    """A header attribute whose value cannot be read as the indexer needs it."""

    def __init__(self, keyword: str, problem: str) -> None:
        super().__init__(keyword, problem)
        self.keyword, self.problem = keyword, problem


def _value(ds, keyword: str, default: Any = None) -> Any:
    """The attribute's value; pydicom converts raw values on first access, which can raise for a bad VR or length."""
    try:
        value = ds.get(keyword, default)
    except Exception as error:  # noqa: BLE001 - any conversion error of one tag is a bad header, not a crash
        raise _BadHeaderValue(keyword, f"cannot be decoded ({type(error).__name__})") from error
    return default if value is None else value


def _text(ds, keyword: str) -> str:
    value = _value(ds, keyword, "")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        raise _BadHeaderValue(keyword, f"holds {len(value)} values, expected one")
    return str(value)


def _integer(ds, keyword: str, default: int) -> int:
    value = _value(ds, keyword, default)
    if value == "":
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise _BadHeaderValue(keyword, f"is not one integer ({type(error).__name__})") from error
    if not 0 <= number < 2**31:
        raise _BadHeaderValue(keyword, f"is out of range ({number})")
    return number


def _number(ds, keyword: str, default: float) -> float:
    value = _value(ds, keyword, default)
    if value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError) as error:
        raise _BadHeaderValue(keyword, f"is not one number ({type(error).__name__})") from error
    if not math.isfinite(number):
        raise _BadHeaderValue(keyword, "is not finite")
    return number


def _number_list(ds, keyword: str, length: int) -> list[float] | None:
    """``length`` finite numbers, or ``None`` when the attribute is absent or malformed (the series check then
    reports the missing geometry)."""
    value = _value(ds, keyword)
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError, OverflowError):
        return None
    return numbers if len(numbers) == length and all(math.isfinite(n) for n in numbers) else None


def _dicom_record(path: str, salt: str, has_preamble: bool) -> dict:
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=not has_preamble)
    except Exception as error:  # noqa: BLE001 - pydicom raises many types for broken files; none may stop a run
        # exception messages can quote header values, so only the type is kept
        return _skip("invalid_dicom", f"cannot parse the DICOM header ({type(error).__name__})")
    if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
        return _skip("invalid_dicom", "no SOP class or series UID: a truncated or incomplete DICOM header")
    try:
        return _dicom_fields(ds, path, salt)
    except _BadHeaderValue as bad:
        return _skip("invalid_header", f"{bad.keyword} {bad.problem}")
    except _MultiSliceProblem as problem:
        return _skip(problem.reason, problem.detail)


def _first_item(ds, keyword: str):
    """The first item of a sequence attribute, or ``None``."""
    from pydicom.sequence import Sequence

    sequence = _value(ds, keyword, None)
    if sequence is None or (isinstance(sequence, Sequence) and len(sequence) == 0):
        return None
    if not isinstance(sequence, Sequence):
        raise _BadHeaderValue(keyword, "is not a sequence")
    return sequence[0]


def _frame_attribute(groups, sequence: str):
    """A functional group macro of one frame: its per-frame item, else the shared one (DICOM PS3.3 C.7.6.16)."""
    for group in groups:
        item = _first_item(group, sequence) if group is not None else None
        if item is not None:
            return item
    return None


def _enhanced_slices(ds) -> list[dict]:
    """One slice per frame of an enhanced (or legacy-converted enhanced) multi-frame object, from its per-frame and
    shared functional groups: plane position and orientation, pixel measures, frame content (stack, temporal
    position, dimension index values), diffusion b-value, trigger delay and pixel value transformation."""
    frames = _integer(ds, "NumberOfFrames", 1) or 1
    per_frame = _value(ds, "PerFrameFunctionalGroupsSequence", None)
    if len(per_frame) != frames:
        raise _MultiSliceProblem("frames_inconsistent",
                                 f"{len(per_frame)} per-frame functional groups for {frames} frames")
    shared = _first_item(ds, "SharedFunctionalGroupsSequence")
    pointers = [int(_value(item, "DimensionIndexPointer", 0) or 0)
                for item in (_value(ds, "DimensionIndexSequence", None) or [])]
    # the dimensions that tell volumes apart: all but the position within a stack and the stack itself
    volume_dimensions = [i for i, pointer in enumerate(pointers) if pointer not in (_IN_STACK_POSITION, _STACK_ID)]
    slices = []
    for frame, item in enumerate(per_frame):
        groups = (item, shared)
        position = _frame_attribute(groups, "PlanePositionSequence")
        orientation = _frame_attribute(groups, "PlaneOrientationSequence")
        measures = _frame_attribute(groups, "PixelMeasuresSequence")
        content = _frame_attribute(groups, "FrameContentSequence")
        diffusion = _frame_attribute(groups, "MRDiffusionSequence")
        cardiac = _frame_attribute(groups, "CardiacSynchronizationSequence")
        transformation = _frame_attribute(groups, "PixelValueTransformationSequence")
        indices = _index_values(content)
        if pointers and len(indices) != len(pointers):
            raise _MultiSliceProblem("frames_inconsistent", f"frame {frame + 1} has {len(indices)} dimension index "
                                     f"values for {len(pointers)} dimensions")
        slices.append({
            "frame": frame,
            "instance": frame + 1,
            "position": _number_list(position, "ImagePositionPatient", 3) if position is not None else None,
            "orientation": _number_list(orientation, "ImageOrientationPatient", 6) if orientation is not None
            else None,
            "pixel_spacing": _number_list(measures, "PixelSpacing", 2) if measures is not None else None,
            "stack": _text(content, "StackID") if content is not None else "",
            "volume_tags": [_number(content, "TemporalPositionIndex", -1.0) if content is not None else -1.0,
                            _number(cardiac, "NominalCardiacTriggerDelayTime", -1.0) if cardiac is not None else -1.0,
                            _number(diffusion, "DiffusionBValue", -1.0) if diffusion is not None else -1.0,
                            *(indices[i] for i in volume_dimensions)],
            "rescale": [_number(transformation, "RescaleSlope", 1.0), _number(transformation, "RescaleIntercept", 0.0)]
            if transformation is not None else [1.0, 0.0],
        })
    return slices


def _index_values(content) -> list[float]:
    """The DimensionIndexValues of a frame's content item (``[]`` without one), as numbers."""
    values = _value(content, "DimensionIndexValues", []) if content is not None else []
    if isinstance(values, (int, float)):
        values = [values]
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError, OverflowError) as error:
        raise _BadHeaderValue("DimensionIndexValues", f"is not a list of numbers ({type(error).__name__})") from error
    if not all(math.isfinite(n) for n in numbers):
        raise _BadHeaderValue("DimensionIndexValues", "is not finite")
    return numbers


def _mosaic_slices(ds, rows: int, columns: int) -> tuple[list[dict], int]:
    """The tiles of a Siemens mosaic (an fMRI or diffusion volume stored as one image) as slices, and the tiles per
    side. ``NumberOfImagesInMosaic`` comes from the CSA image header; the position of the first tile corrects
    ImagePositionPatient, which refers to the whole mosaic, as nibabel's ``MosaicWrapper`` and dcm2niix do, and
    the tiles step along the CSA ``SliceNormalVector`` by the slice spacing."""
    with warnings.catch_warnings():  # nibabel.nicom warns on import about its DICOM readers, which are not used
        warnings.simplefilter("ignore")
        from nibabel.nicom import csareader

    try:
        csa = csareader.get_csa_header(ds, "image")
        count = csareader.get_n_mosaic(csa) if csa else None
        normal = csareader.get_slice_normal(csa) if csa else None
    except Exception as error:  # noqa: BLE001 - a corrupt private header is a skipped series, never a crash
        raise _MultiSliceProblem("mosaic_unreadable", f"the Siemens CSA header cannot be read ({type(error).__name__})")
    if not count:
        raise _MultiSliceProblem("mosaic_unreadable", "a MOSAIC image without NumberOfImagesInMosaic in its CSA header")
    count = int(count)
    per_side = math.ceil(math.sqrt(count))
    if rows % per_side or columns % per_side:
        raise _MultiSliceProblem("mosaic_inconsistent", f"{count} tiles ({per_side} per side) do not divide the "
                                 f"{rows} x {columns} mosaic image")
    orientation = _number_list(ds, "ImageOrientationPatient", 6)
    spacing = _number_list(ds, "PixelSpacing", 2)
    position = _number_list(ds, "ImagePositionPatient", 3)
    step = _number(ds, "SpacingBetweenSlices", 0.0) or _number(ds, "SliceThickness", 0.0)
    tile_rows, tile_columns = rows // per_side, columns // per_side
    geometry = None
    if orientation is not None and spacing is not None and position is not None and step > 0:
        row_direction, column_direction = np.asarray(orientation[:3]), np.asarray(orientation[3:])
        normal = np.cross(row_direction, column_direction) if normal is None else np.asarray(normal, dtype=float)
        if not np.all(np.isfinite(normal)) or np.linalg.norm(normal) < 1e-6:
            raise _MultiSliceProblem("mosaic_unreadable", "the CSA SliceNormalVector is not a direction")
        # Siemens writes ImagePositionPatient as if the whole mosaic were one slice around the tiles' centre: the
        # first tile's first voxel lies half the size difference (in voxels) further along the rows and columns
        # (nibabel's MosaicWrapper and dcm2niix undo it the same way)
        shift = (np.array([rows, columns]) - np.array([tile_rows, tile_columns])) / 2
        first = (np.asarray(position) + column_direction * spacing[0] * shift[0]
                 + row_direction * spacing[1] * shift[1])
        geometry = (first, normal / np.linalg.norm(normal) * step)
    return [{"tile": tile, "rows": tile_rows, "columns": tile_columns,
             "position": [float(v) for v in geometry[0] + tile * geometry[1]] if geometry else None}
            for tile in range(count)], per_side


class _MultiSliceProblem(Exception):
    """A mosaic or multi-frame object whose slices cannot be laid out; the file is skipped with this reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail


def _dicom_fields(ds, path: str, salt: str) -> dict:
    patient = _text(ds, "PatientID") or _text(ds, "PatientName")
    image_type = _value(ds, "ImageType", [])
    if isinstance(image_type, (str, bytes, int, float)):  # one value, or a value under a wrong VR
        image_type = [image_type]
    image_type = [str(v).upper() for v in image_type]
    series_uid, study_uid = _text(ds, "SeriesInstanceUID"), _text(ds, "StudyInstanceUID")
    instance_uid = _text(ds, "SOPInstanceUID").strip()
    file_meta = getattr(ds, "file_meta", None)
    record = {
        "kind": DICOM,
        "sop_class": _text(ds, "SOPClassUID"),
        "modality": _text(ds, "Modality").upper(),
        "image_type": "\\".join(image_type),
        "series_uid": series_uid,
        # one instance can reach an archive twice: exported twice, or re-encoded in another transfer syntax
        # (an anonymiser may have emptied the UID: then nothing tells copies apart)
        "instance_key": salted_hash(salt, "instance", instance_uid) if instance_uid else "",
        "series_key": salted_hash(salt, "series", series_uid or path),
        "study_key": salted_hash(salt, "study", study_uid),
        # without a patient identifier each study counts as its own subject
        "subject_key": salted_hash(salt, "subject", patient) if patient
        else salted_hash(salt, "subject-of-study", study_uid),
        "frames": _integer(ds, "NumberOfFrames", 1) or 1,
        "rows": _integer(ds, "Rows", 0),
        "columns": _integer(ds, "Columns", 0),
        "pixel_spacing": _number_list(ds, "PixelSpacing", 2),
        "orientation": _number_list(ds, "ImageOrientationPatient", 6),
        "position": _number_list(ds, "ImagePositionPatient", 3),
        "gantry_tilt": _number(ds, "GantryDetectorTilt", 0.0),
        "instance": _integer(ds, "InstanceNumber", 0),
        # what tells the volumes of a time series or diffusion series apart at one position
        "volume_tags": [_number(ds, keyword, -1.0) for keyword in VOLUME_KEYWORDS],
        "transfer_syntax": _text(file_meta, "TransferSyntaxUID") if file_meta is not None else "",
        # where a slice lies in a multi-slice file: the frame of a multi-frame object, the tile of a mosaic
        "frame": -1,
        "tile": -1,
        "mosaic_tiles": 0,
        "rescale": None,  # per-frame [slope, intercept]; single-frame files keep pydicom's modality LUT
        "stack": "",
    }
    record["slices"] = _multi_slices(ds, record)
    return record


def _multi_slices(ds, record: dict) -> list[dict] | None:
    """The slices of a mosaic or enhanced multi-frame file, each a set of record fields; ``None`` for a plain
    single-slice file."""
    if "MOSAIC" in record["image_type"].split("\\") and record["frames"] == 1:
        slices, record["mosaic_tiles"] = _mosaic_slices(ds, record["rows"], record["columns"])
        return slices
    if record["frames"] > 1 and _value(ds, "PerFrameFunctionalGroupsSequence", None):
        return _enhanced_slices(ds)
    return None  # a multi-frame object without functional groups is reported by the series check


def expand_slices(record: dict) -> list[dict]:
    """The slice records of one file record: a record per mosaic tile or frame, else the record itself."""
    slices = record.get("slices")
    base = {k: v for k, v in record.items() if k != "slices"}
    return [{**base, **piece} for piece in slices] if slices else [base]


def _classify(path: str, salt: str) -> dict:
    try:
        size = os.stat(path).st_size  # follows symlinks: a symlink loop raises here
        with open(path, "rb") as f:
            head = f.read(352)
    except OSError as error:
        record = _skip("unreadable", f"cannot read the file ({error.strerror or type(error).__name__})")
    else:
        if size == 0:
            record = _skip("empty_file", "zero-byte file")
        elif _is_nifti(head, path):
            record = {"kind": NIFTI}
        elif _looks_like_dicom(head):
            record = _dicom_record(path, salt, has_preamble=head[128:132] == b"DICM")
        elif path.lower().endswith((".nii", ".nii.gz")):
            record = _skip("unreadable_nifti", "named NIfTI but its header cannot be read (truncated or corrupt)")
        else:
            named = " named like DICOM" if path.lower().endswith((".dcm", ".dicom", ".ima")) else ""
            record = _skip("not_dicom", f"neither DICOM nor NIfTI content{named}")
    return record


def shard_key(path: str, root: str) -> str:
    """What decides the shard of a file when an archive is indexed in parts (``monai-ssl index --shard``): the
    Series Instance UID of a DICOM file, so that all the files of a series meet in one shard wherever they lie (a
    series spread over folders, a series exported twice); for any other file its path relative to ``root``.

    Reads the header up to that one attribute; never raises. Every shard computes the same key for a file, so each
    file is indexed (or reported) by exactly one shard.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(352)
        if not _is_nifti(head, path) and _looks_like_dicom(head):
            import pydicom

            ds = pydicom.dcmread(path, stop_before_pixels=True, force=head[128:132] != b"DICM",
                                 specific_tags=["SeriesInstanceUID"])
            # as the indexer groups them: files without the attribute form one group
            return "series:" + str(ds.get("SeriesInstanceUID", "") or "")
    except Exception:  # noqa: BLE001 - an unreadable file is indexed, and reported, by the shard of its path
        pass
    return "path:" + os.path.relpath(path, root)


def read_file_record(path: str, salt: str) -> dict:
    """Classify one file by content and read what indexing needs; never raises.

    Returns a dict with ``kind`` (``"dicom"``, ``"nifti"`` or ``"skipped"``) and ``path``; skipped records carry
    ``reason`` (a code) and ``detail`` (a sentence without patient data). A DICOM file that holds several slices
    (a Siemens mosaic, an enhanced multi-frame object) lists them in ``slices``: :func:`expand_slices` makes one
    record per slice.
    """
    try:
        record = _classify(path, salt)
    except Exception as error:  # noqa: BLE001 - the promise above: one odd file never stops an archive's index
        record = _skip("unreadable", f"unexpected {type(error).__name__} while reading the file")
    record["path"] = path
    return record
