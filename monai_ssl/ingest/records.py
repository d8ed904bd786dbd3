"""Per-file discovery: what a file is, recognised by its content, and the header fields indexing needs.

Nothing here raises on bad input: every function returns a record, and a record that cannot be used carries a
reason code. Records hold no patient data: identifiers are salted SHA-256 hashes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterator
from typing import Any

__all__ = ["salted_hash", "walk_files", "read_file_record", "read_nifti_bytes", "NIFTI", "DICOM", "SKIPPED"]

NIFTI, DICOM, SKIPPED = "nifti", "dicom", "skipped"
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


def _number_list(value: Any, length: int) -> list[float] | None:
    try:
        numbers = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == length else None


def _dicom_record(path: str, salt: str, has_preamble: bool) -> dict:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=not has_preamble)
    except (InvalidDicomError, EOFError, ValueError, KeyError, TypeError, AttributeError, OSError) as error:
        # exception messages can quote header values, so only the type is kept
        return _skip("invalid_dicom", f"cannot parse the DICOM header ({type(error).__name__})")
    if "SOPClassUID" not in ds and "SeriesInstanceUID" not in ds:
        return _skip("invalid_dicom", "no SOP class or series UID: a truncated or incomplete DICOM header")
    patient = str(ds.get("PatientID", "")) or str(ds.get("PatientName", ""))
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    spacing = _number_list(ds.get("PixelSpacing"), 2)
    return {
        "kind": DICOM,
        "sop_class": str(ds.get("SOPClassUID", "")),
        "modality": str(ds.get("Modality", "")).upper(),
        "image_type": "\\".join(image_type),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_key": salted_hash(salt, "series", ds.get("SeriesInstanceUID", path)),
        "study_key": salted_hash(salt, "study", ds.get("StudyInstanceUID", "")),
        # without a patient identifier each study counts as its own subject
        "subject_key": salted_hash(salt, "subject", patient) if patient
        else salted_hash(salt, "subject-of-study", ds.get("StudyInstanceUID", "")),
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
        "rows": int(ds.get("Rows", 0) or 0),
        "columns": int(ds.get("Columns", 0) or 0),
        "pixel_spacing": spacing,
        "orientation": _number_list(ds.get("ImageOrientationPatient"), 6),
        "position": _number_list(ds.get("ImagePositionPatient"), 3),
        "gantry_tilt": float(ds.get("GantryDetectorTilt", 0) or 0),
        "transfer_syntax": str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")),
    }


def read_file_record(path: str, salt: str) -> dict:
    """Classify one file by content and read what indexing needs; never raises.

    Returns a dict with ``kind`` (``"dicom"``, ``"nifti"`` or ``"skipped"``) and ``path``; skipped records carry
    ``reason`` (a code) and ``detail`` (a sentence without patient data).
    """
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
    record["path"] = path
    return record
