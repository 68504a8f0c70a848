"""What the open-loop schedule implies, computed instead of counted: the driver keeps no per-event
books. Event j of a run is due at t0 + ``Schedule.due_s(j)`` (j / rate, after a warm-up phase at
its own rate if there is one), its event time is that instant in whole ms (``Schedule.time_ms``, the
same float arithmetic here, vectorised), its key is ``k{j % keys}``;
each event belongs to the size/slide sliding windows that contain its event time.
"""

from __future__ import annotations

import numpy as np

from .driver import Schedule

CHUNK = 2_000_000


def windows_of(ts_ms: int, size_ms: int, slide_ms: int):
    """Start times of every sliding window [start, start + size) that contains ``ts_ms``."""
    start = ts_ms - ts_ms % slide_ms
    while start > ts_ms - size_ms:
        yield start
        start -= slide_ms


def event_times_ms(t0: float, j: np.ndarray, sch: Schedule) -> np.ndarray:
    """``Schedule.time_ms`` for an array of event numbers (IEEE float64, the same operations)."""
    j = np.asarray(j, dtype=np.int64)
    due = np.where(j < sch.first, j / sch.warmup_rate, sch.warmup_s + (j - sch.first) / sch.rate)
    return ((t0 + due) * 1000).astype(np.int64)


def expected_counts(t0: float, sch: Schedule, keys: int, size_ms: int, slide_ms: int) -> list[list]:
    """[key, window start (ms), events] for every (key, window) the schedule puts events in."""
    total = sch.total
    if total == 0:
        return []
    if size_ms % slide_ms:
        raise ValueError(f"window size {size_ms} ms is not a multiple of the slide {slide_ms} ms")
    first = sch.time_ms(t0, 0) // slide_ms
    last = sch.time_ms(t0, total - 1) // slide_ms
    buckets = np.zeros((keys, last - first + 1), dtype=np.int64)   # events per key per slide
    for lo in range(0, total, CHUNK):
        j = np.arange(lo, min(total, lo + CHUNK), dtype=np.int64)
        b = event_times_ms(t0, j, sch) // slide_ms - first
        buckets += np.bincount((j % keys) * buckets.shape[1] + b,
                               minlength=buckets.size).reshape(buckets.shape)
    per = size_ms // slide_ms
    # the window starting at slide s holds slides s .. s + per - 1: a running sum over ``per`` slides
    padded = np.concatenate([np.zeros((keys, per - 1), dtype=np.int64), buckets,
                             np.zeros((keys, per - 1), dtype=np.int64)], axis=1)
    csum = np.concatenate([np.zeros((keys, 1), dtype=np.int64), np.cumsum(padded, axis=1)], axis=1)
    windows = csum[:, per:] - csum[:, :-per]             # column w: the window starting at slide first-(per-1)+w
    ks, ws = np.nonzero(windows)
    start0 = (first - (per - 1)) * slide_ms
    return [[f"k{k}", int(start0 + w * slide_ms), int(windows[k, w])] for k, w in zip(ks.tolist(), ws.tolist())]


def last_due_s(t0: float, sch: Schedule) -> float:
    return t0 + sch.due_s(sch.total - 1)


def flush_time_ms(t0: float, sch: Schedule, size_s: float, slide_s: float, watermark_delay_s: float) -> int:
    """The flush events' event time: far enough past the last event to close every window."""
    return int((last_due_s(t0, sch) + size_s + slide_s + watermark_delay_s + 1) * 1000)
