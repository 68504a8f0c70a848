"""How a cell with a fault scenario recovered. Pure functions, no I/O.

Definitions (docs/experiments.md, "The recovery rule", says why):

- the **fault** is the first action the scenario carried out (s after t0); the **heal**, the last
  undo of a fault in effect (a ``for`` running out, ``heal``, ``start-node``), if any;
- **Flink noticed** at the first job-state sample after the fault whose state is not RUNNING or
  whose ``numRestarts`` grew; **running again** at the first RUNNING sample after that;
- the **bands**: latency within max(1.5 × the pre-fault p99, the pre-fault p99 + 500 ms), consumer lag
  within the pre-fault maximum + half a second of events (pre-fault: windows after the warm-up whose
  result arrived before the fault, lag samples from the end of the warm-up to the fault);
  (``band_from`` says how many; when none had arrived, there is no band and no recovery time: a
  window that ended before the fault but arrived after it carries the fault's delay);
- **recovered at T** when every later window, up to the last one measured, is within the latency
  band (``back_in_band``), and, when the job did not restart, every later lag sample within the lag
  band (after a restart the source's record counter starts again with the job, so the lag's level is
  no longer comparable; ``recovery_by`` says which). **recovery time** = T - fault (NaN and
  ``recovered = False`` if the last window measured is still out of band); windows whose latency left
  the band after the fault are ``windows_late``;
- **tasks running again** = the first sample after running again with every task of the job
  RUNNING (the job is RUNNING once it is scheduled again; its tasks may still wait for a slot, a
  replacement taskmanager, or deploy); **processing again** = the first second after running again
  in which the job's source read more than a tenth of the offered rate.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .metrics import stale_seconds

if TYPE_CHECKING:         # frames are passed in; this module never builds one
    import pandas as pd

LATENCY_FACTOR, LATENCY_MARGIN_MS, LAG_MARGIN_S = 1.5, 500.0, 0.5
PROCESSING_FRACTION = 0.1       # "processing again": the source reads more than this share of the rate per second


def fault_times(events: list[dict]) -> tuple[float, float]:
    """(fault, heal) in s after t0: the first action done, the last undo (NaN if none)."""
    done = [e["t_s"] for e in events if e.get("what") == "do" and not e.get("error")
            and e.get("action") not in ("heal", "start-node")]
    undone = [e["t_s"] for e in events if e.get("what") == "undo" or e.get("action") in ("heal", "start-node")]
    fault = min(done) if done else math.nan
    heal = max(undone) if undone else math.nan
    return fault, heal


def _last_at(samples: list[tuple], secs: np.ndarray, field: int, before_first):
    """Field ``field`` of the last sample at or before each second (``before_first`` before the first)."""
    ts = [sample[0] for sample in samples]
    out = []
    for t in secs:
        i = int(np.searchsorted(ts, t, side="right")) - 1
        out.append(samples[i][field] if i >= 0 else before_first)
    return out


def job_state_at(states: list[tuple[float, str, int]], secs: np.ndarray) -> list[str]:
    """The job's state at each second (the last sample at or before it; '' before the first)."""
    return _last_at(states, secs, 1, "")


def tasks_running_at(tasks: list[tuple[float, int, int]], secs: np.ndarray) -> list[float]:
    """The job's tasks RUNNING at each second (the last sample at or before it; NaN before the first)."""
    return [float(n) for n in _last_at(tasks, secs, 1, math.nan)]


def back_in_band(t: np.ndarray, value: np.ndarray, band: float, since: float) -> float:
    """The rule recovery is judged by: the moment T >= ``since`` such that every sample at or after T,
    up to the last one measured, is within ``band``; i.e. the first sample after the last one out of
    band (``since`` itself when none after it is out of band). NaN when the last sample is out of band
    or no sample follows ``since``."""
    t, value = np.asarray(t, dtype=float), np.asarray(value, dtype=float)
    keep = t >= since
    t, value = t[keep], value[keep]
    if not len(t):
        return math.nan
    order = np.argsort(t, kind="stable")
    t, value = t[order], value[order]
    out = np.flatnonzero(value > band)
    if not len(out):
        return since
    last = t[out[-1]]
    later = t[t > last]
    return float(later.min()) if len(later) else math.nan


def processing_again(series: pd.DataFrame, since: float, threshold: float) -> float:
    """The first second at or after ``since`` in which the source read more than ``threshold`` records
    (the per-second ``processed_rate``); NaN if it never did before the load ended."""
    if "processed_rate" not in series or math.isnan(since):
        return math.nan
    g = series[(series["t_s"] >= since) & (series["processed_rate"] > threshold)]
    return float(g["t_s"].min()) if len(g) else math.nan


def recovery(events: list[dict], latency: pd.DataFrame, series: pd.DataFrame,
             states: list[tuple[float, str, int]], warmup_s: float, rate: float,
             tasks: list[tuple[float, int, int]] = ()) -> dict:
    """The recovery columns of a cell's row. ``latency``: window_end_s, latency_ms, in_stats;
    ``series``: t_s, lag (and processed_rate); ``states``: (s after t0, job state, numRestarts) samples;
    ``tasks``: (s after t0, tasks RUNNING, tasks) samples."""
    fault, heal = fault_times(events)
    out = {"fault_at_s": fault, "heal_at_s": heal, "flink_noticed_s": math.nan, "running_again_s": math.nan,
           "tasks_running_again_s": math.nan, "processing_again_s": math.nan,
           "restarts": max((r for _t, _s, r in states if r is not None), default=0),
           "pre_fault_p99_ms": math.nan, "latency_band_ms": math.nan, "band_from": "", "lag_band": math.nan,
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
        # RUNNING is the job's state: when were all its tasks running, and when did its source read again?
        all_running = next((t for t, n, k in tasks if again is not None and t >= again and k and n == k), None)
        out["tasks_running_again_s"] = all_running - fault if all_running is not None else math.nan
        out["processing_again_s"] = processing_again(series, again if again is not None else math.nan,
                                                     PROCESSING_FRACTION * rate) - fault
    lat = latency[latency["in_stats"]] if "in_stats" in latency else latency
    # before the fault: the windows whose result arrived before it (a window that ends just before
    # the fault fires only once later events move the watermark past it, so it may be hit too). When
    # none had (a fault early in the load, a job slow to warm up), the windows that ended after the
    # warm-up and before the fault; the row says which (band_from)
    arrived = lat["window_end_s"] + lat["latency_ms"] / 1000
    measured = lat["window_end_s"] >= warmup_s
    pre = lat[measured & (arrived < fault)]["latency_ms"]
    if pre.empty:
        # a window that ended before the fault but arrived after it carries the fault's delay: no band
        out["band_from"] = ("no window arrived between the end of the warm-up and the fault: no band to "
                            "recover into (a later fault or a shorter warm-up gives one)")
        return out
    out["band_from"] = f"{len(pre)} windows that arrived between the end of the warm-up and the fault"
    after = lat[arrived >= fault].sort_values("window_end_s")
    lag = series.dropna(subset=["lag"])
    # a lag read while Flink's readings were stale is the counter's old value
    stale = stale_seconds(lag)
    stale_after_fault = bool((lag.loc[stale, "t_s"] >= fault).any())
    lag = lag[~stale]
    pre_lag = lag[(lag["t_s"] >= warmup_s) & (lag["t_s"] < fault)]["lag"]
    p99 = float(np.percentile(pre, 99))
    band = max(LATENCY_FACTOR * p99, p99 + LATENCY_MARGIN_MS)
    lag_band = (float(pre_lag.max()) if len(pre_lag) else 0.0) + LAG_MARGIN_S * rate
    out.update(pre_fault_p99_ms=p99, latency_band_ms=band, lag_band=lag_band,
               peak_latency_ms=float(after["latency_ms"].max()) if len(after) else math.nan,
               windows_late=int((after["latency_ms"] > band).sum()))
    at = back_in_band(after["window_end_s"], after["latency_ms"], band, fault)
    # the lag counts what the source read, and a restarted job's counters start again from its last
    # checkpoint: after a restart the lag's level is not comparable, and only latency decides
    restarted = out["restarts"] > restarts_before
    lag_after = lag[lag["t_s"] >= fault]
    out["recovery_by"] = "latency" if restarted else "latency and lag" if len(lag_after) \
        else "latency (no lag samples after the fault)"
    if not restarted and stale_after_fault:
        # part of the lag after the fault is unknown, and so may be a restart (numRestarts is a reading too)
        lag_after = lag_after.iloc[:0]
        out["recovery_by"] = "latency (Flink's readings stale after the fault: no lag, and restarts may be missed)"
    if not restarted and len(lag_after) and not math.isnan(at):
        lag_at = back_in_band(lag["t_s"], lag["lag"], lag_band, fault)
        # recovered at the first window end at or after both moments
        later = after.loc[after["window_end_s"] >= max(at, lag_at), "window_end_s"] if not math.isnan(lag_at) else []
        at = float(min(later)) if len(later) else math.nan
    if not math.isnan(at):
        out.update(recovery_time_s=at - fault, recovered=True)
    return out
