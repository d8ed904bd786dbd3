"""Per-file discovery: what a file is, recognised by its content, and the header fields indexing needs.

Nothing here raises on bad input: every function returns a record, and a record that cannot be used carries a
reason code. Records hold no patient data: identifiers are salted SHA-256 hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["salted_hash", "walk_files", "read_file_record", "read_nifti_bytes", "NIFTI", "DICOM", "SKIPPED"]

NIFTI, DICOM, SKIPPED = "nifti", "dicom", "skipped"
# attributes that tell apart the volumes of a 4D series (fMRI, perfusion, diffusion) at one slice position
VOLUME_KEYWORDS = ("TemporalPositionIdentifier", "AcquisitionNumber", "TriggerTime", "DiffusionBValue")
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


def _dicom_fields(ds, path: str, salt: str) -> dict:
    patient = _text(ds, "PatientID") or _text(ds, "PatientName")
    image_type = _value(ds, "ImageType", [])
    image_type = [str(v).upper() for v in (image_type if not isinstance(image_type, str) else [image_type])]
    series_uid, study_uid = _text(ds, "SeriesInstanceUID"), _text(ds, "StudyInstanceUID")
    file_meta = getattr(ds, "file_meta", None)
    return {
        "kind": DICOM,
        "sop_class": _text(ds, "SOPClassUID"),
        "modality": _text(ds, "Modality").upper(),
        "image_type": "\\".join(image_type),
        "series_uid": series_uid,
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
    }


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


def read_file_record(path: str, salt: str) -> dict:
    """Classify one file by content and read what indexing needs; never raises.

    Returns a dict with ``kind`` (``"dicom"``, ``"nifti"`` or ``"skipped"``) and ``path``; skipped records carry
    ``reason`` (a code) and ``detail`` (a sentence without patient data).
    """
    try:
        record = _classify(path, salt)
    except Exception as error:  # noqa: BLE001 - the promise above: one odd file never stops an archive's index
        record = _skip("unreadable", f"unexpected {type(error).__name__} while reading the file")
    record["path"] = path
    return record
