"""What bounds the run's ratios on this machine, measured in the same sitting as they are.

Two measures, on the bench corpus's files:

1. plumbing   CPU and wall ms per file of what every run does besides the core (scrub + verify),
              one file after another in one thread: reading the input (`read`), its SHA-256 (the
              file's name in every record: `sha256`), and publishing bytes of its size durably as
              a run does (`publish`: `pipeline.runner.publisher.publish_now`, i.e. staged unnamed,
              fsynced, linked under a release name; the release folders fsynced once at the end,
              as a batch does); and, for comparison, the same bytes written as plain files without
              any fsync (`write`, as Floor W writes them). The input's bytes stand in for the
              output's (a scrub changes a header, not the pixels: sizes within a few per cent).
2. core_scaling  the core in one process against two processes at once, each process fresh: its
              files' bytes loaded and the code warmed on a few of them outside the timing, then one
              pass over its share (all the files for one process; every other file for each of two),
              so no file is seen twice, as in a run (the serial core measure is the median of
              repeated passes over the same files, whose remembered keyed values a run does not have).

From them `ceilings` derives, with the core's own figures:
- run_1_vs_core_ceiling_one_core = core / (core + read + sha256 + publish), CPU ms per file: the most
  `run --workers 1` / core can be when a worker spends its plumbing on the core's CPU;
- the same without the fsync (`write` in place of `publish`), for a design that gave up per-file
  durability;
- core_2_vs_1_processes: what this machine gives two processes of the core's work;
- run_cpu_per_file_2_vs_1: how much more CPU a file costs the run (workers and client) with two
  workers than with one; 2 / 1 workers can reach at most 2 / (cores used by one worker x this).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import resource
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.files import StagingFolder, sync_directories
from pipeline.profile.plan import Plan
from pipeline.runner.publisher import publish_now, release_folders

Core = Callable[[list[bytes], Plan, bool], object]
WARM_FILES = 5  # files a fresh process scrubs and verifies before its timed pass (imports, first calls)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _per_file(step: Callable[[], object], files: int, reps: int) -> dict[str, float]:
    """Median wall and CPU ms per file of `reps` runs of `step` (this process only: its threads)."""
    walls, cpus = [], []
    for _ in range(reps):
        cpu, start = _cpu(), time.perf_counter()
        step()
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return {"wall_ms_per_file": round(statistics.median(walls) * 1000 / files, 3),
            "cpu_ms_per_file": round(statistics.median(cpus) * 1000 / files, 3)}


def plumbing(paths: list[Path], datas: list[bytes], scratch: Path, reps: int) -> dict[str, dict[str, float]]:
    """The per-file cost of reading, hashing and publishing (module docstring, measure 1)."""
    files = len(paths)
    folder = scratch / "plumbing"

    def fresh() -> Path:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def read() -> None:
        for path in paths:
            path.read_bytes()

    def sha256() -> None:
        for data in datas:
            hashlib.sha256(data).hexdigest()

    def write() -> None:
        target = fresh()
        for index, data in enumerate(datas):
            with open(target / f"{index}.dcm", "wb") as handle:
                handle.write(data)

    def publish() -> None:
        target = fresh()
        release = target / "release"
        names = [PurePosixPath(f"{index % 64}", f"{index}.dcm") for index in range(files)]
        with StagingFolder(target / "staging") as staging:
            for name, data in zip(names, datas, strict=True):
                publish_now(staging, data, release.joinpath(*name.parts))
        sync_directories(release_folders(release, names))

    measured = {name: _per_file(step, files, reps) for name, step in
                (("read", read), ("sha256", sha256), ("write", write), ("publish", publish))}
    shutil.rmtree(folder, ignore_errors=True)
    return measured


_share: list[bytes] = []  # a core-scaling process's files, loaded before its timed pass


def _load(job: tuple[list[str], Core, Plan]) -> int:
    names, core, plan = job
    _share[:] = [Path(name).read_bytes() for name in names]
    core(_share[:WARM_FILES], plan, True)
    return len(_share)


def _pass(job: tuple[Core, Plan]) -> float:
    core, plan = job
    start = time.perf_counter()
    core(_share, plan, True)
    return time.perf_counter() - start


def core_scaling(paths: list[Path], core: Core, plan: Plan, reps: int) -> dict[str, Any]:
    """The core's files per second in one process and in two at once, each pass a fresh
    process's first over its files (module docstring, measure 2)."""
    context = multiprocessing.get_context("spawn")
    measured: dict[str, Any] = {}
    for processes in (1, 2):
        walls = []
        for _ in range(reps):
            with context.Pool(processes) as pool:
                shares = [[str(p) for p in paths[i::processes]] for i in range(processes)]
                pool.map(_load, [(share, core, plan) for share in shares], chunksize=1)
                start = time.perf_counter()
                pool.map(_pass, [(core, plan)] * processes, chunksize=1)
                walls.append(time.perf_counter() - start)
        measured[f"files_per_second_{processes}"] = round(len(paths) / statistics.median(walls), 1)
        measured[f"seconds_{processes}"] = [round(w, 3) for w in walls]
    return measured


def ceilings(limits: dict[str, Any], core_files_per_second: float,
             runs: dict[str, dict[str, Any]], workers: int) -> dict[str, float | None]:
    """The bounds of the module docstring, from the plumbing, the core's files per second and
    the runs' CPU per file."""
    core_ms = 1000 / core_files_per_second
    cost = limits["plumbing"]
    base = cost["read"]["cpu_ms_per_file"] + cost["sha256"]["cpu_ms_per_file"]
    scaling = limits["core_scaling"]

    def run_cpu(key: str) -> float:
        return float(runs[key]["worker_cpu_ms_per_file"] + runs[key]["client_cpu_ms_per_file"])

    return {
        "run_1_vs_core_ceiling_one_core": round(core_ms / (core_ms + base + cost["publish"]["cpu_ms_per_file"]), 2),
        "run_1_vs_core_ceiling_one_core_no_fsync": round(core_ms / (core_ms + base + cost["write"]["cpu_ms_per_file"]),
                                                         2),
        "core_2_vs_1_processes": round(scaling["files_per_second_2"] / scaling["files_per_second_1"], 2),
        "core_first_pass_vs_core": round(scaling["files_per_second_1"] / core_files_per_second, 2),
        "run_cpu_per_file_2_vs_1": round(run_cpu(str(workers)) / run_cpu("1"), 2) if run_cpu("1") > 0 else None,
    }


def lines(limits: dict[str, Any], bounds: dict[str, float | None]) -> list[str]:
    """The report's lines of these measures."""
    cost = limits["plumbing"]
    scaling = limits["core_scaling"]
    return [
        "plumbing, CPU (wall) ms per file: " + ", ".join(
            f"{name} {m['cpu_ms_per_file']:.2f} ({m['wall_ms_per_file']:.2f})" for name, m in cost.items()),
        f"core in fresh processes: {scaling['files_per_second_1']} files/s in one, "
        f"{scaling['files_per_second_2']} in two at once",
        "limits: " + ", ".join(f"{k} {v}" for k, v in bounds.items()),
    ]
