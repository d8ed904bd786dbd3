"""``monai-ssl index dicomweb+http://host:port/dicom-web``: index a PACS over DICOMweb.

Series are listed with QIDO-RS and fetched with WADO-RS (the ``dicomweb-client`` package), one series at a time:
its instances stream into a private staging folder, go through exactly the folder indexer's reading, validation
and conversion, and are deleted once the series' outcome (its volumes in the cache, or its skip reasons) is saved
in a small manifest. A re-run reads the manifests and fetches only the series not done, so an interrupted run
(server gone, network down, machine restarted) resumes; memory holds one series' file records at most.

Credentials never come from the command line: ``$MONAI_SSL_DICOMWEB_TOKEN`` (a bearer token),
``$MONAI_SSL_DICOMWEB_USER`` with ``$MONAI_SSL_DICOMWEB_PASSWORD``, or the user's ``~/.netrc`` (read by
``requests``). They are never logged.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from urllib.parse import urlsplit

from monai_ssl.ingest.indexer import (
    IndexOptions,
    IndexSummary,
    check_index_options,
    index_files,
    load_or_create_salt,
    salt_check,
    write_index,
)
from monai_ssl.ingest.records import salted_hash
from monai_ssl.utils import atomic_write_text

__all__ = ["DICOMWEB_SCHEME", "DicomwebUnavailable", "index_dicomweb"]

logger = logging.getLogger(__name__)

DICOMWEB_SCHEME = "dicomweb+"
TOKEN_VARIABLE, USER_VARIABLE, PASSWORD_VARIABLE = ("MONAI_SSL_DICOMWEB_TOKEN", "MONAI_SSL_DICOMWEB_USER",
                                                    "MONAI_SSL_DICOMWEB_PASSWORD")
_SERIES_UID, _STUDY_UID = "0020000E", "0020000D"


class DicomwebUnavailable(RuntimeError):
    """The DICOMweb server did not answer (after retries); what was done so far is cached."""


def _service_url(source: str) -> str:
    if not source.startswith(DICOMWEB_SCHEME):
        raise ValueError(f"a DICOMweb source starts with {DICOMWEB_SCHEME!r}, e.g. "
                         f"dicomweb+http://pacs:8042/dicom-web; got {source!r}.")
    url = source[len(DICOMWEB_SCHEME):]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{source!r} is not dicomweb+http://HOST[:PORT]/PATH or dicomweb+https://...")
    if parts.username or parts.password:
        raise ValueError("credentials in the DICOMweb URL would show in process lists and shell history; put them in "
                         f"${USER_VARIABLE} and ${PASSWORD_VARIABLE}, ${TOKEN_VARIABLE}, or ~/.netrc.")
    return url.rstrip("/")


def _session(retries: int):
    """A ``requests`` session with credentials from the environment (else ``~/.netrc``) and retries with
    exponential back-off on connection errors and on 429/5xx answers."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    session = requests.Session()
    if os.environ.get(TOKEN_VARIABLE):
        session.headers["Authorization"] = f"Bearer {os.environ[TOKEN_VARIABLE]}"
    elif os.environ.get(USER_VARIABLE):
        session.auth = (os.environ[USER_VARIABLE], os.environ.get(PASSWORD_VARIABLE, ""))
    retry = Retry(total=retries, connect=retries, read=retries, backoff_factor=0.5,
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",), raise_on_status=False)
    for prefix in ("http://", "https://"):
        session.mount(prefix, HTTPAdapter(max_retries=retry))
    return session


def _list_series(client, modalities: Sequence[str] | None, study_date_from: str | None, study_date_to: str | None,
                 limit: int | None, page: int = 100) -> list[tuple[str, str]]:
    """``(study uid, series uid)`` of the matching series, paged through QIDO-RS, at most ``limit`` (the first the
    server lists), sorted by series UID so that a re-run walks them in the same order."""
    filters = {}
    if study_date_from or study_date_to:
        filters["StudyDate"] = f"{study_date_from or ''}-{study_date_to or ''}"
    found: dict[str, str] = {}
    for modality in modalities or [None]:
        offset = 0
        while limit is None or len(found) < limit:
            query = {**filters, **({"Modality": modality} if modality else {})}
            answers = client.search_for_series(search_filters=query or None, offset=offset, limit=page)
            before = len(found)
            for answer in answers:
                series = answer.get(_SERIES_UID, {}).get("Value", [None])[0]
                study = answer.get(_STUDY_UID, {}).get("Value", [None])[0]
                if series and study:
                    found.setdefault(series, study)
            # a short page ends the listing; so does a page with nothing new (a server that ignores the offset)
            if len(answers) < page or len(found) == before:
                break
            offset += page
    series = sorted(found.items())
    return [(study, uid) for uid, study in series[:limit]]


def index_dicomweb(
    source: str,
    out: str,
    cache_dir: str | None = None,
    modalities: Sequence[str] | None = None,
    study_date_from: str | None = None,
    study_date_to: str | None = None,
    limit: int | None = None,
    min_slices: int = 10,
    salt: str | None = None,
    salt_file: str | None = None,
    four_d: str = "split",
    max_volumes_per_series: int = 20,
    timeout: float = 60.0,
    retries: int = 3,
    progress: bool = True,
) -> IndexSummary:
    """Index the series of a DICOMweb server into a MONAI datalist and a NIfTI cache, as :func:`index_archive`
    indexes a folder: the same checks, reason codes, 4D handling, hashed identifiers and cache names, so the same
    images give the same datalist from a folder or from the PACS.

    Args:
        source: ``dicomweb+http://host:port/prefix`` (or ``dicomweb+https://``), the service root.
        out: the datalist JSON to write; the report goes beside it.
        cache_dir: folder of the converted volumes and of the per-series manifests that make a re-run resume;
            default ``<out folder>/cache``.
        modalities: QIDO ``Modality`` filter(s), e.g. ``["MR"]``; ``None`` lists every series.
        study_date_from: first study date, ``YYYYMMDD`` (QIDO date range), or ``None``.
        study_date_to: last study date, ``YYYYMMDD``, or ``None``.
        limit: index at most this many series (the first the server lists), or ``None`` for all.
        min_slices, salt, salt_file, four_d, max_volumes_per_series: as for :func:`index_archive`.
        timeout: seconds to wait for the server on each request.
        retries: retries of a failed request, with exponential back-off.
        progress: show a progress bar.

    Raises:
        DicomwebUnavailable: the server stopped answering; the series done so far are cached and a re-run of the
            same command finishes the job.
    """
    import requests
    from dicomweb_client.api import DICOMwebClient
    from tqdm import tqdm

    url = _service_url(source)
    for name, date in (("study_date_from", study_date_from), ("study_date_to", study_date_to)):
        if date is not None and not (len(date) == 8 and date.isdigit()):
            raise ValueError(f"{name} must be a date as YYYYMMDD, got {date!r}.")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}.")
    check_index_options(four_d, max_volumes_per_series)
    out = os.path.abspath(out)
    cache_dir = os.path.abspath(cache_dir or os.path.join(os.path.dirname(out), "cache"))
    manifests = os.path.join(cache_dir, ".dicomweb")
    os.makedirs(manifests, exist_ok=True)
    _sweep_stale_staging(manifests)
    salt = load_or_create_salt(salt, salt_file)
    options = IndexOptions([m.upper() for m in modalities] if modalities else None, min_slices, four_d,
                           max_volumes_per_series)
    client = DICOMwebClient(url, session=_session(retries), timeout=timeout)
    host = urlsplit(url).netloc  # for messages: never the credentials, which are not in the URL
    try:
        listed = _list_series(client, options.modalities, study_date_from, study_date_to, limit)
    except requests.RequestException as error:
        raise DicomwebUnavailable(f"the DICOMweb server at {host} did not answer the series query "
                                  f"({type(error).__name__}); check the URL, the network and the credentials.")
    summary = IndexSummary(datalist_path=out, report_path=os.path.splitext(out)[0] + "_report.json",
                           salt_check=salt_check(salt))
    entries, skipped = [], []
    fetched = 0
    for done, (study, series) in enumerate(tqdm(listed, desc="series", unit=" series", disable=not progress)):
        series_hash = salted_hash(salt, "series", series)
        key, item = series_hash[:32], "series:" + series_hash[:16]  # the cache's and the report's names
        manifest = os.path.join(manifests, f"{key}_{_options_key(options)}.json")
        outcome = _cached_outcome(manifest, cache_dir)
        if outcome is None:
            try:
                outcome = _index_one_series(client, study, series, manifests, cache_dir, salt, options, item)
            except requests.RequestException as error:
                status = getattr(error.response, "status_code", None)
                if status is None or status in (401, 403, 429) or status >= 500:
                    raise DicomwebUnavailable(
                        f"the DICOMweb server at {host} stopped answering while fetching series {done + 1} of "
                        f"{len(listed)} ({type(error).__name__}{f' {status}' if status else ''}); the {done} series "
                        f"before it are cached in {cache_dir}. Run the same command again to finish.") from None
                # the server refused this series (e.g. deleted since it was listed): a skip, retried by a re-run
                skipped.append({"item": item, "reason": "fetch_failed", "detail": f"the server answered HTTP {status} for it"})
                continue
            atomic_write_text(manifest, json.dumps(outcome))
            fetched += 1
        summary.files += outcome["files"]
        entries += [{**e, "image": os.path.join(cache_dir, e["image"])} for e in outcome["entries"]]
        skipped += outcome["skipped"]
    logger.info("DICOMweb: %d series listed, %d fetched now, %d cached by an earlier run", len(listed), fetched,
                len(listed) - fetched)
    write_index(summary, entries, skipped)
    return summary


def _cached_outcome(manifest: str, cache_dir: str) -> dict | None:
    """A series' outcome from an earlier run, or ``None`` when it has no manifest or a volume it lists has left the
    cache (the series is then fetched again)."""
    if not os.path.exists(manifest):
        return None
    with open(manifest) as f:
        outcome = json.load(f)
    if not all(os.path.exists(os.path.join(cache_dir, e["image"])) for e in outcome["entries"]):
        return None
    return outcome


def _options_key(options: IndexOptions) -> str:
    """Manifests depend on what was asked (a series skipped by one modality filter may be kept by another)."""
    return salted_hash("", json.dumps(vars(options), sort_keys=True))[:8]


STAGING_PREFIX = "staging_"


def _sweep_stale_staging(manifests: str) -> None:
    """Delete the staging folders that killed runs left (raw patient DICOM): those of processes that no longer
    run, and the per-series folders of earlier versions (named by a 32-hex series key)."""
    for name in os.listdir(manifests):
        path = os.path.join(manifests, name)
        if not os.path.isdir(path):
            continue
        if name.startswith(STAGING_PREFIX):
            pid = name[len(STAGING_PREFIX):].split("_")[0]
            if pid.isdigit() and _process_alive(int(pid)):
                continue  # another run on the same cache is fetching into it
        elif not (len(name) == 32 and all(c in "0123456789abcdef" for c in name)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        logger.info("DICOMweb: deleted the staging folder %s that an interrupted run left", name)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _index_one_series(client, study: str, series: str, manifests: str, cache_dir: str, salt: str,
                      options: IndexOptions, item: str) -> dict:
    """Fetch one series' instances into a private staging folder (``mkdtemp``: mode 0700, named after this
    process so that a later run can tell a killed run's folder; streamed, one instance at a time), index them as
    a folder, and delete them; returns the series' outcome with image paths relative to ``cache_dir``. Files
    skipped inside the series are reported as ``item`` (the staging file names mean nothing to the user)."""
    staging = tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{os.getpid()}_", dir=manifests)
    try:
        for number, dataset in enumerate(client.iter_series(study, series)):
            dataset.save_as(os.path.join(staging, f"{number:06d}.dcm"), enforce_file_format=True)
        entries, skipped, files = index_files(staging, cache_dir, salt, options, workers=1,
                                              item_name=lambda path: item, progress=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # raw DICOM holds patient data: it never stays in the cache
    return {"files": files, "entries": [{**e, "image": os.path.relpath(e["image"], cache_dir)} for e in entries],
            "skipped": skipped}
