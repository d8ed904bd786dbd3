"""Hospital archive ingestion: DICOM/NIfTI trees to a clean, PHI-free MONAI datalist and NIfTI cache."""

from monai_ssl.ingest.indexer import IndexSummary, Shard, index_archive, load_or_create_salt, merge_indexes
from monai_ssl.ingest.records import read_file_record, salted_hash, walk_files
from monai_ssl.ingest.series import SeriesProblem, convert_series, series_geometry, validate_series

__all__ = [
    "IndexSummary",
    "SeriesProblem",
    "Shard",
    "convert_series",
    "index_archive",
    "load_or_create_salt",
    "merge_indexes",
    "read_file_record",
    "salted_hash",
    "series_geometry",
    "validate_series",
    "walk_files",
]
