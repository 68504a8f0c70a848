"""Fault scenarios without an engine: what a scenario file may say (errors naming the entry and the
field), the checks against a topology and a cell, and the recovery definitions."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from testbed.experiment.cell import CellSpec
from testbed.experiment.options import Experiment, OptionError
from testbed.measure.recovery import fault_times, job_state_at, recovery
from testbed.model.scenario import ScenarioError, parse, seconds
from testbed.model.topology import load

SEED = load("seed")


def test_times_are_seconds_with_units():
    assert [seconds(v) for v in (20, 2.5, "20s", "1m", "500ms", " 3 s")] == [20, 2.5, 20, 60, 0.5, 3]
    for bad in ("2x", "-1s", True, "soon"):
        with pytest.raises(ValueError):
            seconds(bad)


def test_a_scenario_of_every_action_parses_and_fits_the_seed():
    s = parse("""
- {at: 20s, action: kill, target: taskmanager@google-cloud-worker-1}
- {at: 25s, action: partition, clouds: [azure, google], for: 15s}
- {at: 45s, action: link, clouds: [azure, google], rtt_ms: 200, loss_pct: 5}
- {at: 1s, action: stress, node: azure-swarm-worker-1, cpus: 1, for: 30s}
- {at: 10s, action: stop-node, node: azure-swarm-worker-2}
- {at: 30s, action: start-node, node: azure-swarm-worker-2}
- {at: 50s, action: kill, target: jobmanager}
""", "all.yaml")
    s.check(SEED, duration=60)
    assert [a.action for a in s.actions] == ["kill", "partition", "link", "stress", "stop-node", "start-node", "kill"]
    assert s.actions[2].changes == (("rtt_ms", 200.0), ("loss_pct", 5.0)) and s.actions[1].for_s == 15
    assert s.name == "all"
    s.check_placement(["azure-swarm-worker-1", "google-cloud-worker-1"])
    with pytest.raises(ScenarioError, match=r"\[0\].target: no taskmanager on google-cloud-worker-1 in this cell"):
        s.check_placement(["azure-swarm-worker-1"])


@pytest.mark.parametrize("text, where, says", [
    ("- {at: 20s, action: kil, target: x}", "[0].action", "unknown action 'kil'; allowed: kill, stop-node"),
    ("- {at: 2x, action: kill, target: jobmanager}", "[0].at", "expected a time like 20s"),
    ("- {at: 2s, action: kill, target: jobmanager, node: a}", "[0].node", "not used by kill"),
    ("- {at: 2s, action: stress, node: azure-swarm-worker-1, cpus: 1}", "[0].for", "missing; stress needs it"),
    ("- {at: 2s, action: partition, clouds: [azure]}", "[0].clouds", "expected"),
    ("- {at: 2s, action: link, clouds: [azure, google]}", "[0]", "link needs at least one of rtt_ms"),
    ("- {at: 2s, action: kill, target: jobmanager, colour: red}", "[0].colour", "unknown key"),
    ("{at: 2s}", "", "expected a list of actions"),
])
def test_a_bad_scenario_file_is_refused_naming_the_entry_and_field(text, where, says):
    with pytest.raises(ScenarioError) as e:
        parse(text, "bad.yaml")
    assert f"bad.yaml: {where}: " in str(e.value) if where else "bad.yaml: " in str(e.value)
    assert says in str(e.value) and str(e.value).startswith("invalid scenario")


@pytest.mark.parametrize("text, says", [
    ("- {at: 70s, action: kill, target: jobmanager}", "[0].at: 70s is not inside the load (60s)"),
    ("- {at: 1s, action: stop-node, node: nowhere}", "[0].node: no node 'nowhere' in topology seed"),
    ("- {at: 1s, action: kill, target: taskmanager@nowhere}", "[0].target: no node 'nowhere'"),
    ("- {at: 1s, action: kill, target: database}", "[0].target: unknown target 'database'"),
    ("- {at: 1s, action: partition, clouds: [azure, aws]}", "[0].clouds: no cloud 'aws' in topology seed"),
    ("- {at: 1s, action: heal, clouds: [azure, google]}", "[0].action: heal azure/google at 1s: no partition"),
    ("- {at: 1s, action: partition, clouds: [azure, google], for: 5s}\n- {at: 9s, action: heal, clouds: [azure, google]}",
     "[1].action: heal azure/google at 9s: no partition"),
    ("- {at: 1s, action: start-node, node: azure-swarm-worker-2}", "[0].action: start-node azure-swarm-worker-2 at 1s: "
     "it is not stopped"),
    ("- {at: 1s, action: stop-node, node: azure-swarm-manager}", "[0].node: azure-swarm-manager runs the broker"),
])
def test_a_scenario_is_checked_against_the_topology_and_the_load(text, says):
    with pytest.raises(ScenarioError, match="invalid scenario") as e:
        parse(text, "s.yaml").check(SEED, duration=60)
    assert says in str(e.value)


def test_the_scenario_is_an_option_checked_before_anything_starts(tmp_path):
    from tests.test_job_model import _options
    f = tmp_path / "kill.yaml"
    f.write_text("- {at: 8s, action: kill, target: taskmanager@google-cloud-worker-1}\n")
    exp = Experiment.from_options(_options(scenario=str(f), taskmanagers="2", placements="multi-cloud"))
    cells, _ = exp.cells(SEED)
    assert cells[0].key == "tm2-multi-cloud-r1000-rep1-kill" and cells[0].checkpoint_interval_s == 5.0
    assert cells[0].params()["scenario"] == str(f) and len(cells[0].params()["scenario_sha256"]) == 64
    assert Experiment.from_options(_options()).cells(SEED)[0][0].checkpoint_interval_s == 0    # off without faults
    f.write_text("- {at: 80s, action: kill, target: jobmanager}\n")
    with pytest.raises(OptionError, match=r"--scenario: invalid scenario\n  .*kill.yaml: \[0\].at: 80s is not inside"):
        Experiment.from_options(_options(scenario=str(f))).cells(SEED)
    f.write_text("- {at: 1s, action: explode}\n")
    with pytest.raises(OptionError, match=r"\[0\].action: unknown action 'explode'"):
        Experiment.from_options(_options(scenario=str(f)))
    with pytest.raises(ValueError, match="checkpoint_mode: must be at-least-once or exactly-once, got 'sometimes'"):
        CellSpec(checkpoint_mode="sometimes")


def test_scenarios_are_an_axis_with_none_as_the_fault_free_baseline(tmp_path):
    from tests.test_job_model import _options
    kill, cut = tmp_path / "kill-google.yaml", tmp_path / "cut.yaml"
    kill.write_text("- {at: 8s, action: kill, target: taskmanager@google-cloud-worker-1}\n")
    cut.write_text("- {at: 8s, action: partition, clouds: [azure, google], for: 5s}\n")
    exp = Experiment.from_options(_options(scenario=f"none,{kill},{cut}", taskmanagers="2",
                                           placements="single-cloud,multi-cloud", repetitions=1))
    cells, left_out = exp.cells(SEED)
    assert [c.key for c in cells] == ["tm2-single-cloud-r1000-rep1", "tm2-single-cloud-r1000-rep1-cut",
                                      "tm2-multi-cloud-r1000-rep1", "tm2-multi-cloud-r1000-rep1-kill-google",
                                      "tm2-multi-cloud-r1000-rep1-cut"]
    assert [c.checkpoint_interval_s for c in cells] == [0.0, 5.0, 0.0, 5.0, 5.0]   # checkpoints where faults are
    # the single-cloud placement has no taskmanager on google: that combination is left out, saying why
    assert len(left_out) == 1 and "single-cloud with scenario kill-google" in left_out[0] \
        and "no taskmanager on google-cloud-worker-1" in left_out[0]
    with pytest.raises(OptionError, match="two scenarios with one name"):
        Experiment.from_options(_options(scenario=f"{cut},{cut}"))


def _latency(ends, lats):
    return pd.DataFrame({"window_end_s": ends, "latency_ms": lats, "in_stats": True})


def test_recovery_time_runs_from_the_fault_until_latency_and_lag_stay_in_their_bands():
    events = [{"t_s": 20.1, "action": "kill", "what": "do"}]
    ends = np.arange(5, 60, 1.0)
    lats = np.where((ends >= 21) & (ends < 31), 8000.0, 1000.0)       # windows 21..30 late, then back
    series = pd.DataFrame({"t_s": np.arange(60.0), "lag": np.where((np.arange(60) >= 21) & (np.arange(60) < 34),
                                                                   5000.0, 100.0)})
    states = [(t, "RUNNING" if not 22 <= t < 28 else "RESTARTING", 0 if t < 22 else 1) for t in np.arange(0, 60, 1.0)]
    r = recovery(events, _latency(ends, lats), series, states, warmup_s=5, rate=1000)
    assert r["fault_at_s"] == 20.1 and math.isnan(r["heal_at_s"])
    assert r["pre_fault_p99_ms"] == 1000 and r["latency_band_ms"] == 1500 and r["lag_band"] == 100 + 500
    assert r["flink_noticed_s"] == pytest.approx(1.9) and r["running_again_s"] == pytest.approx(7.9)
    assert r["restarts"] == 1 and r["peak_latency_ms"] == 8000 and r["windows_late"] == 10
    # the job restarted: its source counter started again, so latency alone decides (the last late
    # window ends at 30 s, the next at 31 s)
    assert r["recovered"] and r["recovery_by"] == "latency" and r["recovery_time_s"] == pytest.approx(31 - 20.1)
    # without a restart the lag counts too: its last sample out of band is at 33 s, the next window ends at 34 s
    calm = [(t, "RUNNING", 0) for t in np.arange(0, 60, 1.0)]
    r = recovery(events, _latency(ends, lats), series, calm, warmup_s=5, rate=1000)
    assert r["recovery_by"] == "latency and lag" and r["recovery_time_s"] == pytest.approx(34 - 20.1)


def test_a_fault_the_job_never_recovers_from_says_so():
    events = [{"t_s": 10.0, "action": "partition", "what": "do"}, {"t_s": 25.0, "action": "partition", "what": "undo"}]
    ends = np.arange(5, 40, 1.0)
    lats = np.where(ends >= 10, 9000.0, 500.0)
    r = recovery(events, _latency(ends, lats), pd.DataFrame({"t_s": [], "lag": []}), [], warmup_s=5, rate=100)
    assert r["heal_at_s"] == 25.0 and not r["recovered"] and math.isnan(r["recovery_time_s"])
    assert fault_times([]) == (pytest.approx(math.nan, nan_ok=True), pytest.approx(math.nan, nan_ok=True))
    assert job_state_at([(1.0, "RUNNING", 0), (3.0, "RESTARTING", 1)], np.array([0.0, 1.0, 2.5, 3.0, 9.0])) == \
        ["", "RUNNING", "RUNNING", "RESTARTING", "RESTARTING"]


def test_back_in_band_is_the_first_sample_after_the_last_one_out_of_band():
    from testbed.measure.recovery import back_in_band
    t = np.array([1.0, 2, 3, 4, 5, 6])
    assert back_in_band(t, [1, 9, 9, 1, 1, 1], band=2, since=0) == 4.0
    assert back_in_band(t, [1, 1, 1, 1, 1, 1], band=2, since=2.5) == 2.5      # never out of band: at once
    assert math.isnan(back_in_band(t, [1, 1, 1, 1, 1, 9], band=2, since=0))  # still out at the last one
    assert back_in_band(t, [9, 1, 9, 1, 9, 1], band=2, since=0) == 6.0       # in band, out again: the last exit counts
    assert math.isnan(back_in_band(t, [1] * 6, band=2, since=7))             # nothing measured after it
    assert back_in_band(t[::-1], [1, 1, 1, 9, 9, 1], band=2, since=0) == 4.0  # order of the samples does not matter


def _kill_at_20_in_70s(pre_latency_ms: float):
    """The shape of a killed taskmanager's cell: windows of 10 s every 2 s, 70 s of load, the kill at
    20 s, the job running again 8.4 s later, its source idle for 18 s more, latency up to ~40 s, and
    back at its pre-fault level ~40 s after the fault, with 10 s of load left."""
    events = [{"t_s": 20.0, "action": "kill", "what": "do"}]
    ends = np.arange(16, 70, 2.0)
    lats = np.where(ends < 20, pre_latency_ms, np.where(ends < 60, 39_900.0 - (ends - 20) * 600, 1500.0))
    secs = np.arange(71.0)
    processed = np.where((secs >= 20) & (secs < 46.4), 0.0, 1000.0)
    processed[(secs >= 47) & (secs < 60)] = 3000.0                          # catching up
    series = pd.DataFrame({"t_s": secs, "lag": np.nan, "processed_rate": processed})
    states = [(t, "RUNNING" if t < 22 or t >= 28.4 else "RESTARTING", 0 if t < 22 else 1)
              for t in sorted(set(np.arange(0, 71, 0.5)) | {28.4})]
    # RUNNING again at 28.4 s, but the replacement taskmanager's tasks deploy only at 45 s
    tasks = [(t, 2 if t < 22 or t >= 45 else 1, 2) for t in np.arange(0, 71, 0.5)]
    return events, _latency(ends, lats), series, states, tasks


def test_a_killed_taskmanager_back_in_band_with_10s_left_is_recovered():
    events, latency, series, states, tasks = _kill_at_20_in_70s(1500.0)
    r = recovery(events, latency, series, states, warmup_s=15, rate=1000, tasks=tasks)
    assert r["recovered"] and r["recovery_by"] == "latency", r
    assert r["band_from"].startswith("2 windows that arrived") and r["latency_band_ms"] == 2250
    assert r["recovery_time_s"] == pytest.approx(60 - 20)          # the first window back at 1.5 s
    assert r["running_again_s"] == pytest.approx(8.4) and r["processing_again_s"] == pytest.approx(47 - 20)
    assert r["tasks_running_again_s"] == pytest.approx(45 - 20)
    assert r["peak_latency_ms"] == 39_900.0


def test_no_band_when_no_window_arrived_before_the_fault():
    """Windows that ended before the kill but arrived after it carry its delay: they state no band."""
    events, latency, series, states, tasks = _kill_at_20_in_70s(5000.0)
    r = recovery(events, latency, series, states, warmup_s=15, rate=1000, tasks=tasks)
    assert not r["recovered"] and math.isnan(r["latency_band_ms"]) and "no window arrived" in r["band_from"]
    assert r["running_again_s"] == pytest.approx(8.4)      # what Flink did is still measured


def test_without_a_restart_or_lag_samples_latency_alone_decides():
    events = [{"t_s": 20.0, "action": "link", "what": "do"}]
    ends = np.arange(5, 40, 1.0)
    lats = np.where((ends >= 21) & (ends < 26), 8000.0, 1000.0)
    r = recovery(events, _latency(ends, lats), pd.DataFrame({"t_s": [], "lag": []}),
                 [(t, "RUNNING", 0) for t in np.arange(0, 40, 1.0)], warmup_s=5, rate=100)
    assert r["recovered"] and r["recovery_time_s"] == pytest.approx(6.0)
    assert r["recovery_by"] == "latency (no lag samples after the fault)"


def test_a_lag_read_from_stale_readings_does_not_decide():
    """The shape of a partition with Flink's default fetch timeout: from the fault on, the jobmanager's
    metric store keeps the old counts, so the lag grows to the end while the windows are back at 24 s."""
    events = [{"t_s": 12.0, "action": "partition", "what": "do"}, {"t_s": 27.0, "action": "partition", "what": "undo"}]
    ends = np.arange(5, 44, 1.0)
    lats = np.where((ends >= 12) & (ends < 24), 9000.0, 1300.0)
    secs = np.arange(45.0)
    series = pd.DataFrame({"t_s": secs, "lag": np.where(secs < 12, 50.0, (secs - 11) * 200),
                           "taskmanagers_stale": np.where(secs >= 14, 1, 0)})
    calm = [(t, "RUNNING", 0) for t in secs]       # numRestarts read as 0: a reading too
    r = recovery(events, _latency(ends, lats), series, calm, warmup_s=5, rate=200)
    assert r["recovered"] and r["recovery_time_s"] == pytest.approx(24 - 12), r
    assert r["recovery_by"].startswith("latency (Flink's readings stale after the fault"), r["recovery_by"]
    fresh = series.assign(taskmanagers_stale=0)     # had the readings been fresh, that lag would say not recovered
    assert not recovery(events, _latency(ends, lats), fresh, calm, warmup_s=5, rate=200)["recovered"]


def test_duplicates_of_a_fault_cell_with_at_least_once_checkpoints_are_expected_not_a_failure():
    from testbed.experiment.session import cell_ok, cell_problems
    base = {"accounting": "windows", "lost": 0, "duplicated": 30_000, "scenario": "kill-google.yaml",
            "checkpoint_interval_s": 5.0, "checkpoint_mode": "at-least-once"}
    assert cell_ok(base) and cell_problems(base) == []
    assert cell_problems({**base, "checkpoint_mode": "exactly-once"}) == ["duplicated 30000 (exactly-once checkpoints)"]
    assert cell_problems({**base, "scenario": ""}) == ["duplicated 30000 (a cell without faults)"]
    assert cell_problems({**base, "scenario": float("nan")}) == ["duplicated 30000 (a cell without faults)"]  # read back from CSV
    assert cell_problems({**base, "lost": 3}) == ["lost 3"]
    assert cell_problems({**base, "error": "RuntimeError: boom\nmore"}) == ["error: RuntimeError: boom"]
    # a row read back from cells.csv: empty fields are NaN
    nan = float("nan")
    assert cell_problems({**base, "error": nan, "checkpoint_mode": nan}) == []
    assert cell_problems({**base, "lost": nan}) == ["lost: not measured"]
