"""A session's own rules, with recorded cells (tests/canned.py) instead of the engine: which cells a
resumption runs, what it refuses, a failing cell, a search's trials and result, and the files and
manifest of the results folder. tests/test_matrix.py kills a real matrix and resumes it on the engine."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from testbed.experiment.options import EXPERIMENT, TESTBED, Experiment, OptionError
from testbed.experiment.session import Session
from testbed.model.topology import load
from testbed.results import columns, report

from . import canned

KEYS = ["tm1-single-cloud-r300-rep1", "tm1-single-cloud-r300-rep2", "tm2-single-cloud-r300-rep1",
        "tm2-single-cloud-r300-rep2"]


def _options(**kw) -> dict:
    o = {opt.dest: opt.kwargs.get("default") for opt in TESTBED + EXPERIMENT}
    o.update(taskmanagers="1,2", placements="single-cloud", rates="300", repetitions=2, duration=10.0, warmup=2.0,
             window=2.0, slide=1.0, cpu_scale=0.0)
    o.update(kw)
    return o


def _session(tmp_path, runner, resume=None, **kw) -> Session:
    opts = _options(**kw)
    return Session(Experiment.from_options(opts), tmp_path, resume=resume, options=opts, runner=runner,
                   command=["test"])


def _rows(session: Session, table: str = "cells") -> pd.DataFrame:
    return pd.read_csv(session.path / f"{table}.csv", keep_default_na=False)


@pytest.fixture
def seed():
    return load("seed")


def test_a_resumption_runs_only_the_cells_no_session_finished(tmp_path, seed, caplog):
    runner = canned.Recorded()
    first = _session(tmp_path, runner)
    cells = first.plan(seed)
    assert [c.key for c in cells] == KEYS          # taskmanagers, placement, rate, then repetition
    tb = canned.testbed(seed)
    first.record(tb, cells[0])                     # then the harness died: no finish, no report
    assert runner.ran == KEYS[:1] and runner.jobs_checked == 1

    again = canned.Recorded()
    second = _session(tmp_path, again, resume=first.id)
    with caplog.at_level(logging.INFO, logger="testbed.experiment.session"):
        rows = second.run(tb, second.plan(seed))
    second.finish()
    assert again.ran == KEYS[1:] and [r["cell_key"] for r in rows] == KEYS[1:]
    assert "1 cell(s) finished in an earlier session" in caplog.text
    table = _rows(second)
    assert sorted(table["cell_key"]) == sorted(KEYS) and (table["error"] == "").all()   # each exactly once
    manifest = json.loads((second.path / "manifest.json").read_text())
    assert len(manifest["sessions"]) == 2 and manifest["ended"]
    assert manifest["topology"]["sha256"] == seed.sha256 and manifest["git"]["commit"]


def test_a_resumption_with_other_settings_is_refused_naming_each_before_anything_runs(tmp_path, seed):
    first = _session(tmp_path, canned.Recorded())
    cells = first.plan(seed)
    first.record(canned.testbed(seed), cells[0])
    runner = canned.Recorded()
    other = _session(tmp_path, runner, resume=first.id, duration=11.0, keys=64)
    with pytest.raises(OptionError) as e:
        other.plan(seed)
    assert "--duration 11.0 (the run used 10.0)" in str(e.value) and "--keys 64 (the run used 16)" in str(e.value)
    assert runner.ran == [] and len(_rows(first)) == 1
    with pytest.raises(OptionError, match="no .*cells.csv"):
        _session(tmp_path, canned.Recorded(), resume="20990101-000000-none").plan(seed)


def test_a_failing_cell_is_recorded_with_its_logs_the_matrix_goes_on_and_a_resumption_runs_it_again(tmp_path, seed):
    tb = canned.testbed(seed)
    runner = canned.Recorded(fail=(KEYS[1],))
    session = _session(tmp_path, runner)
    rows = session.run(tb, session.plan(seed))
    assert runner.ran == KEYS and [bool(r.get("error")) for r in rows] == [False, True, False, False]
    failed = _rows(session).set_index("cell_key").loc[KEYS[1]]
    assert failed["error"] == f"RuntimeError: {KEYS[1]}: failed as the test asked"
    assert "no services to describe" in open(failed["logs"]).read()
    again = canned.Recorded()
    resumed = _session(tmp_path, again, resume=session.id)
    resumed.run(tb, resumed.plan(seed))
    assert again.ran == [KEYS[1]]                  # a failed cell is not finished


def test_a_search_doubles_until_a_trial_fails_and_records_each_trial(tmp_path, seed):
    def keeps_up_to_1200(spec, row):
        return {**row, "lag_slope": 0.0 if spec.rate <= 1200 else spec.rate, "lost": 0, "driver_fell_behind": False,
                "testbed_limited": ""}
    runner = canned.Recorded(adjust=keeps_up_to_1200)
    session = _session(tmp_path, runner, taskmanagers="2", repetitions=1, sustainable=True, search_start=300.0,
                       search_max=32000.0, search_refine=1)
    cells = session.plan(seed)
    (base,) = session.experiment.searches(cells)
    result = session.search(canned.testbed(seed), base)
    # 300, 600, 1200 keep up, 2400 does not; one bisection: 1800 does not
    tried = [t["rate"] for t in json.loads(_rows(session, "sustainable")["rates_tried"][0])]
    assert tried == [300, 600, 1200, 2400, 1800]
    assert result["sustainable_rate"] == 1200 and result["limited_by"] == "system"
    trials = _rows(session)
    assert len(trials) == 5 and (trials["search"].astype(str) == "True").all()
    assert list(trials["cell_key"]) == [f"tm2-single-cloud-r{r:g}-rep1-search" for r in tried]
    assert _rows(session, "sustainable")["cell_key"].tolist() == [base.key]    # named by its first trial


def test_the_results_folder_has_every_file_its_report_draws(tmp_path, seed):
    tb = canned.testbed(seed)
    session = _session(tmp_path, canned.Recorded(), repetitions=1)
    rows = session.run(tb, session.plan(seed))
    session.finish()
    cells = [r["cell"] for r in rows]
    table = _rows(session)
    for rel in ["cells.csv", "cells.parquet", "manifest.json", *[f"latency/{c}.parquet" for c in cells],
                *[f"timeseries/{c}.parquet" for c in cells], "report/summary.csv", "report/summary.md",
                "report/index.html",
                *[f"report/{f}.{ext}" for f in ("latency_vs_taskmanagers", "latency_cdf") for ext in ("pdf", "png")],
                *[f"report/timeseries/{report.figure_names(table)[c]}.png" for c in cells],
                *[f"report/topology/{k}.png" for k in ("tm1-single-cloud", "tm2-single-cloud")]]:
        assert (session.path / rel).exists(), rel
    assert pd.read_parquet(session.path / "cells.parquet")["cell_key"].tolist() == table["cell_key"].tolist()
    assert columns.undeclared(table.columns) == []      # what the session adds to a row is declared too
    manifest = json.loads((session.path / "manifest.json").read_text())
    assert manifest["sessions"][0]["options"]["duration"] == 10.0 and manifest["sessions"][0]["command"] == ["test"]
    assert manifest["versions"]["flink"] == "2.0.2" and manifest["versions"]["packages"]["pandas"]
    assert manifest["testbed"]["provider"] == "recorded" and manifest["ended"]
