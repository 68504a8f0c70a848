"""From the driver's raw measurements to one cell's metrics. Pure functions, no I/O.

Definitions (docs/results.md, "Definitions", says why):

- window latency = arrival of a result at the driver - the window's end (event time). Event time
  is each event's due time in the open-loop schedule, so the window length is not in the number,
  but the watermark delay is (a window can only fire once the watermark passes its end).
  Negative latencies are counted, not dropped. Windows that end in the warm-up, and the last
  windows that only the final flush event closes (those ending less than the watermark delay
  before the last scheduled event), are not in the latency statistics.
- offered rate = the schedule's events per second; achieved input rate = events the broker
  acknowledged per second after warm-up; processed rate = growth of the Flink source's
  numRecordsIn per second after warm-up (REST API samples).
- accounting: every event belongs to exactly size/slide windows. For every (key, window) the
  driver knows how many events it sent; ``lost`` counts event-window memberships that no result
  reported, ``duplicated`` those reported more than once or in excess (a repeated result record
  for a window counts all of its events again).

A job's output (docs/your-own-job.md) decides what can be measured: windowed results are timed
from their window's end and accounted as above when they carry counts; per-event results
(``passthrough``) are timed from the event's time and, when the job writes one record per event,
accounted per (key, event time) against the schedule; anything else has accounting "not applicable" (lost, duplicated: NaN).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from ..workload import schedule
from ..workload.record import Producer, Record
from ..workload.schedule import Schedule

PERCENTILES = (50, 95, 99)
# the driver kept its schedule when at most this share of events went out more than 100 ms late
DRIVER_LATE_LIMIT = 0.001


def accounting(expected_rows: list, results: list) -> dict:
    expected: Counter = Counter()
    for key, ws, n in expected_rows:
        expected[(key, int(ws))] += n
    got: dict[tuple, list[int]] = defaultdict(list)
    for key, ws, _we, cnt, *_ in results:
        got[(key, int(ws))].append(int(cnt))
    lost = duplicated = 0
    for w, exp in expected.items():
        counts = got.get(w, [])
        first = counts[0] if counts else 0
        lost += max(0, exp - first)
        duplicated += max(0, first - exp) + sum(counts[1:])
    unexpected = {w: c for w, c in got.items() if w not in expected}
    duplicated += sum(sum(c) for c in unexpected.values())
    return {
        "expected_windows": len(expected), "received_windows": len(set(got) & set(expected)),
        "result_records": len(results), "missing_windows": len(set(expected) - set(got)),
        "repeated_windows": sum(len(c) > 1 for c in got.values()), "unexpected_windows": len(unexpected),
        "counted": sum(c[0] for w, c in got.items() if w in expected),
        "expected_counted": sum(expected.values()), "lost": lost, "duplicated": duplicated,
    }


def latencies(results: list, t0_ms: int, warmup_s: float, last_closed_ms: int) -> np.ndarray:
    """Latency (ms) of the first result of each window that ends after warm-up and no later than
    ``last_closed_ms``, the last window end the load's own watermark closes."""
    lat = latency_samples(results, t0_ms, warmup_s, last_closed_ms)
    return lat.loc[lat["in_stats"], "latency_ms"].to_numpy(dtype=float)


def latency_stats(lat: np.ndarray) -> dict:
    if lat.size == 0:
        return {"latency_samples": 0, "latency_negative": 0, "latency_mean_ms": np.nan,
                **{f"latency_p{p}_ms": np.nan for p in PERCENTILES}, "latency_max_ms": np.nan}
    return {"latency_samples": int(lat.size), "latency_negative": int((lat < 0).sum()),
            "latency_mean_ms": float(lat.mean()),
            **{f"latency_p{p}_ms": float(np.percentile(lat, p)) for p in PERCENTILES},
            "latency_max_ms": float(lat.max())}


def achieved_rate(producers: list[Producer], warmup_s: float, duration_s: float) -> float:
    """Broker-acknowledged events per second over the whole seconds after warm-up."""
    per_s: Counter = Counter()
    for p in producers:
        for sec, n in enumerate(p.acked_per_s):
            per_s[sec] += n
    lo, hi = int(np.ceil(warmup_s)), int(np.floor(duration_s))
    if hi <= lo:
        lo, hi = 0, max(1, int(np.floor(duration_s)))
    return sum(per_s[s] for s in range(lo, hi)) / (hi - lo)


def unchanged_stretches(samples: list[tuple[float, float | None]], t_from: float, t_to: float) -> list[tuple[float, float]]:
    """The stretches (from, to) inside [t_from, t_to] over which a reading kept one value: from the
    first sample with the value to the last one with it."""
    pts = [(t, v) for t, v in samples if t_from <= t <= t_to and v is not None]
    out, i = [], 0
    while i < len(pts):
        j = i
        while j + 1 < len(pts) and pts[j + 1][1] == pts[i][1]:
            j += 1
        if j > i:
            out.append((pts[i][0], pts[j][0]))
        i = j + 1
    return out


def counter_unchanged_s(samples: list[tuple[float, int]], t_from: float, t_to: float) -> float:
    """The longest time inside [t_from, t_to] over which the source counter read from the REST API kept
    one value: about the sampling interval (1 s) when Flink reads and its metrics are fresh. Longer means
    the source read nothing or the readings froze (``stale_readings`` tells the two apart)."""
    if len([1 for t, v in samples if t_from <= t <= t_to and v is not None]) < 2:
        return float("nan")
    return round(max((b - a for a, b in unchanged_stretches(samples, t_from, t_to)), default=0.0), 2)


# a taskmanager whose clock stood still this long had stale readings (fresh ones move every ~1 s sample)
STALE_MIN_S = 3.0


def _per_taskmanager(clocks: list[tuple[float, dict[str, float]]], t0: float = 0.0) -> dict[str, list[tuple[float, float]]]:
    """(t, {taskmanager id: clock}) samples as each taskmanager's (t - ``t0``, clock) series."""
    per_tm: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t, got in clocks:
        for tm, v in got.items():
            per_tm[tm].append((t - t0, v))
    return per_tm


def stale_readings(clocks: list[tuple[float, dict[str, float]]], t0: float, t_from: float, t_to: float,
                   names: dict[str, str] | None = None) -> dict:
    """Which of Flink's metric readings were stale. ``clocks``: (t, {taskmanager id: its JVM CPU time
    as the REST API held it}) samples (``pipeline.taskmanager_clocks``). A clock that did not move
    means the jobmanager's metric store kept that taskmanager's old values: its source counts,
    among them, were not read then. ``metrics_stale_max_s``: the longest such stretch after warm-up
    (0 when every reading moved); ``metrics_stale``: those of at least ``STALE_MIN_S``, by
    taskmanager (``names``: id -> what to call it) and seconds since the load's start; "" if none."""
    per_tm = _per_taskmanager(clocks)
    if not per_tm:
        return {"metrics_stale_max_s": float("nan"), "metrics_stale": "not measured"}
    longest, said = 0.0, []
    for tm, pts in sorted(per_tm.items()):
        for a, b in unchanged_stretches(pts, t_from, t_to):
            longest = max(longest, b - a)
            if b - a >= STALE_MIN_S:
                said.append(f"{(names or {}).get(tm, tm)} {a - t0:.1f}-{b - t0:.1f} s")
    return {"metrics_stale_max_s": round(longest, 2), "metrics_stale": "; ".join(said)}


def stale_at(clocks: list[tuple[float, dict[str, float]]], secs: np.ndarray, t0: float) -> list[int]:
    """Per second of the time series (s since ``t0``): how many taskmanagers' readings were stale
    then, inside one of the stretches ``stale_readings`` names (after its last fresh reading, up to
    its end)."""
    spans = [(a, b) for pts in _per_taskmanager(clocks, t0).values()
             for a, b in unchanged_stretches(pts, -math.inf, math.inf) if b - a >= STALE_MIN_S]
    return [sum(1 for a, b in spans if a < s <= b) for s in np.asarray(secs, dtype=float)]


def stale_seconds(series: pd.DataFrame) -> pd.Series:
    """Per row of a time series: whether Flink's readings were stale that second (``stale_at``'s
    ``taskmanagers_stale``; False where the series has no such column)."""
    if "taskmanagers_stale" not in series:
        return pd.Series(False, index=series.index)
    return series["taskmanagers_stale"].fillna(0) > 0


def checkpoint_progress(samples: list[tuple[float, int, int]], t_from: float, t_to: float) -> dict:
    """From (t, completed, failed) samples of the job's checkpoint counts: how many completed and
    failed inside [t_from, t_to], and the longest time over which none completed. The jobmanager
    counts checkpoints itself: a check on the metric store's readings, which can go stale."""
    pts = [(t, c, f) for t, c, f in samples if t_from <= t <= t_to]
    if len(pts) < 2:
        return {"checkpoints_completed": float("nan"), "checkpoints_failed": float("nan"),
                "checkpoint_gap_max_s": float("nan")}
    # from the first sample that saw a completion to the first that saw the next (or the last sample)
    marks = [pts[0][0]] + [t for (t, c, _f), (_t, c0, _f0) in zip(pts[1:], pts) if c != c0] + [pts[-1][0]]
    return {"checkpoints_completed": pts[-1][1] - pts[0][1], "checkpoints_failed": pts[-1][2] - pts[0][2],
            "checkpoint_gap_max_s": round(max(b - a for a, b in zip(marks, marks[1:])), 2)}


def processed_rate(samples: list[tuple[float, int]], t_from: float, t_to: float) -> float:
    """Growth of a counter per second between the first and last samples inside [t_from, t_to]."""
    inside = [(t, v) for t, v in samples if t_from <= t <= t_to and v is not None]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return float("nan")
    (ta, va), (tb, vb) = inside[0], inside[-1]
    return (vb - va) / (tb - ta)


NOT_APPLICABLE = "not applicable"
ACCOUNTING_NAN = ("expected_windows", "received_windows", "missing_windows", "repeated_windows",
                  "unexpected_windows", "counted", "expected_counted", "lost", "duplicated")


def window_results(raw: Record) -> list:
    """The windowed results, with a missing window start taken as the end minus the window size."""
    size = round(raw.params.window * 1000)
    return [[k, ws if ws is not None else we - size, we, cnt, ts, arr]
            for k, ws, we, cnt, ts, arr in raw.collected.results]


def event_accounting(t0: float, sch: Schedule, keys: int, events: list) -> dict:
    """One result per event: per (key, event time), the results against the events the schedule put
    there (event j: key j mod keys, time ``Schedule.time_ms``); the shortfall is lost, the excess
    (and any result the schedule has no event for) duplicated."""
    j = np.arange(sch.total, dtype=np.int64)
    ts = schedule.event_times_ms(t0, j, sch)
    base = int(ts[0]) if len(ts) else 0
    span = (int(ts[-1]) - base + 1) if len(ts) else 1
    exp_codes, exp_n = np.unique((j % keys) * span + (ts - base), return_counts=True)
    got_codes, unexpected = [], 0
    for k, t, _arr in events:
        n = int(k[1:]) if isinstance(k, str) and k[:1] == "k" and k[1:].isdigit() else -1
        if 0 <= n < keys and 0 <= int(t) - base < span:
            got_codes.append(n * span + int(t) - base)
        else:
            unexpected += 1
    got_codes, got_n = np.unique(np.asarray(got_codes, dtype=np.int64), return_counts=True)
    at = np.searchsorted(exp_codes, got_codes)
    known = (at < len(exp_codes)) & (exp_codes[np.minimum(at, len(exp_codes) - 1)] == got_codes)
    got_per_expected = np.zeros(len(exp_codes), dtype=np.int64)
    got_per_expected[at[known]] = got_n[known]
    lost = int(np.maximum(0, exp_n - got_per_expected).sum())
    duplicated = int(np.maximum(0, got_per_expected - exp_n).sum() + got_n[~known].sum() + unexpected)
    return {"expected_windows": float("nan"), "received_windows": float("nan"), "missing_windows": float("nan"),
            "repeated_windows": float("nan"), "unexpected_windows": float("nan"), "counted": len(events),
            "expected_counted": int(sch.total), "lost": lost, "duplicated": duplicated}


def output_accounting(raw: Record) -> dict:
    """The accounting the job's output allows (module doc), with ``accounting`` naming which."""
    windows = window_results(raw)
    events = raw.collected.event_results
    records = len(windows) + len(events)
    if windows and all(r[3] is not None for r in windows):
        return {"accounting": "windows", **accounting(raw.expected, windows)}
    if raw.params.output == "events" and not windows:
        return {"accounting": "events", **event_accounting(raw.t0, raw.params.schedule, raw.params.keys, events),
                "result_records": records}
    return {"accounting": NOT_APPLICABLE, **{k: float("nan") for k in ACCOUNTING_NAN}, "result_records": records}


def measured_latency(raw: Record, warmup_s: float) -> pd.DataFrame:
    """Every measured result's latency (``latency_samples`` or ``event_latency_samples``), with
    ``latency_from`` naming what it is measured from."""
    windows = window_results(raw)
    if windows:
        lat = latency_samples(windows, raw.t0_ms, warmup_s, closed_by_load_ms(raw))
        return lat.assign(latency_from="window_end")
    lat = event_latency_samples(raw.collected.event_results, raw.t0_ms, warmup_s, raw.last_due_ms)
    return lat.assign(latency_from="ts")


def cell_metrics(raw: Record, warmup_s: float, flink_samples: list[tuple[float, int]]) -> dict:
    prm = raw.params
    prods = raw.producers
    acc = output_accounting(raw)
    lat = measured_latency(raw, warmup_s)
    latency_from = lat["latency_from"].iloc[0] if len(lat) else "none"
    lat = lat.loc[lat["in_stats"], "latency_ms"].to_numpy(dtype=float)
    t0 = raw.t0_ms / 1000
    sent = sum(p.sent for p in prods)
    return {
        "offered_rate": prm.rate,
        "achieved_rate": achieved_rate(prods, warmup_s, prm.duration),
        "processed_rate": processed_rate(flink_samples, t0 + warmup_s, t0 + prm.duration),
        "source_counter_unchanged_max_s": counter_unchanged_s(flink_samples, t0 + warmup_s, t0 + prm.duration),
        "events_sent": sent, "events_acked": sum(p.acked for p in prods),
        "driver_behind_events": sum(p.behind for p in prods),
        "driver_late_fraction": sum(p.behind for p in prods) / sent if sent else float("nan"),
        "driver_max_lag_ms": max(p.max_lag_ms for p in prods),
        "driver_fell_behind": bool(sent) and sum(p.behind for p in prods) / sent > DRIVER_LATE_LIMIT,
        "producer_errors": sum(p.failed for p in prods),
        "events_unacknowledged": sum(p.unacknowledged for p in prods),
        **acc, "unreadable_results": raw.collected.other_count, "latency_from": latency_from,
        "result_records_read": _count(raw.collected.read_records),
        "results_unread": _count(raw.collected.unread_offsets),
        **latency_stats(lat),
    }


def _count(v) -> float:
    return float("nan") if v is None else v


def _n(v) -> int:
    """A count that may be absent (None or NaN): 0 then."""
    return 0 if v is None or v != v else int(v)


BACKLOG = "behind"


def source_behind_at_end(series: pd.DataFrame, duration_s: float) -> float:
    """Events the broker had acknowledged that the job's source had not read yet, at the load's last
    second (the time series' lag there; NaN where it was not read)."""
    at = series[series["t_s"] <= duration_s - 1]["lag"].dropna()
    return float(at.iloc[-1]) if len(at) else float("nan")


def loss_attribution(row: dict) -> dict:
    """Where the events behind ``lost`` went, from the counters along their path: the driver's
    unacknowledged sends, Flink's late-record drops and its sink's sends and send errors, the results
    topic's records against those the collector read. Results the collector left unread are the
    testbed's loss, not the system's: ``lost`` is then NaN (not measured), never a number."""
    lost = row.get("lost")
    unread, read = _n(row.get("results_unread")), row.get("result_records_read")
    out: dict = {}
    causes = []
    if unread > 0:
        causes.append(f"the testbed's collector stopped {unread} records short of the results topic's end")
        out["lost"] = float("nan")
    if _n(row.get("events_unacknowledged")) or _n(row.get("producer_errors")):
        causes.append(f"{_n(row.get('events_unacknowledged'))} events never acknowledged by the broker "
                      f"({_n(row.get('producer_errors'))} producer errors)")
    if _n(row.get("late_records_dropped")):
        causes.append(f"Flink's window operators dropped {_n(row.get('late_records_dropped'))} records as late")
    if _n(row.get("sink_send_errors")):
        causes.append(f"Flink's sink failed to send {_n(row.get('sink_send_errors'))} results")
    sent = row.get("sink_records_sent")
    # what the collector read is the whole topic when it reached the end; a restarted task counts
    # from 0 again: the sink's sends compare with the topic only without restarts
    if not unread and not _n(row.get("restarts")) and sent == sent and sent is not None and read == read \
            and read is not None and sent > read:
        causes.append(f"{int(sent - read)} results Flink's sink sent are not in the topic")
    behind = row.get("source_behind_at_end")
    per_event = max(1.0, _count(row.get("window_s")) / _count(row.get("slide_s"))) \
        if _count(row.get("slide_s")) > 0 else 1.0
    if not causes and lost and lost == lost and behind and behind == behind and 0 < lost <= behind * per_event:
        # not lost along the path: never read, because the job had fallen behind its input
        out["loss_cause"] = (f"{BACKLOG}: the job's source was {behind:,.0f} events behind the events topic when "
                             "the load ended, so their windows were never computed before the results were read "
                             "(the job's throughput was below the offered rate: see processed_rate and lag_slope)")
    elif lost is None or lost != lost or lost == 0:
        out["loss_cause"] = "; ".join(causes) if unread > 0 else ("none" if lost == 0 else "not applicable")
    else:
        out["loss_cause"] = "; ".join(causes) or (
            f"not explained by the counters: {_n(row.get('missing_windows'))} windows never reported, the rest "
            "reported with fewer events (the counters show no late drop, send error or unread result)")
    return out


def closed_by_load_ms(raw: Record) -> int:
    """The last window end that the load's own watermark passes (last due time - watermark delay);
    later windows are closed by the flush event sent after the load, at an arbitrary moment."""
    return raw.last_due_ms - round(raw.params.watermark_delay * 1000)


def latency_samples(results: list, t0_ms: int, warmup_s: float, last_closed_ms: int) -> pd.DataFrame:
    """Every window's first result: window end (s since the first event), latency (ms), and whether
    it is inside the statistics (ends after warm-up and no later than ``last_closed_ms``)."""
    seen: set = set()
    rows = []
    for key, ws, we, _cnt, _max_ts, arrival in sorted(results, key=lambda r: r[5]):
        if (key, ws) in seen:
            continue
        seen.add((key, ws))
        rows.append({"key": key, "window_end_s": (we - t0_ms) / 1000, "latency_ms": float(arrival - we),
                     "in_stats": bool(t0_ms + warmup_s * 1000 <= we <= last_closed_ms)})
    return pd.DataFrame(rows, columns=["key", "window_end_s", "latency_ms", "in_stats"])


def event_latency_samples(events: list, t0_ms: int, warmup_s: float, last_due_ms: int) -> pd.DataFrame:
    """Every per-event result: its event time (s since the first event, in ``window_end_s``, the
    column windowed results use), latency = arrival - event time (ms), and whether it is inside the
    statistics (its event came after warm-up). A repeated result is a sample of its own."""
    if not events:
        return pd.DataFrame(columns=["key", "window_end_s", "latency_ms", "in_stats"])
    keys, ts, arrival = zip(*events)
    ts, arrival = np.asarray(ts, dtype=np.int64), np.asarray(arrival, dtype=np.int64)
    return pd.DataFrame({"key": keys, "window_end_s": (ts - t0_ms) / 1000, "latency_ms": (arrival - ts).astype(float),
                         "in_stats": (ts >= t0_ms + warmup_s * 1000) & (ts <= last_due_ms)})


def timeseries(raw: Record, flink_samples: list[tuple[float, int]]) -> pd.DataFrame:
    """Per second of the run: offered, achieved (acked) and processed rates and the consumer lag
    (events the broker acknowledged minus events the Flink source had read)."""
    prm = raw.params
    t0 = raw.t0_ms / 1000
    n = int(math.ceil(prm.duration))
    acked = np.zeros(n + 1)
    for p in raw.producers:
        for sec, k in enumerate(p.acked_per_s):
            if sec <= n:
                acked[sec] += k
    pts = [(t - t0, v) for t, v in flink_samples if v is not None]
    secs = np.arange(n + 1, dtype=float)
    if len(pts) >= 2:
        ts, vs = zip(*pts)
        read = np.interp(secs + 1, ts, vs, left=np.nan, right=np.nan)
    else:
        read = np.full(n + 1, np.nan)
    processed = np.diff(np.concatenate([[np.interp(0, *zip(*pts)) if len(pts) >= 2 else np.nan], read]))
    sch = prm.schedule
    return pd.DataFrame({"t_s": secs, "offered_rate": [sch.rate_at(t) for t in secs], "achieved_rate": acked,
                         "processed_rate": processed, "lag": np.cumsum(acked) - read})


def lag_slope(series: pd.DataFrame, warmup_s: float, duration_s: float) -> float:
    """Slope (events/s per s) of a linear fit to the consumer lag after warm-up: ~0 when the system
    keeps up, the shortfall in events/s when it does not (Theodolite's lag-trend criterion)."""
    g = series[(series["t_s"] >= warmup_s) & (series["t_s"] < duration_s)].dropna(subset=["lag"])
    if len(g) < 3:
        return float("nan")
    return float(np.polyfit(g["t_s"], g["lag"], 1)[0])


def cores_at(samples: list[tuple[float, float]], secs: np.ndarray) -> np.ndarray:
    """Cores used in each second ``secs`` (s since t0), from samples (t, CPU seconds so far): the
    slope of the sampled interval that holds the second (NaN outside the samples)."""
    out = np.full(len(secs), np.nan)
    pts = sorted(samples)
    for (ta, va), (tb, vb) in zip(pts, pts[1:]):
        if tb > ta:
            out[(secs >= ta) & (secs < tb)] = max(0.0, (vb - va) / (tb - ta))
    return out
