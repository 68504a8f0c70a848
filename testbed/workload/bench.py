"""Benchmarks of the measuring instrument apart from Flink: ``python -m testbed bench driver`` (the load
driver alone against the broker; below) and ``bench broker`` (the broker with a cell's producer and
consumers, per minute; ``broker``).

The driver is the measuring instrument: before a throughput figure can be the system's, the driver
must be shown to outrun it. This runs the broker and the driver's producers (``driver.py produce``:
the same send loop as in a cell, without Flink, results or flush) as
plain containers on this machine's engine, on a network of their own, and reports:

- ``events_per_s``: events sent per second of the run;
- ``cpu_cores``: the producers' CPU time per second of the run (user + system, from the producer
  processes themselves), and ``events_per_cpu_s``, events per CPU-second;
- ``late_fraction``: the share of events sent more than 100 ms after their due time;
- ``lost``: events the broker did not acknowledge;
- ``broker_cpu_cores``: the broker's CPU time per second of the run (from its container). Offered
  more than it can take (``--broker-cpus`` to limit it like a cell does), the acknowledged rate
  is the broker's own ceiling.

Speed targets live here and in the tables of docs/measurements/, never in timed test assertions. Everything the
benchmark starts carries the testbed's labels and is removed at the end (``clean`` finds the leftovers
of a killed one).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

import docker
import docker.errors

from .. import images as img
from ..core import run as runmod
from ..core.run import step
from ..providers.engine import host_client
from ..stack.kafka import BROKER, BrokerSpec
from ..stack.services import container_cpu_seconds
from ..stack import driver_cli
from .driver import PRODUCER_DEFAULTS
from .record import ProduceSummary, parse

log = logging.getLogger(__name__)


def driver(rate: float = 100_000, duration: float = 10, processes: int = 1, partitions: int = 4, keys: int = 16,
           payload_bytes: int = 100, broker_cpus: float = 0.0, client: docker.DockerClient | None = None) -> dict:
    """Offer ``rate`` events/s of ``payload_bytes`` bytes for ``duration`` s from ``processes``
    processes of one driver task to a fresh broker (limited to ``broker_cpus`` cores, 0: none)."""
    if rate <= 0 or duration <= 0 or processes < 1 or partitions < 1 or keys < 1 or payload_bytes < 0:
        raise ValueError("rate and duration must be > 0; processes, partitions and keys >= 1; payload bytes >= 0")
    with _bench_net(client or host_client(), broker_cpus, partitions) as (client, tags, net, labels, made, broker):
        bootstrap = BrokerSpec().bootstrap
        with step(log, f"bench: {rate:,.0f} events/s of {payload_bytes} bytes for {duration:g}s from "
                       f"{processes} process(es)"):
            broker_cpu_before = container_cpu_seconds(broker)
            out = _once(client, tags["driver"], net.name, labels, made,
                        driver_cli.produce(bootstrap, "events", rate, duration, processes=processes, keys=keys,
                                           payload_bytes=payload_bytes, timeout=None), duration + 180)
            broker_cpu_s = container_cpu_seconds(broker) - broker_cpu_before
    raw = parse(ProduceSummary, json.loads(out.strip().splitlines()[-1]), "the bench's driver (its last line)")
    elapsed = raw.elapsed_s or duration
    return {
        "driver": f"confluent-kafka {img.recipes.CONFLUENT_KAFKA_VERSION}", "offered_rate": rate,
        "duration_s": duration, "processes": processes, "payload_bytes": payload_bytes, "partitions": partitions,
        "events_sent": raw.sent, "events_acked": raw.acked,
        "events_per_s": round(raw.sent / elapsed, 1), "acked_per_s": round(raw.acked / elapsed, 1), "cpu_s": raw.cpu_s,
        "cpu_cores": round(raw.cpu_s / elapsed, 3),
        "events_per_cpu_s": round(raw.sent / raw.cpu_s, 1) if raw.cpu_s else None,
        "late_fraction": raw.behind / raw.sent if raw.sent else None, "max_lag_ms": raw.max_lag_ms,
        "lost": raw.sent - raw.acked, "errors": raw.errors, "elapsed_s": elapsed,
        "broker_cpus_limit": broker_cpus or None, "broker_cpu_cores": round(broker_cpu_s / elapsed, 3),
        "host_cpus": client.info().get("NCPU"),
    }


@contextlib.contextmanager
def _bench_net(client: docker.DockerClient, broker_cpus: float, partitions: int):
    """A network of the benchmark's own with a fresh broker (``broker_cpus`` cores, 0: none) and a
    topic ``events`` of ``partitions``; yields (client, image tags, network, labels, containers made,
    broker). Everything it and the caller made (``made``) is removed at the end, also on failure."""
    with step(log, "images (built only if their inputs changed)"):
        tags = img.build_all(client, img.APP_RECIPES)
    run_id = f"bench-{runmod.new_run_id()}"
    labels = runmod.labels(run_id, runmod.owner_token())
    made: list = []
    net = client.networks.create(f"fst-{run_id}", driver="bridge", labels=labels)
    try:
        spec = BrokerSpec()
        broker = client.containers.create(tags["broker"], list(spec.args), name=f"fst-{run_id}-broker",
                                          labels=labels, detach=True, nano_cpus=int(broker_cpus * 1e9) or None)
        made.append(broker)
        net.connect(broker, aliases=[BROKER])
        broker.start()
        _once(client, tags["driver"], net.name, labels, made,
              driver_cli.admin(spec.bootstrap, [f"events:{partitions}"], timeout=None), 120)
        yield client, tags, net, labels, made, broker
    finally:
        for c in made:
            try:
                c.remove(force=True)
            except docker.errors.APIError as e:     # gone already, or busy: ``clean`` finds it by label
                if not isinstance(e, docker.errors.NotFound):
                    log.warning(f"could not remove {c.name}: {e}")
        try:
            net.remove()
        except docker.errors.APIError as e:
            log.warning(f"could not remove network {net.name}: {e}; python -m testbed clean removes it")


def _once(client: docker.DockerClient, image: str, network: str, labels: dict, made: list, args: list[str],
          timeout: float) -> str:
    """Run a driver container to completion; its output, or an error with it."""
    c = client.containers.run(image, args, network=network, labels=labels, detach=True)
    made.append(c)
    code = c.wait(timeout=timeout)["StatusCode"]
    out = c.logs().decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"driver {' '.join(args[3:5])} exited {code}:\n{out[-3000:]}")
    return out


def broker(rate: float = 1000, duration: float = 300, partitions: int = 4, consumers: int = 5,
           payload_bytes: int = 0, broker_cpus: float = 0.0, producer_properties: dict | None = None,
           fetch_wait_ms: int = 100, client: docker.DockerClient | None = None) -> dict:
    """The broker alone as a cell loads it: one driver producer at ``rate`` events/s into ``partitions``
    partitions, and ``consumers`` consumers reading them as they arrive (a cell's source subtasks, one
    partition each, plus the results collector, which reads every partition). Per minute: the produce
    requests' round-trip time (p50, p99), the produce-to-read latency (p50, p99), the events
    acknowledged per second, the broker's CPU."""
    if rate <= 0 or duration < 60 or partitions < 1 or consumers < 1:
        raise ValueError("rate must be > 0, duration >= 60 s (the table is per minute), partitions and consumers >= 1")
    props = dict(producer_properties or {})
    minutes = int(duration // 60)
    with _bench_net(client or host_client(), broker_cpus, partitions) as (client, tags, net, labels, made, b):
        t0 = time.time() + 15        # the containers start meanwhile
        readers = []
        for i in range(consumers):
            parts = (list(range(partitions)) if i == consumers - 1 and consumers > 1
                     else [p for p in range(partitions) if p % max(1, consumers - 1) == i] or [i % partitions])
            c = client.containers.run(tags["driver"], driver_cli.consume(
                BrokerSpec().bootstrap, "events", parts, t0, float(duration) + 5, fetch_wait_ms),
                network=net.name, labels=labels, detach=True)
            made.append(c)
            readers.append(c)
        prod = client.containers.run(tags["driver"], driver_cli.produce(
            BrokerSpec().bootstrap, "events", rate, duration, payload_bytes=payload_bytes, t0=t0,
            producer_properties=props, timeout=None),
            network=net.name, labels=labels, detach=True)
        made.append(prod)
        cpu = []
        with step(log, f"bench broker: {rate:,.0f} events/s into {partitions} partitions, {consumers} consumers, "
                       f"{duration:g}s", unit="min", total=minutes) as progress:
            time.sleep(max(0.0, t0 - time.time()))
            for m in range(minutes):
                before = container_cpu_seconds(b)
                time.sleep(max(0.0, t0 + 60 * (m + 1) - time.time()))
                cpu.append(round((container_cpu_seconds(b) - before) / 60, 3))
                progress.update(m + 1)
        outs = []
        for c in (prod, *readers):
            code = c.wait(timeout=duration + 240)["StatusCode"]
            out = c.logs().decode(errors="replace")
            if code != 0:
                raise RuntimeError(f"a bench container exited {code}:\n{out[-3000:]}")
            outs.append(json.loads(out.strip().splitlines()[-1]))
    produced = parse(ProduceSummary, outs[0], "the bench's producer (its last line)")
    read = outs[1:]
    rows = []
    for m in range(minutes):
        acks = [r for r in produced.ack_stats if 60 * m <= r[0] < 60 * (m + 1)]
        lat = [c["minutes"].get(str(m)) for c in read]
        lat = [x for x in lat if x and x["n"]]
        acked = produced.acked_per_s[60 * m:60 * (m + 1)]
        rows.append({"minute": m + 1, "acked_per_s": round(sum(acked) / 60, 1),
                     "ack_rtt_p50_ms": round(sorted(r[1] for r in acks)[len(acks) // 2], 2) if acks else None,
                     "ack_rtt_p99_ms": round(max(r[2] for r in acks), 2) if acks else None,
                     "read_latency_p50_ms": max(x["p50"] for x in lat) if lat else None,
                     "read_latency_p99_ms": max(x["p99"] for x in lat) if lat else None,
                     "broker_cpu_cores": cpu[m] if m < len(cpu) else None})
    return {"broker": BrokerSpec().name, "rate": rate, "duration_s": duration, "partitions": partitions,
            "consumers": consumers, "fetch_wait_ms": fetch_wait_ms, "payload_bytes": payload_bytes,
            "producer_properties": {**PRODUCER_DEFAULTS, **props}, "broker_cpus_limit": broker_cpus or None,
            "events_sent": produced.sent, "events_acked": produced.acked, "late_events": produced.behind,
            "host_cpus": client.info().get("NCPU"), "minutes": rows}
