"""Experiments: the seed's sliding-window pipeline on Flink spread over the emulated clouds.

``test_cell`` is the matrix: taskmanager count x placement x offered rate x repetition, from
--taskmanagers 1,2,3 --placements single-cloud,multi-cloud --rates 1000 --repetitions 3 (see
``pytest --help``). Cells run in that order, so between cells only Flink is rescaled. Each cell
appends one tidy row to ``results/<session>/cells.csv`` (and ``.parquet``) as soon as it ends, with
its raw window latencies (``latency/<cell>.parquet``) and per-second series
(``timeseries/<cell>.parquet``); a failing cell is recorded with its error and the logs of the
services involved (``logs/<cell>.txt``), and the matrix goes on. ``--resume SESSION`` skips the
cells a killed or failed session already finished.

``test_sustainable_throughput`` (with --sustainable) searches, for each taskmanager count and
placement, the highest rate the system keeps up with (see ``testbed/search.py``).
"""

from __future__ import annotations

import dataclasses

import pytest

from testbed.experiment.cell import run_cell
from testbed.results.store import host_facts, now
from testbed.experiment.search import Criteria, find
from testbed.stack import services


def _record(testbed, results_dir, spec, progress) -> dict:
    """Run one cell and write everything it produced; on failure write the error and logs."""
    started = now()
    artifacts: dict = {}
    try:
        row = run_cell(testbed, spec, progress, artifacts)
    except Exception as e:
        logs = "\n\n".join(services.describe(testbed, s, tail=80)
                           for s in ("jobmanager", "taskmanager", "broker", "driver"))
        log_path = results_dir.write_text(f"logs/{spec.key}-{started.replace(':', '')}.txt",
                                          f"{type(e).__name__}: {e}\n\n{logs}")
        results_dir.append("cells", {"run_id": testbed.run_id, **spec.params(), "started": started,
                                     "ended": now(), "error": f"{type(e).__name__}: {e}"[:1000],
                                     "logs": str(log_path)})
        raise
    engine = getattr(testbed.provider, "client", None) or testbed.manager.client   # emulated: the host's
    row.update(host_facts(engine), topology=testbed.topology.name,
               topology_sha256=testbed.topology.sha256, error="", logs="")
    results_dir.write_frame(f"latency/{row['cell']}.parquet", artifacts["latency"])
    results_dir.write_frame(f"timeseries/{row['cell']}.parquet", artifacts["timeseries"])
    results_dir.append("cells", row)
    return row


def test_cell(cell, matrix, testbed, results_dir, progress):
    if results_dir.finished(cell.key):
        pytest.skip(f"{cell.key} finished in an earlier session of this run")
    matrix.start(cell, progress)
    row = _record(testbed, results_dir, cell, progress)
    progress(f"{cell.key}: p50 {row['latency_p50_ms']:.0f} ms, p99 {row['latency_p99_ms']:.0f} ms, "
             f"{row['achieved_rate']:.0f} ev/s in, lost {row['lost']}, duplicated {row['duplicated']}"
             + (", THE DRIVER FELL BEHIND" if row["driver_fell_behind"] else ""))
    # a cell whose accounting does not add up is a finding to look at, not a number to average
    assert row["lost"] == 0 and row["duplicated"] == 0, f"{cell.key}: lost {row['lost']}, duplicated {row['duplicated']}"


def test_sustainable_throughput(search_cell, search_options, matrix, testbed, results_dir, progress):
    key = search_cell.key
    if results_dir.finished(key, table="sustainable"):
        pytest.skip(f"{key} finished in an earlier session of this run")
    matrix.begin()
    trials = 0

    def trial(spec):
        nonlocal trials
        trials += 1
        progress(f"sustainable throughput of {key}: trial {trials} at {spec.rate:,.0f} events/s")
        spec = dataclasses.replace(spec, search=True)
        try:
            return _record(testbed, results_dir, spec, progress)
        except Exception as e:  # recorded with its logs by _record; the search stops on it
            return {"offered_rate": spec.rate, "lag_slope": float("nan"), "latency_p99_ms": float("nan"),
                    "lost": 0, "driver_fell_behind": False, "cell": None, "error": f"{type(e).__name__}: {e}"[:300]}

    o = search_options
    res = find(trial, search_cell, start=o["start"], max_rate=o["max"], refine=o["refine"],
               criteria=Criteria(o["lag_slope"], o["max_p99_ms"]))
    results_dir.append("sustainable", {"cell_key": key, "run_id": testbed.run_id, **res, "error": "",
                                       "ended": now()})
    progress(f"{key}: sustainable {res['sustainable_rate']:,.0f} ev/s (limited by {res['limited_by']})")
