"""The emulated WAN under load, on the real engine: link settings as an axis of a session's matrix
(set and calibrated per value), the RTT each cell's traffic met, and the bottleneck's queue under a
saturating flow. The seed's link is 20 ms and 100 Mbit/s; every test sets it back."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from testbed.experiment.options import EXPERIMENT, TESTBED, Experiment
from testbed.experiment.session import Session
from testbed.measure.prober import Prober, loaded_rtt
from testbed.stack import calibrate

pytestmark = [pytest.mark.engine, pytest.mark.extended, pytest.mark.exclusive("seed-network", "lifecycle")]


def _options(**kw) -> dict:
    o = {opt.dest: opt.kwargs.get("default") for opt in TESTBED + EXPERIMENT}
    o.update(repetitions=1, duration=14.0, warmup=4.0, window=2.0, slide=1.0, watermark_delay=0.5,
             taskmanagers="1", placements="single-cloud:google", rates="300")
    o.update(kw)
    return o


@pytest.mark.quiet      # it calibrates: no other engine test meanwhile
def test_a_link_axis_sets_and_calibrates_each_value_and_each_row_says_what_rtt_its_load_met(fst_testbed, tmp_path):
    tb = fst_testbed
    session = Session(Experiment.from_options(_options(links="azure-google:rtt_ms=10,40")), tmp_path)
    try:
        cells = session.plan(tb.topology)
        session.calibrate(tb, "fail")
        rows = session.run(tb, cells)
    finally:
        session.close()
        tb.wan.use(tb.topology.links)
    assert [r.get("error", "") for r in rows] == ["", ""], rows
    cal = pd.read_csv(session.path / "calibration.csv")
    inter = cal[(cal["kind"] == "rtt") & (cal["src_cloud"] != cal["dst_cloud"])]
    # each value measured once, before its cells, against its own target
    assert sorted(inter.groupby("links")["target"].first().items()) == [
        ("azure-google:rtt_ms=10", 10.0), ("azure-google:rtt_ms=40", 40.0)]
    assert inter["ok"].all(), inter
    for row, rtt_ms in zip(rows, (10, 40)):
        assert row["links"] == f"azure-google:rtt_ms={rtt_ms}" and row["link_azure-google_rtt_ms"] == rtt_ms
        assert abs(row["wan_rtt_loaded_p50_ms"] - rtt_ms) <= max(1.0, 0.1 * rtt_ms), row["wan_rtt_loaded"]
        assert "wan" not in row["testbed_limited"].split(","), row["testbed_limited_why"]
        series = pd.read_parquet(session.path / "timeseries" / f"{row['cell']}.parquet")
        measured = series[(series["t_s"] >= 4) & (series["t_s"] < 14)]["wan_rtt_ms:azure-google"]
        assert measured.notna().all() and abs(measured.median() - rtt_ms) <= max(1.0, 0.1 * rtt_ms), measured


def _under_a_bulk_flow(tb, seconds: int = 8) -> tuple[dict, float]:
    """The RTT across azure-google (probes both ways) while one TCP flow saturates google -> azure,
    and the flow's rate in Mbit/s. The flow's congestion control is Reno, loss-based as CUBIC (most
    kernels' default) is: it fills whatever queue there is until a packet drops. BBR, this machine's
    default, keeps its own queue short (and Reno and BBR are what an unprivileged socket may choose here)."""
    reps = calibrate.representatives(tb)
    (link,) = calibrate.links(tb)
    prober = Prober(tb, [link], seconds + 30).start()
    t = time.time()
    try:
        res = calibrate._iperf(tb, reps["google"], reps["azure"], ["-C", "reno"], seconds)
    finally:
        samples = prober.stop()
    # the flow's own set-up is before it: its last seconds, past slow start
    return loaded_rtt(samples, [link], t + 4, time.time() - 1), res["end"]["sum_received"]["bits_per_second"] / 1e6


@pytest.mark.quiet
def test_a_one_bdp_queue_bounds_the_delay_a_saturating_flow_adds_and_a_long_queue_does_not(fst_testbed):
    tb = fst_testbed
    out = {}
    try:
        for buffer_ms in (None, 60_000):        # one bandwidth-delay product (20 ms), and 100,000 packets
            tb.wan.set_link("azure", "google", bandwidth_mbit=20, buffer_ms=buffer_ms)
            out[buffer_ms] = _under_a_bulk_flow(tb)
    finally:
        tb.wan.use(tb.topology.links)
    (bdp, bdp_mbit), (long, long_mbit) = out[None], out[60_000]
    print(f"queue of 1 BDP: RTT p50 {bdp['wan_rtt_loaded_p50_ms']} ms, p99 {bdp['wan_rtt_loaded_p99_ms']} ms, "
          f"{bdp_mbit:.1f} Mbit/s; of 100,000 packets: p50 {long['wan_rtt_loaded_p50_ms']} ms, "
          f"p99 {long['wan_rtt_loaded_p99_ms']} ms, {long_mbit:.1f} Mbit/s")
    assert tb.wan.links[("google", "azure")].queue_packets == tb.topology.links[0].queue_packets()
    # both fill the link; the short queue adds at most its own 20 ms, the long one far more
    assert bdp_mbit >= 0.8 * 20 and long_mbit >= 0.8 * 20
    assert bdp["wan_rtt_loaded_p50_ms"] <= 20 + 20 + 5
    assert long["wan_rtt_loaded_p50_ms"] >= 4 * 20



def test_a_holder_killed_during_a_cell_fails_that_cell_naming_the_link(fst_testbed):
    """With the NFQUEUE backend, a holder that dies during a cell leaves its direction dropping every
    packet: the cell fails naming the direction, whatever the lost link broke first (the job's
    submission, its taskmanagers, or nothing until the check after the load), rather than with
    Flink's error alone or letting a partition nobody asked for pass for the system's behaviour."""
    import threading

    from testbed.core.run import wait_for
    from testbed.experiment.cell import CellSpec, run_cell
    from testbed.providers.wan import ids
    from testbed.workload import load
    from testbed.workload.pipeline import WindowSpec
    wan = fst_testbed.wan
    if wan.backend != "nfqueue":
        pytest.skip("netem's delay lives in the kernel: no holder to lose")
    d = wan.links[("google", "azure")]
    _minor, queue = ids(sorted(wan.subnets), d)
    spec = CellSpec(taskmanagers=2, placement="multi-cloud", rate=200, duration=16, warmup=4,
                    window=WindowSpec(2, 1, 0.5))
    failure: list[BaseException] = []

    def cell() -> None:
        try:
            run_cell(fst_testbed, spec)
        except BaseException as e:  # noqa: BLE001 - what the test is about
            failure.append(e)

    t = threading.Thread(target=cell)
    t.start()
    try:
        # once the cell's drivers are there (they start while its job is submitted), the holder goes
        wait_for(lambda: load.names(fst_testbed), 180, "the cell's load to start")
        wan.router.exec_run(["pkill", "-f", f"^python3 /usr/local/bin/wan-delay.py {queue} "])
        t.join(300)
    finally:
        wan.set_direction(d)    # starts the holder again
        wait_for(lambda: wan.health() == [], 10, "the holder back, writing its stats")
    assert not t.is_alive() and failure, "the cell did not fail"
    text = str(failure[0])
    assert "the emulated WAN is broken: the WAN link google -> azure" in text and "has exited" in text, text
