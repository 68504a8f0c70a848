"""Experiment: the seed's sliding-window pipeline on Flink spread over the emulated clouds.

One cell per run of this test: N taskmanagers under a placement policy, the driver offering a
rate for a duration; one tidy row (every parameter, every metric, provenance) is appended to
``results/<session>/cells.csv`` (and ``cells.parquet``) as soon as the cell ends — also when it
fails, with the error. Options: --taskmanagers --placement --rate --duration --warmup --window
--slide --watermark-delay (see ``pytest --help``).
"""

from __future__ import annotations

from testbed.experiment import run_cell
from testbed.results import host_facts, now


def test_sliding_window_cell(cell_spec, testbed, results_dir, progress):
    started = now()
    try:
        row = run_cell(testbed, cell_spec, progress)
    except Exception as e:
        results_dir.append("cells", {"run_id": testbed.run_id, **cell_spec.params(), "started": started,
                                     "ended": now(), "error": f"{type(e).__name__}: {e}"[:2000]})
        raise
    row.update(host_facts(testbed.provider.client), topology=testbed.topology.name,
               topology_sha256=testbed.topology.sha256, error="")
    path = results_dir.append("cells", row)
    progress(f"cell {row['cell']}: p50 {row['latency_p50_ms']:.0f} ms, p99 {row['latency_p99_ms']:.0f} ms, "
             f"{row['achieved_rate']:.0f} ev/s in, lost {row['lost']}, duplicated {row['duplicated']} -> {path}")
    # a cell whose accounting does not add up is a finding to look at, not a number to average
    assert row["lost"] == 0 and row["duplicated"] == 0, row
