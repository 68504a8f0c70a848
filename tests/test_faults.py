"""Faults inside a cell on the emulated seed topology: a taskmanager killed, the clouds
partitioned and healed; the job recovers (or the row says how it did not), and the testbed is as
the topology says afterwards."""

from __future__ import annotations

import json
import re

import pytest

from testbed.core.run import wait_for
from testbed.experiment.cell import CellSpec, run_cell
from testbed.experiment.session import cell_ok, cell_problems
from testbed.model.scenario import parse
from testbed.stack import calibrate, flink, services
from testbed.workload.pipeline import WindowSpec

pytestmark = [pytest.mark.engine, pytest.mark.exclusive("seed-network")]
CELL = dict(taskmanagers=2, placement="multi-cloud", rate=200, warmup=8, window=WindowSpec(2, 1, 0.5),
            checkpoint_interval_s=2.0)


def _stale_stretches(row) -> list[tuple[float, float]]:
    """The (from, to) seconds of every stale reading the row names."""
    return [(float(a), float(b)) for a, b in re.findall(r"(\d+\.\d)-(\d+\.\d) s", row["metrics_stale"] or "")]


def _thawed(row, fault_s: float) -> None:
    """Flink's readings froze while the jobmanager waited for the lost taskmanager, the row says when,
    and they were fresh again before the load ended (the fetch timeout of fault cells, 10 s; with
    Flink's default of 10 min they stay as they were to the end). The source's counter itself may
    still stand: a job without a spare slot reads nothing until its taskmanager is back."""
    assert row["metric_fetch_timeout"] == "10 s" and row["metrics_stale"] != "not measured", row
    stretches = _stale_stretches(row)
    assert all(a >= fault_s - 1.5 for a, _b in stretches), row["metrics_stale"]      # none before the fault
    assert all(b < row["duration"] - 3 for _a, b in stretches), row["metrics_stale"]  # fresh before the end


def _as_written(tb) -> None:
    """Every node answers, the WAN's links are the topology's, no stress container is left."""
    for m in tb.machines:
        assert m.client.ping(), m.hostname
        assert m.client.containers.list(all=True, filters={"label": "io.flink-swarm-testbed.component=stress"}) == []
    links = {(d.src, d.dst): d for d in tb.wan.saved_links().values()}
    for ln in tb.topology.links:
        for a, b in (ln.clouds, ln.clouds[::-1]):
            d = links[(a, b)]
            assert (d.delay_ms * 2, d.loss_pct) == (ln.rtt_ms, ln.loss_pct), d


def test_a_killed_taskmanager_is_recovered_from_with_checkpoints(fst_testbed):
    scenario = parse("- {at: 12s, action: kill, target: taskmanager@google-cloud-worker-1}\n", "kill-google-tm.yaml")
    artifacts: dict = {}
    # a spare slot on each taskmanager: the job comes back on the survivor without waiting for the
    # killed one (Swarm starts it again, seconds later)
    row = run_cell(fst_testbed, CellSpec(**CELL, duration=40, scenario=scenario, spare_slots=1), artifacts)
    events = json.loads(row["scenario_events"])
    assert events[0]["action"] == "kill" and "taskmanager on google-cloud-worker-1" in events[0]["detail"], events
    assert events[0]["at_s"] == 12 and row["fault_at_s"] >= 12      # as planned, and never early
    said = {k: row[k] for k in ("flink_noticed_s", "running_again_s", "processing_again_s", "restarts", "recovery_time_s", "recovered",
                                "peak_latency_ms", "pre_fault_p99_ms", "lost", "duplicated", "windows_late")}
    assert row["restarts"] >= 1 and row["flink_noticed_s"] < 15 and row["running_again_s"] > row["flink_noticed_s"], said
    assert row["recovered"] and 0 < row["recovery_time_s"] < 30 and row["recovery_by"] == "latency", said
    assert row["lost"] == 0, said                          # checkpoints: replayed, not lost
    assert row["peak_latency_ms"] > row["pre_fault_p99_ms"], said
    # RUNNING is the job's state; its source's counter moves again at or after it (the counter, read
    # through the REST API, can lag the results after a restart: processing_again_s is no bound on recovery)
    assert row["running_again_s"] <= row["processing_again_s"], said
    _thawed(row, 12)
    assert cell_ok(row), cell_problems(row)                # at-least-once: its duplicates are expected
    assert row["cell_key"].endswith("-kill-google-tm") and row["checkpoint_storage"] == "jobmanager"
    assert "RESTARTING" in set(artifacts["timeseries"]["job_state"]) or row["restarts"] >= 1
    # Swarm starts the taskmanager again and it registers with the jobmanager (its JVM starts within
    # the node's CPU budget, so this can take longer than the cell's tail): both are there for the
    # next cell
    cluster = flink.FlinkCluster(fst_testbed, None, 1)
    assert sorted(services.task_nodes(fst_testbed, flink.TASKMANAGER)) == ["azure-swarm-worker-1",
                                                                          "google-cloud-worker-1"]
    wait_for(lambda: sorted(t["node"] for t in cluster.taskmanagers()) == ["azure-swarm-worker-1", "google-cloud-worker-1"],
             120, "the restarted taskmanager registered with the jobmanager", interval=1,
             detail=lambda: services.describe(fst_testbed, flink.TASKMANAGER))
    _as_written(fst_testbed)


@pytest.mark.extended
def test_a_partition_between_the_clouds_then_heal(fst_testbed, fst_quiet):
    scenario = parse("- {at: 10s, action: partition, clouds: [azure, google]}\n"
                     "- {at: 25s, action: heal, clouds: [azure, google]}\n", "partition.yaml")
    row = run_cell(fst_testbed, CellSpec(**CELL, duration=40, scenario=scenario))
    events = json.loads(row["scenario_events"])
    assert [e["action"] for e in events] == ["partition", "heal"], events
    assert [e["at_s"] for e in events] == [10, 25] and row["fault_at_s"] >= 10 and row["heal_at_s"] >= 25
    # what happened is reported, whichever way it went (here the 8 s heartbeat timeout may declare the
    # cut-off taskmanager lost, and Swarm may replace its task: the job can still be restarting at the end)
    said = {k: row.get(k) for k in ("restarts", "recovered", "recovery_time_s", "lost", "duplicated", "peak_latency_ms",
                                    "windows_late", "missing_windows_after_fault", "job_state_at_end")}
    assert row["job_state_at_end"] in ("RUNNING", "RESTARTING", "CREATED", "INITIALIZING"), said
    assert isinstance(row["restarts"], int) and row["lost"] >= 0 and row["duplicated"] >= 0, said
    assert row["recovered"] == (row["recovery_time_s"] == row["recovery_time_s"]), said     # NaN unless recovered
    if row["recovered"]:
        assert row["lost"] == 0, said
    # a taskmanager cut off for longer than the heartbeat timeout: its readings (all of them, the
    # jobmanager fetches from every taskmanager at once) were stale, and the row says so
    assert _stale_stretches(row), row["metrics_stale"]
    _thawed(row, 10)
    _as_written(fst_testbed)
    with fst_quiet():       # and measured so: the fidelity check passes again
        rtt = calibrate.rtt_matrix(fst_testbed)
    assert all(r["ok"] for r in rtt), [(r["src"], r["dst"], r["measured"], r["note"]) for r in rtt if not r["ok"]]
    # and the next cell is healthy
    healthy = run_cell(fst_testbed, CellSpec(**{**CELL, "checkpoint_interval_s": 0.0}, duration=10))
    assert healthy["lost"] == 0 and healthy["duplicated"] == 0 and healthy["latency_p50_ms"] < 5000, healthy
