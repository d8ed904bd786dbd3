"""``monai-ssl index``: turn a DICOM/NIfTI archive into a clean, PHI-free MONAI datalist and a NIfTI cache.

Memory stays bounded whatever the archive's size: file records go to an SQLite file on disk, at most a few tasks
per worker are in flight, and one series at a time is held per worker. Every bad item ends as a skip with a
reason code in the report; none stops the run.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import secrets
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from monai_ssl.ingest.records import (
    DICOM,
    NIFTI,
    expand_slices,
    read_file_record,
    read_nifti_bytes,
    salted_hash,
    shard_key,
    walk_files,
)
from monai_ssl.ingest.series import (
    FOUR_D_MODES,
    SeriesProblem,
    convert_series,
    drop_pixel_copies,
    pixel_digest,
    split_volumes,
    validate_series,
    write_nifti_atomically,
)
from monai_ssl.utils import atomic_path, atomic_write_text

__all__ = ["IndexSummary", "Shard", "index_archive", "merge_indexes", "load_or_create_salt", "default_salt_path"]

logger = logging.getLogger(__name__)

_RECORD_FIELDS = ("path", "sop_class", "modality", "image_type", "series_uid", "instance_key", "series_key",
                  "study_key", "subject_key", "frames", "rows", "columns", "pixel_spacing", "orientation", "position",
                  "gantry_tilt", "transfer_syntax", "instance", "volume_tags", "frame", "tile", "mosaic_tiles",
                  "rescale", "stack")
_JSON_FIELDS = ("pixel_spacing", "orientation", "position", "volume_tags", "rescale")


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (from 0) of ``count`` parts of an archive: the files whose
    :func:`~monai_ssl.ingest.records.shard_key` hashes to it. A DICOM series is never split: its key is its Series
    Instance UID, wherever its files lie. Shards balance series, not files."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"a shard is INDEX/COUNT with 0 <= INDEX < COUNT (0/4, 1/4, 2/4 and 3/4 cover an "
                             f"archive in 4 parts), got {self.index}/{self.count}.")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"``: e.g. ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT`` or ``$JOB_COMPLETION_INDEX/N``."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"--shard takes INDEX/COUNT, e.g. 0/4 for the first of 4 shards, got {text!r}.") from None
        return cls(index, count)

    def owns(self, key: str) -> bool:
        return int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) % self.count == self.index


def salt_check(salt: str) -> str:
    """A salted digest of a constant, written in every report: indexes can be merged only when their keys come from
    one salt, and this tells without revealing it."""
    return salted_hash(salt, "salt-check")[:16]


@dataclass
class IndexSummary:
    """Outcome of :func:`index_archive`, :func:`merge_indexes` or an index of a DICOMweb service."""

    accepted: int = 0
    volumes: int = 0
    skipped: Counter = field(default_factory=Counter)
    files: int = 0
    datalist_path: str = ""
    report_path: str = ""
    salt_check: str = ""
    shard: Shard | None = None

    def text(self) -> str:
        volumes = f" ({self.volumes} volumes)" if self.volumes != self.accepted else ""
        lines = [f"indexed {self.files} files: {self.accepted} series accepted{volumes}, "
                 f"{sum(self.skipped.values())} items skipped"]
        lines += [f"  {reason}: {count}" for reason, count in sorted(self.skipped.items())]
        return "\n".join(lines)

    def nothing_accepted(self) -> str:
        """Why the index is empty, naming the three commonest skip reasons; ``""`` when it is not empty."""
        if self.accepted:
            return ""
        if not self.skipped:
            return f"no series accepted: no DICOM or NIfTI file among the {self.files} files examined."
        top = ", ".join(f"{reason} ({count})" for reason, count in self.skipped.most_common(3))
        return (f"no series accepted from {self.files} files; the commonest reasons: {top}. The report lists every "
                f"skipped item: {self.report_path}")


SALT_ENVIRONMENT_VARIABLE = "MONAI_SSL_SALT"
SALT_FILE_ENVIRONMENT_VARIABLE = "MONAI_SSL_SALT_FILE"


def default_salt_path() -> str:
    """The per-user salt file: ``$XDG_CONFIG_HOME/monai-ssl/salt`` (``~/.config/monai-ssl/salt``).

    It lives outside every cache and datalist: whoever is handed an index (datalist, report, cache) must not also
    hold the salt, or they could brute-force low-entropy identifiers (patient IDs, birth dates) from the hashes.
    """
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(config_home, "monai-ssl", "salt")


def _read_salt(path: str) -> str:
    with open(path) as f:
        salt = f.read().strip()
    if not salt:
        raise ValueError(f"the salt file {path} is empty; put a long random secret in it "
                         "(e.g. `openssl rand -hex 32`).")
    return salt


def load_or_create_salt(salt: str | None = None, salt_file: str | None = None) -> str:
    """The salt of the identifier hashes, from the first of:

    1. ``salt`` (Python callers);
    2. ``salt_file``, else the file named by ``$MONAI_SSL_SALT_FILE``;
    3. ``$MONAI_SSL_SALT``;
    4. the per-user file :func:`default_salt_path`, created once with a random secret (folder 0700, file 0600).

    A team that shares indexes gives everyone the same salt through a file or the environment; never on the
    command line, where process lists show it.
    """
    if salt:
        return salt
    salt_file = salt_file or os.environ.get(SALT_FILE_ENVIRONMENT_VARIABLE)
    if salt_file:
        return _read_salt(salt_file)
    if os.environ.get(SALT_ENVIRONMENT_VARIABLE):
        return os.environ[SALT_ENVIRONMENT_VARIABLE]
    path = default_salt_path()
    if not os.path.exists(path):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        temporary = path + f".{os.getpid()}"
        # a secret: readable by its owner only, unlike the other outputs (which follow the umask)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)  # never replaces a salt another process created meanwhile
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
        logger.info("created the per-user salt of the identifier hashes: %s", path)
    return _read_salt(path)


def check_index_options(four_d: str, max_volumes_per_series: int) -> None:
    if four_d not in FOUR_D_MODES:
        raise ValueError(f"four_d must be one of {FOUR_D_MODES}, got {four_d!r}.")
    if max_volumes_per_series < 1:
        raise ValueError(f"max_volumes_per_series must be >= 1, got {max_volumes_per_series}.")


def _bounded_map(executor: Executor | None, function: Callable, items: Iterable, window: int) -> Iterator[Any]:
    """Map ``function`` over ``items`` with at most ``window`` tasks in flight (results in completion order).

    ``executor=None`` runs in this process. Unlike ``Pool.imap``, the input is not read ahead without bound.
    """
    if executor is None:
        yield from map(function, items)
        return
    pending: set[Future] = set()
    for item in items:
        pending.add(executor.submit(function, item))
        if len(pending) >= window:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            yield from (f.result() for f in done)
    for future in pending:
        yield future.result()


class _ReadRecord:
    """Picklable ``read_file_record`` with the salt bound; ``None`` for a file of another shard."""

    def __init__(self, salt: str, shard: Shard | None = None, root: str = "") -> None:
        self.salt, self.shard, self.root = salt, shard, root

    def __call__(self, path: str) -> dict | None:
        if self.shard is not None and not self.shard.owns(shard_key(path, self.root)):
            return None
        return read_file_record(path, self.salt)


@dataclass
class IndexOptions:
    """What ``monai-ssl index`` was asked to keep, and how to treat 4D series (see :func:`index_archive`)."""

    modalities: Sequence[str] | None
    min_slices: int
    four_d: str
    max_volumes: int


@dataclass
class _SeriesJob:
    kind: str
    records: list[dict]
    output_stem: str  # cache path without its suffix
    options: IndexOptions


def _chosen_volumes(count: int, four_d: str, max_volumes: int) -> list[int]:
    """The volumes of a 4D series that become datalist entries: the first, or up to ``max_volumes`` spread evenly
    over the run (so that a 300-volume fMRI does not flood the pool with near-copies)."""
    if four_d == "first" or count == 1:
        return [0]
    if count <= max_volumes:
        return list(range(count))
    return sorted({int(round(i)) for i in np.linspace(0, count - 1, max_volumes)})


def _convert_once(records: list[dict], output: str) -> str:
    if not os.path.exists(output):  # resumable: a finished volume is never redone
        volume, affine = convert_series(records)
        write_nifti_atomically(volume, affine, output)
    return output


def _process_dicom(job: _SeriesJob) -> list[dict]:
    """The converted volumes of one DICOM series: one for a 3D series; for a 4D series, per ``job.options.four_d``."""
    volumes = split_volumes(job.records)
    if len(volumes) == 1:
        validate_series(job.records, job.options.modalities, job.options.min_slices)
        return [{"image": _convert_once(job.records, job.output_stem + ".nii.gz")}]
    if job.options.four_d == "skip":
        raise SeriesProblem("time_series_skipped", f"a series of {len(volumes)} volumes (--4d skip)")
    for records in volumes:
        validate_series(records, job.options.modalities, job.options.min_slices)
    if job.options.four_d == "mean":
        output = job.output_stem + "_mean.nii.gz"
        if not os.path.exists(output):
            converted = [convert_series(records) for records in volumes]
            mean = np.mean([volume for volume, _ in converted], axis=0).astype(np.float32)
            write_nifti_atomically(mean, converted[0][1], output)
        return [{"image": output, "volume": "mean", "num_volumes": len(volumes)}]
    chosen = _chosen_volumes(len(volumes), job.options.four_d, job.options.max_volumes)
    return [{"image": _convert_once(volumes[k], f"{job.output_stem}_v{k:04d}.nii.gz"), "volume": k,
             "num_volumes": len(volumes)} for k in chosen]


def _process_series(job: _SeriesJob) -> dict:
    """Validate and convert one series (or check and copy one NIfTI file); never raises.

    Returns ``{"ok": True, "volumes": [{"image", "shape", "spacing", ...}, ...], "copies": [paths of slices left
    out as pixel-identical copies]}`` or ``{"ok": False, "reason", "detail"}``.
    """
    try:
        copies: list[dict] = []
        if job.kind == DICOM:
            # pixel-identical copies of slices (one series exported in several transfer syntaxes with new instance
            # UIDs) are one slice, reported, not a duplicate_slice conflict
            job.records, copies = drop_pixel_copies(job.records)
            volumes = _process_dicom(job)
        else:
            nifti = _check_and_copy_nifti(job.records[0]["path"], job.output_stem, job.options.min_slices)
            volumes = [{"image": nifti}]
        return {"ok": True, "volumes": [{**v, **_volume_facts(v["image"])} for v in volumes],
                "copies": sorted({r["path"] for r in copies})}
    except SeriesProblem as problem:
        return {"ok": False, "reason": problem.reason, "detail": problem.detail}
    except Exception as error:  # anything unexpected is a skip with its type, never a crash of the run
        return {"ok": False, "reason": "conversion_failed", "detail": f"unexpected {type(error).__name__}"}


def _check_and_copy_nifti(source: str, output_stem: str, min_slices: int) -> str:
    """Check a NIfTI file (3D, finite, large enough) and copy it into the cache; returns the cached path, whose
    suffix follows the content (gzipped or not), whatever the source's name."""
    import nibabel as nib

    try:
        payload, compressed = read_nifti_bytes(source)
        image_class = nib.Nifti1Image if payload[344:348] in (b"n+1\x00", b"ni1\x00") else nib.Nifti2Image
        data = np.asanyarray(image_class.from_bytes(payload).dataobj)
    except Exception as error:
        raise SeriesProblem("unreadable_nifti", f"cannot read the NIfTI data ({type(error).__name__})")
    shape = data.shape[:3] + tuple(s for s in data.shape[3:] if s != 1)
    if len(shape) != 3:
        raise SeriesProblem("not_3d", f"NIfTI with {len(shape)} non-singleton dimensions, expected 3")
    if min(shape) < max(min_slices, 2):
        raise SeriesProblem("too_few_slices", f"smallest dimension {min(shape)} < {max(min_slices, 2)}")
    if np.issubdtype(data.dtype, np.floating) and not np.all(np.isfinite(data)):
        raise SeriesProblem("non_finite_values", "NaN or infinite voxel values")
    destination = output_stem + (".nii.gz" if compressed else ".nii")
    if not os.path.exists(destination):
        with atomic_path(destination, suffix=".nii.gz") as temporary:
            shutil.copyfile(source, temporary)
    return destination


def _volume_facts(path: str) -> dict:
    import nibabel as nib

    header = nib.load(path).header
    return {"shape": [int(s) for s in header.get_data_shape()[:3]],
            "spacing": [round(float(z), 6) for z in header.get_zooms()[:3]]}


def _open_database(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE dicom ({', '.join(_RECORD_FIELDS)})")
    db.execute("CREATE TABLE nifti (path, relative)")
    db.execute("CREATE TABLE skipped (item, reason, detail)")
    db.execute("CREATE INDEX dicom_series ON dicom (series_uid)")
    db.execute("CREATE INDEX dicom_instance ON dicom (instance_key, path)")
    db.execute("CREATE INDEX dicom_path ON dicom (path)")
    return db


def _decode_row(row: Sequence) -> dict:
    record = dict(zip(_RECORD_FIELDS, row))
    for key in _JSON_FIELDS:
        record[key] = json.loads(record[key])
    return record


def index_archive(
    archive_dir: str,
    out: str,
    cache_dir: str | None = None,
    modalities: Sequence[str] | None = None,
    workers: int = 1,
    min_slices: int = 10,
    salt: str | None = None,
    report_paths: bool = False,
    progress: bool = True,
    salt_file: str | None = None,
    four_d: str = "split",
    max_volumes_per_series: int = 20,
    shard: Shard | str | None = None,
) -> IndexSummary:
    """Index an archive of DICOM and NIfTI files into a MONAI datalist and a cache of NIfTI volumes.

    Args:
        archive_dir: root of the archive; every file below it is examined, whatever its name.
        out: the datalist JSON to write (``{"training": [...]}``); the report goes beside it
            (``<name>_report.json``).
        cache_dir: folder of the converted volumes, named by salted series hash; default ``<out folder>/cache``.
            Re-running skips volumes already there; files appear under their final name only when complete.
        modalities: DICOM modalities to keep (e.g. ``["CT", "MR"]``); ``None`` keeps all image modalities.
        workers: worker processes; 1 works in this process.
        min_slices: fewer slices (or a NIfTI dimension smaller than this) is skipped.
        salt: salt of the identifier hashes (see :func:`load_or_create_salt`).
        salt_file: a file holding the salt (see :func:`load_or_create_salt`).
        four_d: a 4D DICOM series (fMRI, perfusion, diffusion: several volumes at the same slice positions)
            becomes one entry per volume (``"split"``, each with ``"volume"`` and ``"num_volumes"`` and the
            series' shared key), its first volume (``"first"``), the mean of its volumes (``"mean"``), or is
            skipped as ``time_series_skipped`` (``"skip"``).
        max_volumes_per_series: with ``"split"``, at most this many volumes, spread evenly over the run.
        report_paths: list skipped files by their path relative to the archive in the report. Off by default,
            since folder names in hospital exports can carry patient names; items are then salted hashes.
        progress: show progress bars.
        shard: index only this part of the archive (a :py:class:`Shard` or ``"i/n"``), for one job of an array
            (Slurm, a Kubernetes indexed Job); every file is still examined far enough to find its shard (its
            Series Instance UID). :func:`merge_indexes` joins the shards' datalists into the one datalist a single
            run gives. Shards may share ``cache_dir``: their series differ.

    Returns:
        an :py:class:`IndexSummary`; its text is the summary printed by the command line.
    """
    if isinstance(shard, str):
        shard = Shard.parse(shard)
    if not os.path.isdir(archive_dir):
        raise ValueError(f"archive {archive_dir!r} is not a folder.")
    check_index_options(four_d, max_volumes_per_series)
    out = os.path.abspath(out)
    out_dir = os.path.dirname(out)
    cache_dir = os.path.abspath(cache_dir or os.path.join(out_dir, "cache"))
    os.makedirs(cache_dir, exist_ok=True)
    salt = load_or_create_salt(salt, salt_file)
    legacy_salt = os.path.join(cache_dir, ".salt")
    if os.path.isfile(legacy_salt):
        logger.warning("%s is a salt kept beside the data it protects (where monai-ssl used to create it); it is no "
                       "longer read. To keep the keys it gave, move it out of the cache and pass it with --salt-file.",
                       legacy_salt)
    modalities = [m.upper() for m in modalities] if modalities else None
    summary = IndexSummary(datalist_path=out, report_path=os.path.splitext(out)[0] + "_report.json",
                           salt_check=salt_check(salt), shard=shard)

    def item_name(path: str) -> str:
        relative = os.path.relpath(path, archive_dir)
        return relative if report_paths else "file:" + salted_hash(salt, "path", relative)[:16]

    options = IndexOptions(modalities, min_slices, four_d, max_volumes_per_series)
    entries, skipped, summary.files = index_files(archive_dir, cache_dir, salt, options, workers, item_name, progress,
                                                  shard)
    write_index(summary, entries, skipped)
    return summary


def index_files(archive_dir: str, cache_dir: str, salt: str, options: IndexOptions, workers: int,
                item_name: Callable[[str], str], progress: bool,
                shard: Shard | None = None) -> tuple[list[dict], list[dict], int]:
    """Read, group, validate and convert every file under ``archive_dir`` (of ``shard`` only, if given).

    Returns the datalist entries (absolute image paths), the skipped items, and the number of files examined."""
    files_seen = 0
    executor = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".index-") as scratch:
        db = _open_database(os.path.join(scratch, "records.sqlite"))
        try:
            files = tqdm(walk_files(archive_dir), desc="files", unit=" files", disable=not progress)
            read = _ReadRecord(salt, shard, archive_dir)
            for record in _bounded_map(executor, read, files, window=4 * max(workers, 1)):
                if record is None:  # another shard's file
                    continue
                files_seen += 1
                if record["kind"] == DICOM:
                    # one row per slice: a mosaic's tiles and a multi-frame object's frames are slices too
                    db.executemany(f"INSERT INTO dicom VALUES ({', '.join('?' * len(_RECORD_FIELDS))})",
                                   [[json.dumps(piece[k]) if k in _JSON_FIELDS else piece[k] for k in _RECORD_FIELDS]
                                    for piece in expand_slices(record)])
                elif record["kind"] == NIFTI:
                    db.execute("INSERT INTO nifti VALUES (?, ?)",
                               (record["path"], os.path.relpath(record["path"], archive_dir)))
                else:
                    db.execute("INSERT INTO skipped VALUES (?, ?, ?)",
                               (item_name(record["path"]), record["reason"], record["detail"]))
            _drop_copies_of_instances(db, item_name)
            db.commit()
            entries = _process_all_series(db, executor, cache_dir, salt, options, workers, item_name, progress)
        finally:
            if executor is not None:
                executor.shutdown()
        skipped = [{"item": item, "reason": reason, "detail": detail}
                   for item, reason, detail in db.execute("SELECT item, reason, detail FROM skipped ORDER BY item")]
        db.close()
    return entries, skipped, files_seen


def write_index(summary: IndexSummary, entries: list[dict], skipped: list[dict]) -> None:
    """Write the datalist (image paths relative to it) and the report of ``summary``, and fill in its counts."""
    out_dir = os.path.dirname(summary.datalist_path)
    relative_to_out = [{**e, "image": os.path.relpath(e["image"], out_dir)} for e in entries]
    summary.accepted = len({e["series"] for e in entries})
    summary.volumes = len(entries)
    summary.skipped = Counter(s["reason"] for s in skipped)
    # a series' volumes stay together and in order
    order = lambda e: (e["series"], e["volume"] if isinstance(e.get("volume"), int) else -1)  # noqa: E731
    _write_json(summary.datalist_path, {"training": sorted(relative_to_out, key=order)})
    report = {"files": summary.files, "accepted_series": summary.accepted, "volumes": summary.volumes,
              "skipped_counts": dict(sorted(summary.skipped.items())),
              "skipped": sorted(skipped, key=lambda s: (s["item"], s["reason"], s["detail"])),
              "salt_check": summary.salt_check}
    if summary.shard is not None:
        report["shard"] = {"index": summary.shard.index, "count": summary.shard.count}
    _write_json(summary.report_path, report)
    logger.info("%s", summary.text().replace("\n", "; "))


def merge_indexes(datalists: Sequence[str], out: str) -> IndexSummary:
    """Join the outputs of several indexes (the shards of one archive, or DICOMweb runs over separate study dates)
    into one datalist and report, as one run would have written them.

    A series indexed by more than one input (overlapping date ranges, an archive indexed twice) is kept once, from
    the first input that has it, and the others are reported as ``duplicate_series``. Image paths are rewritten
    relative to ``out``; the volumes stay in their caches.

    Args:
        datalists: the datalists to join, each with its report beside it (``<name>_report.json``). Glob patterns
            are expanded (for callers without a shell); the reports they match are left out.
        out: the merged datalist; its report goes beside it.

    Raises:
        ValueError: an input or its report is missing; the inputs were made with different salts (their keys
            cannot be matched); or they are shards of an archive but not all of them, once each.
    """
    paths = [os.path.abspath(p) for pattern in datalists for p in (sorted(glob.glob(pattern)) or [pattern])]
    # `shard_*.json` also matches the shards' reports
    reports = {os.path.splitext(p)[0] + "_report.json" for p in paths}
    paths = [p for p in paths if p not in reports]
    if not paths:
        raise ValueError("give the datalists to merge (e.g. out/shard_*.json).")
    inputs = []
    for path in paths:
        report_path = os.path.splitext(path)[0] + "_report.json"
        for needed in (path, report_path):
            if not os.path.isfile(needed):
                raise ValueError(f"{needed} does not exist: merge takes the datalists written by `monai-ssl index`, "
                                 "each with its report beside it.")
        with open(path) as f, open(report_path) as r:
            inputs.append((path, json.load(f), json.load(r)))
    checks = {report.get("salt_check") for _, _, report in inputs}
    if len(checks) != 1 or None in checks:
        raise ValueError("these indexes were made with different salts (or by a monai-ssl too old to say), so the "
                         "same series has different keys in them; index every part with one --salt-file.")
    _check_shards(paths, [report.get("shard") for _, _, report in inputs])
    out = os.path.abspath(out)
    summary = IndexSummary(datalist_path=out, report_path=os.path.splitext(out)[0] + "_report.json",
                           salt_check=checks.pop())
    entries, skipped, seen = [], [], set()
    for path, datalist, report in inputs:
        summary.files += report["files"]
        skipped += report["skipped"]
        for entry in datalist["training"]:
            key = (entry["series"], entry.get("volume"))
            if key in seen:
                skipped.append({"item": "series:" + entry["series"][:16], "reason": "duplicate_series",
                                "detail": "indexed by more than one of the merged indexes; the first one's volume "
                                "is kept"})
                continue
            seen.add(key)
            entries.append({**entry, "image": os.path.normpath(os.path.join(os.path.dirname(path), entry["image"]))})
    write_index(summary, entries, skipped)
    return summary


def _check_shards(paths: Sequence[str], shards: Sequence[dict | None]) -> None:
    """Shards merge only as a complete set, each once; indexes that are not shards merge freely."""
    if all(shard is None for shard in shards):
        return
    if any(shard is None for shard in shards):
        raise ValueError("some of these indexes are shards of an archive (--shard) and some are not; merge the "
                         "shards of one archive on their own first.")
    counts = {shard["count"] for shard in shards}
    if len(counts) != 1:
        raise ValueError(f"these shards split an archive in different numbers of parts ({sorted(counts)}); index "
                         "every shard with the same --shard i/N.")
    count = counts.pop()
    indices = Counter(shard["index"] for shard in shards)
    repeated = sorted(i for i, n in indices.items() if n > 1)
    missing = sorted(set(range(count)) - set(indices))
    if repeated:
        names = [p for p, shard in zip(paths, shards) if shard["index"] in repeated]
        raise ValueError(f"shard(s) {repeated} of {count} given more than once: {names}.")
    if missing:
        raise ValueError(f"shard(s) {', '.join(f'{i}/{count}' for i in missing)} missing: run `monai-ssl index "
                         f"SOURCE --shard i/{count}` for them (or check that their jobs finished), then merge all "
                         f"{count}.")


def _drop_copies_of_instances(db: sqlite3.Connection, item_name: Callable[[str], str]) -> None:
    """Keep one file per image and report the others as ``duplicate_instance``: an archive exported twice, or one
    image in several transfer syntaxes, is the same data, not extra slices or volumes.

    A file is a copy only when it shares the SOP Instance UID *and* the slice positions and the decoded pixels
    (:func:`pixel_digest`) of a file kept before it (by path): anonymisers that collapse UIDs give different
    images one UID, and those are all kept. Only files that share a UID are decoded here."""
    copies: list[str] = []

    def copies_in(files: dict[str, list[str]]) -> list[str]:
        """``files``: path -> slice positions of one instance UID's files, by path."""
        if len(files) < 2:
            return []
        kept, found = set(), []
        for path, positions in files.items():
            fingerprint = (tuple(positions), pixel_digest(path))
            if fingerprint in kept:
                found.append(path)
            kept.add(fingerprint)
        return found

    group: dict[str, list[str]] = {}
    previous = None
    # sorted by instance, then path: the first path of each image is the one kept (one UID's files in memory)
    for key, path, position in db.execute("SELECT instance_key, path, position FROM dicom WHERE instance_key != '' "
                                          "ORDER BY instance_key, path, frame, tile"):
        if key != previous:
            copies += copies_in(group)
            group = {}
        group.setdefault(path, []).append(position)
        previous = key
    copies += copies_in(group)
    for path in copies:
        db.execute("DELETE FROM dicom WHERE path = ?", (path,))
        db.execute("INSERT INTO skipped VALUES (?, ?, ?)", (item_name(path), "duplicate_instance",
                                                            "a copy of an image indexed from another file (same SOP "
                                                            "Instance UID, position and pixel data)"))


def _series_jobs(db: sqlite3.Connection, cache_dir: str, salt: str, options: IndexOptions):
    """One job per DICOM series (one series' records in memory at a time) and per NIfTI file."""
    uids = [row[0] for row in db.execute("SELECT DISTINCT series_uid FROM dicom")]
    for uid in uids:
        records = [_decode_row(row) for row in db.execute("SELECT * FROM dicom WHERE series_uid = ?", (uid,))]
        stem = os.path.join(cache_dir, records[0]["series_key"][:32])
        # the stacks of an enhanced multi-frame series (e.g. three orientations) are volumes of their own
        stacks = sorted({r["stack"] for r in records})
        for stack in stacks:
            yield _SeriesJob(DICOM, [r for r in records if r["stack"] == stack],
                             stem if len(stacks) == 1 else f"{stem}_stack{_safe_name(stack)}", options)
    for path, relative in db.execute("SELECT path, relative FROM nifti").fetchall():
        key = salted_hash(salt, "series", "nifti", relative)
        record = {"path": path, "series_key": key, "study_key": key,
                  "subject_key": salted_hash(salt, "subject", "nifti", os.path.dirname(relative)), "modality": ""}
        yield _SeriesJob(NIFTI, [record], os.path.join(cache_dir, key[:32]), options)


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)[:16]


def _process_all_series(db, executor, cache_dir, salt, options, workers, item_name, progress):
    total = db.execute("SELECT (SELECT COUNT(*) FROM (SELECT DISTINCT series_uid, stack FROM dicom)) "
                       "+ (SELECT COUNT(*) FROM nifti)")
    jobs = _series_jobs(db, cache_dir, salt, options)
    results = _bounded_map(executor, _run_job, jobs, window=2 * max(workers, 1))
    entries = []
    for job, result in tqdm(results, total=total.fetchone()[0], desc="series", unit=" series", disable=not progress):
        first = job.records[0]
        if result["ok"]:
            for volume in result["volumes"]:
                # the volumes of a 4D series share their series key, so that a split keeps them on one side
                entry = {"image": volume["image"], "subject": first["subject_key"], "study": first["study_key"],
                         "series": first["series_key"], "modality": first["modality"] or None, "format": job.kind,
                         "num_slices": volume["shape"][2] if job.kind == DICOM else None,
                         "shape": volume["shape"], "spacing": volume["spacing"]}
                if "volume" in volume:
                    entry.update(volume=volume["volume"], num_volumes=volume["num_volumes"])
                entries.append(entry)
            for path in result["copies"]:
                db.execute("INSERT INTO skipped VALUES (?, ?, ?)", (item_name(path), "duplicate_instance",
                                                                    "a pixel-identical copy of another slice at the "
                                                                    "same position (another SOP Instance UID)"))
        else:
            item = ("series:" + first["series_key"][:16]) if job.kind == DICOM else item_name(first["path"])
            db.execute("INSERT INTO skipped VALUES (?, ?, ?)", (item, result["reason"], result["detail"]))
    db.commit()
    return entries


def _run_job(job: _SeriesJob) -> tuple[_SeriesJob, dict]:
    return job, _process_series(job)


def _write_json(path: str, content: Any) -> None:
    atomic_write_text(path, json.dumps(content, indent=2))
