"""The load's pure parts: what the schedule implies (computed, not counted), event sizes, and the
merge of several driver tasks' reports. No engine."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from testbed.measure.metrics import accounting, cell_metrics
from testbed.workload import driver, schedule
from testbed.workload.load import LoadSpec, merge, task_name
from testbed.workload.pipeline import WindowSpec
from testbed.workload.record import Collected, Record, TaskReport, parse


def _brute_force(t0, sch, keys, size_ms, slide_ms) -> Counter:
    """Per event, as the old driver counted: its key and every window containing its event time."""
    out: Counter = Counter()
    for j in range(sch.total):
        for start in schedule.windows_of(sch.time_ms(t0, j), size_ms, slide_ms):
            out[(f"k{j % keys}", start)] += 1
    return out


@pytest.mark.parametrize("t0,sch,keys,size_ms,slide_ms", [
    (1_764_165_600.123, driver.Schedule(1000.0, 7.5), 16, 2000, 500),
    (1_764_165_601.987, driver.Schedule(333.0, 9.0), 5, 3000, 1000),      # a rate with inexact event times
    (1_764_165_602.0005, driver.Schedule(2500.0, 3.0), 1, 500, 500),     # tumbling, one key
    (1_764_165_603.4, driver.Schedule(7.0, 20.0), 40, 10000, 2000),      # fewer events than keys per window
    (1_764_165_604.21, driver.Schedule(900.0, 8.0, 90.0, 3.3), 7, 2000, 1000),   # a warm-up phase at 10 %
])
def test_expected_counts_equal_what_a_per_event_count_gives(t0, sch, keys, size_ms, slide_ms):
    got = {(k, w): n for k, w, n in schedule.expected_counts(t0, sch, keys, size_ms, slide_ms)}
    assert got == dict(_brute_force(t0, sch, keys, size_ms, slide_ms))
    assert sum(got.values()) == sch.total * (size_ms // slide_ms)


def test_event_times_vectorised_equal_the_drivers_arithmetic():
    rnd = random.Random(7)
    import numpy as np
    for _ in range(50):
        t0, rate = 1.7e9 + rnd.random() * 1e8, rnd.choice([1000.0, 3333.0, 12345.6, 250000.0, 7.0])
        warm = rnd.choice([(0.0, 0.0), (rate / 10, 20.0), (rate * 0.37, 7.5)])
        sch = driver.Schedule(rate, 1000.0, *warm)
        j = np.array([rnd.randrange(0, sch.total) for _ in range(200)], dtype=np.int64)
        assert schedule.event_times_ms(t0, j, sch).tolist() == [sch.time_ms(t0, int(x)) for x in j]
        if not sch.first:    # one rate: the schedule's times are the single-rate formula's
            assert [sch.time_ms(t0, int(x)) for x in j] == [driver.event_time_ms(t0, int(x), rate) for x in j]


@pytest.mark.parametrize("warm", [(0.0, 0.0), (100.0, 4.0), (250.0, 2.5)])
def test_a_warm_up_phase_sends_at_its_rate_then_the_cells(warm):
    sch = driver.Schedule(1000.0, 10.0, *warm)
    assert sch.total == driver.events_in_schedule(warm[0] or 1000.0, warm[1]) + driver.events_in_schedule(
        1000.0, 10.0 - warm[1])
    due = [sch.due_s(j) for j in range(sch.total)]
    assert due == sorted(due) and due[0] == 0.0 and due[-1] < 10.0
    # due_by(t) counts exactly the events due by t (what the driver sends by then)
    for t in [-0.1, 0.0, 0.0015, 1.0005, 2.49995, 2.5, 3.9995, 4.0004, 7.7705, 9.9995, 12.0]:   # off the ms grid
        assert sch.due_by(t) == sum(1 for d in due if d <= t), t
    if warm[1]:
        in_warmup = sum(1 for d in due if d < warm[1])
        assert in_warmup == pytest.approx(warm[0] * warm[1], abs=1) and sch.rate_at(warm[1] / 2) == warm[0]
    assert sch.rate_at(9.0) == 1000.0
@pytest.mark.parametrize("size", [0, 60, 100, 1024])
def test_events_have_the_asked_size_and_stay_json(size):
    for key, j in ((b"k0", 0), (b"k15", 99), (b"k12345", 7)):
        v = driver.event_value(key, j, 1_764_165_600_123, size)
        doc = json.loads(v)
        assert doc["key"] == key.decode() and doc["ts"] == 1_764_165_600_123 and doc["value"] == float(j % 100)
        if size >= 70:
            assert len(v) == size
        else:
            assert ("pad" in doc) == (size > 0)


def _report(task, tasks, procs, t0, rate, duration, late=0):
    """What ``driver.py produce`` writes for one task that sent its slice on time."""
    total = driver.events_in_schedule(rate, duration)
    out = []
    for q in range(procs):
        s, S = task + tasks * q, tasks * procs
        sent = len(range(s, total, S))
        out.append({"slice": s, "slices": S, "sent": sent, "acked": sent, "failed": 0, "unacknowledged": 0,
                    "behind": late, "max_lag_ms": 3.0, "queue_full_waits": 0, "cpu_s": 0.5, "ended": t0 + duration,
                    "errors": [], "acked_per_s": [sent // int(duration)] * int(duration)})
    return {"t0": t0, "task": task, "tasks": tasks, "processes": out}


def _merge(spec: LoadSpec, reports: list[dict], collected: dict, expected: list) -> Record:
    """The tasks' and the collector's documents read as ``load.run`` reads them, then merged."""
    return merge(spec, [parse(TaskReport, r, f"driver task {task_name(i)}") for i, r in enumerate(reports)],
                 parse(Collected, collected, "the results collector"), expected)


def test_merge_of_three_tasks_covers_the_schedule_once_and_accounts_it():
    t0, rate, duration = 1_764_165_600.5, 600.0, 6.0
    w = WindowSpec(2, 1, 0.5)
    spec = LoadSpec(rate=rate, duration=duration, window=w, nodes=("a", "b", "a"), keys=4, processes=2)
    expected = schedule.expected_counts(t0, spec.schedule, 4, w.size_ms, w.slide_ms)
    # the results a correct job gives: every (key, window) with its count
    results = [[k, ws, ws + w.size_ms, n, None, ws + w.size_ms + 300] for k, ws, n in expected]
    reports = [_report(i, 3, 2, t0, rate, duration) for i in range(3)]
    raw = _merge(spec, reports, {"flush_ts_ms": 1, "ended_ms": 2, "results": results}, expected)
    assert len(raw.producers) == 6 and sum(p.sent for p in raw.producers) == 3600
    assert [r.task for r in raw.reports] == [0, 1, 2]
    assert raw.t0 == t0 and raw.params.tasks == 3 and raw.params.processes == 2
    m = cell_metrics(raw, 1.0, [])
    assert m["lost"] == 0 and m["duplicated"] == 0 and m["events_sent"] == 3600 and not m["driver_fell_behind"]
    assert m["achieved_rate"] == pytest.approx(600, rel=0.01)
    # one result missing: its events are lost, named by the accounting
    acc = accounting(raw.expected, results[1:])
    assert acc["missing_windows"] == 1 and acc["lost"] == expected[0][2]


def test_merge_refuses_reports_that_do_not_make_one_schedule():
    t0, rate, duration = 1_764_165_600.0, 100.0, 2.0
    spec = LoadSpec(rate=rate, duration=duration, window=WindowSpec(1, 1, 0), nodes=("a", "b"), processes=1)
    collected = {"results": []}
    with pytest.raises(ValueError, match="different schedules"):
        _merge(spec, [_report(0, 2, 1, t0, rate, duration), _report(1, 2, 1, t0 + 1, rate, duration)], collected, [])
    with pytest.raises(ValueError, match="do not cover the schedule once"):
        _merge(spec, [_report(0, 2, 1, t0, rate, duration), _report(0, 2, 1, t0, rate, duration)], collected, [])
    short = _report(1, 2, 1, t0, rate, duration)
    short["processes"][0]["sent"] -= 1
    with pytest.raises(ValueError, match="sent 199 events, the schedule has 200"):
        _merge(spec, [_report(0, 2, 1, t0, rate, duration), short], collected, [])


def test_a_driver_that_is_late_for_more_than_a_thousandth_of_its_events_fell_behind():
    t0, rate, duration = 1_764_165_600.0, 1000.0, 4.0
    spec = LoadSpec(rate=rate, duration=duration, window=WindowSpec(1, 1, 0), nodes=("a",), processes=1)
    for late, behind in ((4, False), (5, True)):
        raw = _merge(spec, [_report(0, 1, 1, t0, rate, duration, late=late)], {"results": []}, [])
        assert cell_metrics(raw, 1.0, [])["driver_fell_behind"] is behind


def test_processes_per_task_follow_the_rate_of_each_share():
    w = WindowSpec()
    assert LoadSpec(rate=50_000, duration=1, window=w, nodes=("a",)).processes_per_task == 1
    assert LoadSpec(rate=250_000, duration=1, window=w, nodes=("a",)).processes_per_task == 3
    assert LoadSpec(rate=250_000, duration=1, window=w, nodes=("a", "b", "c")).processes_per_task == 1



def test_the_admin_command_names_the_prefixes_of_the_topics_it_deletes():
    """(That it deletes them, and keeps what it creates: tests/test_pipeline.py, against the broker.)"""
    from testbed.stack import driver_cli
    argv = driver_cli.admin("broker:9092", ["events-b:2"], [], 90, delete_prefix=["events-", "results-"])
    assert argv[argv.index("--delete-prefix") + 1:argv.index("--create")] == ["events-", "results-"]
    assert "--delete-prefix" not in driver_cli.admin("broker:9092", ["events-b:2"])

def test_a_cells_phases_add_up_and_independent_cleanups_all_run():
    import time
    from testbed.experiment.cell import Phases, _together
    p = Phases()
    p.mark("prepare")
    time.sleep(0.02)
    p.mark("load")
    p.mark("prepare")
    assert list(p.seconds) == ["prepare", "load"] and p.seconds["load"] >= 0.02
    ran: list[str] = []

    def fail():
        ran.append("fail")
        raise RuntimeError("first")
    with pytest.raises(RuntimeError, match="first"):
        _together([fail, lambda: ran.append("other")])
    assert sorted(ran) == ["fail", "other"]
