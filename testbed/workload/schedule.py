"""The open-loop schedule and what it implies, computed instead of counted: the driver keeps no
per-event books. Event j of a run is due at t0 + ``Schedule.due_s(j)`` (j / rate, after a warm-up
phase at its own rate if there is one), its event time is that instant in whole ms
(``Schedule.time_ms``, the same float arithmetic in ``event_times_ms``, vectorised), its key is
``k{j % keys}``; each event belongs to the size/slide sliding windows that contain its event time.

The driver program (``driver.py``) uses ``Schedule`` too: this file is copied into the driver image
beside it, so it needs nothing but the standard library there (numpy is imported by the harness's
vectorised functions only).
"""

from __future__ import annotations

import math


CHUNK = 2_000_000


def event_time_ms(t0: float, j: int, rate: float) -> int:
    """Event j's event time (= due time), ms, in a schedule at one rate."""
    return int((t0 + j / rate) * 1000)


def events_in_schedule(rate: float, duration: float) -> int:
    return int(round(rate * duration))


class Schedule:
    """The open-loop schedule: ``duration`` seconds, of which the first ``warmup_s`` may run at
    ``warmup_rate`` (a job that starts cold is warmed at a lower rate, then measured at ``rate``).
    Events are numbered across both phases; event j is due ``due_s(j)`` seconds after t0. With no
    warm-up phase, event j is due at j / rate exactly as before (the same float operations)."""

    def __init__(self, rate: float, duration: float, warmup_rate: float = 0.0, warmup_s: float = 0.0):
        self.rate, self.duration = float(rate), float(duration)
        if warmup_rate and warmup_s > 0 and warmup_rate != rate:
            self.warmup_rate, self.warmup_s = float(warmup_rate), float(warmup_s)
            self.first = events_in_schedule(warmup_rate, warmup_s)     # events of the warm-up phase
        else:
            self.warmup_rate, self.warmup_s, self.first = self.rate, 0.0, 0
        self.total = self.first + events_in_schedule(rate, duration - self.warmup_s)

    def due_s(self, j: int) -> float:
        if j < self.first:
            return j / self.warmup_rate
        return self.warmup_s + (j - self.first) / self.rate

    def time_ms(self, t0: float, j: int) -> int:
        """Event j's event time (= due time), ms. The harness's vectorised copy must give the same."""
        return int((t0 + self.due_s(j)) * 1000)

    def due_by(self, t: float) -> int:
        """How many events are due ``t`` seconds after t0 (due_s(j) <= t)."""
        if t < 0:
            return 0
        if t < self.warmup_s:
            return min(self.first, math.floor(t * self.warmup_rate) + 1)
        return min(self.total, self.first + math.floor((t - self.warmup_s) * self.rate) + 1)

    def rate_at(self, t: float) -> float:
        return self.warmup_rate if t < self.warmup_s else self.rate



def windows_of(ts_ms: int, size_ms: int, slide_ms: int):
    """Start times of every sliding window [start, start + size) that contains ``ts_ms``."""
    start = ts_ms - ts_ms % slide_ms
    while start > ts_ms - size_ms:
        yield start
        start -= slide_ms


def event_times_ms(t0: float, j, sch: Schedule):
    """``Schedule.time_ms`` for an array of event numbers (IEEE float64, the same operations)."""
    import numpy as np
    j = np.asarray(j, dtype=np.int64)
    due = np.where(j < sch.first, j / sch.warmup_rate, sch.warmup_s + (j - sch.first) / sch.rate)
    return ((t0 + due) * 1000).astype(np.int64)


def expected_counts(t0: float, sch: Schedule, keys: int, size_ms: int, slide_ms: int) -> list[list]:
    """[key, window start (ms), events] for every (key, window) the schedule puts events in."""
    import numpy as np
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
