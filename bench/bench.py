"""Throughput and memory of the pipeline against floors and the tools a user would pick instead.

On one seeded corpus (bench/corpus.py) and one worker count, in one run:

1. Floor A   copy every file (shutil.copyfile) into a fresh folder;
   Floor W   pydicom dcmread + dcmwrite, disk to disk, with W processes (W = 1 and --workers):
             the floor of an end-to-end run (printed as run_W_vs_floor_wW);
2. Floor B   pydicom dcmread + dcmwrite of every file, unchanged, serial, bytes in memory;
   Floor C   Floor B plus one dcmread of the written bytes: the least a scrub whose output
             is checked independently, from its bytes, can cost with pydicom (a ceiling
             for pipeline / Floor B, printed as floor_b_vs_floor_c);
3. pipeline  `scrub_bytes` then `verify_bytes(out, options, original, output_path)`, as
             `process_one` does, serial, bytes in memory (scrub alone is reported too);
4. run       `deid-pipeline run` with 1 and 2 workers, a subprocess, fresh release each time;
             wall time with and without the cluster's start-up (see README.md); run_1_vs_core
             compares 1 worker with the in-memory core (scrub + verify); CPU per file of the
             client and of the workers, beyond a one-file run's (psutil, sampled);
5. deid      `replace_identifiers` with deid's default recipe (`deid.dicom`), serial;
   dicognito its command line (`python -m dicognito -o DIR`), on the same folder;
6. memory    peak RSS of the run's client and of each worker, at N and at N/10 (default) or
             10 x N (`--memory`), sampled with psutil;
7. OCR       the share of the corpus's images `--clean-pixels ocr` sends to OCR, and images
             per second of scrub (and scrub + verify) with OCR on the sample archive's
             burned-in images (`ocr_measures`);
8. limits    what bounds the run's ratios on this machine: the per-file cost of reading,
             hashing and publishing, the core in one and two fresh processes, and the
             ceilings they set (limits.py).

Serial measures are the median of `--reps` repetitions (default 3). Prints a table and writes
bench/results.json. Usage: python bench/bench.py --files 2000 [--memory] [--reps 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import pydicom

sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import ROOT, CorpusInfo, ensure_corpus, list_files
from destinations import line as orthanc_line
from destinations import orthanc_runs
from limits import ceilings, core_scaling, plumbing
from limits import lines as limit_lines

from pipeline.dicom.file import read_dataset
from pipeline.pixels.clean import assess
from pipeline.profile.plan import PixelMode, Plan, compile_plan
from pipeline.runner.process import pixel_bound, scrub_bytes
from pipeline.runner.release import release_name
from pipeline.scrub.keys import Keys
from pipeline.verify.checks import verify_bytes

OPTIONS = ("retain-longitudinal-modified-dates", "retain-patient-characteristics", "clean-descriptors")
BENCH_KEY = bytes(range(32)) + b"deid-pipeline-bench"  # a fixed, public key: benchmark only
HERE = Path(__file__).resolve().parent
SAMPLE_SECONDS = 0.05
TARGETS = {"serial_vs_floor_b": 0.4, "two_vs_one_worker": 1.8, "memory_growth_max": 1.25, "run_vs_floor_w": 0.35,
           "run_1_vs_core": 0.8}


# --- measuring ----------------------------------------------------------------------------------


def timed(function: Callable[[], Any], reps: int) -> tuple[list[float], Any]:
    """Wall seconds of each repetition, and the last repetition's result."""
    seconds: list[float] = []
    result: Any = None
    for _ in range(reps):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def summary(seconds: list[float], files: int, size: int) -> dict[str, Any]:
    median = statistics.median(seconds)
    return {"seconds": [round(s, 3) for s in seconds], "median_seconds": round(median, 3),
            "files_per_second": round(files / median, 1), "mb_per_second": round(size / 1e6 / median, 1)}


class RssSampler:
    """Peak RSS of a process and of every process under it, sampled every SAMPLE_SECONDS;
    processes are named client (the root), worker (a multiprocessing spawn child) or other."""

    def __init__(self, pid: int) -> None:
        self.root = psutil.Process(pid)
        self.peaks: dict[int, tuple[str, int]] = {}
        self.cpu: dict[int, float] = {}  # CPU seconds (user + system) last seen per process
        self.split: dict[int, tuple[float, float, int]] = {}  # (user s, system s, minor page faults) last seen
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    def _loop(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(psutil.Error):
                for process in [self.root, *self.root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        rss = process.memory_info().rss
                        times = process.cpu_times()
                        self.cpu[process.pid] = times.user + times.system
                        self.split[process.pid] = (times.user, times.system, _minor_faults(process.pid))
                        role = self.peaks.get(process.pid, (None, 0))[0] or _role(process, self.root)
                        self.peaks[process.pid] = (role, max(rss, self.peaks.get(process.pid, ("", 0))[1]))
            self.stop.wait(SAMPLE_SECONDS)

    def report(self) -> dict[str, Any]:
        client = [rss for role, rss in self.peaks.values() if role == "client"]
        workers = sorted((rss for role, rss in self.peaks.values() if role == "worker"), reverse=True)
        roles = {pid: role for pid, (role, _) in self.peaks.items()}
        return {"client_peak_mb": round(max(client, default=0) / 2**20, 1),
                "worker_peaks_mb": [round(rss / 2**20, 1) for rss in workers],
                # CPU seconds as last sampled (up to SAMPLE_SECONDS before each process ended):
                # where a run's time goes besides the workers' own work
                "client_cpu_seconds": round(sum(c for pid, c in self.cpu.items() if roles.get(pid) == "client"), 2),
                "worker_cpu_seconds": sorted((round(c, 2) for pid, c in self.cpu.items()
                                              if roles.get(pid) == "worker"), reverse=True),
                # the same CPU split into user and system, and the minor page faults (a count the
                # other processes on a shared machine do not change, unlike CPU time), all workers
                **{f"worker_{name}": round(sum(split[i] for pid, split in self.split.items()
                                               if roles.get(pid) == "worker"), 2)
                   for i, name in enumerate(("user_cpu_seconds", "system_cpu_seconds", "minor_faults"))}}


def _minor_faults(pid: int) -> int:
    """Minor page faults of a process so far (/proc/PID/stat's 10th field; 0 where there is none)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])
    except (OSError, IndexError, ValueError):
        return 0


def _role(process: psutil.Process, root: psutil.Process) -> str:
    if process.pid == root.pid:
        return "client"
    command = " ".join(process.cmdline())
    return "worker" if "spawn_main" in command else "other"


# --- the measures -------------------------------------------------------------------------------


def floor_a(paths: list[Path], scratch: Path) -> None:
    target = scratch / "copy"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for index, path in enumerate(paths):
        shutil.copyfile(path, target / f"{index}.dcm")


def floor_b(datas: list[bytes]) -> None:
    for data in datas:
        ds = pydicom.dcmread(io.BytesIO(data))
        pydicom.dcmwrite(io.BytesIO(), ds)


def _read_write_files(job: tuple[list[str], str]) -> int:
    """One process's share of Floor W: dcmread each file from disk, dcmwrite it to `folder`."""
    names, folder = job
    for index, name in enumerate(names):
        ds = pydicom.dcmread(name)
        pydicom.dcmwrite(os.path.join(folder, f"{os.getpid()}-{index}.dcm"), ds)
    return len(names)


def _warm(_: int) -> int:
    return os.getpid()


def floor_w(paths: list[Path], scratch: Path, workers: int, reps: int) -> list[float]:
    """Floor W: pydicom read + write of every file, disk to disk, by `workers` processes (the
    files dealt round-robin), the pool started and warmed outside the timing."""
    import multiprocessing

    seconds: list[float] = []
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        pool.map(_warm, range(workers))
        for _ in range(reps):
            target = scratch / f"floor-w{workers}"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            jobs = [([str(p) for p in paths[i::workers]], str(target)) for i in range(workers)]
            start = time.perf_counter()
            done = sum(pool.map(_read_write_files, jobs))
            seconds.append(time.perf_counter() - start)
            assert done == len(paths)
            shutil.rmtree(target, ignore_errors=True)
    return seconds


def floor_c(datas: list[bytes]) -> None:
    for data in datas:
        ds = pydicom.dcmread(io.BytesIO(data))
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds)
        pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def pipeline_serial(datas: list[bytes], plan: Plan, verify: bool) -> dict[str, int]:
    keys = Keys(key=BENCH_KEY)
    options = tuple(o.value for o in plan.options)
    counts = {"passed": 0, "findings": 0, "errors": 0}
    for data in datas:
        try:
            scrubbed = scrub_bytes(data, plan, keys, keep_original=verify)
            if verify:  # as process_one: verify gets its copy of the original as read (parsed once)
                name = release_name(scrubbed.dataset).as_posix()
                findings = verify_bytes(scrubbed.data, options, original=scrubbed.before, output_path=name,
                                        pixels=pixel_bound(plan))
                counts["findings" if findings else "passed"] += 1
            else:
                counts["passed"] += 1
        except Exception:
            counts["errors"] += 1
    return counts


def sent_to_ocr(data: bytes, plan: Plan) -> bool:
    """Whether `--clean-pixels ocr` reads this file with tesseract (`pixels.assess`, on its header)."""
    try:
        task = assess(read_dataset(data), plan)
    except Exception:  # refused (a document, a blacklisted device) or unreadable: never read by OCR
        return False
    return task is not None and task.ocr


def ocr_measures(corpus: list[bytes], reps: int, images: list[bytes] | None = None) -> dict[str, Any]:
    """OCR (issue 15): the share of the corpus's images `--clean-pixels ocr` sends to OCR (the
    corpus is CT, MR and SR: none should go), and images per second of scrub, and of scrub +
    verify (which re-reads the cleaned places), with OCR on `images` (default: the sample
    archive's images that OCR reads: ultrasound and secondary captures with burned-in text)."""
    plan = compile_plan("basic", list(OPTIONS), pixel_mode=PixelMode.OCR)
    with_pixels = [data for data in corpus if b"\xe0\x7f\x10\x00" in data]  # (7FE0,0010) Pixel Data, LE
    sent = sum(sent_to_ocr(data, plan) for data in with_pixels)
    if images is None:
        archive = sorted((HERE.parent / "sample_data" / "archive").rglob("*.dcm"))
        images = [data for data in (path.read_bytes() for path in archive) if sent_to_ocr(data, plan)]
    scrub_seconds, scrubbed = timed(lambda: pipeline_serial(images, plan, verify=False), reps)
    verify_seconds, verified = timed(lambda: pipeline_serial(images, plan, verify=True), reps)
    scrub_median, verify_median = statistics.median(scrub_seconds), statistics.median(verify_seconds)
    return {
        "corpus_images": len(with_pixels), "corpus_sent_to_ocr": sent,
        "corpus_share_sent_to_ocr": round(sent / len(with_pixels), 4) if with_pixels else 0.0,
        "ocr_images": len(images), "scrub_seconds": scrub_seconds, "scrub_verify_seconds": verify_seconds,
        "ocr_images_per_second": round(len(images) / scrub_median, 2) if scrub_median else None,
        "ocr_images_per_second_with_verify": round(len(images) / verify_median, 2) if verify_median else None,
        "outcome": {"scrub": scrubbed, "scrub_verify": verified},
    }


def deid_serial(paths: list[Path]) -> dict[str, int]:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers
    from deid.logger import bot

    bot.level = -3  # errors only: deid logs every recipe line otherwise
    recipe = DeidRecipe()  # deid's default recipe, deid.dicom, loaded once as a user would
    counts = {"passed": 0, "errors": 0}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                (ds,) = replace_identifiers([str(path)], deid=recipe, save=False)
                pydicom.dcmwrite(io.BytesIO(), ds)
            counts["passed"] += 1
        except Exception:
            counts["errors"] += 1
    return counts


def dicognito_cli(folder: Path, scratch: Path) -> int:
    target = scratch / "dicognito"
    shutil.rmtree(target, ignore_errors=True)
    done = subprocess.run([sys.executable, "-m", "dicognito", "--output-directory", str(target), "--quiet",
                           "--seed", "7", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"dicognito failed: {done.stderr[-500:]}")
    return sum(1 for _ in target.rglob("*") if _.is_file())


def _executable() -> str:
    local = Path(sys.executable).parent / "deid-pipeline"
    return str(local) if local.exists() else (shutil.which("deid-pipeline") or "deid-pipeline")


def pipeline_run(folder: Path, workers: int, scratch: Path, key_file: Path) -> dict[str, Any]:
    """One `deid-pipeline run`, fresh release; wall time, run.json's own span, peak RSS."""
    out = scratch / f"run-{workers}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = [_executable(), "run", str(folder), "--output", str(out / "release"), "--key-file", str(key_file),
               "--workers", str(workers), "--quiet"]
    for option in OPTIONS:
        command += ["--option", option]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with RssSampler(process.pid) as sampler:
        _, stderr = process.communicate()
    wall = time.perf_counter() - start
    if process.returncode not in (0, 1):
        raise RuntimeError(f"deid-pipeline run exited {process.returncode}: {stderr[-800:]}")
    record = json.loads((out / "release.run.json").read_text())
    span = (datetime.fromisoformat(record["ended"]) - datetime.fromisoformat(record["started"])).total_seconds()
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_seconds": round(wall, 3), "run_json_seconds": span, "exit_status": process.returncode,
            "processed": record["processed"], **sampler.report()}


# --- the run ------------------------------------------------------------------------------------


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def _per_file(total: float, startup: float, files: int) -> float:
    return round(max(total - startup, 0.0) * 1000 / max(files - 1, 1), 2)


def _one_file_folder(info: CorpusInfo, scratch: Path) -> Path:
    folder = scratch / "one-file"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(list_files(info.path)[0], folder / "0.dcm")
    return folder


def _runs(info: CorpusInfo, workers: int, reps: int, scratch: Path, key_file: Path) -> dict[str, Any]:
    """`reps` runs of the corpus, and `reps` runs of one file (the cluster's start-up and
    teardown); excluding start-up = median wall - median one-file wall, None when the corpus
    is too small for the difference to be positive (start-up noise larger than the work)."""
    runs = [pipeline_run(info.path, workers, scratch, key_file) for _ in range(reps)]
    one = _one_file_folder(info, scratch)
    startup = [pipeline_run(one, workers, scratch, key_file) for _ in range(reps)]
    wall = statistics.median(r["wall_seconds"] for r in runs)
    span = statistics.median(r["run_json_seconds"] for r in runs)
    start_cost = statistics.median(s["wall_seconds"] for s in startup)
    work = wall - start_cost
    return {"runs": runs, "one_file_wall_seconds": [s["wall_seconds"] for s in startup],
            "median_wall_seconds": round(wall, 3),
            "median_startup_seconds": round(start_cost, 3), "median_run_json_seconds": span,
            "files_per_second_wall": round(info.files / wall, 1),
            "files_per_second_excluding_startup": round(info.files / work, 1) if work > 0 else None,
            "files_per_second_run_json": round(info.files / span, 1) if span else None,
            "median_client_cpu_seconds": statistics.median(r["client_cpu_seconds"] for r in runs),
            "median_worker_cpu_seconds": statistics.median(sum(r["worker_cpu_seconds"]) for r in runs),
            # CPU of the processes besides the start-up's (a one-file run's), per file: the
            # client's (scheduler, manifest, records) and the workers' (reading, scrub, verify, publishing)
            "client_cpu_ms_per_file": _per_file(statistics.median(r["client_cpu_seconds"] for r in runs),
                                                statistics.median(s["client_cpu_seconds"] for s in startup),
                                                info.files),
            "worker_cpu_ms_per_file": _per_file(statistics.median(sum(r["worker_cpu_seconds"]) for r in runs),
                                                statistics.median(sum(s["worker_cpu_seconds"]) for s in startup),
                                                info.files),
            **{f"worker_{name}_per_file": _per_file(statistics.median(r[f"worker_{key}"] for r in runs),
                                                    statistics.median(s[f"worker_{key}"] for s in startup), info.files)
               for name, key in (("user_ms", "user_cpu_seconds"), ("system_ms", "system_cpu_seconds"))},
            "worker_minor_faults_per_file": round(max(
                statistics.median(r["worker_minor_faults"] for r in runs)
                - statistics.median(s["worker_minor_faults"] for s in startup), 0) / max(info.files - 1, 1), 1),
            "median_startup_cpu_seconds": {
                "client": statistics.median(s["client_cpu_seconds"] for s in startup),
                "workers": statistics.median(sum(s["worker_cpu_seconds"]) for s in startup)},
            "client_peak_mb": max(r["client_peak_mb"] for r in runs),
            "worker_peak_mb": max((max(r["worker_peaks_mb"], default=0) for r in runs), default=0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=2000, help="corpus size N (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each serial measure (median)")
    parser.add_argument("--run-reps", type=int, default=3, help="repetitions of each deid-pipeline run")
    parser.add_argument("--baseline-reps", type=int, default=3, help="repetitions of deid and dicognito")
    parser.add_argument("--workers", type=int, default=2, help="the larger worker count (compared with 1)")
    parser.add_argument("--memory", action="store_true", help="also run at 10 x N for the memory ratio")
    parser.add_argument("--orthanc-reps", type=int, default=None,
                        help="repetitions of the Orthanc -> Orthanc run (default: --run-reps; 0: none)")
    parser.add_argument("--corpus-root", type=Path, default=ROOT)
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    args = parser.parse_args(argv)

    info = ensure_corpus(args.files, args.seed, args.corpus_root)
    paths = list_files(info.path)
    print(f"corpus: {info.files} files, {info.bytes / 1e6:.0f} MB, {info.kinds}", flush=True)
    results: dict[str, Any] = {
        "when": datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "pydicom": pydicom.__version__},
        "corpus": {"files": info.files, "bytes": info.bytes, "kinds": info.kinds, "seed": args.seed},
        "options": list(OPTIONS), "reps": args.reps, "run_reps": args.run_reps, "baseline_reps": args.baseline_reps,
    }
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as tmp:
        scratch = Path(tmp)
        key_file = scratch / "bench.key"
        key_file.write_bytes(BENCH_KEY.hex().encode())
        key_file.chmod(0o600)
        measures: dict[str, Any] = {}

        def step(name: str, function: Callable[[], Any], reps: int) -> None:
            print(f"  {name} ...", flush=True)
            seconds, outcome = timed(function, reps)
            measures[name] = {**summary(seconds, info.files, info.bytes), "outcome": outcome}

        step("floor_a_copy", lambda: floor_a(paths, scratch), args.reps)
        for workers in sorted({1, args.workers}):
            print(f"  floor_w{workers}_pydicom_processes ...", flush=True)
            seconds = floor_w(paths, scratch, workers, args.reps)
            measures[f"floor_w{workers}_pydicom_processes"] = {**summary(seconds, info.files, info.bytes),
                                                               "outcome": None}
        datas = [path.read_bytes() for path in paths]  # serial measures start from bytes in memory
        step("floor_b_pydicom", lambda: floor_b(datas), args.reps)
        step("floor_c_pydicom_reread", lambda: floor_c(datas), args.reps)
        plan = compile_plan("basic", list(OPTIONS))  # once, as a run does before reading any file
        step("pipeline_scrub_only", lambda: pipeline_serial(datas, plan, verify=False), args.reps)
        step("pipeline_scrub_verify", lambda: pipeline_serial(datas, plan, verify=True), args.reps)
        print("  limits: plumbing, core in fresh processes ...", flush=True)
        results["limits"] = {"plumbing": plumbing(paths, datas, scratch, args.reps),
                             "core_scaling": core_scaling(paths, pipeline_serial, plan, args.reps)}
        print("  ocr ...", flush=True)
        results["ocr"] = ocr_measures(datas, args.reps)
        datas.clear()  # the baselines read their files themselves
        step("deid_replace_identifiers", lambda: deid_serial(paths), args.baseline_reps)
        step("dicognito_cli", lambda: dicognito_cli(info.path, scratch), args.baseline_reps)
        runs: dict[str, Any] = {}
        for workers in sorted({1, args.workers}):
            print(f"  deid-pipeline run --workers {workers} ...", flush=True)
            runs[str(workers)] = _runs(info, workers, args.run_reps, scratch, key_file)
        results["measures"] = measures
        results["runs"] = runs
        orthanc_reps = args.run_reps if args.orthanc_reps is None else args.orthanc_reps
        if orthanc_reps > 0:
            print(f"  deid-pipeline run Orthanc -> Orthanc --workers {args.workers} ...", flush=True)
            results["orthanc"] = orthanc_runs(paths, args.workers, orthanc_reps, key_file, OPTIONS,
                                              _executable(), runs[str(args.workers)]["median_wall_seconds"])

        other_n = args.files * 10 if args.memory else max(args.files // 10, 10)
        print(f"  memory at N={other_n} ...", flush=True)
        other = ensure_corpus(other_n, args.seed, args.corpus_root)
        memory_run = pipeline_run(other.path, args.workers, scratch, key_file)
        at_n = runs[str(args.workers)]
        results["memory"] = {
            "n": info.files, "other_n": other.files,
            "at_n": {"client_peak_mb": at_n["client_peak_mb"], "worker_peak_mb": at_n["worker_peak_mb"]},
            "at_other_n": {"client_peak_mb": memory_run["client_peak_mb"],
                           "worker_peak_mb": max(memory_run["worker_peaks_mb"], default=0),
                           "wall_seconds": memory_run["wall_seconds"]},
        }

    big, small = ("at_other_n", "at_n") if other_n > args.files else ("at_n", "at_other_n")
    mem = results["memory"]
    two, one = runs[str(args.workers)], runs["1"]
    core_fps = measures["pipeline_scrub_verify"]["files_per_second"]
    ratios = {
        "run_1_vs_floor_w1": _ratio(one["files_per_second_excluding_startup"],
                                    measures["floor_w1_pydicom_processes"]["files_per_second"]),
        f"run_{args.workers}_vs_floor_w{args.workers}": _ratio(
            two["files_per_second_excluding_startup"],
            measures[f"floor_w{args.workers}_pydicom_processes"]["files_per_second"]),
        f"run_{args.workers}_vs_floor_w{args.workers}_wall": _ratio(
            two["files_per_second_wall"], measures[f"floor_w{args.workers}_pydicom_processes"]["files_per_second"]),
        "run_1_vs_core": _ratio(one["files_per_second_excluding_startup"], core_fps),
        "pipeline_serial_vs_floor_b": _ratio(measures["pipeline_scrub_verify"]["files_per_second"],
                                             measures["floor_b_pydicom"]["files_per_second"]),
        "floor_b_vs_floor_c": _ratio(measures["floor_c_pydicom_reread"]["files_per_second"],
                                     measures["floor_b_pydicom"]["files_per_second"]),
        "scrub_only_vs_floor_b": _ratio(measures["pipeline_scrub_only"]["files_per_second"],
                                        measures["floor_b_pydicom"]["files_per_second"]),
        "run_2_vs_1_wall": _ratio(one["median_wall_seconds"], two["median_wall_seconds"]),
        f"floor_w{args.workers}_vs_w1": _ratio(measures[f"floor_w{args.workers}_pydicom_processes"]["files_per_second"],
                                              measures["floor_w1_pydicom_processes"]["files_per_second"]),
        "run_2_vs_1_excluding_startup": _ratio(two["files_per_second_excluding_startup"],
                                               one["files_per_second_excluding_startup"]),
        "pipeline_vs_deid": _ratio(measures["pipeline_scrub_verify"]["files_per_second"],
                                   measures["deid_replace_identifiers"]["files_per_second"]),
        "pipeline_vs_dicognito": _ratio(measures["pipeline_scrub_verify"]["files_per_second"],
                                        measures["dicognito_cli"]["files_per_second"]),
        "run_2_workers_vs_dicognito": _ratio(two["files_per_second_wall"],
                                             measures["dicognito_cli"]["files_per_second"]),
        "client_memory_growth": _ratio(mem[big]["client_peak_mb"], mem[small]["client_peak_mb"]),
        "worker_memory_growth": _ratio(mem[big]["worker_peak_mb"], mem[small]["worker_peak_mb"]),
        "memory_growth_files": _ratio(max(other.files, info.files), min(other.files, info.files)),
    }
    results["ratios"] = ratios
    results["limits"]["ceilings"] = ceilings(results["limits"], core_fps, runs, args.workers)
    results["targets_met"] = {
        "serial_at_least_0.4_floor_b": (ratios["pipeline_serial_vs_floor_b"] or 0) >= TARGETS["serial_vs_floor_b"],
        "run_2_at_least_0.35_floor_w2": (ratios[f"run_{args.workers}_vs_floor_w{args.workers}"] or 0)
        >= TARGETS["run_vs_floor_w"],
        "run_1_at_least_0.8_core": (ratios["run_1_vs_core"] or 0) >= TARGETS["run_1_vs_core"],
        "two_workers_at_least_1.8x": (ratios["run_2_vs_1_excluding_startup"] or 0) >= TARGETS["two_vs_one_worker"],
        "memory_flat": max(ratios["client_memory_growth"] or 9, ratios["worker_memory_growth"] or 9)
        <= TARGETS["memory_growth_max"],
        "ahead_of_deid": (ratios["pipeline_vs_deid"] or 0) > 1,
        "ahead_of_dicognito": (ratios["pipeline_vs_dicognito"] or 0) > 1,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"written {args.output}")
    return 0


def table(results: dict[str, Any]) -> str:
    lines = [f"{'measure':<34}{'median s':>10}{'files/s':>10}{'MB/s':>9}"]
    for name, m in results["measures"].items():
        lines.append(f"{name:<34}{m['median_seconds']:>10.2f}{m['files_per_second']:>10.1f}{m['mb_per_second']:>9.1f}")
    for workers, r in results["runs"].items():
        lines.append(f"{'run --workers ' + workers + ' (wall)':<34}{r['median_wall_seconds']:>10.2f}"
                     f"{r['files_per_second_wall']:>10.1f}")
        excluding = r["files_per_second_excluding_startup"]
        lines.append(f"{'  excluding start-up ' + str(r['median_startup_seconds']) + ' s':<34}"
                     f"{r['median_wall_seconds'] - r['median_startup_seconds']:>10.2f}"
                     + (f"{excluding:>10.1f}" if excluding is not None else f"{'n/a':>10}"))
        lines.append(f"{'  peak RSS client / worker MB':<34}{r['client_peak_mb']:>10.0f}{r['worker_peak_mb']:>10.0f}")
        lines.append(f"{'  CPU s client / all workers':<34}{r['median_client_cpu_seconds']:>10.1f}"
                     f"{r['median_worker_cpu_seconds']:>10.1f}")
        lines.append(f"{'  CPU ms/file client / workers':<34}{r['client_cpu_ms_per_file']:>10.2f}"
                     f"{r['worker_cpu_ms_per_file']:>10.2f}  (beyond a one-file run's)")
        lines.append(f"{'  workers user / sys ms/file':<34}{r['worker_user_ms_per_file']:>10.2f}"
                     f"{r['worker_system_ms_per_file']:>10.2f}  ({r['worker_minor_faults_per_file']} page faults/file)")
    if "ocr" in results:
        ocr = results["ocr"]
        lines.append(f"OCR: {ocr['corpus_sent_to_ocr']} of {ocr['corpus_images']} corpus images sent to OCR "
                     f"({ocr['corpus_share_sent_to_ocr']:.1%}); {ocr['ocr_images_per_second']} images/s "
                     f"({ocr['ocr_images_per_second_with_verify']} with verify) on {ocr['ocr_images']} "
                     "burned-in sample images")
    if "orthanc" in results:
        lines.append(orthanc_line(results["orthanc"]))
    mem = results["memory"]
    lines.append(f"memory at N={mem['other_n']}: client {mem['at_other_n']['client_peak_mb']:.0f} MB, "
                 f"worker {mem['at_other_n']['worker_peak_mb']:.0f} MB")
    lines.extend(limit_lines(results["limits"], results["limits"]["ceilings"]))
    lines.append("ratios: " + ", ".join(f"{k} {v}" for k, v in results["ratios"].items()))
    lines.append("targets met: " + ", ".join(f"{k} {v}" for k, v in results["targets_met"].items()))
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
