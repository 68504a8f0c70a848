"""A small real matrix (1 and 2 taskmanagers in azure; short windows) on the session's testbed, killed
half-way with SIGKILL and finished with --resume without redoing a finished cell; a one-trial
sustainable-throughput search through pytest (extended). The session's rules themselves (what a
resumption runs and refuses, failures, a search's steps, the folder's files) are tests/test_session.py's,
with recorded cells."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from testbed.results import report
from testbed.core.run import GiveUp, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.exclusive("seed-network")]
ROOT = Path(__file__).resolve().parent.parent


def _matrix(fst_testbed, results: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(ROOT / "experiments" / "test_pipeline.py"), "-k", "test_cell",
            "--testbed-run", fst_testbed.run_id, "--results", str(results), "--taskmanagers", "1,2",
            "--placements", "single-cloud", "--rates", "300", "--repetitions", "1",
            "--duration", "10", "--warmup", "2", "--window", "2", "--slide", "1", "-rs",
            # no CPU limits: resuming is the subject here, and a restart of Flink under limits costs a minute
            "--cpu-scale", "0", *extra]


def _rows(results: Path) -> pd.DataFrame:
    (session,) = [p for p in results.iterdir() if p.is_dir()]
    path = session / "cells.csv"
    return pd.read_csv(path, keep_default_na=False) if path.exists() else pd.DataFrame()


def test_killed_matrix_resumes_without_redoing_cells(fst_testbed, fst_exclusive, fst_quiet, tmp_path):
    # (the network is checked by the resumption: the check is per pytest run, and this one is killed)
    first = subprocess.Popen(_matrix(fst_testbed, tmp_path, "--wan-check", "off"), cwd=ROOT, stdout=subprocess.PIPE,
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

    # the resumption measures the network first (a pytest run of its own, with locks of its own): not
    # while a test in the other worker loads the machine (a lifecycle test provisioning a topology, a
    # job compiled, a cell): for it, this worker holds it alone
    with fst_exclusive("lifecycle"), fst_quiet():
        second = subprocess.run(_matrix(fst_testbed, tmp_path, "--resume", session.name), cwd=ROOT,
                                capture_output=True, text=True, timeout=900)
        assert second.returncode == 0, second.stdout[-4000:]
    after = _rows(tmp_path)
    keys = ["tm1-single-cloud-r300-rep1", "tm2-single-cloud-r300-rep1"]
    finished = after[after["error"] == ""]
    assert sorted(finished["cell_key"]) == sorted(keys)            # every cell, each exactly once
    for key in before["cell_key"]:
        assert f"{key} finished in an earlier session" in second.stdout
    assert (finished["lost"].astype(int) == 0).all() and (finished["duplicated"].astype(int) == 0).all()
    cells = list(finished["cell"])
    for rel in ["cells.csv", "cells.parquet", "manifest.json", *[f"latency/{c}.parquet" for c in cells],
                *[f"timeseries/{c}.parquet" for c in cells], "report/summary.csv", "report/summary.md",
                "calibration.csv",
                *[f"report/{f}.{ext}" for f in ("latency_vs_taskmanagers", "latency_cdf") for ext in ("pdf", "png")],
                *[f"report/timeseries/{report.figure_names(after)[c]}.png" for c in cells],
                *[f"report/topology/{k}.png" for k in ("tm1-single-cloud", "tm2-single-cloud")]]:
        assert (session / rel).exists(), rel
    manifest = json.loads((session / "manifest.json").read_text())
    assert manifest["topology"]["sha256"] == fst_testbed.topology.sha256
    assert manifest["versions"]["flink"] == "2.0.2" and manifest["git"]["commit"]
    assert manifest["versions"]["broker"] == "tansu 0.6.0" and manifest["versions"]["python"]
    assert manifest["versions"]["packages"]["kafka-python"] and manifest["versions"]["packages"]["pandas"]
    assert set(manifest["versions"]["docker_engines"]) >= {m.hostname for m in fst_testbed.machines}
    assert manifest["sessions"][0]["options"]["duration"] == 10.0 and manifest["host"]["cpus"]
    assert manifest["testbed"]["wan_backend"] == fst_testbed.wan.backend
    assert manifest["testbed"]["wan_check"] == "passed"
    assert len(manifest["sessions"]) == 2 and manifest["ended"]
    assert pd.read_parquet(session / "cells.parquet")["cell_key"].tolist() == after["cell_key"].tolist()


@pytest.mark.extended
def test_a_one_trial_search_through_pytest_writes_its_trial_and_its_result(fst_testbed, fst_exclusive, fst_quiet,
                                                                           tmp_path):
    """``pytest experiments/ --sustainable``: one trial (start = maximum, no refinement) of 2
    taskmanagers spread over google and azure."""
    spread = "nodes:google-cloud-worker-1+azure-swarm-worker-1"
    with fst_exclusive("lifecycle"), fst_quiet():     # it calibrates first, as every pytest run does
        run = subprocess.run(_matrix(fst_testbed, tmp_path, "--sustainable", "-k", "test_sustainable_throughput",
                                     "--taskmanagers", "2", "--placements", spread, "--search-start", "300",
                                     "--search-max", "300", "--search-refine", "0"),
                             cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:]
    session = next(p for p in tmp_path.iterdir() if p.is_dir())
    (search,) = pd.read_csv(session / "sustainable.csv", keep_default_na=False).to_dict("records")
    assert search["cell_key"] == f"tm2-{spread}-r300-rep1"        # a search is named by its first trial
    (tried,) = json.loads(search["rates_tried"])
    assert tried["rate"] == 300 and tried["p99_ms"] > 0, tried
    # a trial in which the driver fell behind (a stall of the shared host of 100 ms and more, over
    # 0.1 % of a 10 s trial's events), or that failed while the testbed saturated, is counted neither
    # way: the search then names the testbed's parts
    expected = ("max_rate" if tried["kept_up"] else tried["testbed_limited"] or "system")
    assert search["limited_by"] == expected, search
    assert search["sustainable_rate"] == (300 if tried["kept_up"] else 0)
    (trial,) = pd.read_csv(session / "cells.csv", dtype=str, keep_default_na=False).to_dict("records")
    assert trial["search"] == "True" and trial["cell"] == tried["cell"] and trial["error"] == ""   # a row of its own
    for rel in ["sustainable.csv", "sustainable.parquet", "report/sustainable_throughput.png",
                f"report/topology/tm2-{spread}.png"]:
        assert (session / rel).exists(), rel


def test_the_cli_writes_the_same_results_folder_as_pytest(fst_testbed, tmp_path):
    """`python -m testbed run FILE` and `pytest experiments/ --experiment FILE`, one experiment file:
    the same files, the same columns, the same manifest; and both leave the attached testbed standing."""
    experiment = tmp_path / "one-cell.yaml"
    experiment.write_text("taskmanagers: 1\nplacements: single-cloud:azure\nrates: 200\nrepetitions: 1\n"
                          "duration: 8\nwarmup: 2\nwindow: 2\nslide: 1\nwan_check: off\ncpu_scale: 0\n")
    attach = ["--testbed-run", fst_testbed.run_id]
    by = {"pytest": tmp_path / "pytest", "cli": tmp_path / "cli"}
    runs = {
        "pytest": subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "experiments" / "test_pipeline.py"),
                                  "-p", "no:xdist", "--results", str(by["pytest"]), "--experiment", str(experiment),
                                  *attach], cwd=ROOT, capture_output=True, text=True, timeout=600),
        "cli": subprocess.run([sys.executable, "-m", "testbed", "run", str(experiment), "--results", str(by["cli"]),
                               *attach], cwd=ROOT, capture_output=True, text=True, timeout=600),
    }
    for how, r in runs.items():
        assert r.returncode == 0, (how, (r.stdout + r.stderr)[-4000:])
        # output to a pipe, as in CI: the progress is lines, with no terminal control characters
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", r.stdout + r.stderr), how
        assert "drive 200 events/s" in r.stderr + r.stdout, how
    assert "1 of 1 cell(s) add up" in runs["cli"].stdout

    def folder(root: Path) -> tuple[Path, set[str]]:
        (session,) = [p for p in root.iterdir() if p.is_dir()]
        cell = pd.read_csv(session / "cells.csv", dtype=str)["cell"][0]
        return session, {str(p.relative_to(session)).replace(cell, "<cell>") for p in session.rglob("*") if p.is_file()}

    (a, files_a), (b, files_b) = folder(by["pytest"]), folder(by["cli"])
    assert files_a == files_b and {"cells.csv", "cells.parquet", "manifest.json", "latency/<cell>.parquet",
                                   "timeseries/<cell>.parquet", "report/summary.csv"} <= files_a, (files_a, files_b)
    rows = {k: pd.read_csv(p / "cells.csv") for k, p in (("pytest", a), ("cli", b))}
    assert list(rows["pytest"].columns) == list(rows["cli"].columns)
    assert rows["pytest"]["cell_key"].tolist() == rows["cli"]["cell_key"].tolist() == ["tm1-single-cloud:azure-r200-rep1"]
    manifests = {k: json.loads((p / "manifest.json").read_text()) for k, p in (("pytest", a), ("cli", b))}
    assert manifests["pytest"].keys() == manifests["cli"].keys()
    opts = [m["sessions"][0]["options"] for m in manifests.values()]
    assert opts[0] == {**opts[1], "results": opts[0]["results"]}      # every option, recorded alike
    assert opts[0]["experiment_file"]["sha256"] and opts[0]["experiment_file"]["overrides"] == {}
    assert opts[0]["rates"] == "200" and opts[0]["cpu_scale"] == "0"
    assert fst_testbed.manager.client.nodes.list(), "the attached testbed is left running"
