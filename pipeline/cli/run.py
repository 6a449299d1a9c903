"""``deid-pipeline run``: argparse -> RunConfig -> orchestrate.run(); prints the summary.

The plan is compiled and the key
loaded before any input is read or any output folder made, so a usage, profile or key
error (exit 2) leaves nothing behind.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from pipeline.cli.common import Subparsers, add_key_arguments, add_profile_arguments, plan_from
from pipeline.cli.scan import query_pair
from pipeline.errors import InputError
from pipeline.report.build import write_run_report
from pipeline.runner.destination import DestinationKind, anchor, parse_destination
from pipeline.runner.orchestrate import DEFAULT_BATCH_SIZE, RunConfig, RunResult, run
from pipeline.runner.outcome import Disposition
from pipeline.runner.process import DEFAULT_TIME_LIMIT
from pipeline.runner.quarantine import QuarantineMode
from pipeline.runner.sources import Source, SourceKind, parse_source
from pipeline.scrub.keys import load_keys


def _count(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}")
    return value


def register(sub: Subparsers) -> None:
    """Add the ``run`` command to the command line."""
    parser = sub.add_parser(
        "run", help="de-identify every file under the inputs into a release folder",
        description="Exit status: 0 every input was published (or skipped as not DICOM); 1 an input was "
        "quarantined; 2 a usage, profile or key error, with nothing touched.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="files or folders, object-store URLs (s3://bucket/prefix, gs://..., file://...) or "
                        "DICOMweb servers (dicomweb+https://host/prefix) to de-identify; credentials from the "
                        "environment, never here")
    parser.add_argument("--study", action="append", default=[], metavar="UID",
                        help="DICOMweb: de-identify this study only (repeatable)")
    parser.add_argument("--query", action="append", default=[], metavar="KEY=VALUE",
                        help="DICOMweb: a QIDO-RS filter, e.g. Modality=CT (repeatable)")
    parser.add_argument("--output", required=True, metavar="RELEASE",
                        help="where the release goes: a folder; an object store (s3://bucket/prefix, gs://..., "
                        "file://...), or a DICOMweb server (dicomweb+https://host/prefix, stored with STOW-RS). "
                        "Verified outputs only, named by their new UIDs; a remote release needs --manifest, beside "
                        "which the run's records stay. Credentials as fsspec finds them, or from "
                        "DEID_PIPELINE_DESTINATION_DICOMWEB_* variables: never on the command line")
    add_profile_arguments(parser)
    add_key_arguments(parser)
    parser.add_argument("--workers", type=lambda t: _count(t, 0), default=None, metavar="N",
                        help="local Dask worker processes (default: one per core; 0: no Dask, in this process)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="use the Dask scheduler at ADDRESS (e.g. tcp://host:8786) instead of a local cluster")
    parser.add_argument("--batch-size", type=lambda t: _count(t, 1), default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"files per Dask task (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--manifest", type=Path, default=None, metavar="FILE",
                        help="the SQLite manifest (default: RELEASE.manifest.sqlite beside the release); for a "
                        "remote release, NAME.manifest.sqlite: NAME.run.json, NAME.report/, NAME.audit.xml and "
                        "NAME.quarantine/ are kept beside it")
    parser.add_argument("--quarantine", default=None, metavar="DIR",
                        help="where quarantined originals go: a local folder made owner-only (default: "
                        "RELEASE.quarantine beside the release, which also holds the ledger), or an object store "
                        "(s3://bucket/prefix): it then holds PHI, and its access is yours to restrict")
    parser.add_argument("--staging", type=Path, default=None, metavar="DIR",
                        help="where outputs are staged until verified: outside the release, on its file system "
                        "(default: RELEASE.staging beside the release)")
    parser.add_argument("--quarantine-mode", choices=[m.value for m in QuarantineMode],
                        default=QuarantineMode.COPY.value,
                        help="copy quarantined originals, or keep a symbolic link to them (default copy)")
    parser.add_argument("--mapping-dir", type=Path, default=None, metavar="DIR",
                        help="write the confidential uid_mapping.csv and patient_mapping.csv here (owner-only)")
    parser.add_argument("--time-limit", type=lambda t: _count(t, 1), default=int(DEFAULT_TIME_LIMIT),
                        metavar="SECONDS", help="per-file time limit; a file that takes longer is quarantined "
                        f"as time-limit (default {int(DEFAULT_TIME_LIMIT)})")
    parser.add_argument("--pixel-preview", type=Path, default=None, metavar="DIR",
                        help="write before/after PNGs of every cleaned image here (outside the release; the "
                        "'before' half shows the original text: keep it private); the run's report shows them")
    parser.add_argument("--memory-limit", default="4GiB", metavar="SIZE",
                        help="memory per local worker (Dask's nanny restarts a worker above it and its batch is "
                        "quarantined; default 4GiB)")
    parser.add_argument("--dashboard", action="store_true",
                        help="start the local cluster's Dask dashboard and print its address (off by default: it "
                        "costs start-up time and CPU)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--force-replan", action="store_true",
                        help="accept changed profile, options, recipes or key: remove the release's outputs "
                        "and redo every input")
    parser.add_argument("--retry-quarantined", action="store_true",
                        help="redo inputs an earlier run quarantined")
    parser.set_defaults(handler=_cmd_run, run_parser=parser)


def _cmd_run(args: argparse.Namespace) -> int:
    if args.scheduler is not None and args.workers is not None:
        args.run_parser.error("--workers and --scheduler exclude each other: the scheduler's workers are used")
    local, remote = inputs_of(args.inputs, tuple(args.study), tuple(query_pair(q) for q in args.query))
    destination = parse_destination(args.output)
    release = Path(destination.location)
    if destination.is_remote:
        if args.manifest is None:
            args.run_parser.error("a release at an object store or DICOMweb server needs --manifest "
                                  "NAME.manifest.sqlite: the run's records stay local, beside it")
        if args.staging is not None:
            args.run_parser.error("--staging is for a release folder: a remote release stages nothing")
        release = anchor(args.manifest)
    quarantine, quarantine_store = _quarantine(args)
    plan = plan_from(args)
    keys = load_keys(args.key_file, args.lookup)
    cfg = RunConfig(
        inputs=local,
        sources=remote,
        release=release,
        destination=destination,
        manifest=args.manifest,
        quarantine=quarantine,
        quarantine_store=quarantine_store,
        staging=args.staging,
        quarantine_mode=QuarantineMode(args.quarantine_mode),
        mapping_dir=args.mapping_dir,
        workers=args.workers,
        scheduler=args.scheduler,
        batch_size=args.batch_size,
        quiet=args.quiet,
        force_replan=args.force_replan,
        retry_quarantined=args.retry_quarantined,
        time_limit=float(args.time_limit),
        preview_dir=args.pixel_preview,
        memory_limit=args.memory_limit,
        dashboard=args.dashboard,
    )
    result = run(cfg, plan, keys, announce=lambda message: print(message, file=sys.stderr, flush=True))
    print(summary(result))
    written = write_run_report(result.paths.release, result.paths.manifest, args.pixel_preview)
    pixels = json.loads(written.with_name("report.json").read_text(encoding="utf-8"))["pixels"]
    if pixels["read_by_ocr"] or pixels["cleaned"] or pixels["sent_to_review"]:
        print(f"pixels: {pixels['read_by_ocr']} image(s) read by OCR, {len(pixels['cleaned'])} cleaned "
              f"(at most {pixels['largest_changed_share']:.1%} of an image changed), "
              f"{len(pixels['sent_to_review'])} sent to review (pixels-need-review)")
    print(f"report: {written}")
    return result.exit_status


def inputs_of(texts: list[str], studies: tuple[str, ...],
              query: tuple[tuple[str, str], ...]) -> tuple[tuple[Path, ...], tuple[Source, ...]]:
    """(local files and folders, remote sources) the INPUT arguments name (pipeline/runner/sources.py);
    `studies` and `query` filter every DICOMweb source, and need one."""
    local: list[Path] = []
    remote: list[Source] = []
    for text in texts:
        source = parse_source(text)
        if source.kind is SourceKind.FOLDER:
            local.append(Path(source.location))
        elif source.kind is SourceKind.DICOMWEB:
            remote.append(dataclasses.replace(source, studies=studies, query=query))
        else:
            remote.append(source)
    if (studies or query) and not any(s.kind is SourceKind.DICOMWEB for s in remote):
        raise InputError("--study and --query filter a DICOMweb source only")
    return tuple(local), tuple(remote)


def _quarantine(args: argparse.Namespace) -> tuple[Path | None, str | None]:
    """(local quarantine folder, object-store URL) of ``--quarantine``; the store holds originals: warned."""
    if args.quarantine is None:
        return None, None
    where = parse_destination(args.quarantine)
    if where.kind is DestinationKind.FOLDER:
        return Path(where.location), None
    if where.kind is DestinationKind.DICOMWEB:
        args.run_parser.error("--quarantine takes a folder or an object store, not a DICOMweb server")
    if QuarantineMode(args.quarantine_mode) is QuarantineMode.REFERENCE:
        args.run_parser.error("--quarantine-mode reference keeps links: it needs a local quarantine folder")
    print(f"warning: quarantined originals go to {where.location}: they hold PHI; restrict access to it "
          "(the ledger stays in the local quarantine folder)", file=sys.stderr, flush=True)
    return None, where.location


def summary(result: RunResult) -> str:
    """One line per fact, no paths of inputs and no values."""
    def counts(table: dict[str, int]) -> str:
        return ", ".join(f"{d.value} {table.get(d.value, 0)}" for d in Disposition)

    figures = result.summary
    lines = [f"this run: {counts(result.processed)}", f"unchanged since an earlier run: {counts(result.unchanged)}",
             f"inputs {figures.inputs} = published {figures.published} + quarantined {figures.quarantined} "
             f"+ skipped {figures.skipped} + duplicates {figures.duplicates}",
             f"release files: {figures.release_files}"]
    if figures.same_sop_instance:
        lines.append(f"quarantined with the SOP Instance UID of another input: {figures.same_sop_instance}")
    if result.partials_removed:
        lines.append(f"removed {result.partials_removed} leftover partial file(s)")
    quarantined = result.processed.get(Disposition.QUARANTINED.value, 0) + result.unchanged.get(
        Disposition.QUARANTINED.value, 0)
    if quarantined:
        lines.append(f"quarantined inputs are listed in {result.paths.ledger}")
    return "\n".join(lines)

