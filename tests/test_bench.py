"""The benchmark script runs end to end on a tiny corpus (a smoke test: nothing is timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_runs_on_a_tiny_corpus_and_writes_its_results(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench.py"), "--files", "20", "--reps", "1", "--run-reps", "1",
         "--baseline-reps", "1", "--corpus-root", str(tmp_path / "corpus"), "--output", str(output)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads(output.read_text())
    assert results["corpus"]["files"] == 20
    assert results["measures"]["pipeline_scrub_verify"]["outcome"] == {"passed": 20, "findings": 0, "errors": 0}
    assert results["measures"]["dicognito_cli"]["outcome"] == 20
    for workers in ("1", "2"):
        (run,) = results["runs"][workers]["runs"]
        assert run["processed"] == {"written": 20}
        assert run["client_peak_mb"] > 0 and run["worker_peaks_mb"]
        assert run["worker_user_cpu_seconds"] > 0 and run["worker_minor_faults"] > 0
        assert results["runs"][workers]["worker_minor_faults_per_file"] >= 0
    assert set(results["ratios"]) >= {"pipeline_serial_vs_floor_b", "run_2_vs_1_excluding_startup",
                                      "pipeline_vs_deid", "pipeline_vs_dicognito", "worker_memory_growth",
                                      "floor_b_vs_floor_c"}
    assert "pipeline_scrub_verify" in done.stdout
    limits = results["limits"]  # what bounds the ratios: plumbing per file, the core in fresh processes
    assert set(limits["plumbing"]) == {"read", "sha256", "write", "publish"}
    assert all(m["cpu_ms_per_file"] > 0 and m["wall_ms_per_file"] > 0 for m in limits["plumbing"].values())
    assert limits["core_scaling"]["files_per_second_1"] > 0 and limits["core_scaling"]["files_per_second_2"] > 0
    ceilings = limits["ceilings"]
    assert 0 < ceilings["run_1_vs_core_ceiling_one_core"] < 1
    assert 0 < ceilings["run_1_vs_core_ceiling_one_core_no_fsync"] < 1
    assert "plumbing, CPU (wall) ms per file: read" in done.stdout and "limits: run_1_vs_core_ceiling" in done.stdout
    orthanc = results["orthanc"]  # the DICOMweb line: every output stored in a fresh Orthanc
    assert orthanc["source"] == "orthanc" and orthanc["orthanc_vs_folders"] > 0
    assert [r["instances_stored"] for r in orthanc["runs"]] == [20]
    assert "run Orthanc->Orthanc w2" in done.stdout


def test_corpus_is_deterministic(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from corpus import ensure_corpus, list_files
    finally:
        sys.path.remove(str(REPO / "bench"))
    first = ensure_corpus(12, seed=3, root=tmp_path / "a")
    second = ensure_corpus(12, seed=3, root=tmp_path / "b")
    assert [p.read_bytes() for p in list_files(first.path)] == [p.read_bytes() for p in list_files(second.path)]


def test_ocr_measure_reports_the_share_sent_to_ocr_and_images_per_second(tmp_path: Path) -> None:
    """Issue 15: the corpus (CT, MR, SR) sends nothing to OCR; the sample archive's burned-in
    images are read by OCR, cleaned and verified (nothing timed is asserted, only the counts)."""
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from corpus import ensure_corpus, list_files

        import bench
    finally:
        sys.path.remove(str(REPO / "bench"))
    corpus = [p.read_bytes() for p in list_files(ensure_corpus(12, seed=3, root=tmp_path).path)]
    result = bench.ocr_measures(corpus, reps=1)
    assert result["corpus_images"] > 0 and result["corpus_sent_to_ocr"] == 0
    assert result["corpus_share_sent_to_ocr"] == 0.0
    assert result["ocr_images"] >= 9  # the archive's 9 burned-in images, at least
    assert result["outcome"]["scrub_verify"] == {"passed": result["ocr_images"], "findings": 0, "errors": 0}
    assert result["ocr_images_per_second"] > 0 and result["ocr_images_per_second_with_verify"] > 0
    print(f"\nOCR: {result['ocr_images_per_second']} images/s, {result['ocr_images_per_second_with_verify']} "
          f"with verify, on {result['ocr_images']} burned-in sample images")
