"""The seed's pipeline on the emulated seed topology: Flink spread over two clouds, Tansu, the job
and the in-cluster driver, measured end to end."""

from __future__ import annotations

import json
import math
import re
import threading
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from testbed.experiment.cell import CellSpec, run_cell
from testbed.results.store import ResultsDir
from testbed.stack import flink, kafka, services
from testbed.model.placement import choose
from testbed.workload import pipeline
from testbed.workload.jobs import Job
from testbed.workload.pipeline import SEED_WINDOW, WindowSpec
from tests.conftest import messages, records

# Flink, the broker and the WAN of the session's testbed are shared: the tests that use them run one
# at a time, whichever xdist worker has them.
pytestmark = [pytest.mark.engine, pytest.mark.exclusive("seed-network")]
ROOT = Path(__file__).resolve().parent.parent

COLUMNS = {
    "run_id", "cell", "taskmanagers", "placement", "rate", "duration", "warmup", "window_s", "slide_s",
    "watermark_delay_s", "taskmanager_nodes", "taskmanager_clouds", "flink_version", "job_id", "started",
    "ended", "offered_rate", "achieved_rate", "processed_rate", "events_sent", "driver_fell_behind",
    "lost", "duplicated", "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "latency_max_ms",
    "latency_negative", "result_records", "events_acked", "latency_samples", "lag_slope", "registered_taskmanagers",
    "flink_ui", "broker", "broker_node", "driver_nodes", "provider", "wan_backend", "wan_links", "wan_check",
    "repetition", "search", "cell_key", "driver_tasks", "driver_processes", "driver_late_fraction", "payload_bytes",
    "event_bytes", "keys", "cpu_scale", "cpu_limits", "cpu_taskmanager", "cpu_jobmanager", "cpu_broker", "cpu_driver",
    "driver_cpu_cores", "taskmanager_cpu_cores", "broker_cpu_cores", "jobmanager_cpu_cores",
    "producer_properties", "broker_backlog_max_s", "broker_ack_p50_ms", "broker_ack_p99_ms", "broker_ack_max_ms",
    "broker_cpu_of_limit", "collector_behind_max_s", "collector_behind_max_records", "collector_delivery_p50_ms", "collector_delivery_p99_ms", "collector_delivery_max_ms",
    "wan_queue_drops", "wan_late_fraction", "host_cpu_busy", "host_cpu_steal", "testbed_limited",
    "testbed_limited_why", "testbed_notes", "cpu_model", "node_cpu_budgets", "node_cpu_used",
    "metrics_stale_max_s", "metrics_stale", "metric_fetch_timeout", "checkpoints_completed", "checkpoint_gap_max_s",
    "wan_rtt_loaded", "wan_rtt_loaded_link", "wan_rtt_loaded_p50_ms", "wan_rtt_loaded_p99_ms", "wan_stamped_fraction",
    "source_window_cap_ev_s", "source_behind_at_end", "submit", "submit_s", "cell_wall_s", "fixed_cost_s", "links",
    "axis_values", "link_sources",
}


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_cell_with_taskmanagers_on_two_clouds(fst_testbed, tmp_path):
    seen = {"taskmanagers": 0, "running_jobs": 0, "errors": 0}
    stop = threading.Event()

    def watch() -> None:
        """What a researcher sees in the Flink UI during the run, at the URL the testbed printed."""
        while not stop.wait(1.0):
            url = next((r.flink_ui for r in said if hasattr(r, "flink_ui")), None)
            if not url:
                continue
            try:
                seen["taskmanagers"] = max(seen["taskmanagers"], len(_get(url + "/taskmanagers")["taskmanagers"]))
                jobs = _get(url + "/jobs/overview")["jobs"]
                seen["running_jobs"] = max(seen["running_jobs"], sum(j["state"] == "RUNNING" for j in jobs))
            except OSError:
                seen["errors"] += 1

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    # two driver tasks in two clouds share the schedule; 100-byte events; every service CPU-limited
    drivers = ("azure-swarm-manager", "google-cloud-worker-1")
    spec = CellSpec(taskmanagers=2, placement="multi-cloud", rate=300, duration=20, warmup=4,
                    window=WindowSpec(4, 1, 1), driver_nodes=drivers, payload_bytes=100, cpu_scale=0.25)
    try:
        artifacts: dict = {}
        with records() as said:
            row = run_cell(fst_testbed, spec, artifacts)
    finally:
        stop.set()
        watcher.join()
    assert set(row["taskmanager_clouds"].split(",")) == {"azure", "google"}
    assert row["registered_taskmanagers"] == 2
    assert seen["taskmanagers"] == 2 and seen["running_jobs"] == 1, (seen, messages(said))
    assert re.fullmatch(r"http://[\d.]+:8081", row["flink_ui"])
    assert row["events_sent"] == 300 * 20 and row["events_acked"] == row["events_sent"]
    assert row["result_records"] > 0 and row["expected_windows"] == row["received_windows"]
    assert row["lost"] == 0 and row["duplicated"] == 0, row
    assert row["counted"] == row["events_sent"] * 4
    assert 0 < row["latency_p50_ms"] < math.inf and row["latency_samples"] > 0
    assert row["achieved_rate"] == pytest.approx(300, rel=0.1)
    assert row["processed_rate"] == pytest.approx(300, rel=0.25)
    # the lag is what the source has not read yet: under one second of events. Read from the REST
    # API's one-second-old values it was that second (300 events) on top of the real lag (measured
    # here 160-230 events at 300 ev/s under these CPU limits: fetch waits, throttled services)
    series = artifacts["timeseries"]
    after = series[(series["t_s"] >= spec.warmup) & (series["t_s"] < spec.duration - 1)]["lag"].dropna()
    assert len(after) >= 10 and after.abs().median() < 300, after.tolist()
    assert row["driver_tasks"] == 2 and row["driver_nodes"] == ",".join(drivers) and row["event_bytes"] == 100
    assert row["driver_late_fraction"] == 0 and not row["driver_fell_behind"], row
    # the scale reached the nodes (2 CPUs x 0.25 each, one budget per node), or, where the host cannot
    # nest a node's containers under it, each service (tests/test_cpu.py measures the sharing)
    if row["cpu_model"].startswith("node budget"):
        assert set(json.loads(row["node_cpu_budgets"]).values()) == {0.5}
        assert row["cpu_taskmanager"] == row["cpu_broker"] == row["cpu_driver"] == 0
        assert services.cpu_limit(services.get(fst_testbed, flink.TASKMANAGER)) == 0
        used = json.loads(row["node_cpu_used"])
        assert all(0 <= used[n] <= 0.5 * 1.2 for n in used), used
        assert used["azure-swarm-manager"] >= row["broker_cpu_cores"] * 0.9     # the broker's node holds it
    else:
        assert row["cpu_model"].startswith("per service"), row["cpu_model"]
        assert row["cpu_taskmanager"] == row["cpu_broker"] == row["cpu_driver"] == 0.5
        assert services.cpu_limit(services.get(fst_testbed, flink.TASKMANAGER)) == 0.5
        assert services.cpu_limit(services.get(fst_testbed, kafka.BROKER)) == 0.5
    for role in ("taskmanager", "broker", "jobmanager", "driver"):
        assert 0 < row[f"{role}_cpu_cores"] <= 0.5 * 1.2, (role, row[f"{role}_cpu_cores"])
    # every part of the measuring path reported on itself, and none was the limit; the WAN holder's
    # releases against the link's tolerance are fidelity, a note where more than 1 % were late. The
    # collector was once seen 2 s behind the results topic's end by 5 results in this cell, not yet
    # explained (docs/results.md, "When the testbed was the limit"): where the row says so, its columns must agree
    limited = set(filter(None, row["testbed_limited"].split(",")))
    assert limited <= {"collector"}, row["testbed_limited_why"]
    assert ("collector" in limited) == (row["collector_behind_max_s"] >= 2), row
    assert ("later than the link's tolerance" in row["testbed_notes"]) == (row["wan_late_fraction"] > 0.01), row
    # Flink's readings were checked for freshness every second, and a stale one would be a note
    assert row["metrics_stale"] != "not measured" and row["metrics_stale_max_s"] >= 0, row
    assert ("Flink's metric readings stale" in row["testbed_notes"]) == bool(row["metrics_stale"]), row
    assert json.loads(row["producer_properties"])["linger.ms"] == 100
    assert 0 <= row["broker_backlog_max_s"] < 1 and 0 < row["broker_ack_p99_ms"] < 2000
    assert 0 < row["collector_delivery_p50_ms"] <= row["collector_delivery_p99_ms"] < 1000
    assert 0 <= row["collector_behind_max_s"] < 30
    assert 0 < row["host_cpu_busy"] <= 1 and 0 <= row["host_cpu_steal"] < 1
    if fst_testbed.wan.backend == "nfqueue":   # the holder counted the cell's packets across the WAN
        assert row["wan_queue_drops"] == 0 and 0 <= row["wan_late_fraction"] < 0.2
        assert row["wan_stamped_fraction"] > 0.99          # timed from the kernel's receive stamps
    # the RTT the load met, probed every 100 ms both ways across the seed's 20 ms link
    assert row["wan_rtt_loaded_link"] == "azure-google" and 18 <= row["wan_rtt_loaded_p50_ms"] <= 22, row
    assert json.loads(row["wan_rtt_loaded"])["azure-google"]["probes"] >= 0.8 * 2 * 10 * (row["duration"] - row["warmup"])
    # the google taskmanager's source reads across the link with the default 64 KiB buffer
    assert row["source_window_cap_ev_s"] == pytest.approx(65536 / 0.020 / (row["event_bytes"] + 3 + 10), rel=0.01)
    assert row["submit"] == "rest" and 0 < row["submit_s"] < row["fixed_cost_s"] < row["cell_wall_s"]
    # what the cell leaves behind: Flink (for the next cell), no job, no driver
    assert [j["status"] for j in flink.FlinkCluster(fst_testbed, None, 1).rest("/jobs")["jobs"]
            if j["status"] == "RUNNING"] == []
    results = ResultsDir("t", tmp_path)
    results.append("cells", row)
    frame = pd.read_parquet(tmp_path / "t" / "cells.parquet")
    assert COLUMNS <= set(frame.columns), COLUMNS - set(frame.columns)


HOP = Job.parse("hop-window")
WINDOWS = [WindowSpec(0.5, 0.1, 0.05), SEED_WINDOW, WindowSpec(3600, 600, 120)]   # (10 s / 2 s: every other cell)


def test_every_window_size_reaches_running(fst_testbed):
    """Sub-second to an hour, the seed's 5 min / 1 min among them: Flink accepts each window's SQL and
    runs the job (nothing has to close, so this is cheap)."""
    cluster = flink.deploy(fst_testbed, choose(fst_testbed.topology, "single-cloud", 1), 1)
    node = fst_testbed.topology.broker_node
    bootstrap = kafka.deploy(fst_testbed, node, kafka.BrokerSpec.of(fst_testbed.topology))
    kafka.admin(fst_testbed, bootstrap, node, ["events-windows:1", "results-windows:1"], ["events-windows", "results-windows"])
    ran = {}
    try:
        for w in WINDOWS:
            job = pipeline.submit(cluster, HOP.sql("events-windows", "results-windows", bootstrap, w, 1))
            try:
                ran[w.describe()] = cluster.rest(f"/jobs/{job}")["state"]
            finally:
                pipeline.cancel(cluster, job)
    finally:
        # as a cell's admin container does: its own topics created, every earlier cell's deleted
        left = kafka.admin(fst_testbed, bootstrap, node, ["events-next:1"], [], delete_prefix=["events-", "results-"])
        kafka.admin(fst_testbed, bootstrap, node, [], ["events-next"])
    assert ran == {w.describe(): "RUNNING" for w in WINDOWS}
    assert "events-next" in left and not {"events-windows", "results-windows"} & set(left)


def test_a_starved_broker_is_named_in_the_row_and_drawn_hollow(fst_testbed, tmp_path):
    """The broker limited to 0.05 cores, with unbatched sends (linger.ms=5): its acknowledgements fall
    behind, and the row says the cell measured the broker. The report leaves it out of the means."""
    spec = CellSpec(taskmanagers=1, placement="single-cloud", rate=2000, duration=20, warmup=4,
                    window=WindowSpec(4, 1, 1), cpu_limits=(("broker", 0.05),),
                    producer_properties=(("linger.ms", "5"),))
    try:
        row = run_cell(fst_testbed, spec)
    finally:   # the next test's broker is not starved
        kafka.deploy(fst_testbed, fst_testbed.topology.broker_node, kafka.BrokerSpec.of(fst_testbed.topology), cpus=0)
    assert "broker" in row["testbed_limited"].split(","), row
    assert row["testbed_limited_why"].startswith("broker: ") or "; broker: " in row["testbed_limited_why"]
    assert row["broker_backlog_max_s"] > 1 or row["broker_cpu_of_limit"] >= 0.9, row
    results = ResultsDir("starved", tmp_path)
    results.append("cells", row)
    from testbed.results import report
    report.report(results.path)
    summ = pd.read_csv(results.path / "report" / "summary.csv")
    assert (summ["saturated"].tolist(), summ["testbed_limited"].str.contains("broker").tolist()) == ([1], [True])
    assert summ["repetitions"].tolist() == [0] and summ["p50_ms"].isna().all()    # not averaged
    assert (results.path / "report" / "latency_vs_taskmanagers.png").stat().st_size > 1000
