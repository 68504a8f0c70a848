"""The measuring path's reports on itself (measure/saturation.py) and the WAN's counters, on the
shapes a cell produces: each part saturates on its own evidence, and the row names it."""

import math

from testbed.measure import saturation
from testbed.providers.wan import parse_counters
from testbed.workload.record import Collected, Spread
from tests.driver_records import params, producer, record


def _raw(queued, stats=(), rate=1000.0, duration=10.0, warmup_s=0.0, warmup_rate=0.0, delivery=None, unread=0,
         behind_s=None, behind_records=None):
    return record(params(rate=rate, duration=duration, warmup_s=warmup_s, warmup_rate=warmup_rate),
                  [producer(queued_per_s=list(queued), ack_stats=[list(r) for r in stats])],
                  Collected(results=[], delivery_ms=Spread(**delivery) if delivery else None, unread_offsets=unread,
                            behind_max_s=behind_s, behind_max_records=behind_records))


def test_a_broker_that_keeps_up_is_not_named():
    raw = _raw([50] * 10, stats=[(s, 1.0, 4.0, 9.0, 6.0, 10) for s in range(1, 10)])
    rep = saturation.broker(raw, 2.0, cpu_used=0.1, cpu_limit=0.4)
    assert rep["broker_backlog_max_s"] == 0.05 and rep["broker_ack_p99_ms"] == 4.0
    assert rep["broker_cpu_of_limit"] == 0.25 and rep["_why"] == []


def test_acknowledgements_that_fall_behind_name_the_broker_only_after_warm_up():
    queued = [5000, 5000, 100, 100, 1500, 100, 100, 100, 100, 100]    # 5 s behind in the warm-up, 1.5 s after
    rep = saturation.broker(_raw(queued, warmup_s=2.0, warmup_rate=1000.0), 2.0, cpu_used=float("nan"), cpu_limit=0)
    assert rep["broker_backlog_max_s"] == 1.5
    assert rep["_why"] == ["its acknowledgements fell 1.5 s of events behind"]
    assert math.isnan(rep["broker_cpu_of_limit"])      # no limit: nothing to compare with


def test_the_warm_up_rate_is_what_a_backlog_is_measured_against():
    # 400 events queued at a warm-up rate of 200/s is 2 s behind; the same at 1,000/s would be 0.4 s
    rep = saturation.broker(_raw([400] * 10, warmup_s=5.0, warmup_rate=200.0), 2.0, 0.0, 0.0)
    assert rep["broker_backlog_max_s"] == 2.0


def test_a_slow_answer_or_a_broker_at_its_cpu_limit_is_named():
    raw = _raw([10] * 10, stats=[(3, 2.0, 2500.0, 2600.0, 1.0, 5)])
    rep = saturation.broker(raw, 0.0, cpu_used=0.38, cpu_limit=0.4)
    assert rep["_why"] == ["a produce request waited 2.6 s for its answer", "it used 95% of its 0.4-core limit"]


def test_a_collector_that_falls_behind_or_leaves_results_is_named():
    ok = saturation.collector(_raw([], delivery={"n": 9, "p50": 20, "p99": 80, "max": 90},
                                   behind_s=1.0, behind_records=4))
    assert ok["_why"] == [] and ok["collector_delivery_p99_ms"] == 80.0
    # results late from the sink (its link to the broker, say) are the system's: no verdict on the collector
    late = saturation.collector(_raw([], delivery={"n": 9, "p50": 900, "p99": 4000, "max": 5000}, behind_s=0.0))
    assert late["_why"] == []
    slow = saturation.collector(_raw([], unread=3, behind_s=6.0, behind_records=800))
    assert slow["_why"] == ["it stayed behind the results topic's end for 6 s (up to 800 results)",
                            "it left 3 results unread"]
    assert math.isnan(saturation.collector(_raw([]))["collector_behind_max_s"])   # not measured


def test_host_busy_and_steal_from_proc_stat():
    before = saturation.host_cpu_times("cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    after = saturation.host_cpu_times("cpu  1060 0 1000 880 0 0 0 60 0 0\n")   # 2,000 jiffies: 80 idle, 60 stolen
    rep = saturation.host(before, after)
    assert rep["host_cpu_busy"] == 0.96 and rep["host_cpu_steal"] == 0.03
    assert rep["_why"] == ["the host's CPUs were 96% busy and 3% stolen by its hypervisor: no CPU to spare"]
    # steal with CPU to spare is a note, not saturation: 1,000 jiffies idle of 2,000, 120 stolen
    half = saturation.host(before, saturation.host_cpu_times("cpu  500 0 480 1800 0 0 0 120 0 0\n"))
    assert half["_why"] == [] and half["_notes"] == ["the host's hypervisor stole 6% of its CPU time"]
    assert saturation.host(None, after)["_why"] == []


def test_wan_counters_from_the_router_and_their_verdict():
    text = ("qdisc htb 1: root refcnt 2 r2q 1000 default 0x1\n Sent 10 bytes 1 pkt (dropped 7, overlimits 0)\n"
            "qdisc pfifo 12: parent 1:12 limit 100000p\n Sent 99 bytes 3 pkt (dropped 2, overlimits 0 requeues 0)\n"
            "#nfq\n    1  12345     0 2 65531     4     1      900  1\n"
            '#stats\n{"held": 900, "late": 3, "stamped": 900}\n{"held": 100, "late": 0}\n')
    c = parse_counters(text, "nfqueue", loss_configured=True)
    assert c == {"drops": 2 + 4 + 1, "held": 1000, "late": 3, "stamped": 900}   # htb's own drops are not the link's queue
    rep = saturation.wan({"drops": 0, "held": 0, "late": 0, "stamped": 0}, c)
    assert rep["wan_queue_drops"] == 7 and rep["wan_late_fraction"] == 0.003 and rep["wan_stamped_fraction"] == 0.9
    assert rep["_why"] == ["its queues dropped 7 packets beyond the configured loss"] and rep["_notes"] == []
    # late releases beyond the link's tolerance are fidelity, noted, not saturation
    late = saturation.wan({"drops": 7, "held": 0, "late": 0}, {**c, "late": 50})
    assert late["_why"] == [] and late["_notes"] == ["the WAN's holder released 5.0% of the packets later than "
                                                     "the link's tolerance"]
    # netem counts its configured loss with its overflow: not told apart, so not measured
    assert parse_counters("qdisc netem 12: parent 1:12\n Sent 1 bytes 1 pkt (dropped 5, overlimits 0)\n#nfq\n#stats\n",
                          "netem", loss_configured=True)["drops"] is None


def test_the_row_names_every_part_that_saturated():
    parts = {"broker": {"broker_backlog_max_s": 3.0, "_why": ["its acknowledgements fell 3.0 s of events behind"]},
             "collector": {"_why": []}, "host": {"host_cpu_busy": 0.97, "_why": ["the host's CPUs were 97% busy"]},
             "wan": {"_why": [], "_notes": ["the WAN's holder released 2.0% of the packets later than the link's tolerance"]}}
    row = {"driver_fell_behind": True, "driver_late_fraction": 0.02}
    out = saturation.limited(row, parts)
    assert out["testbed_limited"] == "driver,broker,host"
    assert out["testbed_limited_why"].startswith("driver: 2.0% of the events went out over 100 ms late; broker: ")
    assert out["testbed_notes"].startswith("the WAN's holder released 2.0%")
    assert saturation.limited({"driver_fell_behind": False}, {"broker": {"_why": []}})["testbed_limited"] == ""
    assert "_why" not in saturation.columns(parts) and saturation.columns(parts)["host_cpu_busy"] == 0.97
