"""Write synthetic DICOM series with pydicom, with known geometry, values and patient data, for the ingestion
tests. File names are shuffled and InstanceNumber runs backwards, so only geometric sorting gets a series right."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"
PHI = {"PatientName": "DOE^JOHN", "PatientID": "PAT-12345", "PatientBirthDate": "19700101",
       "AccessionNumber": "ACC987", "SeriesDescription": "john doe brain"}


def raw_values(rows: int, columns: int, count: int) -> np.ndarray:
    """Stored pixel values, ``(slices, rows, columns)`` uint16, distinct along every axis."""
    k, j, i = np.meshgrid(np.arange(count), np.arange(rows), np.arange(columns), indexing="ij")
    return ((k * 97 + j * 13 + i * 3) % 3000).astype(np.uint16)


def write_series(
    folder: str,
    count: int = 12,
    rows: int = 16,
    columns: int = 20,
    pixel_spacing: Sequence[float] = (0.8, 0.7),
    slice_spacing: float = 2.5,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    origin: Sequence[float] = (-10.0, -20.0, 30.0),
    modality: str = "CT",
    sop_class: str | None = None,
    series_uid: str | None = None,
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    positions: np.ndarray | None = None,
    rescale: tuple[float, float] = (1.0, -1024.0),
    extension: str = ".dcm",
    compress: str | None = None,
    extra: dict | None = None,
    seed: int = 0,
) -> dict:
    """Write one series; returns its uid, paths, the expected volume ``(columns, rows, slices)`` in rescaled
    units, and the expected RAS affine."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    series_uid = series_uid or generate_uid()
    study_uid = generate_uid()
    row_direction, column_direction = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_direction, column_direction)
    if positions is None:
        positions = np.asarray(origin, float) + np.outer(np.arange(count) * slice_spacing, normal)
    pixels = raw_values(rows, columns, count)
    names = rng.permutation(count)
    paths = []
    for k in range(count):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class or (CT_IMAGE if modality == "CT" else MR_IMAGE)
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = meta.MediaStorageSOPClassUID
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.StudyInstanceUID = study_uid
        for key, value in PHI.items():
            setattr(ds, key, value)
        ds.ImageType = list(image_type)
        ds.InstanceNumber = count - k  # backwards: sorting by it would reverse the volume
        ds.ImagePositionPatient = [float(v) for v in positions[k]]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = slice_spacing
        ds.Rows, ds.Columns = rows, columns
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = rescale
        ds.PixelData = pixels[k].tobytes()
        for key, value in (extra or {}).items():
            setattr(ds, key, value)
        if compress is not None:
            ds.compress(compress)
        path = os.path.join(folder, f"img{names[k]:04d}{extension}")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    volume = pixels.transpose(2, 1, 0).astype(np.float32) * rescale[0] + rescale[1]
    affine = np.eye(4)
    affine[:3, 0] = row_direction * pixel_spacing[1]
    affine[:3, 1] = column_direction * pixel_spacing[0]
    affine[:3, 2] = normal * slice_spacing
    affine[:3, 3] = positions[0]
    return {"uid": series_uid, "paths": paths, "volume": volume, "affine": np.diag([-1, -1, 1, 1]) @ affine}


def rewrite(path: str, **changes) -> None:
    """Change or delete (value ``None``) attributes of one file."""
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)
