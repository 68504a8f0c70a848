"""Driver records for tests of the measures, built through their types (testbed/workload/record.py):
what a test does not look at has a neutral value (one task of one process, no warm-up, no results)."""

from __future__ import annotations

from testbed.workload.record import Collected, Params, Producer, Record, TaskReport


def params(**given) -> Params:
    return Params(**{"rate": 1000.0, "duration": 10.0, "keys": 16, "window": 10.0, "slide": 2.0,
                     "watermark_delay": 0.0, "payload_bytes": 0, "tasks": 1, "processes": 1,
                     "warmup_rate": 0.0, "warmup_s": 0.0, "output": "windows", **given})


def producer(**given) -> Producer:
    return Producer(**{"slice": 0, "slices": 1, "sent": 0, "acked": 0, "failed": 0, "unacknowledged": 0,
                       "behind": 0, "max_lag_ms": 0.0, "cpu_s": 0.0, "acked_per_s": [], **given})


def record(prm: Params | None = None, producers=(), collected: Collected | None = None, t0_ms: int = 0,
           last_due_ms: int = 0, expected=()) -> Record:
    return Record(t0=t0_ms / 1000, t0_ms=t0_ms, last_due_ms=last_due_ms, params=prm or params(),
                  reports=(TaskReport(t0=t0_ms / 1000, task=0, tasks=1, processes=list(producers)),),
                  expected=list(expected), collected=collected or Collected(results=[]))
