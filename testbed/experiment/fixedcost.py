"""What a cell costs besides its load, by how its SQL job is started: through the REST API with the SQL
runner uploaded once (``rest``, the default) against a ``flink run`` client container per cell
(``flink-run``). Everything else is a cell at the experiments' default settings (two taskmanagers
spread over the clouds, 1,000 events/s, the CPU budgets of ``--cpu-scale auto``).

    res = compare(tb, repetitions=3, duration=15)      # python -m testbed bench cell

The two are measured alternately, each first in every other pair, so that a noisy machine's drift
and the first cell's deployment of Flink fall on both sides; the result names every cell, its fixed
cost (its wall time less its load) and the submission's share, and the ratio of the medians.
"""

from __future__ import annotations

import json
import logging
import statistics

from ..provision.testbed import Testbed
from ..workload.pipeline import WindowSpec
from .cell import CellSpec, run_cell
from .options import auto_cpu_scale

log = logging.getLogger(__name__)


def compare(tb: Testbed, repetitions: int = 3, duration: float = 15.0, rate: float = 1000.0) -> dict:
    window = WindowSpec(2, 1, 0.5)
    warmup = 4.0
    duration = max(duration, CellSpec.min_duration(warmup, window))
    scale = auto_cpu_scale(tb.topology, tb.provider.name)
    cells = []
    for rep in range(1, repetitions + 1):
        order = ("flink-run", "rest") if rep % 2 else ("rest", "flink-run")
        for via in order:
            spec = CellSpec(taskmanagers=2, placement="multi-cloud", rate=rate, duration=duration, warmup=warmup,
                            window=window, repetition=rep, submit=via, cpu_scale=scale)
            log.info(f"fixed cost: pair {rep} of {repetitions}, {via}")
            row = run_cell(tb, spec)
            cells.append({"submit": via, "repetition": rep, "cell": row["cell"], "fixed_cost_s": row["fixed_cost_s"],
                          "submit_s": row["submit_s"], "cell_wall_s": row["cell_wall_s"], "lost": row["lost"],
                          "phases": json.loads(row["cell_phases"])})
    med = {via: {k: statistics.median(c[k] for c in cells if c["submit"] == via) for k in ("fixed_cost_s", "submit_s")}
           for via in ("flink-run", "rest")}
    return {"run_id": tb.run_id, "duration": duration, "rate": rate, "repetitions": repetitions, "cpu_scale": scale,
            "cells": cells, "median": med,
            "ratio_fixed_cost": round(med["rest"]["fixed_cost_s"] / med["flink-run"]["fixed_cost_s"], 3)}
