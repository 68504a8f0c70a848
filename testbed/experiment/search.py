"""Sustainable throughput: the highest input rate at which the system keeps up.

A trial is a cell at one rate. The system keeps up when, after warm-up, the consumer lag on the
input topic has a flat trend (the slope of a linear fit stays below ``lag_slope`` events/s, as in
Theodolite's lag-trend analysis), the p99 window latency stays below ``max_p99_ms``, and no event
is lost. Rates double from ``start`` until a trial fails, then ``refine`` bisection steps narrow the
gap between the last good and the first bad rate.

The testbed must never be mistaken for the system: a trial in which the driver fell behind its
schedule, or that did not keep up while another part of the measuring path saturated
(``testbed_limited``: the broker, the collector, the WAN emulation, the host), says nothing about
the system (one that kept up all the same is a lower bound, counted as kept up). The search then narrows the
gap below that rate instead; if no lower rate shows the system's limit, ``limited_by`` names the
testbed's parts (the recorded rate is then a lower bound for the system). A trial that failed (its error is in ``cells.csv`` with the
services' logs) stops the search too, with ``limited_by = "error"``: a crash is not a limit.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from typing import Callable

from .cell import CellSpec


@dataclass(frozen=True)
class Criteria:
    lag_slope_fraction: float = 0.05      # of the offered rate, events/s per s
    max_p99_ms: float = 10_000.0

    def judge(self, row: dict) -> tuple[bool, str]:
        """(kept up?, why not)."""
        slope = row.get("lag_slope")
        limit = self.lag_slope_fraction * row["offered_rate"]
        if slope is None or (isinstance(slope, float) and math.isnan(slope)):
            return False, "no lag measurements"
        if slope > limit:
            return False, f"lag grows {slope:,.0f} events/s (limit {limit:,.0f})"
        if not row["latency_p99_ms"] <= self.max_p99_ms:
            return False, f"p99 latency {row['latency_p99_ms']:,.0f} ms above {self.max_p99_ms:,.0f} ms"
        if row["lost"] and row["lost"] == row["lost"]:     # (NaN: a job with nothing to account)
            return False, f"{row['lost']} lost event-window counts"
        return True, ""


def max_trials(start: float, max_rate: float, refine: int) -> int:
    """The most trials ``find`` runs: the doublings from ``start`` up to ``max_rate``, then
    ``refine`` halvings of the gap."""
    doublings, rate = 0, start
    while rate <= max_rate:
        doublings, rate = doublings + 1, rate * 2
    return doublings + refine


def find(run_trial: Callable[[CellSpec], dict], base: CellSpec, *, start: float, max_rate: float,
         refine: int = 2, criteria: Criteria = Criteria()) -> dict:
    """Search the sustainable rate for ``base``'s taskmanagers and placement; ``run_trial`` runs
    one cell and returns its row. Returns the result row (with every rate tried)."""
    tried: list[dict] = []

    def trial(rate: float) -> tuple[bool, dict]:
        row = run_trial(replace(base, rate=rate))
        if row.get("error"):   # the trial did not run to the end: it says nothing about the system
            ok, why = False, f"the trial failed: {row['error']}"
        else:
            ok, why = criteria.judge(row)
        if row["driver_fell_behind"]:   # the rate was not really offered: the trial shows nothing
            ok, why = False, "the driver fell behind its schedule"
        elif not ok and _testbed(row):  # not kept up, but the testbed saturated: that says nothing of the system
            why = f"the testbed was the limit ({row.get('testbed_limited_why') or _testbed(row)})"
        tried.append({"rate": rate, "kept_up": ok, "why": why, "driver_fell_behind": bool(row["driver_fell_behind"]),
                      "testbed_limited": _testbed(row),
                      "lag_slope": row.get("lag_slope"), "p99_ms": row["latency_p99_ms"], "cell": row.get("cell")})
        return ok, row

    good, bad, ceiling, limited_by = 0.0, None, None, "max_rate"
    rate = start
    while rate <= max_rate:
        ok, row = trial(rate)
        if ok:
            good = rate
            rate *= 2
            continue
        if row.get("error"):
            limited_by = "error"
        elif _testbed(row):
            ceiling, limited_by = rate, _testbed(row)
        else:
            bad, limited_by = rate, "system"
        break
    # narrow the gap between the last good rate and the first that failed (the system's limit) or
    # could not be carried by the testbed (the driver's, the broker's...): such a rate says nothing of
    # the system
    hi = bad if bad is not None else ceiling
    if hi is not None:
        for _ in range(refine):
            mid = round((good + hi) / 2)
            if mid in (good, hi):
                break
            ok, row = trial(mid)
            if ok:
                good = mid
            elif row.get("error"):
                limited_by = "error"
                break
            elif _testbed(row):
                hi = ceiling = mid
                limited_by = _testbed(row)
            else:
                hi = bad = mid
                limited_by = "system"
    return {"taskmanagers": base.taskmanagers, "placement": base.placement, "repetition": base.repetition,
            "sustainable_rate": good, "first_unsustainable_rate": bad, "limited_by": limited_by,
            "rates_tried": json.dumps(tried)}


def _testbed(row: dict) -> str:
    """The parts of the testbed that were the limit of a trial ('' if none): its ``testbed_limited``,
    or ``driver`` from a row of before that column."""
    v = row.get("testbed_limited")
    if isinstance(v, str) and v:
        return v
    return "driver" if row.get("driver_fell_behind") else ""
