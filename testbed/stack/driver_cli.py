"""The load driver's command lines, built in one place. The driver (``workload/driver.py``, the
program in the driver image) takes ``--bootstrap`` and ``--timeout`` and then one of ``admin``,
``produce``, ``collect`` or ``consume``; every caller (topic administration, a cell's load, the
benchmarks, the plain stack of the overhead comparison) asks here for the argv, so a flag is spelt in
one place besides the driver's own parser. Values equal to the driver's defaults may be left out.
"""

from __future__ import annotations

import json

PROGRAM = "/opt/driver/driver.py"


def _base(bootstrap: str, timeout: float | None) -> list[str]:
    return [PROGRAM, "--bootstrap", bootstrap] + (["--timeout", f"{timeout:g}"] if timeout is not None else [])


def admin(bootstrap: str, create: list[str] = (), delete: list[str] = (), timeout: float | None = 120,
          delete_prefix: list[str] = (), keep: list[str] = ()) -> list[str]:
    """Create ``topic:partitions`` / delete topics (kafka-python's admin client), and every topic
    whose name starts with one of ``delete_prefix`` but those created and those in ``keep``."""
    return (_base(bootstrap, timeout) + ["admin"] + (["--delete", *delete] if delete else [])
            + (["--delete-prefix", *delete_prefix] if delete_prefix else [])
            + (["--keep", *keep] if keep else [])
            + (["--create", *create] if create else []))


def produce(bootstrap: str, events: str, rate: float, duration: float, *, slice_: str = "0/1", processes: int = 1,
            keys: int = 16, payload_bytes: int = 0, control: str = "", out: str = "", warmup_rate: float = 0.0,
            warmup_s: float = 0.0, t0: float = 0.0, producer_properties: dict | None = None,
            timeout: float | None = 120) -> list[str]:
    """One slice of the open-loop schedule into ``events`` (started by a start file in ``control``, or
    at ``t0``)."""
    argv = _base(bootstrap, timeout) + [
        "produce", "--events", events, "--rate", repr(float(rate)), "--duration", repr(float(duration)),
        "--slice", slice_, "--processes", str(processes), "--keys", str(keys), "--payload-bytes", str(payload_bytes),
        "--warmup-rate", repr(float(warmup_rate)), "--warmup-s", repr(float(warmup_s))]
    if control:
        argv += ["--control", control]
    if out:
        argv += ["--out", out]
    if t0:
        argv += ["--t0", repr(float(t0))]
    if producer_properties is not None:
        argv += ["--producer-properties", json.dumps(dict(producer_properties))]
    return argv


def collect(bootstrap: str, events: str, results: str, drain_s: float, control: str, out: str,
            timeout: float | None = 120) -> list[str]:
    """Read the results topic until the harness says the load is over, then ``drain_s`` more."""
    return _base(bootstrap, timeout) + ["collect", "--events", events, "--results", results, "--drain", str(drain_s),
                                        "--control", control, "--out", out]


def consume(bootstrap: str, events: str, partitions: list[int], t0: float, duration: float,
            fetch_wait_ms: int = 100, timeout: float | None = None) -> list[str]:
    """Read ``partitions`` from ``t0`` for ``duration`` s, latency per minute (bench broker)."""
    return _base(bootstrap, timeout) + ["consume", "--events", events, "--partitions", ",".join(map(str, partitions)),
                                        "--t0", repr(float(t0)), "--duration", repr(float(duration)),
                                        "--fetch-wait-ms", str(fetch_wait_ms)]
