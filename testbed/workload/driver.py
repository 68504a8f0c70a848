"""The load driver. Runs *inside* the cluster (driver image: Python 3, confluent-kafka for the events,
kafka-python for admin and results), never on the harness host, and depends on nothing else.

    python3 driver.py admin --bootstrap broker:9092 --create events:4 results:4
    python3 driver.py produce --bootstrap broker:9092 --events events --rate 100000 --duration 60 \
        --slice 0/2 --processes 1 --keys 16 --payload-bytes 100 --control /tmp/fst --out /tmp/fst/driver.json
    python3 driver.py collect --bootstrap broker:9092 --events events --results results \
        --drain 30 --control /tmp/fst --out /tmp/fst/results.json

One open-loop schedule for the whole run: event j (0 <= j < rate * duration) is due at
t0 + j / rate, whatever happened before, so a slow system cannot slow the offered load down (no
coordinated omission). Its event time is its due time (``event_time_ms``; the harness recomputes
every event's time with the same arithmetic, so the expected count of every (key, window) follows
from the schedule and the driver keeps no per-event books). Its key is ``k{j % keys}``. A schedule
may open with a warm-up phase at a lower rate (``--warmup-rate``, ``--warmup-s``; ``Schedule``):
event j is then due at t0 + j / warmup_rate in that phase and at the rate after it.

``produce`` sends one slice of the schedule (``--slice i/n``: the events j = i (mod n)), split
again over ``--processes``; several produce tasks on several nodes make one schedule. Each process
wakes when events are due and sends all of them in one burst through librdkafka's queue, event j
to partition j mod partitions (whatever the keys, every source subtask reads an equal share; the
job's own key-by spreads the keys); an event
counts as late when the burst that carried it ended more than 100 ms after its due time (an upper
bound on its real lateness). Broker acknowledgements are counted per second of the run as
sent - still queued - failed, read once per burst. A task whose processes are connected writes
``CONTROL/ready.json``; the harness, once every task is ready, writes the same ``{"t0": ...}`` to
each task's ``CONTROL/start.json`` (without ``--control``: ``--t0``, or 1 s after ready).

``collect`` reads the results topic from its start and stamps each result with its arrival time
(``parse_result``: a windowed result, an event's, or neither). When the harness writes
``CONTROL/flush.json`` (``{"flush_ts": ms, "target": windows, "target_events": n, "quiet": s}``, after
every producer is done), it sends one flush event per partition (key ``__flush__``) whose event time
closes every window of the run, then reads until every expected window (or event) has been seen (and
one more second, for late repeats), no result came for ``quiet`` seconds, or ``--drain`` seconds
have passed. Raw measurements go to ``--out`` as
JSON; the harness computes the statistics.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import resource
import sys
import time

FLUSH_KEY = "__flush__"
BEHIND_MS = 100.0  # an event sent more than this after its due time counts as "behind"
READ_TO_END_S = 20.0  # at most this long, after it would stop, the collector reads to the topic's end
PAD_FIELD = b',"pad":"'


# The schedule is shared with the harness, and is copied into the image beside this file.
try:
    from .schedule import Schedule, event_time_ms, events_in_schedule  # noqa: F401 - as a module of the package
except ImportError:
    from schedule import Schedule, event_time_ms, events_in_schedule  # noqa: F401 - as the image's script


def event_value(key: bytes, j: int, ts: int, payload_bytes: int) -> bytes:
    """The JSON value of event j: key, value, event time (ms), and padding up to ``payload_bytes``
    bytes in all (0: no padding)."""
    base = b'{"key":"%s","value":%d.0,"ts":%d' % (key, j % 100, ts)
    if payload_bytes <= 0:
        return base + b"}"
    pad = payload_bytes - len(base) - len(PAD_FIELD) - 2
    return base + PAD_FIELD + b"x" * max(0, pad) + b'"}'


def _wait_for_broker(bootstrap: str, timeout: float):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while True:
        client = None
        try:
            client = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                                      client_id="fst-admin")
            client.list_topics()  # a metadata round trip: the broker that answered is still there
            return client
        except (KafkaError, OSError) as e:
            if client is not None:
                client.close()
            if time.monotonic() > deadline:
                raise SystemExit(f"broker {bootstrap} not reachable after {timeout:.0f}s: {e}")
            time.sleep(0.5)


def admin(args) -> int:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

    client = _wait_for_broker(args.bootstrap, args.timeout)
    created = {spec.partition(":")[0] for spec in args.create or []}
    keep = created | set(args.keep or ())
    stale = [t for t in client.list_topics() if t not in keep and t.startswith(tuple(args.delete_prefix or ()))]
    if args.delete or stale:
        for name in [*(args.delete or []), *stale]:
            try:
                client.delete_topics([name])
            except UnknownTopicOrPartitionError:
                pass
    for spec in args.create or []:
        name, _, parts = spec.partition(":")
        try:
            client.create_topics([NewTopic(name, int(parts or 1), 1)])
        except TopicAlreadyExistsError:
            raise SystemExit(f"topic {name} already exists")
    print(json.dumps({"topics": sorted(client.list_topics())}))
    return 0


def _control(args, name: str, timeout: float) -> dict:
    """Wait for the harness's ``CONTROL/name`` (JSON); a file still being written is read again."""
    path = os.path.join(args.control, name)
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            time.sleep(0.05)
    raise SystemExit(f"no {path} from the harness after {timeout:.0f}s")


# The producer's settings a cell may change (``--producer-properties``), with the testbed's defaults.
# linger.ms bounds the record batches per second and partition (1000 / linger.ms): a broker whose
# cost per fetch grows with the batches it stores (Tansu's memory storage) then holds up for a whole
# cell; it adds at most linger.ms to when an event reaches the broker (docs/pipeline.md, "The broker").
PRODUCER_DEFAULTS = {"linger.ms": 100, "batch.num.messages": 10000, "batch.size": 1_000_000, "acks": 1}
FIXED = ("bootstrap.servers", "client.id", "delivery.report.only.error", "statistics.interval.ms")


def _producer_config(args, client_id: str) -> dict:
    props = json.loads(getattr(args, "producer_properties", "") or "{}")
    fixed = sorted(set(props) & set(FIXED))
    if fixed:
        raise SystemExit(f"--producer-properties may not set {', '.join(fixed)}: the driver's measurements need them")
    return {
        **PRODUCER_DEFAULTS,
        "queue.buffering.max.messages": 2_000_000, "queue.buffering.max.kbytes": 2_097_151,
        "enable.idempotence": False, **props,
        "bootstrap.servers": args.bootstrap, "client.id": client_id,
        "delivery.report.only.error": True,       # acknowledgements are counted from the queue's length
        "statistics.interval.ms": 1000,           # the broker's answer times, per second (AckStats)
    }


class AckStats:
    """librdkafka's statistics, once a second: the brokers' round-trip time of produce requests (how
    long the broker took to acknowledge, p50/p99/max over the second, ms) and how long events waited
    in the client's queue before they were sent (p99, ms; linger.ms included)."""

    def __init__(self):
        self.t0 = 0.0
        self.rows: list[list] = []      # [s since t0, rtt p50, rtt p99, rtt max, queue wait p99, requests]

    def __call__(self, text: str) -> None:
        if not self.t0:
            return
        st = json.loads(text)
        rtt = [b["rtt"] for b in st.get("brokers", {}).values() if b.get("nodeid", -1) >= 0 and b["rtt"].get("cnt")]
        wait = [b["int_latency"] for b in st.get("brokers", {}).values()
                if b.get("nodeid", -1) >= 0 and b["int_latency"].get("cnt")]
        if not rtt:
            return
        worst = max(rtt, key=lambda r: r["p99"])
        self.rows.append([round(time.time() - self.t0, 2), worst["p50"] / 1000, worst["p99"] / 1000,
                          max(r["max"] for r in rtt) / 1000, max((w["p99"] for w in wait), default=0) / 1000,
                          sum(r["cnt"] for r in rtt)])


def _send_slice(s: int, S: int, args, start, out) -> None:
    """Send the events j = s (mod S) of the schedule, each when due; report to ``out``. Says it is
    ready (connected, the topic's partitions known) on ``out``, then waits for ``start`` (t0)."""
    from confluent_kafka import Producer

    failed = [0]
    errors: list[str] = []

    def on_delivery(err, _msg):       # called for failures only (delivery.report.only.error)
        if err is not None:
            failed[0] += 1
            if len(errors) < 10:
                errors.append(str(err))

    stats = AckStats()
    p = Producer({**_producer_config(args, f"fst-driver-{s}"), "on_delivery": on_delivery, "stats_cb": stats})
    meta = p.list_topics(args.events, timeout=args.timeout)      # connected, the topic's leaders known
    parts = len(meta.topics[args.events].partitions) or 1
    out.put({"ready": s})
    t0 = start.get()
    stats.t0 = t0
    sch = Schedule(args.rate, args.duration, args.warmup_rate, args.warmup_s)
    keys, size = args.keys, args.payload_bytes
    rate, first, warm_rate, warm_s = sch.rate, sch.first, sch.warmup_rate, sch.warmup_s
    names = [b"k%d" % k for k in range(keys)]
    mine = max(0, (sch.total - s + S - 1) // S)

    def mine_due(t: float) -> int:
        """How many of my events (j = s + kk S) are due t seconds after t0."""
        return min(mine, max(0, (sch.due_by(t) - s + S - 1) // S))
    produce, poll, topic = p.produce, p.poll, args.events
    acked_per_s: list[int] = []
    queued_per_s: list[int] = []     # events sent and not yet acknowledged, at the end of each second
    acked_before = 0
    behind = 0
    max_lag = 0.0
    full_waits = 0
    k = 0

    def tick(now: float) -> None:
        """Close every whole second of the run that has passed: its acknowledgements."""
        nonlocal acked_before
        while now - t0 >= len(acked_per_s) + 1:
            queued = len(p)
            acked = k - queued - failed[0]
            acked_per_s.append(acked - acked_before)
            queued_per_s.append(queued)
            acked_before = acked

    wait = t0 - time.time()
    if wait > 0:
        time.sleep(wait)
    while k < mine:
        now = time.time()
        due = mine_due(now - t0)   # my events due by now: k < due
        if due <= k:
            time.sleep(max(0.0005, t0 + sch.due_s(s + k * S) - now))
            continue
        for kk in range(k, due):
            j = s + kk * S
            key = names[j % keys]
            # Schedule.time_ms, inline (the hot loop)
            ts = int((t0 + (j / warm_rate if j < first else warm_s + (j - first) / rate)) * 1000)
            value = event_value(key, j, ts, size)
            while True:
                try:
                    produce(topic, value, key, j % parts)
                    break
                except BufferError:        # librdkafka's queue is full: the client is the limit
                    full_waits += 1
                    poll(0.005)
        end = time.time()
        # every event of the burst was handed over by ``end``: late if due before end - 100 ms
        behind += min(due, max(k, mine_due(end - BEHIND_MS / 1000 - t0))) - k
        max_lag = max(max_lag, end - (t0 + sch.due_s(s + k * S)))
        k = due
        poll(0)
        tick(end)
    deadline = time.time() + args.flush_timeout
    while len(p) and time.time() < deadline:
        poll(0.05)
        tick(time.time())
    unacked = len(p)
    tick(time.time() + 1)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.put({"slice": s, "slices": S, "sent": k, "acked": k - unacked - failed[0], "failed": failed[0],
             "unacknowledged": unacked, "behind": behind, "max_lag_ms": round(max(0.0, max_lag) * 1000, 1),
             "queue_full_waits": full_waits, "cpu_s": round(ru.ru_utime + ru.ru_stime, 3),
             "ended": time.time(), "errors": errors, "acked_per_s": acked_per_s, "queued_per_s": queued_per_s,
             "ack_stats": stats.rows})


def produce(args) -> int:
    """This task's slice of the schedule, over ``--processes`` processes. Writes (and prints) one
    JSON report: t0 and every process's counts."""
    i, _, n = args.slice.partition("/")
    i, n = int(i), int(n)
    if not 0 <= i < n:
        raise SystemExit(f"--slice must be i/n with 0 <= i < n, got {args.slice}")
    if args.control:
        os.makedirs(args.control, exist_ok=True)
    _wait_for_broker(args.bootstrap, args.timeout).close()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start: mp.Queue = ctx.Queue()
    P = args.processes
    procs = [ctx.Process(target=_send_slice, args=(i + n * q, n * P, args, start, out), daemon=True)
             for q in range(P)]
    for p in procs:
        p.start()
    for _ in procs:
        msg = out.get(timeout=args.timeout + 30)
        if "ready" not in msg:
            raise SystemExit(f"a producer process did not start: {msg}")
    if args.control:    # the harness sets t0 once every task is ready
        _write(os.path.join(args.control, "ready.json"), {"processes": P})
        t0 = _control(args, "start.json", args.timeout)["t0"]
    else:
        t0 = args.t0 or time.time() + 1.0
    for _ in procs:
        start.put(t0)
    reports = sorted((out.get() for _ in procs), key=lambda r: r["slice"])
    for p in procs:
        p.join()
    report = {"t0": t0, "task": i, "tasks": n, "processes": reports}
    if args.out:
        _write(args.out, report)
    print(json.dumps({"t0": t0, "sent": sum(r["sent"] for r in reports), "acked": sum(r["acked"] for r in reports),
                      "behind": sum(r["behind"] for r in reports), "max_lag_ms": max(r["max_lag_ms"] for r in reports),
                      "cpu_s": round(sum(r["cpu_s"] for r in reports), 3),
                      "elapsed_s": round(max(r["ended"] for r in reports) - t0, 3),
                      "errors": [e for r in reports for e in r["errors"]][:10], "processes": P,
                      "ack_stats": sorted(row for r in reports for row in r["ack_stats"]),
                      "acked_per_s": [sum(v) for v in zip(*(r["acked_per_s"] for r in reports))],
                      "queued_per_s": [sum(v) for v in zip(*(r["queued_per_s"] for r in reports))]}))
    return 0


def consume(args) -> int:
    """Read partitions of a topic from their start for ``--duration`` s after ``--t0`` (a broker
    benchmark's consumers: ``python -m testbed bench broker``). Prints, per minute since t0, the records
    read and their produce-to-read latency (now - the record's timestamp) p50/p99/max, ms."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": args.bootstrap, "group.id": f"fst-bench-{os.getpid()}",
                  "enable.auto.commit": False, "fetch.wait.max.ms": args.fetch_wait_ms, "fetch.min.bytes": 1})
    c.assign([TopicPartition(args.events, int(p), OFFSET_BEGINNING) for p in args.partitions.split(",")])
    per_min: dict[int, list[int]] = {}
    end = args.t0 + args.duration
    while time.time() < end:
        for m in c.consume(num_messages=10000, timeout=0.1):
            if m.error():
                continue
            now = int(time.time() * 1000)
            per_min.setdefault(int((now / 1000 - args.t0) // 60), []).append(now - m.timestamp()[1])
    c.close()
    print(json.dumps({"partitions": args.partitions,
                      "minutes": {m: spread(v) for m, v in sorted(per_min.items()) if m >= 0}}))
    return 0


def _flush(args, flush_ts: int) -> None:
    """One event per partition, far enough in event time to close every window of the run."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=args.bootstrap)
    parts = p.partitions_for(args.events) or {0}
    value = event_value(FLUSH_KEY.encode(), 0, flush_ts, 0)     # formatted as every event is
    for part in parts:
        p.send(args.events, key=FLUSH_KEY.encode(), value=value, partition=part)
    p.flush(timeout=30)
    p.close(timeout=10)


def _ms(v) -> int | None:
    """A window bound: epoch ms, or ISO-8601 wall-clock UTC (table.local-time-zone = UTC); None if absent."""
    from datetime import datetime, timezone

    if v is None:
        return None
    if isinstance(v, (int, float)):
        return int(v)
    return round(datetime.fromisoformat(v).replace(tzinfo=timezone.utc).timestamp() * 1000)


def parse_result(value: bytes, arrival: int) -> tuple[str, list] | None:
    """One result record by the contract (docs/your-own-job.md): ("window", [key, window_start,
    window_end, cnt, ts, arrival]) when it has ``window_end`` (``window_start``, ``cnt``, ``ts`` may be
    None), ("event", [key, ts, arrival]) when it has ``ts`` only, ("other", [...]) when neither, and
    None for the harness's own flush events. A null field is an absent one."""
    v = json.loads(value)
    if not isinstance(v, dict):
        return "other", [str(v)[:200], arrival]
    key = v.get("key")
    if key == FLUSH_KEY:
        return None
    if v.get("window_end") is not None:
        cnt = v.get("cnt")
        return "window", [key, _ms(v.get("window_start")), _ms(v["window_end"]),
                          int(cnt) if cnt is not None else None, v.get("ts", v.get("max_ts")), arrival]
    if v.get("ts") is not None:
        return "event", [key, int(v["ts"]), arrival]
    return "other", [str(v)[:200], arrival]


def collect(args) -> int:
    """Read results from the start of the topic; flush when the harness says the producers are
    done; stop when every expected window (or event) was seen and a second more passed, when no
    result came for ``quiet`` seconds after the flush (if the harness gives one), or after --drain s."""
    from kafka import KafkaConsumer, TopicPartition

    os.makedirs(args.control, exist_ok=True)
    _wait_for_broker(args.bootstrap, args.timeout).close()
    c = KafkaConsumer(bootstrap_servers=args.bootstrap, enable_auto_commit=False, group_id=None,
                      fetch_max_wait_ms=50, client_id="fst-results")
    deadline = time.time() + 60
    parts = None
    while not parts and time.time() < deadline:
        parts = c.partitions_for_topic(args.results)
        if not parts:
            time.sleep(0.2)
    tps = [TopicPartition(args.results, p) for p in sorted(parts or [])]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    got: dict[str, list] = {"window": [], "event": [], "other": []}
    windows: set = set()
    complete_at = stop_at = 0.0
    target = target_events = 0
    quiet = 0.0
    last_result = 0.0
    flush_ts = None
    flush_file = os.path.join(args.control, "flush.json")
    consumed = 0
    delivery: list[int] = []     # ms from the record's timestamp (the job's producer) to its arrival here
    behind = {"since": 0.0, "longest": 0.0, "most": 0, "next": time.time() + 1.0}

    def check_behind(now: float) -> None:
        """Once a second: results the topic holds that this collector has not read yet. Left behind
        for seconds on end, the collector (or the broker's answers to it) is the limit."""
        behind["next"] = now + 1.0
        try:
            end_now = c.end_offsets(tps)
            lag = sum(max(0, end_now[tp] - c.position(tp)) for tp in tps)
        except Exception:  # noqa: BLE001 - a missed check is not an error
            return
        behind["most"] = max(behind["most"], lag)
        if lag and not behind["since"]:
            behind["since"] = now
        elif not lag:
            behind["since"] = 0.0
        if behind["since"]:
            behind["longest"] = max(behind["longest"], now - behind["since"])

    def take(batch) -> None:
        nonlocal last_result, consumed
        arrival = int(time.time() * 1000)
        for recs in batch.values():
            consumed += len(recs)
            for r in recs:
                parsed = parse_result(r.value, arrival)
                if parsed is None:
                    continue
                if r.timestamp is not None and r.timestamp > 0:
                    delivery.append(arrival - r.timestamp)
                kind, row = parsed
                got[kind].append(row)
                last_result = time.time()
                if kind == "window":
                    windows.add((row[0], row[1] if row[1] is not None else row[2]))

    while True:
        now = time.time()
        if flush_ts is None and os.path.exists(flush_file):
            ctl = _control(args, "flush.json", 10)
            flush_ts, target = ctl["flush_ts"], ctl.get("target", 0)
            target_events, quiet = ctl.get("target_events", 0), ctl.get("quiet", 0.0)
            _flush(args, flush_ts)
            # results can arrive until the watermark passes the last window, plus the system's latency
            stop_at = time.time() + args.drain
            last_result = time.time()
        if stop_at and now > stop_at:
            break
        if (target and len(windows) >= target) or (target_events and len(got["event"]) >= target_events):
            complete_at = complete_at or now
            if now > complete_at + 1.0:   # late repeats of a window would show up here
                break
        if quiet and flush_ts is not None and now > last_result + quiet:
            break
        take(c.poll(timeout_ms=100))
        if now >= behind["next"]:
            check_behind(now)
    # Before stopping, read what the broker still holds: up to the topic's end offsets as they are
    # now, and on until a second passes with nothing to read (Tansu 0.6 reports end offsets short of
    # its last records: 802 for 1,000). A result left unread would count as lost: a loss of the
    # testbed's, not of the system's.
    end = c.end_offsets(tps)
    until, empty_since = time.time() + READ_TO_END_S, time.time()
    while time.time() < until:
        before = consumed
        take(c.poll(timeout_ms=200))
        if consumed > before:
            empty_since = time.time()
        elif time.time() > empty_since + 1.0 and all(c.position(tp) >= end[tp] for tp in tps):
            break
    unread = sum(max(0, end[tp] - c.position(tp)) for tp in tps)
    c.close()
    _write(args.out, {"flush_ts_ms": flush_ts, "ended_ms": int(time.time() * 1000), "results": got["window"],
                      "event_results": got["event"], "other_results": got["other"][:100],
                      "other_count": len(got["other"]), "read_records": consumed, "unread_offsets": unread,
                      "delivery_ms": spread(delivery), "behind_max_s": round(behind["longest"], 2),
                      "behind_max_records": behind["most"]})
    print(json.dumps({"results": len(got["window"]), "windows": len(windows), "target": target,
                      "event_results": len(got["event"]), "other_results": len(got["other"]),
                      "read_records": consumed, "unread_offsets": unread}))
    return 0


def spread(values: list) -> dict:
    """n, p50, p99 and max of ``values`` (nearest rank; the driver has no numpy)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    v = sorted(values)
    at = lambda q: v[min(len(v) - 1, max(0, math.ceil(q * len(v)) - 1))]  # noqa: E731
    return {"n": len(v), "p50": at(0.5), "p99": at(0.99), "max": v[-1]}


def _write(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".part"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def parser() -> argparse.ArgumentParser:
    """The driver's command line (the harness builds it in stack/driver_cli.py)."""
    p = argparse.ArgumentParser(prog="driver")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--timeout", type=float, default=60, help="seconds to wait for the broker / the harness")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("admin")
    a.add_argument("--create", nargs="*", metavar="TOPIC:PARTITIONS")
    a.add_argument("--delete", nargs="*", metavar="TOPIC")
    a.add_argument("--delete-prefix", nargs="*", metavar="PREFIX",
                   help="also delete every topic whose name starts with one of these, except those created "
                        "and those kept")
    a.add_argument("--keep", nargs="*", metavar="TOPIC", help="topics --delete-prefix leaves")
    a.set_defaults(func=admin)
    b = sub.add_parser("produce", help="send one slice of the open-loop schedule")
    b.add_argument("--events", required=True)
    b.add_argument("--rate", type=float, required=True, help="offered events per second (the whole schedule)")
    b.add_argument("--duration", type=float, required=True, help="seconds of production")
    b.add_argument("--warmup-rate", type=float, default=0.0,
                   help="events per second during the first --warmup-s seconds (default: --rate)")
    b.add_argument("--warmup-s", type=float, default=0.0, help="seconds at --warmup-rate, part of --duration")
    b.add_argument("--slice", default="0/1", help="i/n: this task sends the events j = i (mod n)")
    b.add_argument("--processes", type=int, default=1, help="processes that split this task's slice")
    b.add_argument("--keys", type=int, default=16)
    b.add_argument("--payload-bytes", type=int, default=0, help="each event's size in bytes (0: unpadded)")
    b.add_argument("--t0", type=float, default=0.0, help="the schedule's start, epoch s, without --control "
                   "(default: 1 s after the processes are ready)")
    b.add_argument("--control", default="", help="folder where this task writes ready.json once its processes "
                   "are connected, and the harness then writes start.json (t0)")
    b.add_argument("--flush-timeout", type=float, default=60, help="seconds to wait for acknowledgements")
    b.add_argument("--producer-properties", default="", help="JSON object of librdkafka settings over the "
                   "driver's defaults (PRODUCER_DEFAULTS)")
    b.add_argument("--out", default="")
    b.set_defaults(func=produce)
    r = sub.add_parser("consume", help="read partitions for a while; latency per minute (bench broker)")
    r.add_argument("--events", required=True)
    r.add_argument("--partitions", required=True, help="comma-separated partition numbers")
    r.add_argument("--t0", type=float, required=True, help="epoch s the producers start at")
    r.add_argument("--duration", type=float, required=True, help="seconds to read after t0")
    r.add_argument("--fetch-wait-ms", type=int, default=100, help="fetch.wait.max.ms (the testbed's SQL jobs' "
                   "source: 100; Kafka's consumer: 500)")
    r.set_defaults(func=consume)
    c = sub.add_parser("collect", help="read the results; flush when the harness says so")
    c.add_argument("--events", required=True)
    c.add_argument("--results", required=True)
    c.add_argument("--drain", type=float, default=30.0, help="seconds to keep reading results after the flush")
    c.add_argument("--control", required=True, help="folder where the harness writes flush.json")
    c.add_argument("--out", required=True)
    c.set_defaults(func=collect)
    return p


def main(argv=None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if getattr(args, "rate", 1) <= 0:
        p.error(f"--rate must be > 0, got {args.rate}")
    if getattr(args, "processes", 1) < 1 or getattr(args, "keys", 1) < 1:
        p.error("--processes and --keys must be >= 1")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
