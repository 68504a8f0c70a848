"""The emulated WAN between the seed's clouds, checked by measurement on the real engine.

The seed topology sets 20 ms RTT and 100 Mbit/s between azure and google. These tests change the
link at run time, so they run one at a time with the pipeline tests (``exclusive``)."""

from __future__ import annotations

import pytest

from testbed.experiment import CellSpec, run_cell
from testbed.providers.wan import BACKENDS
from testbed.stack import calibrate
from testbed.workload.pipeline import WindowSpec

pytestmark = [pytest.mark.engine, pytest.mark.exclusive("seed-network")]


def test_seed_link_is_measured_within_tolerance(testbed):
    rows = testbed.calibration
    assert rows, "the session's testbed was calibrated after provisioning"
    assert testbed.wan.backend in BACKENDS and testbed.wan.backend == testbed.wan.detect()
    inter = [r for r in rows if r["kind"] == "rtt" and r["src_cloud"] != r["dst_cloud"]]
    intra = [r for r in rows if r["kind"] == "rtt" and r["src_cloud"] == r["dst_cloud"]]
    assert len(inter) == 8 and len(intra) == 12   # azure (4 nodes) <-> google (1), both ways; azure pairs
    for r in inter:
        assert abs(r["measured"] - 20.0) <= 2.0, r   # ±10 % or ±1 ms, whichever is larger
    for r in intra:
        assert r["measured"] < 1.0, r
    tcp = [r for r in rows if r["kind"] == "tcp_throughput"]
    assert {(r["src_cloud"], r["dst_cloud"]) for r in tcp} == {("azure", "google"), ("google", "azure")}
    for r in tcp:
        assert 90.0 <= r["measured"] <= 110.0, r


def test_one_percent_loss_is_measured_within_tolerance(testbed):
    testbed.wan.set_link("azure", "google", loss_pct=1.0)
    try:
        rows = calibrate.loss(testbed, testbed.provider.progress)
    finally:
        testbed.wan.set_link("azure", "google", loss_pct=0.0)
    assert len(rows) == 2
    for r in rows:
        assert r["samples"] >= 5000, r                 # enough packets for a 1 % estimate
        assert abs(r["measured"] - 1.0) <= r["tolerance"], r
        assert r["tolerance"] < 0.5


def test_spreading_across_clouds_adds_the_wan_delay_to_window_latency(testbed):
    """With a long link (200 ms RTT) the difference is far above run-to-run noise."""
    testbed.wan.set_link("azure", "google", rtt_ms=200)
    try:
        rows = {}
        for placement in ("single-cloud", "multi-cloud"):
            spec = CellSpec(taskmanagers=2, placement=placement, rate=500, duration=20, warmup=5,
                            window=WindowSpec(4, 1, 1))
            rows[placement] = run_cell(testbed, spec, lambda m: None)
    finally:
        testbed.wan.set_link("azure", "google", rtt_ms=20)
    single, multi = rows["single-cloud"], rows["multi-cloud"]
    print(f"p50 single-cloud {single['latency_p50_ms']:.0f} ms, multi-cloud {multi['latency_p50_ms']:.0f} ms")
    assert single["lost"] == multi["lost"] == 0
    assert multi["latency_p50_ms"] - single["latency_p50_ms"] >= 100, (single, multi)
