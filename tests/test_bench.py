"""The driver benchmark runs the driver's producers alone against a fresh broker and cleans up.
It checks what the numbers mean, never how fast they are (speed belongs in the tables of docs/measurements/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testbed.core.run import LABEL_PROJECT
from testbed.providers.engine import host_client

# it starts containers of its own and loads the machine: never while the testbed is calibrated
pytestmark = [pytest.mark.engine, pytest.mark.extended, pytest.mark.exclusive("lifecycle")]
ROOT = Path(__file__).resolve().parent.parent


def test_bench_driver_reports_rate_cpu_lateness_and_loss_and_leaves_nothing():
    client = host_client()

    def ours() -> set[str]:
        flt = {"label": LABEL_PROJECT}
        return ({c.name for c in client.containers.list(all=True, filters=flt) if "-bench-" in c.name}
                | {n.name for n in client.networks.list(filters=flt) if "-bench-" in n.name})

    before = ours()
    r = subprocess.run([sys.executable, "-m", "testbed", "bench", "driver", "--rate", "2000", "--duration", "3",
                        "--json"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res["events_sent"] == 6000 and res["events_acked"] == 6000 and res["lost"] == 0
    assert res["offered_rate"] == 2000 and res["events_per_s"] > 0 and res["elapsed_s"] >= 3
    assert 0 < res["cpu_cores"] and res["events_per_cpu_s"] == pytest.approx(6000 / res["cpu_s"], rel=0.01)
    assert 0 <= res["late_fraction"] <= 1 and res["max_lag_ms"] >= 0
    assert res["broker_cpu_cores"] > 0 and res["payload_bytes"] == 100 and res["driver"].startswith("confluent-kafka")
    assert ours() == before, "the benchmark's broker, driver and network are gone"
