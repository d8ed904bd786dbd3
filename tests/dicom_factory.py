"""Write synthetic DICOM series with pydicom, with known geometry, values and patient data, for the ingestion
tests. File names are shuffled and InstanceNumber runs backwards, so only geometric sorting gets a series right."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from pathlib import Path

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


def write_time_series(root, volumes: int = 3, count: int = 6) -> list[np.ndarray]:
    """``volumes`` time points of ``count`` slices of one series (one folder each, one study), told apart by
    TemporalPositionIdentifier; volume t holds the stored values plus 100 t. Returns the expected volumes."""
    series_uid, study_uid = generate_uid(), generate_uid()
    expected = []
    for t in range(volumes):
        series = write_series(str(root / f"t{t}"), count=count, rows=8, columns=10, modality="MR",
                              series_uid=series_uid, rescale=(1.0, 100.0 * t),
                              extra={"StudyInstanceUID": study_uid, "TemporalPositionIdentifier": t + 1})
        for path in series["paths"]:  # instance numbers unique across the run, as scanners write them
            rewrite(path, InstanceNumber=int(pydicom.dcmread(path).InstanceNumber) + t * count)
        expected.append(series["volume"])
    return expected


ENHANCED_MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4.1"
_STACK_ID, _IN_STACK_POSITION, _TEMPORAL_POSITION_INDEX = 0x00209056, 0x00209057, 0x00209128


def csa2_header(tags: dict[str, tuple[str, Sequence]]) -> bytes:
    """A Siemens CSA2 ("SV10") header holding ``{name: (vr, values)}``, laid out as nibabel's ``csareader`` and
    dcm2niix read it."""
    out = b"SV10" + b"\x04\x03\x02\x01" + struct.pack("<2I", len(tags), 77)
    for name, (vr, values) in tags.items():
        out += struct.pack("<64si4s3i", name.encode(), len(values), vr.encode(), 0, len(values), 77)
        for value in values:
            text = str(value).encode() + b"\x00"
            out += struct.pack("<4i", len(text), len(text), 77, len(text)) + text + b"\x00" * (-len(text) % 4)
    return out


def _base_dataset(sop_class: str, modality: str, series_uid: str, study_uid: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = modality, series_uid, study_uid
    for key, value in PHI.items():
        setattr(ds, key, value)
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def _expected(stored: np.ndarray, positions: np.ndarray, orientation, pixel_spacing, slice_spacing, rescale):
    """The volume ``(columns, rows, slices)`` in geometric order and its RAS affine, from stored slices
    ``(slices, rows, columns)`` at ``positions``."""
    row_direction, column_direction = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = np.cross(row_direction, column_direction)
    order = np.argsort(positions @ normal)
    volume = stored[order].transpose(2, 1, 0).astype(np.float32) * rescale[0] + rescale[1]
    affine = np.eye(4)
    affine[:3, 0] = row_direction * pixel_spacing[1]
    affine[:3, 1] = column_direction * pixel_spacing[0]
    affine[:3, 2] = normal * slice_spacing
    affine[:3, 3] = positions[order[0]]
    return volume, np.diag([-1, -1, 1, 1]) @ affine


def write_mosaic(
    folder: str,
    tiles: int = 5,
    rows: int = 8,
    columns: int = 10,
    volumes: int = 1,
    pixel_spacing: Sequence[float] = (2.0, 2.5),
    slice_spacing: float = 3.0,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    origin: Sequence[float] = (-10.0, -20.0, 30.0),
    normal_sign: int = 1,
    mosaic_tiles: int | None = None,
) -> dict:
    """A Siemens mosaic series: ``volumes`` files (an fMRI run), each one image holding ``tiles`` slices of
    ``rows x columns`` in a square grid, with NumberOfImagesInMosaic and SliceNormalVector in a CSA image header
    (the normal is ``normal_sign`` times the cross product of the in-plane directions; Siemens writes either).
    Volume t holds the stored values plus 100 t. ``mosaic_tiles`` writes a different NumberOfImagesInMosaic.

    Returns the uid, paths, the expected volumes and their RAS affine."""
    os.makedirs(folder, exist_ok=True)
    series_uid, study_uid = generate_uid(), generate_uid()
    row_direction, column_direction = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    normal = normal_sign * np.cross(row_direction, column_direction)
    positions = np.asarray(origin, float) + np.outer(np.arange(tiles) * slice_spacing, normal)
    per_side = int(np.ceil(np.sqrt(tiles)))
    # ImagePositionPatient of a mosaic refers to the whole mosaic image: the first tile's position shifted back by
    # half the difference between the mosaic and tile sizes
    shift = (np.array([rows, columns]) * (per_side - 1)) / 2
    mosaic_position = (positions[0] - column_direction * pixel_spacing[0] * shift[0]
                       - row_direction * pixel_spacing[1] * shift[1])
    stored = raw_values(rows, columns, tiles)
    csa = csa2_header({"NumberOfImagesInMosaic": ("US", [mosaic_tiles or tiles]),
                       "SliceNormalVector": ("FD", [f"{v:.8f}" for v in normal])})
    paths, expected = [], []
    for t in range(volumes):
        ds = _base_dataset(MR_IMAGE, "MR", series_uid, study_uid)
        ds.Manufacturer = "SIEMENS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
        ds.InstanceNumber = t + 1
        ds.AcquisitionNumber = t + 1
        ds.ImagePositionPatient = [float(v) for v in mosaic_position]
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
        ds.SliceThickness = ds.SpacingBetweenSlices = slice_spacing
        ds.Rows, ds.Columns = rows * per_side, columns * per_side
        mosaic = np.zeros((rows * per_side, columns * per_side), np.uint16)
        for k in range(tiles):
            r, c = divmod(k, per_side)
            mosaic[r * rows:(r + 1) * rows, c * columns:(c + 1) * columns] = stored[k] + 100 * t
        ds.PixelData = mosaic.tobytes()
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", mosaic_tiles or tiles)
        ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", csa)
        path = os.path.join(folder, f"mosaic{t:03d}.dcm")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
        expected.append(_expected(stored + 100 * t, positions, orientation, pixel_spacing, slice_spacing, (1, 0)))
    return {"uid": series_uid, "paths": paths, "volumes": [v for v, _ in expected], "affine": expected[0][1]}


def write_enhanced(
    folder: str,
    slices: int = 6,
    rows: int = 8,
    columns: int = 10,
    volumes: int = 1,
    pixel_spacing: Sequence[float] = (0.9, 0.8),
    slice_spacing: float = 2.0,
    orientation: Sequence[float] = (1, 0, 0, 0, 0, -1),
    origin: Sequence[float] = (-10.0, 5.0, 30.0),
    rescale: tuple[float, float] = (2.0, -5.0),
    drop_position_of_frame: int | None = None,
    seed: int = 0,
) -> dict:
    """One Enhanced MR Image Storage object, as a Philips scanner writes it: ``volumes`` x ``slices`` frames in
    shuffled order, with the pixel
    measures, orientation and pixel value transformation in the shared functional groups and the position and
    frame content (stack, in-stack position, temporal position, dimension index values) per frame. Volume t holds
    the stored values plus 100 t. ``drop_position_of_frame`` leaves that frame without a plane position.

    Returns the uid, path, the expected volumes and their RAS affine."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    ds = _base_dataset(ENHANCED_MR_IMAGE, "MR", generate_uid(), generate_uid())
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Manufacturer, ds.NumberOfTemporalPositions = "Philips", volumes
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = rows, columns
    row_direction, column_direction = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    positions = np.asarray(origin, float) + np.outer(np.arange(slices) * slice_spacing,
                                                      np.cross(row_direction, column_direction))
    stored = raw_values(rows, columns, slices)

    def item(**attributes) -> Dataset:
        dataset = Dataset()
        for key, value in attributes.items():
            setattr(dataset, key, value)
        return dataset

    ds.DimensionIndexSequence = [item(DimensionIndexPointer=pointer, FunctionalGroupPointer=0x00209111)
                                 for pointer in (_STACK_ID, _TEMPORAL_POSITION_INDEX, _IN_STACK_POSITION)]
    ds.SharedFunctionalGroupsSequence = [item(
        PixelMeasuresSequence=[item(PixelSpacing=[float(v) for v in pixel_spacing], SliceThickness=slice_spacing,
                                    SpacingBetweenSlices=slice_spacing)],
        PlaneOrientationSequence=[item(ImageOrientationPatient=[float(v) for v in orientation])],
        PixelValueTransformationSequence=[item(RescaleSlope=rescale[0], RescaleIntercept=rescale[1],
                                               RescaleType="US")])]
    frames = [(t, k) for t in range(volumes) for k in range(slices)]
    frames = [frames[i] for i in rng.permutation(len(frames))]
    per_frame = []
    for index, (t, k) in enumerate(frames):
        group = item(FrameContentSequence=[item(StackID="1", InStackPositionNumber=k + 1,
                                                TemporalPositionIndex=t + 1, DimensionIndexValues=[1, t + 1, k + 1])])
        if index != drop_position_of_frame:
            group.PlanePositionSequence = [item(ImagePositionPatient=[float(v) for v in positions[k]])]
        per_frame.append(group)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.NumberOfFrames = len(frames)
    ds.PixelData = np.stack([stored[k] + 100 * t for t, k in frames]).astype(np.uint16).tobytes()
    path = os.path.join(folder, "enhanced.dcm")
    ds.save_as(path, enforce_file_format=True)
    expected = [_expected(stored + 100 * t, positions, orientation, pixel_spacing, slice_spacing, rescale)
                for t in range(volumes)]
    return {"uid": ds.SeriesInstanceUID, "path": path, "volumes": [v for v, _ in expected],
            "affine": expected[0][1]}


def index_folder(archive, out, **options) -> tuple:
    """Index ``archive`` as the ingestion tests do (salt ``"s"``, ``min_slices`` 2, no progress bar) into
    ``out/list.json``; returns the summary, the datalist entries and the report."""
    from monai_ssl.ingest import index_archive

    options = {"salt": "s", "min_slices": 2, "progress": False, **options}
    summary = index_archive(str(archive), str(Path(out) / "list.json"), **options)
    entries = json.loads((Path(out) / "list.json").read_text())["training"]
    return summary, entries, json.loads(Path(summary.report_path).read_text())
