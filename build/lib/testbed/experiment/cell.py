"""One experiment cell: Flink with N taskmanagers under a placement, the seed's job, the driver.

    spec = CellSpec(taskmanagers=2, placement="multi-cloud", rate=1000, duration=60, warmup=10,
                    window=WindowSpec(5, 1))
    row = run_cell(tb, spec)        # a flat dict: parameters, metrics, provenance

Everything the cell starts besides Flink itself (topics, job, driver) is removed when it ends, also
when it fails; Flink stays up so that the next cell only rescales it.
"""

from __future__ import annotations

import logging
import io
import json
import math
import tarfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

import docker.types

from ..measure import metrics as measure
from ..results.store import now
from ..core.run import step, wait_for
from ..stack import flink, kafka, services
from ..model.placement import choose
from ..provision.testbed import Testbed
from ..workload import pipeline
from ..workload.pipeline import WindowSpec

log = logging.getLogger(__name__)

DRIVER = "driver"


@dataclass(frozen=True)
class CellSpec:
    taskmanagers: int = 2
    placement: str = "multi-cloud"
    rate: float = 1000.0
    duration: float = 60.0
    warmup: float = 10.0
    window: WindowSpec = field(default_factory=WindowSpec)
    slots: int = 1
    keys: int = 16
    producers: int = 0              # 0: one producer process per 10,000 events/s
    repetition: int = 1
    search: bool = False            # a trial of the sustainable-throughput search
    broker_node: str | None = None  # default: the topology's broker node (the Swarm manager)
    driver_node: str | None = None  # default: the broker's node

    def __post_init__(self):
        if not (isinstance(self.rate, (int, float)) and self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate must be > 0 events/s, got {self.rate!r}")
        if not self.duration > 0:
            raise ValueError(f"duration must be > 0 s, got {self.duration!r}")
        if not 0 <= self.warmup < self.duration:
            raise ValueError(f"warmup must be >= 0 and shorter than the duration ({self.duration}s), "
                             f"got {self.warmup!r}")
        if self.slots < 1 or self.keys < 1 or self.producers < 0:
            raise ValueError("slots and keys must be >= 1, producers >= 0")
        need = self.min_duration(self.warmup, self.window)
        if self.duration < need:
            w = self.window
            raise ValueError(
                f"duration {self.duration:g}s is too short for {w.describe()} after a warm-up of {self.warmup:g}s: "
                f"no window is sure to close inside the measured part of the load (a window's end must fall after "
                f"the warm-up and at least the watermark delay before the load ends). Give a duration of at least "
                f"{need:g}s (warm-up + slide + watermark delay), or a shorter slide")

    @staticmethod
    def min_duration(warmup: float, window: WindowSpec) -> float:
        """The shortest load with at least one window end in [warm-up, end of load - watermark delay],
        wherever the windows' epoch-aligned ends fall: one slide of room is enough."""
        return warmup + window.slide_s + window.watermark_delay_s

    @property
    def producer_processes(self) -> int:
        return self.producers or max(1, math.ceil(self.rate / 10000))

    @property
    def key(self) -> str:
        """Names the cell in a matrix (what --resume matches on)."""
        return (f"tm{self.taskmanagers}-{self.placement}-r{self.rate:g}-rep{self.repetition}"
                + ("-search" if self.search else ""))

    def params(self) -> dict:
        d = asdict(self)
        w = d.pop("window")
        return {"cell_key": self.key, **d, "window_s": w["size_s"], "slide_s": w["slide_s"],
                "watermark_delay_s": w["watermark_delay_s"], "producers": self.producer_processes}


def run_cell(tb: Testbed, spec: CellSpec, artifacts: dict | None = None) -> dict:
    """Run one cell; returns its row. If ``artifacts`` is given, it receives the cell's raw
    ``latency`` samples and per-second ``timeseries`` (pandas frames)."""
    placement = choose(tb.topology, spec.placement, spec.taskmanagers)   # fails before anything starts
    broker_node = spec.broker_node or tb.topology.broker_node
    driver_node = spec.driver_node or broker_node
    tb.node(broker_node), tb.node(driver_node)
    cell = uuid.uuid4().hex[:8]
    row: dict = {"run_id": tb.run_id, "cell": cell, **spec.params(), "broker_node": broker_node,
                 "driver_node": driver_node, "taskmanager_nodes": ",".join(placement.nodes),
                 "taskmanager_clouds": ",".join(placement.clouds(tb.topology)),
                 "provider": tb.provider.name, "wan_backend": tb.wan.backend if tb.wan else "none",
                 "wan_links": json.dumps([vars(d) for d in tb.wan.links.values()]) if tb.wan else "[]",
                 "wan_check": tb.wan_check,
                 "started": now()}
    cluster = flink.deploy(tb, placement, spec.slots)
    # what a killed run may have left on a testbed that is still up: its driver and its job
    services.remove(tb, DRIVER)
    for job in cluster.rest("/jobs")["jobs"]:
        if job["status"] in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
            pipeline.cancel(cluster, job["id"])
    row["flink_ui"] = cluster.rest_url
    row["flink_version"] = cluster.rest("/config").get("flink-version")
    row["registered_taskmanagers"] = len(cluster.taskmanagers())
    broker = kafka.BrokerSpec.of(tb.topology)
    row["broker"] = broker.name
    bootstrap = kafka.deploy(tb, broker_node, broker)
    # Flink's Kafka clients run in the jobmanager and the taskmanagers, maybe in another cloud
    services.wait_resolvable(tb, kafka.BROKER, [flink.JOBMANAGER, flink.TASKMANAGER])
    events, results = f"events-{cell}", f"results-{cell}"
    parts = cluster.parallelism
    kafka.admin(tb, bootstrap, driver_node, [f"{events}:{parts}", f"{results}:{parts}"], [])
    job_id = None
    try:
        job_id = pipeline.submit(cluster, pipeline.sql(events, results, bootstrap, spec.window, parts))
        row["job_id"] = job_id
        raw, samples = _drive(tb, cluster, job_id, spec, bootstrap, events, results, driver_node)
        row.update(measure.cell_metrics(raw, spec.warmup, samples))
        series = measure.timeseries(raw, samples)
        row["lag_slope"] = measure.lag_slope(series, spec.warmup, spec.duration)
        if artifacts is not None:
            artifacts["latency"] = measure.latency_samples(raw["results"], raw["t0_ms"], spec.warmup,
                                                           measure.closed_by_load_ms(raw))
            artifacts["timeseries"] = series
    finally:
        # every step runs even if one before it fails; the first failure is raised
        _cleanup([lambda: job_id and pipeline.cancel(cluster, job_id),
                  lambda: services.remove(tb, DRIVER),
                  lambda: kafka.admin(tb, bootstrap, driver_node, [], [events, results])])
    row["ended"] = now()
    return row


def _cleanup(steps) -> None:
    error = None
    for fn in steps:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - raised below, after the other steps
            error = error or e
    if error is not None:
        raise error


def _drive(tb: Testbed, cluster, job_id: str, spec: CellSpec, bootstrap: str, events: str, results: str,
           node: str) -> tuple[dict, list]:
    """Run the driver as a Swarm service; sample Flink's source counter meanwhile; return the
    driver's raw measurements and the samples."""
    drain = spec.window.size_s + spec.window.watermark_delay_s + 30
    args = ["/opt/driver/driver.py", "--bootstrap", bootstrap, "run", "--events", events, "--results", results,
            "--rate", str(spec.rate), "--duration", str(spec.duration), "--producers",
            str(spec.producer_processes), "--keys", str(spec.keys), "--window", str(spec.window.size_s),
            "--slide", str(spec.window.slide_s), "--watermark-delay", str(spec.window.watermark_delay_s),
            "--drain", str(drain), "--out", "/tmp/driver.json"]
    svc = tb.manager.client.services.create(
        tb.images["driver"], name=DRIVER, args=args, networks=[tb.network],
        constraints=[f"node.hostname == {node}"], endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
        restart_policy=docker.types.RestartPolicy(condition="none"), labels=tb.labels(),
        container_labels=tb.labels())
    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                samples.append((time.time(), pipeline.source_records_in(cluster, job_id)))
            except Exception:  # noqa: BLE001 - a missed sample is not an error
                pass
            stop.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    expect = spec.duration + drain + 60
    with step(log, f"drive {spec.rate:g} events/s for {spec.duration:g}s with "
                        f"{spec.producer_processes} producer(s) on {node} (then up to {drain:.0f}s of results)"):
        try:
            task = wait_for(lambda: _finished_task(svc), expect, "the driver to finish", interval=1,
                            detail=lambda: services.describe(tb, DRIVER))
        finally:
            stop.set()
            sampler.join()
    if task["Status"]["State"] != "complete":
        raise RuntimeError("the driver failed:\n" + services.describe(tb, DRIVER, tail=60))
    container = tb.node(node).client.containers.get(task["Status"]["ContainerStatus"]["ContainerID"])
    stream, _ = container.get_archive("/tmp/driver.json")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tf:
        raw = json.load(tf.extractfile("driver.json"))
    log.info(f"driver: {services.logs(tb, DRIVER, tail=1).strip()}")
    return raw, samples


def _finished_task(svc) -> dict | None:
    """The driver's task once it has ended (complete, failed, ...), else None."""
    for t in svc.tasks():
        if t["Status"]["State"] in ("complete", "failed", "rejected", "shutdown"):
            return t
    return None
