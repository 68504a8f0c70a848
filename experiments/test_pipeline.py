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
placement, the highest rate the system keeps up with (see ``testbed/experiment/search.py``).

The work is the library's (``testbed.experiment.Session``); ``python -m testbed run`` does the same
without pytest.
"""

from __future__ import annotations

import warnings

import pytest

from testbed.experiment.session import cell_problems, saturated_parts


def test_cell(fst_cell, fst_session, fst_testbed):
    if fst_session.finished(fst_cell.key):
        pytest.skip(f"{fst_cell.key} finished in an earlier session of this run")
    row = fst_session.record(fst_testbed, fst_cell)
    # a cell whose accounting does not add up is a finding to look at, not a number to average
    problems = cell_problems(row)
    assert not problems, f"{fst_cell.key}: {'; '.join(problems)}"
    if saturated_parts(row):    # a result, but of the testbed: said, drawn hollow, left out of means
        warnings.warn(f"{fst_cell.key} measured the testbed, not the system: {row['testbed_limited_why']}")


def test_sustainable_throughput(fst_search_cell, fst_session, fst_testbed):
    if fst_session.finished(fst_search_cell.key, "sustainable"):
        pytest.skip(f"{fst_search_cell.key} finished in an earlier session of this run")
    fst_session.search(fst_testbed, fst_search_cell)
