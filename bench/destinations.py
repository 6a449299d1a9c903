"""The bench's DICOMweb line (issue 17): a run from Orthanc to Orthanc against the same run between
local folders, on this machine.

Orthanc is started by the tests' helper (tests/servers.py: HTTP only, on 127.0.0.1, storage in the
scratch folder), once as the source, loaded with the corpus by STOW-RS before anything is timed, and
afresh as the destination for each repetition. Each repetition runs

    deid-pipeline run dicomweb+http://127.0.0.1:P/dicom-web --output dicomweb+http://127.0.0.1:Q/dicom-web
                      --manifest SCRATCH/orthanc.manifest.sqlite --workers W

as a subprocess and takes its wall time; the folder run is bench.py's ``run --workers W`` (same
corpus, options, key and worker count). Both sides go through the network: QIDO-RS and WADO-RS from
the source, verify in memory, STOW-RS to the destination.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def _store(dicomweb: str, paths: list[Path], batch: int = 50) -> None:
    """STOW-RS every file as it is on disk, `batch` instances a request."""
    import requests

    with requests.Session() as http:
        for start in range(0, len(paths), batch):
            boundary = uuid.uuid4().hex
            body = b"".join(f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p.read_bytes()
                            + b"\r\n" for p in paths[start:start + batch]) + f"--{boundary}--\r\n".encode()
            answer = http.post(f"{dicomweb}/studies", data=body, timeout=600, headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'})
            answer.raise_for_status()


def orthanc_runs(paths: list[Path], workers: int, reps: int, key_file: Path, options: tuple[str, ...],
                 executable: str, folder_wall: float | None) -> dict[str, Any]:
    """`reps` runs Orthanc -> Orthanc with `workers`; their median wall time against `folder_wall`,
    the median of the folder runs."""
    if shutil.which("Orthanc") is None and not Path("/usr/sbin/Orthanc").exists():
        return {"skipped": "Orthanc is not installed (make system-deps)"}
    sys.path.insert(0, str(REPO))
    try:
        from tests.servers import orthanc
    finally:
        sys.path.remove(str(REPO))
    results: dict[str, Any] = {"workers": workers, "source": "orthanc", "runs": []}
    with tempfile.TemporaryDirectory(prefix="deid-bench-orthanc-") as tmp, orthanc(Path(tmp) / "source") as source:
        started = time.perf_counter()
        _store(source.dicomweb, paths)
        results["load_seconds"] = round(time.perf_counter() - started, 3)
        inputs = source.source
        for rep in range(reps):
            with orthanc(Path(tmp) / f"destination-{rep}") as destination:
                manifest = Path(tmp) / f"run-{rep}" / "orthanc.manifest.sqlite"
                manifest.parent.mkdir()
                command = [executable, "run", inputs, "--output", destination.source, "--manifest", str(manifest),
                           "--key-file", str(key_file), "--workers", str(workers), "--quiet"]
                for option in options:
                    command += ["--option", option]
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                wall = time.perf_counter() - started
                if done.returncode not in (0, 1):
                    raise RuntimeError(f"deid-pipeline run to Orthanc exited {done.returncode}: {done.stderr[-800:]}")
                stored = _count(destination.port)
                results["runs"].append({"wall_seconds": round(wall, 3), "exit_status": done.returncode,
                                        "instances_stored": stored})
    wall = statistics.median(r["wall_seconds"] for r in results["runs"])
    results["median_wall_seconds"] = round(wall, 3)
    results["files_per_second_wall"] = round(len(paths) / wall, 1)
    results["folder_median_wall_seconds"] = folder_wall
    results["orthanc_vs_folders"] = round(folder_wall / wall, 2) if folder_wall else None
    return results


def _count(port: int) -> int:
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/statistics", timeout=30) as answer:
        return int(json.load(answer)["CountInstances"])


def line(results: dict[str, Any]) -> str:
    """The table's line."""
    if "skipped" in results:
        return f"run Orthanc -> Orthanc: skipped ({results['skipped']})"
    label = f"run Orthanc->Orthanc w{results['workers']}"
    return (f"{label + ' (wall)':<34}{results['median_wall_seconds']:>10.2f}{results['files_per_second_wall']:>10.1f}"
            f"   {results['orthanc_vs_folders']} x the folder run's speed")
