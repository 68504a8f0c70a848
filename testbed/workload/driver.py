"""The load driver. Runs *inside* the cluster (driver image: Python 3 + kafka-python), never on the
harness host, and depends on nothing but kafka-python and the standard library.

    python3 driver.py admin --bootstrap broker:9092 --create events:4 results:4
    python3 driver.py run --bootstrap broker:9092 --events events --results results \
        --rate 1000 --duration 60 --producers 2 --keys 16 --window 5 --slide 1 \
        --watermark-delay 1 --out /out/driver.json
    python3 driver.py produce --bootstrap broker:9092 --events events --rate 20000 --duration 10

``run`` produces open-loop: event i of the run is due at t0 + i/rate, whatever happened before, so
a slow system cannot slow the offered load down (no coordinated omission). Its event time is its
due time. Producer processes split the schedule; each reports how far it fell behind. After the
last event, one flush event per partition (key ``__flush__``) pushes the watermark past the last
windows. A consumer process reads the results topic from the start and stamps each result with its
arrival time. Raw measurements go to ``--out`` as JSON; the harness computes the statistics.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import sys
import time
from collections import Counter

FLUSH_KEY = "__flush__"
BEHIND_MS = 100.0  # an event sent more than this after its due time counts as "behind"


def _wait_for_broker(bootstrap: str, timeout: float):
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000,
                                    client_id="fst-admin")
        except (KafkaError, OSError) as e:
            if time.monotonic() > deadline:
                raise SystemExit(f"broker {bootstrap} not reachable after {timeout:.0f}s: {e}")
            time.sleep(0.5)


def admin(args) -> int:
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

    client = _wait_for_broker(args.bootstrap, args.timeout)
    if args.delete:
        for name in args.delete:
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


def _windows(ts_ms: int, size_ms: int, slide_ms: int):
    """Start times of every sliding window [start, start+size) containing ts_ms."""
    last = ts_ms - ts_ms % slide_ms
    start = last
    while start > ts_ms - size_ms:
        yield start
        start -= slide_ms


def _producer(idx: int, args, t0: float, out: mp.Queue) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, acks=1,
                             batch_size=64 * 1024, max_in_flight_requests_per_connection=5,
                             value_serializer=lambda v: json.dumps(v, separators=(",", ":")).encode(),
                             key_serializer=str.encode, client_id=f"fst-driver-{idx}")
    rate, n_prod = args.rate, args.producers
    total = int(round(args.rate * args.duration))
    size_ms, slide_ms = round(args.window * 1000), round(args.slide * 1000)
    expected: Counter = Counter()
    acked_per_s: Counter = Counter()
    errors: list[str] = []
    max_lag_ms, behind, sent = 0.0, 0, 0

    def on_ok(_md):
        # counted in the second the broker's acknowledgement arrived (the achieved input rate)
        acked_per_s[int(time.time() - t0)] += 1

    def on_err(e):
        if len(errors) < 10:
            errors.append(repr(e))

    i = idx
    while i < total:
        due = t0 + i / rate
        now = time.time()
        if now < due:
            time.sleep(due - now)
            now = time.time()
        lag = (now - due) * 1000
        if lag > BEHIND_MS:
            behind += 1
        max_lag_ms = max(max_lag_ms, lag)
        ts = int(due * 1000)
        key = f"k{i % args.keys}"
        producer.send(args.events, key=key, value={"key": key, "value": float(i % 100), "ts": ts}) \
            .add_callback(on_ok).add_errback(on_err)
        for w in _windows(ts, size_ms, slide_ms):
            expected[(key, w)] += 1
        sent += 1
        i += n_prod
    producer.flush(timeout=60)
    producer.close(timeout=10)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    out.put({"producer": idx, "sent": sent, "acked": sum(acked_per_s.values()), "behind": behind,
             "cpu_s": round(ru.ru_utime + ru.ru_stime, 3), "ended": time.time(),
             "max_lag_ms": round(max_lag_ms, 1), "errors": errors,
             "acked_per_s": sorted(acked_per_s.items()),
             "expected": [[k, w, c] for (k, w), c in expected.items()]})


def _flush(args, last_due: float) -> int:
    """One event per partition, far enough in event time to close every window of the run."""
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=args.bootstrap, key_serializer=str.encode,
                      value_serializer=lambda v: json.dumps(v).encode())
    parts = p.partitions_for(args.events) or {0}
    ts = int((last_due + args.window + args.slide + args.watermark_delay + 1) * 1000)
    for part in parts:
        p.send(args.events, key=FLUSH_KEY, value={"key": FLUSH_KEY, "value": 0.0, "ts": ts}, partition=part)
    p.flush(timeout=30)
    p.close(timeout=10)
    return ts


def _consumer(args, stop_at: mp.Value, target: mp.Value, out: mp.Queue) -> None:
    """Read results until ``stop_at`` (epoch s, set after the flush), or until every expected window
    (``target``, known once the producers are done) has been seen and a second more has passed."""
    from datetime import datetime, timezone

    from kafka import KafkaConsumer, TopicPartition

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
    rows = []
    windows: set = set()
    complete_at = 0.0

    def ms(text: str) -> int:  # window bounds come as UTC wall-clock ISO-8601 (table.local-time-zone = UTC)
        return round(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp() * 1000)

    while True:
        stop = stop_at.value
        if stop and time.time() > stop:
            break
        if target.value and len(windows) >= target.value:
            complete_at = complete_at or time.time()
            if time.time() > complete_at + 1.0:   # late repeats of a window would show up here
                break
        batch = c.poll(timeout_ms=100)
        arrival = int(time.time() * 1000)
        for recs in batch.values():
            for r in recs:
                v = json.loads(r.value)
                if v.get("key") == FLUSH_KEY:
                    continue
                row = [v["key"], ms(v["window_start"]), ms(v["window_end"]), v["cnt"], v.get("max_ts"), arrival]
                rows.append(row)
                windows.add((row[0], row[1]))
    c.close()
    out.put({"results": rows})


def produce(args) -> int:
    """The producers alone (no results, no flush): what ``python -m testbed bench driver`` measures.
    Prints one JSON line: events sent and acknowledged, how many were late, the producers' CPU time."""
    _wait_for_broker(args.bootstrap, args.timeout).close()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    t0 = time.time() + 1.0
    procs = [ctx.Process(target=_producer, args=(i, args, t0, out), daemon=True) for i in range(args.producers)]
    for p in procs:
        p.start()
    reports = [out.get() for _ in procs]
    for p in procs:
        p.join()
    print(json.dumps({
        "sent": sum(r["sent"] for r in reports), "acked": sum(r["acked"] for r in reports),
        "behind": sum(r["behind"] for r in reports), "max_lag_ms": max(r["max_lag_ms"] for r in reports),
        "cpu_s": round(sum(r["cpu_s"] for r in reports), 3), "elapsed_s": round(max(r["ended"] for r in reports) - t0, 3),
        "errors": [e for r in reports for e in r["errors"]][:10], "producers": args.producers}))
    return 0


def run(args) -> int:
    _wait_for_broker(args.bootstrap, args.timeout).close()
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    stop_at = ctx.Value("d", 0.0)
    target = ctx.Value("q", 0)
    consumer = ctx.Process(target=_consumer, args=(args, stop_at, target, out), daemon=True)
    consumer.start()
    t0 = time.time() + 1.0
    procs = [ctx.Process(target=_producer, args=(i, args, t0, out), daemon=True) for i in range(args.producers)]
    for p in procs:
        p.start()
    reports = [out.get() for _ in procs]           # producers end after their last event
    for p in procs:
        p.join()
    total = int(round(args.rate * args.duration))
    last_due = t0 + (total - 1) / args.rate
    target.value = len({(k, w) for r in reports for k, w, _n in r["expected"]})
    flush_ts = _flush(args, last_due)
    # results can arrive until the watermark passes the last window, plus the system's latency
    stop_at.value = time.time() + args.drain
    got = out.get()
    consumer.join()
    result = {
        "t0_ms": int(t0 * 1000), "last_due_ms": int(last_due * 1000), "flush_ts_ms": flush_ts,
        "ended_ms": int(time.time() * 1000),
        "params": {k: v for k, v in vars(args).items() if k not in ("func",)},
        "producers": [{k: v for k, v in r.items() if k != "expected"} for r in reports],
        "expected": [row for r in reports for row in r["expected"]],
        "results": got["results"],
    }
    tmp = args.out + ".part"
    with open(tmp, "w") as f:
        json.dump(result, f)
    os.replace(tmp, args.out)
    sent = sum(r["sent"] for r in reports)
    print(json.dumps({"sent": sent, "acked": sum(r["acked"] for r in reports),
                      "behind": sum(r["behind"] for r in reports), "results": len(got["results"])}))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="driver")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--timeout", type=float, default=60, help="seconds to wait for the broker")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("admin")
    a.add_argument("--create", nargs="*", metavar="TOPIC:PARTITIONS")
    a.add_argument("--delete", nargs="*", metavar="TOPIC")
    a.set_defaults(func=admin)
    r = sub.add_parser("run")
    r.add_argument("--events", required=True)
    r.add_argument("--results", required=True)
    r.add_argument("--rate", type=float, required=True, help="offered events per second")
    r.add_argument("--duration", type=float, required=True, help="seconds of production")
    r.add_argument("--producers", type=int, default=1)
    r.add_argument("--keys", type=int, default=16)
    r.add_argument("--window", type=float, required=True, help="window size, s")
    r.add_argument("--slide", type=float, required=True, help="window slide, s")
    r.add_argument("--watermark-delay", type=float, default=1.0)
    r.add_argument("--drain", type=float, default=30.0, help="seconds to keep reading results after the flush")
    r.add_argument("--out", required=True)
    r.set_defaults(func=run)
    b = sub.add_parser("produce", help="the producers alone, for the benchmark")
    b.add_argument("--events", required=True)
    b.add_argument("--rate", type=float, required=True, help="offered events per second")
    b.add_argument("--duration", type=float, required=True, help="seconds of production")
    b.add_argument("--producers", type=int, default=1)
    b.add_argument("--keys", type=int, default=16)
    b.add_argument("--window", type=float, default=10.0, help="window size, s (the per-event bookkeeping)")
    b.add_argument("--slide", type=float, default=2.0, help="window slide, s")
    b.set_defaults(func=produce)
    args = p.parse_args(argv)
    if getattr(args, "rate", 1) <= 0:
        p.error(f"--rate must be > 0, got {args.rate}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
