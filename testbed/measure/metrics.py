"""From the driver's raw measurements to one cell's metrics. Pure functions, no I/O.

Definitions (the README explains why):

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
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from ..workload.driver import Schedule

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


def achieved_rate(producers: list[dict], warmup_s: float, duration_s: float) -> float:
    """Broker-acknowledged events per second over the whole seconds after warm-up."""
    per_s: Counter = Counter()
    for p in producers:
        for sec, n in p["acked_per_s"]:
            per_s[int(sec)] += n
    lo, hi = int(np.ceil(warmup_s)), int(np.floor(duration_s))
    if hi <= lo:
        lo, hi = 0, max(1, int(np.floor(duration_s)))
    return sum(per_s[s] for s in range(lo, hi)) / (hi - lo)


def processed_rate(samples: list[tuple[float, int]], t_from: float, t_to: float) -> float:
    """Growth of a counter per second between the first and last samples inside [t_from, t_to]."""
    inside = [(t, v) for t, v in samples if t_from <= t <= t_to and v is not None]
    if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
        return float("nan")
    (ta, va), (tb, vb) = inside[0], inside[-1]
    return (vb - va) / (tb - ta)


def cell_metrics(raw: dict, warmup_s: float, flink_samples: list[tuple[float, int]]) -> dict:
    prm = raw["params"]
    prods = raw["producers"]
    acc = accounting(raw["expected"], raw["results"])
    lat = latencies(raw["results"], raw["t0_ms"], warmup_s, closed_by_load_ms(raw))
    t0 = raw["t0_ms"] / 1000
    sent = sum(p["sent"] for p in prods)
    return {
        "offered_rate": prm["rate"],
        "achieved_rate": achieved_rate(prods, warmup_s, prm["duration"]),
        "processed_rate": processed_rate(flink_samples, t0 + warmup_s, t0 + prm["duration"]),
        "events_sent": sent, "events_acked": sum(p["acked"] for p in prods),
        "driver_behind_events": sum(p["behind"] for p in prods),
        "driver_late_fraction": sum(p["behind"] for p in prods) / sent if sent else float("nan"),
        "driver_max_lag_ms": max(p["max_lag_ms"] for p in prods),
        "driver_fell_behind": bool(sent) and sum(p["behind"] for p in prods) / sent > DRIVER_LATE_LIMIT,
        "producer_errors": sum(p["failed"] for p in prods),
        "events_unacknowledged": sum(p["unacknowledged"] for p in prods),
        **acc, **latency_stats(lat),
    }


def closed_by_load_ms(raw: dict) -> int:
    """The last window end that the load's own watermark passes (last due time - watermark delay);
    later windows are closed by the flush event sent after the load, at an arbitrary moment."""
    return raw["last_due_ms"] - round(raw["params"]["watermark_delay"] * 1000)


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


def timeseries(raw: dict, flink_samples: list[tuple[float, int]]) -> pd.DataFrame:
    """Per second of the run: offered, achieved (acked) and processed rates and the consumer lag
    (events the broker acknowledged minus events the Flink source had read)."""
    prm = raw["params"]
    t0 = raw["t0_ms"] / 1000
    n = int(math.ceil(prm["duration"]))
    acked = np.zeros(n + 1)
    for p in raw["producers"]:
        for sec, k in p["acked_per_s"]:
            if 0 <= int(sec) <= n:
                acked[int(sec)] += k
    pts = [(t - t0, v) for t, v in flink_samples if v is not None]
    secs = np.arange(n + 1, dtype=float)
    if len(pts) >= 2:
        ts, vs = zip(*pts)
        read = np.interp(secs + 1, ts, vs, left=np.nan, right=np.nan)
    else:
        read = np.full(n + 1, np.nan)
    processed = np.diff(np.concatenate([[np.interp(0, *zip(*pts)) if len(pts) >= 2 else np.nan], read]))
    sch = Schedule(prm["rate"], prm["duration"], prm.get("warmup_rate", 0.0), prm.get("warmup_s", 0.0))
    return pd.DataFrame({"t_s": secs, "offered_rate": [sch.rate_at(t) for t in secs], "achieved_rate": acked,
                         "processed_rate": processed, "lag": np.cumsum(acked) - read})


def lag_slope(series: pd.DataFrame, warmup_s: float, duration_s: float) -> float:
    """Slope (events/s per s) of a linear fit to the consumer lag after warm-up: ~0 when the system
    keeps up, the shortfall in events/s when it does not (Theodolite's lag-trend criterion)."""
    g = series[(series["t_s"] >= warmup_s) & (series["t_s"] < duration_s)].dropna(subset=["lag"])
    if len(g) < 3:
        return float("nan")
    return float(np.polyfit(g["t_s"], g["lag"], 1)[0])
