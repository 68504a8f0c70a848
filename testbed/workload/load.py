"""The load of one cell on the Swarm: driver tasks that share one open-loop schedule, and the
results collector.

    spec = LoadSpec(rate=50_000, duration=60, keys=16, payload_bytes=100, window=WindowSpec(10, 2),
                    nodes=("azure-swarm-manager", "azure-swarm-worker-1"))
    raw = run(tb, spec, bootstrap, "events-1", "results-1")

One service per driver task (``driver-0`` ... on ``spec.nodes``, a node may be named twice), each
sending the events j = i (mod n) of the schedule, and one ``driver-results`` service on the first
driver node that reads the results. The harness starts them, waits until all run, then writes
the same ``t0`` into each task (``/tmp/fst/start.json``) once each says it is connected
(``ready.json``): every task keeps one clock's schedule, none starts it late.
When every task is done, it works out from the schedule what each (key, window) should count,
and tells the collector to flush and how many windows to wait for. The tasks' and the collector's
reports are read into their types (record.py), and ``merge`` joins them into one ``Record`` (tested
apart from any engine).
"""

from __future__ import annotations

import io
import json
import logging
import math
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import docker.errors
import docker.types

from ..core.run import GiveUp, step, wait_for
from ..provision.testbed import Testbed
from ..stack import services
from ..stack import driver_cli
from . import schedule
from .record import Collected, Params, Record, TaskReport, parse
from .schedule import Schedule
from .pipeline import WindowSpec

log = logging.getLogger(__name__)

PREFIX = "driver"
COLLECTOR = "driver-results"
CONTROL = "/tmp/fst"
START_MARGIN_S = 1.0           # from fixing t0 to t0: the start files' delivery
QUIET_S = 10.0                 # a job of unknown output is done when no result came for this long
START_WAIT_S = 600.0          # how long a connected driver task waits for t0 (the job's submission)
RATE_PER_PROCESS = 100_000     # events/s one driver process sends on time (python -m testbed bench driver)


@dataclass(frozen=True)
class LoadSpec:
    rate: float
    duration: float
    window: WindowSpec
    nodes: tuple[str, ...]          # one driver task per entry
    keys: int = 16
    payload_bytes: int = 0
    processes: int = 0              # per task; 0: one per RATE_PER_PROCESS events/s of its slice
    cpus: float = 0.0               # CPU limit of each driver task, cores (0: none)
    warmup_rate: float = 0.0        # events/s during the first warmup_s seconds (0: rate)
    warmup_s: float = 0.0
    output: str = "windows"         # what the job writes: windows (counted), events (one per event), any
    producer_properties: tuple[tuple[str, str], ...] = ()   # librdkafka settings over the driver's defaults

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.rate, self.duration, self.warmup_rate, self.warmup_s)

    @property
    def tasks(self) -> int:
        return len(self.nodes)

    @property
    def processes_per_task(self) -> int:
        return self.processes or max(1, math.ceil(self.rate / self.tasks / RATE_PER_PROCESS))

    @property
    def drain_s(self) -> float:
        return self.window.size_s + self.window.watermark_delay_s + 30


def parse_properties(text: str, what: str = "--producer-properties") -> tuple[tuple[str, str], ...]:
    """``k=v,k=v`` (client settings) as sorted pairs; an item without ``=`` or a key given twice is an
    error that names it."""
    out: dict[str, str] = {}
    for item in filter(None, (x.strip() for x in (text or "").split(","))):
        k, eq, v = item.partition("=")
        if not eq or not k.strip():
            raise ValueError(f"{what}: {item!r} is not key=value")
        if k.strip() in out:
            raise ValueError(f"{what}: {k.strip()} is given twice")
        out[k.strip()] = v.strip()
    return tuple(sorted(out.items()))


def task_name(i: int) -> str:
    return f"{PREFIX}-{i}"


def names(tb: Testbed) -> list[str]:
    """The driver services on the Swarm (this cell's, or a killed run's)."""
    return [s.name for s in tb.manager.client.services.list(filters={"label": list_label(tb)})
            if s.name == COLLECTOR or s.name.startswith(PREFIX + "-")]


def list_label(tb: Testbed) -> list[str]:
    return [f"{k}={v}" for k, v in tb.labels(component="driver").items()]


def remove(tb: Testbed, timeout: float = 60) -> None:
    """Remove the driver services and wait until their containers are gone from every node (a
    driver still stopping is still load)."""
    gone = names(tb)
    for name in gone:
        services.remove(tb, name)
    if not gone:
        return

    def still() -> list[str]:
        out = []
        for m in tb.machines:
            for c in m.client.containers.list(filters={"label": "com.docker.swarm.service.name"}):
                if c.labels.get("com.docker.swarm.service.name") in gone:
                    out.append(f"{c.name} on {m.hostname}")
        return out

    wait_for(lambda: not still(), timeout, "the driver containers to stop", interval=0.5,
             detail=lambda: "still running: " + ", ".join(still()))


def start(tb: Testbed, spec: LoadSpec, bootstrap: str, events: str, results: str) -> list:
    """Create the cell's driver services (the collector first) and return them without waiting: the
    Swarm starts their containers, and they connect to the broker, while the job is being submitted.
    They send nothing before ``run`` gives them t0."""
    remove(tb)
    collector = _create(tb, COLLECTOR, spec.nodes[0], driver_cli.collect(
        bootstrap, events, results, spec.drain_s, CONTROL, f"{CONTROL}/results.json"), 0.0)
    return [collector, *(_create(tb, task_name(i), node, driver_cli.produce(
        bootstrap, events, spec.rate, spec.duration, slice_=f"{i}/{spec.tasks}", processes=spec.processes_per_task,
        keys=spec.keys, payload_bytes=spec.payload_bytes, control=CONTROL, out=f"{CONTROL}/driver.json",
        warmup_rate=spec.warmup_rate, warmup_s=spec.warmup_s, producer_properties=dict(spec.producer_properties),
        timeout=START_WAIT_S), spec.cpus) for i, node in enumerate(spec.nodes))]


def run(tb: Testbed, spec: LoadSpec, bootstrap: str, events: str, results: str,
        on_start: Callable[[float], None] | None = None, started: list | None = None,
        mark: Callable[[str], None] | None = None) -> Record:
    """Drive the cell's load; returns its record (``merge``). ``started``: the
    services ``start`` created already (else they are created now); ``on_start`` is called with t0
    once the schedule is fixed; ``mark(phase)`` as each of its phases ends (drivers, start, load,
    collect), for the cell's account of its time."""
    every = started or start(tb, spec, bootstrap, events, results)
    collector, tasks = every[0], every[1:]
    mark = mark or (lambda _phase: None)
    with step(log, f"start {spec.tasks} driver task(s) on {', '.join(spec.nodes)} and the results collector"):
        running: dict = wait_for(lambda: _all_running(tb, every), 120, "the driver tasks to run", interval=0.5,
                           detail=lambda: "\n".join(services.describe(tb, s.name) for s in every))
        wait_for(lambda: _all_running(tb, every) and all(_exists(tb, running[s.name], "ready.json") for s in tasks), 120,
                 "the driver tasks to connect to the broker", interval=0.25,
                 detail=lambda: "\n".join(services.describe(tb, s.name) for s in tasks))
    mark("drivers")
    # t0 must still lie ahead when the last task reads it: the start files go to every task at once
    # (each a copy through its node's engine, slow on a busy host), and a task that learns t0 late
    # would send its first events late. Checked, not assumed: a late delivery is logged.
    t0 = round(time.time() + START_MARGIN_S, 3)
    with ThreadPoolExecutor(len(tasks)) as pool:
        list(pool.map(lambda svc: _put(tb, running[svc.name], "start.json", {"t0": t0}), tasks))
    if time.time() > t0 - 0.1:
        log.warning(f"the driver tasks learnt t0 only {t0 - time.time():.2f}s before it (margin {START_MARGIN_S}s): "
                    "their first events may be sent late (driver_late_fraction says how many)")
    if on_start:
        on_start(t0)
    mark("start")
    w = spec.window
    sch = spec.schedule
    warm = f" after {sch.warmup_s:g}s at {sch.warmup_rate:,.0f}" if sch.first else ""
    load_s = round(schedule.last_due_s(t0, sch) - t0)
    with step(log, f"drive {spec.rate:,.0f} events/s{warm} for {spec.duration:g}s from {spec.tasks} task(s) x "
                   f"{spec.processes_per_task} process(es)" + (f", {spec.cpus:g} cores each" if spec.cpus else ""),
              unit="s of load", total=load_s) as p:
        asked = [0.0]

        def finished():
            # the manager (the broker's node, by default) is asked once a second while the load
            # runs (a task that fails early is seen); after it, every 0.1 s, each task's report
            # first (there before Swarm calls the task complete)
            now = time.time()
            p.update(min(load_s, max(0, round(now - t0))))
            if now < t0 + load_s and now - asked[0] < 1.0:
                return None
            asked[0] = now
            return _reported(tb, running, tasks, "driver.json") if now >= t0 + load_s else _all_finished(tasks)

        done = wait_for(finished, spec.duration + 180, "the driver tasks to finish", interval=0.1,
                        detail=lambda: "\n".join(services.describe(tb, s.name) for s in tasks))
        for name, task in done.items():
            if task is not None and task["Status"]["State"] != "complete":
                raise RuntimeError(f"driver task {name} failed:\n" + services.describe(tb, name, tail=60))
        reports = [parse(TaskReport, _get(tb, running[s.name], "driver.json"), f"driver task {s.name} (driver.json)")
                   for s in tasks]
    mark("load")
    expected = schedule.expected_counts(t0, sch, spec.keys, w.size_ms, w.slide_ms)
    flush_ts = schedule.flush_time_ms(t0, sch, w.size_s, w.slide_s, w.watermark_delay_s)
    _put(tb, running[COLLECTOR], "flush.json", flush_control(spec, flush_ts, len(expected)))
    what = (f"all {sch.total:,} events" if spec.output == "events" else f"all {len(expected):,} windows"
            + (f" (or none for {QUIET_S:g}s)" if spec.output == "any" else ""))
    with step(log, f"collect results until {what} are in (at most {spec.drain_s:.0f}s)"):
        # (every 0.25 s: the driver node is the broker's by default, and these are the last windows)
        task = wait_for(lambda: _reported(tb, running, [collector], "results.json"), spec.drain_s + 120,
                        "the results collector to finish", interval=0.25,
                        detail=lambda: services.describe(tb, COLLECTOR))[COLLECTOR]
        if task is not None and task["Status"]["State"] != "complete":
            raise RuntimeError("the results collector failed:\n" + services.describe(tb, COLLECTOR, tail=60))
        collected = parse(Collected, _get(tb, running[COLLECTOR], "results.json"),
                          f"the results collector {COLLECTOR} (results.json)")
    log.info(f"driver: {services.logs(tb, COLLECTOR, tail=1).strip()}")
    mark("collect")
    return merge(spec, reports, collected, expected)


def flush_control(spec: LoadSpec, flush_ts: int, windows: int) -> dict:
    """What the collector is told once the producers are done: the flush events' time and when it has
    everything (all windows, all events, or no result for QUIET_S, by what the job writes)."""
    return {"flush_ts": flush_ts, "target": 0 if spec.output == "events" else windows,
            "target_events": spec.schedule.total if spec.output == "events" else 0,
            "quiet": QUIET_S if spec.output == "any" else 0.0}


def merge(spec: LoadSpec, reports: list[TaskReport], collected: Collected, expected: list[list]) -> Record:
    """One record from the tasks' reports, the schedule's expected counts and the collected results.
    Every task must have kept the same schedule (t0) and together they must cover it exactly once."""
    if not reports:
        raise ValueError("no driver reports")
    t0s = {r.t0 for r in reports}
    if len(t0s) != 1:
        raise ValueError(f"the driver tasks kept different schedules (t0 {sorted(t0s)})")
    slices = sorted((p.slice, p.slices) for r in reports for p in r.processes)
    n = slices[0][1]
    if [s for s, _ in slices] != list(range(n)) or any(m != n for _, m in slices):
        raise ValueError(f"the driver processes' slices {slices} do not cover the schedule once")
    t0 = t0s.pop()
    sch = spec.schedule
    total = sch.total
    w = spec.window
    sent = sum(p.sent for r in reports for p in r.processes)
    if sent != total:
        raise ValueError(f"the driver tasks sent {sent:,} events, the schedule has {total:,}")
    return Record(
        t0=t0, t0_ms=int(t0 * 1000), last_due_ms=int(schedule.last_due_s(t0, sch) * 1000),
        params=Params(rate=spec.rate, duration=spec.duration, keys=spec.keys, window=w.size_s, slide=w.slide_s,
                      watermark_delay=w.watermark_delay_s, payload_bytes=spec.payload_bytes, tasks=spec.tasks,
                      processes=spec.processes_per_task, warmup_rate=sch.warmup_rate, warmup_s=sch.warmup_s,
                      output=spec.output),
        reports=tuple(reports), expected=expected, collected=collected)


def _create(tb: Testbed, name: str, node: str, args: list[str], cpus: float):
    return tb.manager.client.services.create(
        tb.images["driver"], name=name, args=args, networks=[tb.network],
        constraints=[f"node.hostname == {node}"], endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
        restart_policy=docker.types.RestartPolicy(condition="none"), labels=tb.labels(component="driver"),
        container_labels=tb.labels(component="driver"),
        resources=docker.types.Resources(cpu_limit=int(cpus * 1e9)) if cpus else None)


def _all_running(tb: Testbed, svcs: list) -> dict | None:
    """service name -> (node hostname, container id) once every service's task runs; a task that
    ended already is an error (the driver exits only when done or failed)."""
    nodes = services.node_names(tb)
    out = {}
    for s in svcs:
        tasks = s.tasks()
        for t in tasks:
            if t["Status"]["State"] in ("failed", "rejected", "complete", "shutdown"):
                raise GiveUp(f"driver task {s.name} ended before the load began:\n"
                                   + services.describe(tb, s.name, tail=60))
        run = [t for t in tasks if t["Status"]["State"] == "running"]
        if not run:
            return None
        out[s.name] = (nodes.get(run[0]["NodeID"], "?"), run[0]["Status"]["ContainerStatus"]["ContainerID"])
    return out


def _reported(tb: Testbed, running: dict, svcs: list, name: str) -> dict | None:
    """Each service's task done: {name: None} once every one has written its report ``name`` (it
    writes it whole, last), else ``_all_finished`` (a task that ended without it failed)."""
    if all(_exists(tb, running[s.name], name) for s in svcs):
        return {s.name: None for s in svcs}
    return _all_finished(svcs)


def _all_finished(svcs: list) -> dict | None:
    out = {}
    for s in svcs:
        ended = [t for t in s.tasks() if t["Status"]["State"] in ("complete", "failed", "rejected", "shutdown")]
        if not ended:
            return None
        out[s.name] = ended[0]
    return out


def put_file(container, name: str, data: dict) -> None:
    """Write CONTROL/name (JSON) into a running driver container (a tar through its engine). The
    folder exists: every driver command creates it when it starts."""
    body = json.dumps(data).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(body), int(time.time())
        tf.addfile(info, io.BytesIO(body))
    if not container.put_archive(CONTROL, buf.getvalue()):
        raise RuntimeError(f"could not write {CONTROL}/{name} into driver container {container.short_id}")


def has_file(container, name: str) -> bool:
    try:
        container.get_archive(f"{CONTROL}/{name}")
        return True
    except docker.errors.NotFound:
        return False


def get_file(container, name: str) -> dict:
    stream, _ = container.get_archive(f"{CONTROL}/{name}")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tf:
        return json.load(tf.extractfile(name))


def _container(tb: Testbed, where: tuple[str, str]):
    node, cid = where
    return tb.node(node).client.containers.get(cid)


def _put(tb: Testbed, where: tuple[str, str], name: str, data: dict) -> None:
    put_file(_container(tb, where), name, data)


def _exists(tb: Testbed, where: tuple[str, str], name: str) -> bool:
    return has_file(_container(tb, where), name)


def _get(tb: Testbed, where: tuple[str, str], name: str) -> dict:
    return get_file(_container(tb, where), name)
