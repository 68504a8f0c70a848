"""How a cell with a fault scenario recovered. Pure functions, no I/O.

Definitions (the README explains why):

- the **fault** is the first action the scenario carried out (s after t0); the **heal**, the last
  undo of a fault in effect (a ``for`` running out, ``heal``, ``start-node``), if any;
- **Flink noticed** at the first job-state sample after the fault whose state is not RUNNING or
  whose ``numRestarts`` grew; **running again** at the first RUNNING sample after that;
- the **bands**: latency within max(1.5 × the pre-fault p99, the pre-fault p99 + 500 ms), consumer lag
  within the pre-fault maximum + half a second of events (pre-fault: windows after the warm-up whose
  result arrived before the fault, lag samples from the end of the warm-up to the fault);
- **recovery time** = from the fault to the first moment after which every window's latency and
  every lag sample stay inside their bands (latency alone when the job restarted: the source's
  record counter starts again with the job, so the lag's level is no longer comparable;
  ``recovery_by`` says which) (NaN and ``recovered = False`` if that never happens
  before the load ends); windows whose latency left the band after the fault are ``windows_late``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LATENCY_FACTOR, LATENCY_MARGIN_MS, LAG_MARGIN_S = 1.5, 500.0, 0.5


def fault_times(events: list[dict]) -> tuple[float, float]:
    """(fault, heal) in s after t0: the first action done, the last undo (NaN if none)."""
    done = [e["t_s"] for e in events if e.get("what") == "do" and not e.get("error")
            and e.get("action") not in ("heal", "start-node")]
    undone = [e["t_s"] for e in events if e.get("what") == "undo" or e.get("action") in ("heal", "start-node")]
    fault = min(done) if done else math.nan
    heal = max(undone) if undone else math.nan
    return fault, heal


def job_state_at(states: list[tuple[float, str, int]], secs: np.ndarray) -> list[str]:
    """The job's state at each second (the last sample at or before it; '' before the first)."""
    ts = [t for t, _s, _r in states]
    out = []
    for t in secs:
        i = int(np.searchsorted(ts, t, side="right")) - 1
        out.append(states[i][1] if i >= 0 else "")
    return out


def recovery(events: list[dict], latency: pd.DataFrame, series: pd.DataFrame,
             states: list[tuple[float, str, int]], warmup_s: float, rate: float) -> dict:
    """The recovery columns of a cell's row. ``latency``: window_end_s, latency_ms, in_stats;
    ``series``: t_s, lag; ``states``: (s after t0, job state, numRestarts) samples."""
    fault, heal = fault_times(events)
    out = {"fault_at_s": fault, "heal_at_s": heal, "flink_noticed_s": math.nan, "running_again_s": math.nan,
           "restarts": max((r for _t, _s, r in states if r is not None), default=0),
           "pre_fault_p99_ms": math.nan, "latency_band_ms": math.nan, "lag_band": math.nan,
           "peak_latency_ms": math.nan, "windows_late": 0, "recovery_time_s": math.nan, "recovered": False,
           "recovery_by": ""}
    if math.isnan(fault):
        return out
    before = [r for t, _s, r in states if t <= fault and r is not None]
    restarts_before = max(before, default=0)
    noticed = next((t for t, s, r in states if t > fault and (s != "RUNNING" or (r or 0) > restarts_before)), None)
    if noticed is not None:
        out["flink_noticed_s"] = noticed - fault
        again = next((t for t, s, _r in states if t > noticed and s == "RUNNING"), None)
        out["running_again_s"] = again - fault if again is not None else math.nan
    lat = latency[latency["in_stats"]] if "in_stats" in latency else latency
    # before the fault: the windows whose result arrived before it (a window that ends just before
    # the fault fires only once later events move the watermark past it, so it may be hit too)
    arrived = lat["window_end_s"] + lat["latency_ms"] / 1000
    pre = lat[(lat["window_end_s"] >= warmup_s) & (arrived < fault)]["latency_ms"]
    after = lat[arrived >= fault].sort_values("window_end_s")
    lag = series.dropna(subset=["lag"])
    pre_lag = lag[(lag["t_s"] >= warmup_s) & (lag["t_s"] < fault)]["lag"]
    if pre.empty:
        return out
    p99 = float(np.percentile(pre, 99))
    band = max(LATENCY_FACTOR * p99, p99 + LATENCY_MARGIN_MS)
    lag_band = (float(pre_lag.max()) if len(pre_lag) else 0.0) + LAG_MARGIN_S * rate
    out.update(pre_fault_p99_ms=p99, latency_band_ms=band, lag_band=lag_band,
               peak_latency_ms=float(after["latency_ms"].max()) if len(after) else math.nan,
               windows_late=int((after["latency_ms"] > band).sum()))
    # the last moment out of band; recovered just after it, if something in band follows
    bad = list(after.loc[after["latency_ms"] > band, "window_end_s"])
    # the lag counts what the source read, and a restarted job's counters start again from its last
    # checkpoint: after a restart the lag's level is not comparable, and only latency decides
    out["recovery_by"] = "latency" if out["restarts"] > restarts_before else "latency and lag"
    if out["restarts"] <= restarts_before:
        bad += list(lag.loc[(lag["t_s"] >= fault) & (lag["lag"] > lag_band), "t_s"])
    last_bad = max(bad, default=fault)
    ok_after = (after["window_end_s"] > last_bad).any()
    if ok_after:
        recovered_at = max(fault, min(after.loc[after["window_end_s"] > last_bad, "window_end_s"])) if bad else fault
        out.update(recovery_time_s=recovered_at - fault, recovered=True)
    return out
