"""Benchmarks of the load driver alone, apart from Flink: ``python -m testbed bench driver``.

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

Speed targets live here and in the README's tables, never in timed test assertions. Everything the
benchmark starts carries the testbed's labels and is removed at the end (``clean`` finds the leftovers
of a killed one).
"""

from __future__ import annotations

import json
import logging

import docker
import docker.errors

from .. import images as img
from ..core import run as runmod
from ..core.run import step
from ..providers.engine import host_client
from ..stack.kafka import BROKER, BrokerSpec
from ..stack.services import container_cpu_seconds

log = logging.getLogger(__name__)


def driver(rate: float = 100_000, duration: float = 10, processes: int = 1, partitions: int = 4, keys: int = 16,
           payload_bytes: int = 100, broker_cpus: float = 0.0, client: docker.DockerClient | None = None) -> dict:
    """Offer ``rate`` events/s of ``payload_bytes`` bytes for ``duration`` s from ``processes``
    processes of one driver task to a fresh broker (limited to ``broker_cpus`` cores, 0: none)."""
    if rate <= 0 or duration <= 0 or processes < 1 or partitions < 1 or keys < 1 or payload_bytes < 0:
        raise ValueError("rate and duration must be > 0; processes, partitions and keys >= 1; payload bytes >= 0")
    client = client or host_client()
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
        bootstrap = spec.bootstrap
        _once(client, tags["driver"], net.name, labels, made,
              ["/opt/driver/driver.py", "--bootstrap", bootstrap, "admin", "--create", f"events:{partitions}"], 120)
        with step(log, f"bench: {rate:,.0f} events/s of {payload_bytes} bytes for {duration:g}s from "
                       f"{processes} process(es)"):
            broker_cpu_before = container_cpu_seconds(broker)
            out = _once(client, tags["driver"], net.name, labels, made,
                        ["/opt/driver/driver.py", "--bootstrap", bootstrap, "produce", "--events", "events",
                         "--rate", str(rate), "--duration", str(duration), "--processes", str(processes),
                         "--keys", str(keys), "--payload-bytes", str(payload_bytes)], duration + 180)
            broker_cpu_s = container_cpu_seconds(broker) - broker_cpu_before
    finally:
        for c in made:
            try:
                c.remove(force=True)
            except docker.errors.NotFound:
                pass
        net.remove()
    raw = json.loads(out.strip().splitlines()[-1])
    elapsed = raw["elapsed_s"] or duration
    return {
        "driver": f"confluent-kafka {img.recipes.CONFLUENT_KAFKA_VERSION}", "offered_rate": rate,
        "duration_s": duration, "processes": processes, "payload_bytes": payload_bytes, "partitions": partitions, "events_sent": raw["sent"], "events_acked": raw["acked"],
        "events_per_s": round(raw["sent"] / elapsed, 1), "acked_per_s": round(raw["acked"] / elapsed, 1), "cpu_s": raw["cpu_s"],
        "cpu_cores": round(raw["cpu_s"] / elapsed, 3),
        "events_per_cpu_s": round(raw["sent"] / raw["cpu_s"], 1) if raw["cpu_s"] else None,
        "late_fraction": raw["behind"] / raw["sent"] if raw["sent"] else None, "max_lag_ms": raw["max_lag_ms"],
        "lost": raw["sent"] - raw["acked"], "errors": raw["errors"], "elapsed_s": elapsed,
        "broker_cpus_limit": broker_cpus or None, "broker_cpu_cores": round(broker_cpu_s / elapsed, 3),
        "host_cpus": client.info().get("NCPU"),
    }


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
