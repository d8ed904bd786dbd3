"""Command line of monai-ssl: ``monai-ssl <command>`` or ``python -m monai_ssl <command>``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from monai_ssl.ingest.series import FOUR_D_MODES

__all__ = ["build_parser", "main"]


def _demo(args: argparse.Namespace) -> int:
    from monai_ssl.demo import run_demo

    run_demo(args.output_dir, args.pretrain_epochs, args.fine_tune_epochs, args.seed, args.bundles_dir)
    return 0


def _montage(args: argparse.Namespace) -> int:
    from monai.transforms import LoadImage

    from monai_ssl.data import make_phantom
    from monai_ssl.visualize import render_pretext_montage

    if args.image:
        volume, source = LoadImage(image_only=True, ensure_channel_first=True)(args.image), args.image
    else:
        volume, source = make_phantom(seed=args.seed, shape=(96, 96, 96))[0], "the embedded demo phantom"
    path = render_pretext_montage(volume, os.path.join(args.output_dir, "pretext_tasks.png"), seed=args.seed)
    print(f"Rendered every pretext task on {source} to {os.path.abspath(path)}")
    return 0


def _index(args: argparse.Namespace) -> int:
    from monai_ssl.ingest import index_archive
    from monai_ssl.ingest.dicomweb import DICOMWEB_SCHEME, DicomwebUnavailable, index_dicomweb

    common = dict(cache_dir=args.cache_dir, modalities=args.modality, min_slices=args.min_slices,
                  salt_file=args.salt_file, four_d=args.four_d, max_volumes_per_series=args.max_volumes_per_series)
    if args.source.startswith(DICOMWEB_SCHEME):
        if args.shard:
            print("monai-ssl index: --shard splits a folder; split a DICOMweb source by study date instead "
                  "(--study-date-from/--study-date-to, one range per job), then merge.", file=sys.stderr)
            return 2
        try:
            summary = index_dicomweb(args.source, args.out, study_date_from=args.study_date_from,
                                     study_date_to=args.study_date_to, limit=args.limit, timeout=args.timeout,
                                     retries=args.retries, **common)
        except DicomwebUnavailable as error:
            print(f"monai-ssl index: {error}", file=sys.stderr)
            return 1
    else:
        web_only = [f"--{name.replace('_', '-')}" for name in ("study_date_from", "study_date_to", "limit")
                    if getattr(args, name) is not None]
        if web_only:
            print(f"monai-ssl index: {', '.join(web_only)} filter a DICOMweb source (dicomweb+http://...), not the "
                  f"folder {args.source}.", file=sys.stderr)
            return 2
        summary = index_archive(args.source, args.out, workers=args.workers, report_paths=args.report_paths,
                                shard=args.shard, **common)
    # a small archive leaves some shards without series: not a failure of the job array; the merge checks the whole
    return _report(summary, "index", empty_fails=args.shard is None)


def _report(summary, command: str, empty_fails: bool = True) -> int:
    print(summary.text())
    print(f"datalist: {summary.datalist_path}\nreport: {summary.report_path}")
    if summary.nothing_accepted():  # an empty datalist is a failure, not a success to build on
        print(f"monai-ssl {command}: {summary.nothing_accepted()}", file=sys.stderr)
        return 1 if empty_fails else 0
    return 0


def _merge(args: argparse.Namespace) -> int:
    from monai_ssl.ingest import merge_indexes

    try:
        summary = merge_indexes(args.datalists, args.out)
    except ValueError as error:  # inputs that cannot be joined: the reason is the last line, not a traceback
        print(f"monai-ssl merge: {error}", file=sys.stderr)
        return 2
    return _report(summary, "merge")


def _export(args: argparse.Namespace) -> int:
    from monai_ssl.checkpoint import export_weights

    written = export_weights(args.checkpoint, os.path.join(args.models_dir, "model.pt"),
                             os.path.join(args.models_dir, "pretext_checkpoint.pt") if args.continuation else None)
    for kind, path in written.items():
        print(f"{kind}: {path} ({os.path.getsize(path) / 1e6:.1f} MB)")
    return 0


def _zoo_release(args: argparse.Namespace) -> int:
    from monai_ssl.bundle.release import zoo_release

    try:
        written = zoo_release(args.bundle, args.url_prefix, args.out, args.name)
    except ValueError as error:
        print(f"monai-ssl zoo-release: {error}", file=sys.stderr)
        return 2
    print(f"Model Zoo folder: {written['folder']} ({len(written['bundle'])} files, large_files.yml lists the weights)")
    print(f"upload these to {args.url_prefix}:")
    for asset in written["assets"]:
        print(f"  {asset} ({os.path.getsize(asset) / 1e6:.1f} MB)")
    return 0


def _shard(text: str):
    from monai_ssl.ingest import Shard

    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser (each command's function is its ``run`` default)."""
    parser = argparse.ArgumentParser(prog="monai-ssl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="pretrain on demo data, then fine-tune from scratch and pretrained")
    demo.add_argument("--output-dir", default="outputs/demo", help="folder for the outputs (default: %(default)s)")
    demo.add_argument("--pretrain-epochs", type=int, default=25, help="pretraining epochs (default: %(default)s)")
    demo.add_argument("--fine-tune-epochs", type=int, default=100, help="epochs of each fine-tuning (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--bundles-dir", help="the repository's bundles/ folder (found automatically in a checkout)")
    demo.set_defaults(run=_demo)

    montage = commands.add_parser("montage", help="render one sample of every pretext task of a volume to a PNG")
    montage.add_argument("--output-dir", default="outputs/montage", help="folder for the PNG (default: %(default)s)")
    montage.add_argument("--image", help="a NIfTI/DICOM volume to use instead of the embedded demo phantom")
    montage.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    montage.set_defaults(run=_montage)

    index = commands.add_parser(
        "index", help="turn a DICOM/NIfTI archive into a PHI-free MONAI datalist and a NIfTI cache",
        description="Examine every file under SOURCE, a folder (by content, not name) or a DICOMweb service "
        "(series by series over QIDO-RS and WADO-RS), group DICOM slices by series, "
        "validate and convert each series to NIfTI in the cache, and write a datalist with salted hash keys plus "
        "a JSON report of every skipped item and its reason.")
    index.add_argument("source", metavar="SOURCE", help="root folder of the archive, or a DICOMweb service: "
                       "dicomweb+http://HOST:PORT/PATH (credentials: $MONAI_SSL_DICOMWEB_USER and "
                       "$MONAI_SSL_DICOMWEB_PASSWORD, $MONAI_SSL_DICOMWEB_TOKEN, or ~/.netrc; never in the URL)")
    index.add_argument("--out", required=True, help="datalist JSON to write; the report goes beside it")
    index.add_argument("--modality", nargs="+", help="DICOM modalities to keep, e.g. CT MR (default: all images)")
    index.add_argument("--cache-dir", help="folder of the converted volumes (default: <out folder>/cache)")
    index.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1),
                       help="worker processes (default: %(default)s)")
    index.add_argument("--min-slices", type=int, default=10, help="skip series with fewer slices (default: 10)")
    index.add_argument("--4d", dest="four_d", choices=FOUR_D_MODES, default="split",
                       help="a 4D series (fMRI, perfusion, diffusion): one entry per volume (split), its first "
                       "volume, the mean of its volumes, or skip it (default: %(default)s)")
    index.add_argument("--max-volumes-per-series", type=int, default=20,
                       help="with --4d split, at most this many volumes, spread over the run (default: %(default)s)")
    # no --salt: a secret on the command line shows in process lists
    index.add_argument("--salt-file", help="file holding the salt of the identifier hashes (default: "
                       "$MONAI_SSL_SALT_FILE, else $MONAI_SSL_SALT, else a per-user secret created once in "
                       "~/.config/monai-ssl/salt); keep it away from the datalist and cache")
    index.add_argument("--report-paths", action="store_true",
                       help="name skipped files by their path in the archive in the report (folder names may "
                       "carry patient names; off by default: items are salted hashes)")
    index.add_argument("--shard", type=_shard, metavar="I/N",
                       help="index only part I of N of the folder (0 <= I < N), one job of an array; a DICOM series "
                       "is never split (its shard follows its Series Instance UID). Join the parts with `monai-ssl "
                       "merge`")
    web = index.add_argument_group("DICOMweb source")
    web.add_argument("--study-date-from", metavar="YYYYMMDD", help="only studies from this date")
    web.add_argument("--study-date-to", metavar="YYYYMMDD", help="only studies up to this date")
    web.add_argument("--limit", type=int, help="index at most this many series")
    web.add_argument("--timeout", type=float, default=60.0, help="seconds to wait on each request (default: 60)")
    web.add_argument("--retries", type=int, default=3, help="retries of a failed request (default: 3)")
    index.set_defaults(run=_index)

    merge = commands.add_parser(
        "merge", help="join the datalists of several indexes (the shards of an archive) into one",
        description="Join datalists written by `monai-ssl index` (each with its report beside it) into one datalist "
        "and report, as a single run would have written them: the shards of one archive (all of them, once each), "
        "or indexes of a DICOMweb service over separate date ranges. A series found in several inputs is kept "
        "once and reported as duplicate_series.")
    merge.add_argument("datalists", nargs="+", metavar="DATALIST", help="the datalists to join")
    merge.add_argument("--out", required=True, help="merged datalist JSON to write; the report goes beside it")
    merge.set_defaults(run=_merge)

    release = commands.add_parser(
        "zoo-release", help="prepare a bundle for a Model Zoo pull request: weights as release assets",
        description="Write OUT/NAME, the bundle folder as the Model Zoo takes it (no file over 1 MB; "
        "large_files.yml lists models/model.pt, models/model.ts and any other weights with their URL and md5), "
        "and OUT/assets, the weights (and the TorchScript export of network_def) to attach to a release at "
        "URL_PREFIX. The repository keeps its weights.")
    release.add_argument("bundle", metavar="BUNDLE", help="the bundle folder, e.g. bundles/pretext_pretraining")
    release.add_argument("--url-prefix", required=True,
                         help="where the assets will be downloaded from, e.g. "
                         "https://github.com/ORG/monai-ssl/releases/download/v0.1.0")
    release.add_argument("--out", required=True, help="a new folder for the Zoo folder and the assets")
    release.add_argument("--name", help="the bundle's folder name in the Zoo (default: BUNDLE's)")
    release.set_defaults(run=_zoo_release)

    export = commands.add_parser(
        "export", help="write a pretraining checkpoint as a bundle's models/model.pt (plain state_dict)")
    export.add_argument("checkpoint", help="a pretraining checkpoint (e.g. .../models/pretext_checkpoint.pt or "
                        "checkpoint_epoch=N.pt)")
    export.add_argument("--models-dir", required=True, help="the bundle's models/ folder")
    export.add_argument("--continuation", action="store_true",
                        help="also write pretext_checkpoint.pt (network and heads in float16, no optimizer state) "
                        "to continue pretraining from")
    export.set_defaults(run=_export)

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
