"""A small real matrix (2 taskmanager counts x 2 placements: azure only, and google first then
azure; short windows) on the session's
testbed: killed half-way, then finished with --resume without redoing a finished cell, and every
file of the results folder is there."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from testbed.run import GiveUp, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.exclusive("seed-network")]
ROOT = Path(__file__).resolve().parent.parent


def _matrix(testbed, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(ROOT / "experiments" / "test_pipeline.py"), "-k", "test_cell",
            "--testbed-run", testbed.run_id, "--results", str(results), "--taskmanagers", "1,2",
            "--placements", "single-cloud,nodes:google-cloud-worker-1+azure-swarm-worker-1", "--rates", "300", "--repetitions", "1",
            "--duration", "10", "--warmup", "2", "--window", "2", "--slide", "1", "-rs", *extra]


def _rows(results: Path) -> pd.DataFrame:
    (session,) = [p for p in results.iterdir() if p.is_dir()]
    path = session / "cells.csv"
    return pd.read_csv(path, keep_default_na=False) if path.exists() else pd.DataFrame()


def test_killed_matrix_resumes_without_redoing_cells(testbed, tmp_path):
    first = subprocess.Popen(_matrix(testbed, tmp_path), cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        def one_row() -> bool:
            if first.poll() is not None:
                raise GiveUp("the matrix ended before it was killed:\n" + first.stdout.read())
            return any(tmp_path.iterdir()) and len(_rows(tmp_path)) >= 1
        wait_for(one_row, 400, "the first cell's row", interval=1)
    finally:
        first.send_signal(signal.SIGKILL)      # no teardown, no report: as if the machine died
        first.wait(timeout=60)
    before = _rows(tmp_path)
    assert len(before) >= 1 and (before["error"] == "").all()
    session = next(p for p in tmp_path.iterdir() if p.is_dir())

    second = subprocess.run(_matrix(testbed, tmp_path, "--resume", session.name), cwd=ROOT,
                            capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stdout[-4000:]
    after = _rows(tmp_path)
    spread = "nodes:google-cloud-worker-1+azure-swarm-worker-1"
    keys = ["tm1-single-cloud-r300-rep1", f"tm1-{spread}-r300-rep1", "tm2-single-cloud-r300-rep1",
            f"tm2-{spread}-r300-rep1"]
    finished = after[after["error"] == ""]
    assert sorted(finished["cell_key"]) == sorted(keys)            # every cell, each exactly once
    for key in before["cell_key"]:
        assert f"{key} finished in an earlier session" in second.stdout
    assert (finished["lost"].astype(int) == 0).all() and (finished["duplicated"].astype(int) == 0).all()
    cells = list(finished["cell"])
    for rel in ["cells.csv", "cells.parquet", "manifest.json", *[f"latency/{c}.parquet" for c in cells],
                *[f"timeseries/{c}.parquet" for c in cells], "report/summary.csv", "report/summary.md",
                *[f"report/{f}.{ext}" for f in ("latency_vs_taskmanagers", "latency_cdf") for ext in ("pdf", "png")],
                *[f"report/timeseries/{c}.png" for c in cells]]:
        assert (session / rel).exists(), rel
    manifest = json.loads((session / "manifest.json").read_text())
    assert manifest["topology"]["sha256"] == testbed.topology.sha256
    assert manifest["versions"]["flink"] == "2.0.2" and manifest["git"]["commit"]
    assert manifest["testbed"]["wan_backend"] == testbed.wan.backend
    assert len(manifest["sessions"]) >= 1 and manifest["ended"]
    assert pd.read_parquet(session / "cells.parquet")["cell_key"].tolist() == after["cell_key"].tolist()
