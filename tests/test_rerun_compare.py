"""An experiment file run, rerun and compared on the session's testbed: the same settings show no
difference; one link's RTT from 20 to 200 ms is refused as a setting that differs, and once allowed,
found. (compare's rules themselves are tests/test_compare.py's, with a recorded run.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.engine, pytest.mark.extended, pytest.mark.exclusive("seed-network")]
ROOT = Path(__file__).resolve().parent.parent
# one cell of two taskmanagers over both clouds, its 20 s three times
EXPERIMENT = """taskmanagers: 2
placements: multi-cloud
rates: 200
repetitions: 3
duration: 20
warmup: 5
window: 2
slide: 1
wan_check: off
"""


def _testbed(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "testbed", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)


def _sessions(results: Path) -> list[Path]:
    return sorted((p for p in results.iterdir() if p.is_dir() and not p.name.startswith("compare-")),
                  key=lambda p: json.loads((p / "manifest.json").read_text())["started"])


def test_an_experiment_file_run_rerun_and_compared(fst_testbed, fst_quiet, tmp_path):
    f = tmp_path / "one-cell.yaml"
    f.write_text(EXPERIMENT)
    results = tmp_path / "results"
    attach = ["--testbed-run", fst_testbed.run_id]
    with fst_quiet():       # latency is the subject: no other test's load in any of the three runs
        first = _testbed("run", str(f), "--results", str(results), *attach)
        assert first.returncode == 0, (first.stdout + first.stderr)[-4000:]
        (a,) = _sessions(results)
        again = _testbed("rerun", str(a), *attach)
        assert again.returncode == 0, (again.stdout + again.stderr)[-4000:]
        assert "differs from" not in again.stderr, again.stderr
        far = _testbed("run", str(f), "--links", "azure-google:rtt_ms=200", "--results", str(results), *attach)
        assert far.returncode == 0, (far.stdout + far.stderr)[-4000:]
    a, b, c = _sessions(results)
    manifests = {p: json.loads((p / "manifest.json").read_text()) for p in (a, b, c)}
    options = {p: m["sessions"][0]["options"] for p, m in manifests.items()}
    assert options[a]["experiment_file"]["text"] == EXPERIMENT and options[a]["experiment_file"]["overrides"] == {}
    assert options[b]["rerun_of"] == str(a) and options[b]["rerun_differences"] == []
    assert options[c]["experiment_file"]["overrides"] == {"links": "azure-google:rtt_ms=200"}
    kept = {}
    for p in (a, b, c):
        cells = pd.read_csv(p / "cells.csv")
        assert len(cells) == 3 and (cells["error"].isna()).all() and (cells["lost"] == 0).all(), p
        # a cell whose row says the testbed was its limit is left out of the comparison, as of the means
        limited = cells["testbed_limited"].notna()
        assert cells.loc[limited, "testbed_limited_why"].notna().all(), cells.loc[limited].to_string()
        kept[p] = int((~limited).sum())
    same = _testbed("compare", str(a), str(b), "--confidence", "0.99")
    assert same.returncode == 0, same.stdout + same.stderr
    table = pd.read_csv(results / f"compare-{a.name}-{b.name}" / "compare.csv")
    verdicts = dict(zip(table["metric"], table["verdict"]))
    n = f"n = {kept[a]} and {kept[b]}"
    assert verdicts["p50 latency"].startswith(f"no difference detected at this n ({n}"), table.to_string()
    assert verdicts["p99 latency"].startswith(f"no difference detected at this n ({n}"), table.to_string()
    refused = _testbed("compare", str(a), str(c))
    assert refused.returncode == 2 and "wan_links (azure>google 10 ms" in refused.stderr, refused.stderr
    assert "against azure>google 100 ms" in refused.stderr and "--allow-different wan_links" in refused.stderr
    # (at the default confidence: 0.99 above guards the same settings against a difference out of noise)
    far_table = _testbed("compare", str(a), str(c), "--allow-different", "wan_links")
    assert far_table.returncode == 0, far_table.stdout + far_table.stderr
    table = pd.read_csv(results / f"compare-{a.name}-{c.name}" / "compare.csv").set_index("metric")
    # across the link 90 ms more each way: the windows' results wait for both taskmanagers. Both
    # percentiles move; at n = 3 a run's spread can hide one of them (its MDD says how much), not both
    latency = table.loc[["p50 latency", "p99 latency"]]
    assert (latency["difference"] < -150).all(), table.to_string()
    assert latency["verdict"].str.startswith("A lower by").any(), table.to_string()
