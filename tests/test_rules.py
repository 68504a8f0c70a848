"""The rules that decide, as pure functions: WAN shaping commands, plan order, resume conflicts,
the per-second series and the lag trend. No engine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from testbed.core.plan import Plan, batches, execute, render
from testbed.experiment.options import Experiment
from testbed.experiment.session import resume_conflicts
from testbed.measure import metrics
from testbed.model.topology import load
from testbed.providers.wan import Direction, directions, ids, shaping
from testbed.model.topology import Link
from tests.conftest import messages, records
from tests.driver_records import params, producer, record

SEED = load("seed")


def test_a_link_is_split_into_two_directions_with_half_the_rtt_each():
    (ab, ba) = directions([Link(("azure", "google"), rtt_ms=20, jitter_ms=2, loss_pct=1, bandwidth_mbit=100)])
    assert (ab.src, ab.dst, ba.src, ba.dst) == ("azure", "google", "google", "azure")
    assert ab.delay_ms == ba.delay_ms == 10 and ab.jitter_ms == 2 and ab.loss_pct == 1 and ab.bandwidth_mbit == 100


def test_netem_shaping_commands():
    d = directions([Link(("azure", "google"), rtt_ms=20, jitter_ms=2, loss_pct=0.5, bandwidth_mbit=100)])[0]
    minor, queue = ids(["azure", "google"], d)
    assert (minor, queue) == (11, 1)
    cmds = shaping(d, "eth1", minor, "172.20.0.0/16", "netem", new=True)
    # the queue: one bandwidth-delay product (20 ms at 100 Mbit/s, 167 packets of 1500 bytes), plus
    # the packets netem holds in their delay (12 ms with the jitter: 100)
    assert cmds == [
        "tc class replace dev eth1 parent 1: classid 1:11 htb rate 100mbit ceil 100mbit burst 125000 cburst 125000",
        "tc qdisc replace dev eth1 parent 1:11 handle 11: netem delay 10.0ms 2ms loss 0.5% limit 267",
        "tc filter add dev eth1 parent 1: protocol ip prio 1 u32 match ip src 172.20.0.0/16 flowid 1:11"]
    # a change of an existing link replaces the class and qdisc, and adds no second filter
    again = shaping(d, "eth1", minor, "172.20.0.0/16", "netem", new=False)
    assert again == cmds[:2]


def test_nfqueue_shaping_leaves_the_delay_to_the_holder_and_unlimited_is_a_wide_class():
    d = Direction("google", "azure", delay_ms=10, jitter_ms=0, loss_pct=0, bandwidth_mbit=None)
    minor, queue = ids(["azure", "google"], d)
    assert (minor, queue) == (12, 2)
    cmds = shaping(d, "eth0", minor, "172.21.0.0/16", "nfqueue", new=True)
    assert cmds[0].startswith("tc class replace dev eth0 parent 1: classid 1:12 htb rate 10000mbit")
    assert cmds[1] == "tc qdisc replace dev eth0 parent 1:12 handle 12: pfifo limit 100000"
    assert "netem" not in " ".join(cmds)


def test_the_bottleneck_queue_is_a_bandwidth_delay_product_unless_given():
    bdp = Link(("a", "b"), rtt_ms=20, bandwidth_mbit=100)
    assert bdp.queue_packets() == 167                                   # 20 ms at 12.5 MB/s, 1500-byte packets
    assert Link(("a", "b"), rtt_ms=1, bandwidth_mbit=100).queue_packets() == 42     # at least 5 ms
    assert Link(("a", "b"), rtt_ms=20, bandwidth_mbit=100, buffer_ms=1200).queue_packets() == 10_000
    assert Link(("a", "b"), rtt_ms=0, bandwidth_mbit=1).queue_packets() == 16       # never below TCP's first window
    ab = directions([bdp])[0]
    assert shaping(ab, "eth0", 11, "10.0.0.0/16", "nfqueue", new=False)[1].endswith("pfifo limit 167")


def test_every_direction_of_three_clouds_gets_its_own_class_and_queue():
    clouds = ["a", "b", "c"]
    got = {ids(clouds, Direction(s, t, 1, 0, 0, None)) for s in clouds for t in clouds if s != t}
    assert len(got) == 6 and len({m for m, _ in got}) == 6 and len({q for _, q in got}) == 6


def test_plan_order_groups_background_and_notes():
    ran: list[str] = []
    p = Plan()
    p.add("m", "init", lambda ctx: ran.append("init"))
    p.add("a", "join a", lambda ctx: ran.append("join a"), group="join")
    p.add("b", "join b", lambda ctx: ran.append("join b"), group="join")
    p.add("m", "a note only")
    bg = Plan()
    bg.add("a", "load a", lambda ctx: ran.append("load a"), group="images")
    bg.add("b", "load b", lambda ctx: ran.append("load b"), group="images")
    p.extend(bg, background=True)
    p.add("m", "network", lambda ctx: ctx.setdefault("net", 1))
    kinds = [(kind, [s.command for s in steps]) for kind, steps in batches(p)]
    assert kinds == [("alone", ["init"]), ("together", ["join a", "join b"]), ("background", ["load a"]),
                     ("background", ["load b"]), ("alone", ["network"])]
    with records() as recs:
        ctx = execute(p)
    assert ctx["net"] == 1 and sorted(ran) == sorted(["init", "join a", "join b", "load a", "load b"])
    assert "[a] $ load a &" in messages(recs) and all(getattr(r, "host", None) for r in recs)
    shown = [line.split() for line in render(p, "t").splitlines() if "$ load" in line and "#" not in line]
    assert [words[1] for words in shown[:2]] == ["&", "&"]       # marked as background in the dry run


def test_a_failing_background_step_fails_the_plan():
    import threading
    started = threading.Event()

    def load(ctx):
        started.wait(10)          # fails while the steps after it run
        raise ZeroDivisionError("load failed")

    ran: list[str] = []
    p = Plan()
    bg = Plan()
    bg.add("a", "load", load)
    p.extend(bg, background=True)
    p.add("m", "swarm", lambda ctx: (ran.append("swarm"), started.set()))
    with pytest.raises(ZeroDivisionError, match="load failed"):
        execute(p)
    assert ran == ["swarm"]


def test_resume_conflicts_name_each_option_and_the_topology():
    doc = {"sessions": [{"options": {"duration": 60.0, "warmup": 15.0, "window": 10.0, "slide": 2.0,
                                     "watermark_delay": 1.0, "rates": "1000"}}],
           "topology": {"sha256": "0" * 64}}
    same = {"duration": 60.0, "warmup": 15.0, "window": 10.0, "slide": 2.0, "watermark_delay": 1.0, "rates": "2000"}
    assert resume_conflicts({**doc, "topology": {"sha256": SEED.sha256}}, same, SEED) == []   # rates may differ
    got = resume_conflicts(doc, {**same, "duration": 11.0, "slide": 1.0}, SEED)
    assert got[0] == "--duration 11.0 (the run used 60.0)" and got[1] == "--slide 1.0 (the run used 2.0)"
    assert got[2].startswith("topology ") and "the run's was 000000000000" in got[2]
    # a job file edited between the sessions of one run
    jobs = [{"job": "sql:q.sql", "job_sha256": "a" * 64}]
    edited = resume_conflicts({**doc, "topology": {"sha256": SEED.sha256}, "jobs": jobs}, same, SEED,
                              [{"job": "sql:q.sql", "job_sha256": "b" * 64}])
    assert edited == ["--job sql:q.sql (sha256 bbbbbbbbbbbb; the run's file was aaaaaaaaaaaa)"]
    assert resume_conflicts({**doc, "topology": {"sha256": SEED.sha256}, "jobs": jobs}, same, SEED, jobs) == []


def test_the_matrix_runs_in_order_and_leaves_out_what_cannot_be_placed():
    exp = Experiment(taskmanagers=(1, 2, 3), placements=("single-cloud", "multi-cloud"), rates=(1000.0,),
                     repetitions=2)
    cells, left_out = exp.cells(SEED)
    assert [c.key for c in cells[:3]] == ["tm1-single-cloud-r1000-rep1", "tm1-single-cloud-r1000-rep2",
                                          "tm2-single-cloud-r1000-rep1"]
    assert len(cells) == 4 * 2 and len(left_out) == 2     # tm1 multi-cloud and tm3 single-cloud cannot be
    searches = Experiment(sustainable=True).searches(cells)
    assert [(c.taskmanagers, c.placement, c.repetition, c.rate) for c in searches][:3] == [
        (1, "single-cloud", 1, 1000.0), (1, "single-cloud", 2, 1000.0), (2, "single-cloud", 1, 1000.0)]
    assert len(searches) == len(cells) and Experiment().searches(cells) == []


def _raw(rate=10, duration=6):
    return record(params(rate=rate, duration=duration), [producer(acked_per_s=[rate] * duration)], t0_ms=0)


def test_timeseries_and_a_flat_lag_when_flink_keeps_up():
    samples = [(float(t), 10 * t) for t in range(8)]       # the source has read everything, each second
    series = metrics.timeseries(_raw(), samples)
    assert list(series.columns) == ["t_s", "offered_rate", "achieved_rate", "processed_rate", "lag"]
    assert series["achieved_rate"].tolist()[:6] == [10.0] * 6
    assert series["processed_rate"].dropna().round(6).eq(10).all()
    assert metrics.lag_slope(series, 1, 6) == pytest.approx(0, abs=1e-9)


def test_a_growing_lag_has_the_shortfall_as_its_slope():
    samples = [(float(t), 6 * t) for t in range(8)]        # reads 6 of the 10 events/s
    series = metrics.timeseries(_raw(), samples)
    assert metrics.lag_slope(series, 1, 6) == pytest.approx(4, rel=1e-6)
    assert np.isnan(metrics.lag_slope(pd.DataFrame({"t_s": [1.0], "lag": [0.0]}), 0, 6))


def test_a_failing_step_does_not_wait_for_background_steps():
    import threading
    release, done = threading.Event(), threading.Event()
    p = Plan()
    bg = Plan()
    bg.add("a", "slow load", lambda ctx: (release.wait(30), done.set()))
    p.extend(bg, background=True)
    p.add("m", "swarm", lambda ctx: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        execute(p)
    assert not done.is_set(), "the failure was held up by the background step"
    release.set()


def test_the_holder_times_a_packet_from_the_kernels_receive_stamp():
    import importlib.util
    import struct
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "testbed" / "images" / "files" / "wan-delay.py"
    spec = importlib.util.spec_from_file_location("wan_delay", path)
    holder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(holder)

    def attr(typ: int, payload: bytes) -> bytes:
        return struct.pack("=HH", 4 + len(payload), typ) + payload + b"\0" * (-len(payload) % 4)
    hdr = attr(holder.ATTR_PACKET_HDR, struct.pack("!IHB", 77, 0x0800, 3))
    stamp = attr(holder.ATTR_TIMESTAMP, struct.pack("!QQ", 1_700_000_000, 250_000))
    data = hdr + attr(5, b"\0\0\0\1") + stamp
    assert holder.parse_packet(data, 0, len(data)) == (77, 1_700_000_000.25)
    assert holder.parse_packet(hdr, 0, len(hdr)) == (77, None)          # no stamp: timed from the read


def test_the_holder_keeps_order_so_under_load_jitter_raises_its_mean_delay():
    """The NFQUEUE holder never reorders: a packet leaves after its draw and after the one ahead of it.
    Sparse packets keep the mean at the delay; packets closer than the jitter leave at the running
    maximum of their draws, towards delay + jitter (netem reorders instead and keeps the mean)."""
    import importlib.util
    import random
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "testbed" / "images" / "files" / "wan-delay.py"
    spec = importlib.util.spec_from_file_location("wan_delay", path)
    holder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(holder)
    rng = random.Random(7)

    def mean_delay_ms(gap_s: float, n: int = 2000) -> float:
        last, total = 0.0, 0.0
        for i in range(n):
            arrived = i * gap_s
            last = holder.release_at(last, arrived, 0.010, rng.uniform(-0.005, 0.005))
            total += last - arrived
        return total / n * 1000
    assert 9.7 < mean_delay_ms(0.100) < 10.3           # 100 ms apart: each its own draw, mean 10 ms
    assert mean_delay_ms(0.0001) > 13.0               # 0.1 ms apart: most of the way to delay + jitter


def test_the_reaper_removes_a_run_once_its_owner_is_gone_and_nothing_else():
    from testbed.provision.reaper import watch
    state = {"polls": 0}

    def alive(owner: str) -> bool:
        state["polls"] += 1
        return state["polls"] < 3          # the owner dies on the third look
    removed = watch("run-a", "host:1:2", alive=alive, destroy=lambda rid: [f"container of {rid}"], poll_s=0)
    assert removed == ["container of run-a"] and state["polls"] == 3


def test_the_locks_between_test_processes_exclude_and_share_as_their_modes_say(tmp_path):
    import threading
    import time as _time
    from testbed.core.locks import Locks
    a, b = Locks(tmp_path), Locks(tmp_path)        # two processes' handles (flock is per open file)
    events: list[str] = []

    def other(lock_cm, name: str) -> threading.Thread:
        def run():
            with lock_cm():
                events.append(name)
        t = threading.Thread(target=run)
        t.start()
        return t
    with a.load("sh"):
        t = other(lambda: b.load("sh"), "b shares")      # shared with shared: at once
        t.join(5)
        assert events == ["b shares"]
        with a.quietly():                               # alone: b waits for it
            t = other(lambda: b.load("ex"), "b alone")
            _time.sleep(0.3)
            assert events == ["b shares"]
            events.append("a done")
        # back to shared: b, wanting it alone, still waits until a lets go
        _time.sleep(0.3)
        assert events == ["b shares", "a done"]
    t.join(5)
    assert events == ["b shares", "a done", "b alone"]


def test_every_driver_command_line_the_harness_builds_is_one_the_driver_parses():
    from testbed.stack import driver_cli
    from testbed.workload.driver import parser
    argvs = [driver_cli.admin("b:9092", ["e:2"], ["r"], timeout=60),
             driver_cli.produce("b:9092", "e", 1000, 20, slice_="1/2", processes=2, keys=4, payload_bytes=100,
                                control="/c", out="/c/d.json", warmup_rate=100, warmup_s=5,
                                producer_properties={"linger.ms": "5"}),
             driver_cli.produce("b:9092", "e", 1000, 20, t0=1.7e9, timeout=None),
             driver_cli.collect("b:9092", "e", "r", 30.0, "/c", "/c/r.json"),
             driver_cli.consume("b:9092", "e", [0, 2], 1.7e9, 65.0, 500)]
    parsed = [parser().parse_args(a[1:]) for a in argvs]
    assert all(a[0] == driver_cli.PROGRAM for a in argvs)
    assert (parsed[0].cmd, parsed[0].create, parsed[0].delete, parsed[0].timeout) == ("admin", ["e:2"], ["r"], 60)
    p = parsed[1]
    assert (p.rate, p.duration, p.slice, p.processes, p.keys, p.payload_bytes, p.warmup_rate, p.warmup_s) == \
        (1000, 20, "1/2", 2, 4, 100, 100, 5) and json.loads(p.producer_properties) == {"linger.ms": "5"}
    assert parsed[2].t0 == 1.7e9 and parsed[2].timeout == 60 and parsed[2].control == ""   # the driver's defaults
    assert (parsed[3].cmd, parsed[3].drain, parsed[3].out) == ("collect", 30.0, "/c/r.json")
    assert (parsed[4].partitions, parsed[4].fetch_wait_ms, parsed[4].duration) == ("0,2", 500, 65.0)
