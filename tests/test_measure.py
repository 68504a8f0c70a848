"""Cell metrics from raw driver data with known answers, and the driver's window arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from testbed.measure import metrics as measure
from testbed.workload.schedule import windows_of as _windows
from testbed.experiment.cell import CellSpec
from testbed.workload.jobs import Job
from testbed.workload.pipeline import SEED_WINDOW, WindowSpec, interval
from tests.driver_records import params, producer, record

sql = Job.parse("hop-window").sql


def test_every_timestamp_is_in_size_over_slide_windows():
    for ts in (0, 999, 1000, 123_456, 5_000_000_001):
        starts = list(_windows(ts, 5000, 1000))
        assert len(starts) == 5
        assert all(s <= ts < s + 5000 and s % 1000 == 0 for s in starts)


def _raw_from_events(events, size=5000, slide=1000, drop=(), repeat=(), delay=700):
    """Build driver output for events [(key, ts)]: results arrive `delay` ms after window end."""
    from collections import Counter
    exp = Counter()
    for key, ts in events:
        for w in _windows(ts, size, slide):
            exp[(key, w)] += 1
    results = []
    for (key, w), n in sorted(exp.items()):
        if (key, w) in drop:
            continue
        results.append([key, w, w + size, n, None, w + size + delay])
        if (key, w) in repeat:
            results.append([key, w, w + size, n, None, w + size + delay + 5])
    return [[k, w, n] for (k, w), n in exp.items()], results


def test_accounting_exact():
    events = [(f"k{i % 3}", 10_000 + i * 100) for i in range(200)]
    expected, results = _raw_from_events(events)
    acc = measure.accounting(expected, results)
    assert acc["lost"] == 0 and acc["duplicated"] == 0
    assert acc["counted"] == acc["expected_counted"] == 200 * 5


def test_accounting_counts_lost_and_duplicated():
    events = [(f"k{i % 3}", 10_000 + i * 100) for i in range(200)]
    expected, results = _raw_from_events(events, drop={("k0", 12_000)}, repeat={("k1", 15_000)})
    exp = {(k, w): n for k, w, n in expected}
    acc = measure.accounting(expected, results)
    assert acc["lost"] == exp[("k0", 12_000)]
    assert acc["duplicated"] == exp[("k1", 15_000)]
    assert acc["missing_windows"] == 1 and acc["repeated_windows"] == 1


def test_latency_excludes_warmup_and_tail_and_keeps_negatives():
    t0 = 10_000
    results = [["a", 5_000, 10_000, 1, None, 10_500],      # ends before warm-up end: excluded
               ["a", 8_000, 13_000, 1, None, 13_250],
               ["a", 9_000, 14_000, 1, None, 13_900],      # negative: kept and counted
               ["a", 9_000, 14_000, 1, None, 99_999],      # repeat of a window: only the first counts
               ["a", 20_000, 25_000, 1, None, 25_100]]     # after the last due event: excluded
    lat = measure.latencies(results, t0, warmup_s=2, last_closed_ms=20_000)
    assert sorted(lat.tolist()) == [-100.0, 250.0]
    st = measure.latency_stats(lat)
    assert st["latency_negative"] == 1 and st["latency_samples"] == 2
    assert st["latency_p50_ms"] == pytest.approx(np.percentile([-100, 250], 50))


def test_windows_closed_by_the_flush_are_not_latency_samples():
    raw = record(params(watermark_delay=1.0), last_due_ms=60_000)
    assert measure.closed_by_load_ms(raw) == 59_000


def test_rates():
    prods = [producer(acked_per_s=[50, 100, 100, 100, 10]), producer(acked_per_s=[0, 100, 100, 100])]
    assert measure.achieved_rate(prods, warmup_s=1, duration_s=4) == pytest.approx(200)
    samples = [(0.0, 0), (1.0, 500), (2.0, 1500), (3.0, 2500), (4.0, 2600)]
    assert measure.processed_rate(samples, 1.0, 3.0) == pytest.approx(1000)
    assert np.isnan(measure.processed_rate(samples[:1], 0, 10))


def test_window_spec_and_sql():
    w = WindowSpec(300, 60, 2)
    assert w.windows_per_event == 5 and (w.size_ms, w.slide_ms, w.watermark_delay_ms) == (300_000, 60_000, 2000)
    q = sql("ev", "res", "broker:9092", w, parallelism=3)
    assert ("HOP(TABLE events, DESCRIPTOR(ets), INTERVAL '0 00:01:00.000' DAY TO SECOND(3), "
            "INTERVAL '0 00:05:00.000' DAY TO SECOND(3))") in q
    assert "WATERMARK FOR ets AS ets - INTERVAL '0 00:00:02.000' DAY TO SECOND(3)" in q
    assert "'parallelism.default' = '3'" in q
    assert "INTERVAL '0 00:00:01.500' DAY TO SECOND(3)" in sql("e", "r", "b:1", WindowSpec(3, 1.5), 1)
    with pytest.raises(ValueError, match="multiple of the slide"):
        WindowSpec(5, 2)
    with pytest.raises(ValueError, match=r"window size \(size_s\) must be > 0"):
        WindowSpec(0, 1)


@pytest.mark.parametrize("seconds, literal", [
    (0, "INTERVAL '0 00:00:00.000' DAY TO SECOND(3)"),
    (0.001, "INTERVAL '0 00:00:00.001' DAY TO SECOND(3)"),
    (0.25, "INTERVAL '0 00:00:00.250' DAY TO SECOND(3)"),
    (99, "INTERVAL '0 00:01:39.000' DAY TO SECOND(3)"),
    (100, "INTERVAL '0 00:01:40.000' DAY TO SECOND(3)"),      # SECOND(2) stops at 99
    (4.35, "INTERVAL '0 00:00:04.350' DAY TO SECOND(3)"),     # 4.35 * 1000 is 4349.999...
    (3600, "INTERVAL '0 01:00:00.000' DAY TO SECOND(3)"),
    (90061.007, "INTERVAL '1 01:01:01.007' DAY TO SECOND(3)"),
])
def test_interval_literals_spell_any_size(seconds, literal):
    assert interval(seconds) == literal


@pytest.mark.parametrize("kw, says", [
    ({"size_s": 1.0005, "slide_s": 1.0005}, r"window size \(size_s\) must be > 0 and whole milliseconds, got 1.0005"),
    ({"size_s": 10, "slide_s": 0.0001}, r"window slide \(slide_s\) must be > 0 and whole milliseconds"),
    ({"size_s": 10, "slide_s": 2, "watermark_delay_s": -1}, r"watermark delay \(watermark_delay_s\) must be >= 0"),
    ({"size_s": float("nan"), "slide_s": 2}, "window size"),
    ({"size_s": 100 * 86400, "slide_s": 86400}, "must be below 100 days"),
    ({"size_s": 300, "slide_s": 70}, r"window size \(300s\) must be a multiple of the slide \(70s\)"),
])
def test_bad_windows_are_refused(kw, says):
    with pytest.raises(ValueError, match=says):
        WindowSpec(**kw)


def test_a_cell_must_close_a_window_after_warmup():
    # the seed's window with the default duration: no window is sure to end in the measured part
    with pytest.raises(ValueError, match=r"Give a duration of at least 76s \(warm-up \+ slide \+ watermark delay\)"):
        CellSpec(duration=60, warmup=15, window=SEED_WINDOW)
    assert CellSpec(duration=76, warmup=15, window=SEED_WINDOW).window == SEED_WINDOW
    assert CellSpec.min_duration(60, SEED_WINDOW) == 121
    # the command: 720 s of load after 60 s of warm-up closes many of the seed's windows
    CellSpec(duration=720, warmup=60, window=SEED_WINDOW)
    # a sub-second window
    CellSpec(duration=2, warmup=0.5, window=WindowSpec(0.5, 0.1, 0.05))


BASE = {"lost": 0, "events_unacknowledged": 0, "producer_errors": 0, "late_records_dropped": 0,
        "sink_send_errors": 0, "sink_records_sent": 40, "results_unread": 0, "result_records_read": 40,
        "restarts": 0, "missing_windows": 0}


def test_no_loss_needs_no_cause():
    assert measure.loss_attribution(BASE) == {"loss_cause": "none"}


def test_each_counter_names_its_share_of_a_loss():
    row = {**BASE, "lost": 625, "missing_windows": 1, "late_records_dropped": 3, "sink_records_sent": 42,
           "events_unacknowledged": 5, "producer_errors": 1}
    cause = measure.loss_attribution(row)["loss_cause"]
    assert "Flink's window operators dropped 3 records as late" in cause
    assert "2 results Flink's sink sent are not in the topic" in cause
    assert "5 events never acknowledged by the broker (1 producer errors)" in cause
    # after a restart the sink's counters start again from 0: they no longer compare with the topic
    assert "sink sent" not in measure.loss_attribution({**row, "restarts": 1})["loss_cause"]


def test_results_the_collector_left_unread_are_never_reported_as_the_systems_loss():
    out = measure.loss_attribution({**BASE, "lost": 625, "missing_windows": 1, "results_unread": 1})
    assert out["lost"] != out["lost"]          # NaN: not measured
    assert "the testbed's collector stopped 1 records short of the results topic's end" in out["loss_cause"]


def test_a_loss_no_counter_explains_says_so():
    cause = measure.loss_attribution({**BASE, "lost": 625, "missing_windows": 1})["loss_cause"]
    assert cause.startswith("not explained by the counters: 1 windows never reported")


def test_absent_counters_are_not_read_as_zero_loss():
    row = {**BASE, "lost": float("nan"), "sink_records_sent": float("nan"), "results_unread": float("nan"),
           "result_records_read": None, "late_records_dropped": float("nan")}
    assert measure.loss_attribution(row) == {"loss_cause": "not applicable"}


def test_how_long_the_source_counter_kept_one_value():
    from testbed.measure.metrics import counter_unchanged_s
    fresh = [(float(t), 100 * t) for t in range(20)]
    assert counter_unchanged_s(fresh, 2, 18) == 0.0
    frozen = fresh[:8] + [(float(t), 700) for t in range(8, 15)] + [(float(t), 100 * t) for t in range(15, 20)]
    assert counter_unchanged_s(frozen, 2, 18) == 7.0     # 7 from t=7 to t=14; the value changes at 15
    assert counter_unchanged_s(fresh[:1], 0, 20) != counter_unchanged_s(fresh[:1], 0, 20)   # NaN: one sample


def test_a_taskmanager_whose_clock_stood_still_had_stale_readings():
    from testbed.measure.metrics import stale_at, stale_readings
    t0 = 1000.0
    # the clock of tm-b stops moving from 12 s to 20 s (the jobmanager kept its old values), tm-a's moves
    clocks = [(t0 + t, {"tm-a": 1e9 * t, "tm-b": 1e9 * (t if t < 12 or t > 20 else 12)}) for t in range(30)]
    got = stale_readings(clocks, t0, t0 + 5, t0 + 30, names={"tm-b": "taskmanager on google-cloud-worker-1"})
    assert got == {"metrics_stale_max_s": 8, "metrics_stale": "taskmanager on google-cloud-worker-1 12.0-20.0 s"}
    assert stale_at(clocks, np.arange(30), t0)[11:22] == [0, 0] + [1] * 8 + [0]
    # a reading that missed one sample is not stale; an unread one is not measured
    blip = [(t0 + t, {"tm-a": 1e9 * (t if t != 7 else 6)}) for t in range(30)]
    assert stale_readings(blip, t0, t0, t0 + 30) == {"metrics_stale_max_s": 1, "metrics_stale": ""}
    assert set(stale_at(blip, np.arange(30), t0)) == {0}
    assert stale_readings([], t0, t0, t0 + 30)["metrics_stale"] == "not measured"


def test_checkpoint_progress_counts_completions_and_the_longest_wait_for_one():
    from testbed.measure.metrics import checkpoint_progress
    samples = [(float(t), c, f) for t, c, f in [(0, 3, 0), (2, 4, 0), (4, 5, 0), (6, 5, 1), (8, 5, 2), (10, 5, 2),
                                                 (12, 6, 2), (14, 7, 2)]]
    assert checkpoint_progress(samples, 1, 15) == {"checkpoints_completed": 3, "checkpoints_failed": 2,
                                                   "checkpoint_gap_max_s": 8.0}
    assert checkpoint_progress(samples[:1], 0, 15)["checkpoints_completed"] != \
        checkpoint_progress(samples[:1], 0, 15)["checkpoints_completed"]        # NaN: no checkpointing seen
