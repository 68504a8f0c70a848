"""One experiment cell: Flink with N taskmanagers under a placement, a job (the seed's by default),
the driver.

    spec = CellSpec(taskmanagers=2, placement="multi-cloud", rate=1000, duration=60, warmup=10,
                    window=WindowSpec(5, 1), job=Job.parse("sql:tumble.sql"))
    row = run_cell(tb, spec)        # a flat dict: parameters, metrics, provenance

Everything the cell starts besides Flink itself (topics, job, driver) is removed when it ends, also
when it fails; Flink stays up so that the next cell only rescales it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
from concurrent.futures import ThreadPoolExecutor
import time
import uuid
from dataclasses import asdict, dataclass, field

from ..measure import metrics as measure
from ..measure import saturation, window
from ..results.store import now
from ..stack import flink, kafka, services
from ..model.placement import choose
from ..provision import cpu
from ..provision.testbed import Testbed
from ..providers.wan import WanBroken
from ..measure import recovery
from ..measure.prober import Prober, loaded_rtt, rtt_per_second
from ..model.scenario import Scenario
from ..model.topology import links_with
from ..workload import driver, jobs, load, pipeline
from . import faults
from ..workload.jobs import Job
from ..workload.pipeline import WindowSpec
from ..workload.record import Record

log = logging.getLogger(__name__)

DRIVER = "driver"
TOPIC_PREFIXES = ("events-", "results-")      # a cell's topics: events-CELL, results-CELL
# run id -> the topics of the cell whose job this process cancelled without waiting for its end:
# the next cell keeps them (that job may still read them), the one after deletes them
_ENDING: dict[str, tuple[str, ...]] = {}
METRIC_FETCH_TIMEOUT = "10 s"


CHECKPOINT_MODES = ("at-least-once", "exactly-once")


class CellSpecError(ValueError):
    """A cell's bad settings, every one at once: ``problems`` lists (field, problem) pairs, each
    problem naming the value the field got."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        lines = [f"{name}: {problem}" for name, problem in problems]
        super().__init__(lines[0] if len(lines) == 1 else
                         f"{len(lines)} bad cell settings:\n" + "\n".join("  - " + line for line in lines))


@dataclass(frozen=True)
class CellSpec:
    taskmanagers: int = 2
    placement: str = "multi-cloud"
    rate: float = 1000.0
    duration: float = 60.0
    warmup: float = 10.0
    warmup_fraction: float = 1.0    # the offered rate during the warm-up, as a fraction of ``rate``
    window: WindowSpec = field(default_factory=WindowSpec)
    slots: int = 1
    keys: int = 16
    payload_bytes: int = 0          # each event's size in bytes; 0: unpadded (about 50 bytes)
    driver_processes: int = 0       # per driver task; 0: one per 100,000 events/s of its slice
    repetition: int = 1
    search: bool = False            # a trial of the sustainable-throughput search
    broker_node: str | None = None  # default: the topology's broker node (the Swarm manager)
    driver_nodes: tuple[str, ...] = ()   # one driver task per entry; default: one on the broker's node
    cpu_scale: float = 0.0          # > 0: every service limited to its node's CPUs times this
    cpu_limits: tuple[tuple[str, float], ...] = ()   # (role, cores) replacing the scale's; 0: none
    job: Job = field(default_factory=lambda: Job.parse("hop-window"))
    scenario: Scenario | None = None    # faults during the load (model/scenario.py)
    checkpoint_interval_s: float = 0.0  # > 0: checkpoints and restarts (pipeline.recovery_settings)
    checkpoint_mode: str = "at-least-once"
    spare_slots: int = 0                # per taskmanager, beyond ``slots``: room to restart without a lost one
    producer_properties: tuple[tuple[str, str], ...] = ()   # the driver's librdkafka settings over its defaults
    source_properties: tuple[tuple[str, str], ...] = ()     # the SQL job's Kafka source: client settings over the harness's
    sink_properties: tuple[tuple[str, str], ...] = ()       # ... and its Kafka sink's
    links: tuple[tuple[str, str, str, float], ...] = ()      # (cloud, cloud, field, value): a link axis's values
    submit: str = "rest"                # how a SQL job is started (pipeline.SUBMIT): REST, or a flink run client

    def __post_init__(self):
        problems = self._problems()
        if problems:
            raise CellSpecError(problems)

    def _problems(self) -> list[tuple[str, str]]:
        """Every rule of a cell's settings, checked: a (field, problem) pair per broken one. A rule
        between fields is left out where one of them is bad itself (its own problem says so)."""
        out: list[tuple[str, str]] = []

        def rule(ok: bool, name: str, must: str) -> bool:
            if not ok:
                out.append((name, f"{must}, got {_shown(getattr(self, name))}"))
            return ok

        rule(_number(self.rate) and self.rate > 0, "rate", "must be > 0 events/s")
        duration_ok = rule(_number(self.duration) and self.duration > 0, "duration", "must be > 0 s")
        warmup_ok = rule(_number(self.warmup) and self.warmup >= 0 and (not duration_ok or self.warmup < self.duration),
                         "warmup", "must be >= 0 s" + (f" and shorter than duration ({_shown(self.duration)}s)"
                                                       if duration_ok else ""))
        rule(_number(self.warmup_fraction) and 0 < self.warmup_fraction <= 1, "warmup_fraction",
             "must be in (0, 1] (the warm-up's rate as a fraction of the cell's)")
        for name, low, note in (("slots", 1, ""), ("keys", 1, ""), ("payload_bytes", 0, " (0: unpadded)"),
                                ("driver_processes", 0, " (0: one per 100,000 events/s of a driver task's share)"),
                                ("spare_slots", 0, ""), ("cpu_scale", 0, " (0: no CPU limits)"),
                                ("checkpoint_interval_s", 0, " s (0: no checkpoints)")):
            value = getattr(self, name)
            rule(_number(value) and value >= low, name, f"must be >= {low}{note}")
        rule(self.checkpoint_mode in CHECKPOINT_MODES, "checkpoint_mode", f"must be {' or '.join(CHECKPOINT_MODES)}")
        rule(self.submit in pipeline.SUBMIT, "submit", f"must be one of {', '.join(pipeline.SUBMIT)}")
        window_ok = rule(isinstance(self.window, WindowSpec), "window", "must be a WindowSpec")
        job_ok = rule(isinstance(self.job, Job), "job", "must be a Job")
        for name, defaults in (("source_properties", pipeline.SOURCE_DEFAULTS),
                               ("sink_properties", pipeline.SINK_DEFAULTS)):
            props = getattr(self, name)
            if job_ok and self.job.kind == "jar":
                if props:
                    out.append((name, f"for SQL jobs only: {self.job.spec} builds its own Kafka clients"))
                continue
            try:
                pipeline.client_properties(defaults, props)
            except ValueError as e:
                out.append((name, str(e)))
        if duration_ok and warmup_ok and window_ok and job_ok:
            w = self.job.window(self.window)
            need = self.min_duration(self.warmup, w)
            if self.duration < need:
                out.append(("duration", (
                    f"{self.duration:g}s is too short for {w.describe()} after a warm-up of {self.warmup:g}s: "
                    f"no window is sure to close inside the measured part of the load (a window's end must fall "
                    f"after the warm-up and at least the watermark delay before the load ends). Give a duration "
                    f"of at least {need:g}s (warm-up + slide + watermark delay), or a shorter slide")))
        return out

    @staticmethod
    def min_duration(warmup: float, window: WindowSpec) -> float:
        """The shortest load with at least one window end in [warm-up, end of load - watermark delay],
        wherever the windows' epoch-aligned ends fall: one slide of room is enough."""
        return warmup + window.slide_s + window.watermark_delay_s

    @property
    def key(self) -> str:
        """Names the cell in a matrix (what --resume matches on)."""
        return (f"tm{self.taskmanagers}-{self.placement}-r{self.rate:g}-rep{self.repetition}"
                + ("" if self.job.spec == "hop-window" else f"-{self.job.label}")
                + (f"-{self.scenario.name}" if self.scenario else "")
                + "".join(f"-{v}" for v in self._axis_values())
                + ("-search" if self.search else ""))

    def _axis_values(self) -> list[str]:
        """The values of the client-settings and link axes this cell has (none by default)."""
        out = [f"{what}:{_props(p)}" for what, p in (("producer", self.producer_properties),
                                                     ("source", self.source_properties),
                                                     ("sink", self.sink_properties)) if p]
        return out + (["link:" + self.links_text.replace(";", "-")] if self.links else [])

    @property
    def links_text(self) -> str:
        return links_text(self.links)

    @property
    def output(self) -> str:
        return self.job.output

    def params(self) -> dict:
        d = asdict(self)
        d.pop("window")
        w = asdict(self.job.window(self.window))      # the windows the job has (a tumbling one slides by its size)
        d["links"] = self.links_text
        d["axis_values"] = " ".join(self._axis_values())      # what the report tells its series apart by
        d.update({f"link_{a}-{b}_{f}": v for a, b, f, v in self.links})
        d.pop("driver_nodes")
        d.pop("job")
        d.pop("scenario")
        d.update(self.job.record())
        d.update(scenario=self.scenario.source if self.scenario else "",
                 scenario_sha256=hashlib.sha256(self.scenario.text.encode()).hexdigest() if self.scenario else "",
                 checkpoint_storage="jobmanager" if self.checkpoint_interval_s else "",
                 restart_strategy="fixed-delay 2 s" if self.checkpoint_interval_s else "none")
        d["cpu_limits"] = ",".join(f"{r}={c:g}" for r, c in self.cpu_limits)
        # what the driver's producer ran with: its defaults and the cell's settings over them
        d["producer_properties"] = json.dumps({**driver.PRODUCER_DEFAULTS, **dict(self.producer_properties)},
                                              sort_keys=True)
        # and the job's Kafka clients: the harness's settings with the cell's over them (a JAR sets its own)
        for what, defaults in (("source", pipeline.SOURCE_DEFAULTS), ("sink", pipeline.SINK_DEFAULTS)):
            d[f"{what}_properties"] = "set by the job" if self.job.kind == "jar" else json.dumps(
                pipeline.client_properties(defaults, d[f"{what}_properties"]), sort_keys=True)
        return {"cell_key": self.key, **d, "window_s": w["size_s"], "slide_s": w["slide_s"],
                "watermark_delay_s": w["watermark_delay_s"]}


def _number(value) -> bool:
    """A finite int or float (a bool is no number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value) -> str:
    """A setting's value in a problem: 60.0 -> 60, 0.25 -> 0.25, 'x' -> 'x'."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return repr(value)


def links_text(links: tuple[tuple[str, str, str, float], ...]) -> str:
    """A link axis's values as text, e.g. 'azure-google:rtt_ms=40' ('' without)."""
    return ";".join(f"{a}-{b}:{f}={v:g}" for a, b, f, v in links)


def _props(props: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in props)


def clear_leftovers(tb: Testbed, cluster: flink.FlinkCluster | None = None, settle: bool = True) -> None:
    """Stop what a killed run may have left on a testbed that is still up: its drivers (their load)
    and its job. Before a cell, and before the network is measured (a resumed session's first
    fidelity check once read a killed cell's load as 2 ms more RTT). ``settle``: also wait for the
    job a cell before cancelled to end (a cell waits for it only before its own submission)."""
    load.remove(tb)
    if cluster is None:
        if not services.exists(tb, flink.JOBMANAGER):
            return
        cluster = flink.FlinkCluster(tb, None, 1)
    for job in cluster.rest("/jobs")["jobs"]:
        if job["status"] in ("RUNNING", "CREATED", "RESTARTING", "INITIALIZING"):
            log.info(f"cancel job {job['id']}, left running by an earlier run")
            pipeline.cancel(cluster, job["id"])
    if settle:
        flink.wait_jobs_ended(tb, cluster)


def run_cell(tb: Testbed, spec: CellSpec, artifacts: dict | None = None) -> dict:
    """Run one cell; returns its row. If ``artifacts`` is given, it receives the cell's raw
    ``latency`` samples and per-second ``timeseries`` (pandas frames)."""
    began = time.monotonic()
    phases = Phases()
    placement = choose(tb.topology, spec.placement, spec.taskmanagers)   # fails before anything starts
    links = links_with(tb.topology.links, spec.links)
    if spec.links and tb.wan is None:
        raise ValueError(f"links {spec.links_text}: this testbed has no emulated WAN to set them on")
    if tb.wan and tb.wan.use(links):    # (Session.record sets them first, and calibrates them)
        log.warning(f"{spec.key}: the WAN was set to this cell's links without a fidelity check")
    injector = None
    if spec.scenario:
        spec.scenario.check(tb.topology, spec.duration)
        injector = faults.Injector(tb, spec.scenario, links)
        injector.check(list(placement.nodes))
    broker_node = spec.broker_node or tb.topology.broker_node
    driver_nodes = spec.driver_nodes or (broker_node,)
    for n in (broker_node, *driver_nodes):
        tb.node(n)
    # one CPU budget per emulated node (provision/cpu.py); limits per service only where nodes cannot share one
    cpu_model = cpu.apply(tb, spec.cpu_scale)
    scale = spec.cpu_scale if cpu_model.kind in ("per service", "the VMs' own") else 0.0
    if scale and len({tb.topology.node(n).cpus for n in placement.nodes}) > 1 \
            and "taskmanager" not in dict(spec.cpu_limits):
        raise ValueError(f"taskmanager nodes {', '.join(placement.nodes)} differ in CPUs: one service cannot limit "
                         "each to its own node's share; give them equal cpus, or --cpu-limits taskmanager=CORES")
    cpus = {"jobmanager": tb.topology.jobmanager.cpus * scale,
            "taskmanager": tb.topology.node(placement.nodes[0]).cpus * scale,
            "broker": tb.topology.node(broker_node).cpus * scale,
            "driver": tb.topology.node(driver_nodes[0]).cpus * scale, **dict(spec.cpu_limits)}
    window = spec.job.window(spec.window)
    load_spec = load.LoadSpec(rate=spec.rate, duration=spec.duration, window=window, nodes=tuple(driver_nodes),
                              keys=spec.keys, payload_bytes=spec.payload_bytes, processes=spec.driver_processes,
                              cpus=cpus["driver"], warmup_rate=spec.rate * spec.warmup_fraction,
                              warmup_s=spec.warmup, output=spec.job.output,   # (a fraction of 1: one rate)
                              producer_properties=spec.producer_properties)
    cell = uuid.uuid4().hex[:8]
    event_bytes = len(driver.event_value(b"k0", 0, 1_700_000_000_000, spec.payload_bytes))
    row: dict = {"run_id": tb.run_id, "cell": cell, **spec.params(), "broker_node": broker_node,
                 "driver_nodes": ",".join(driver_nodes), "driver_tasks": load_spec.tasks,
                 "driver_processes": load_spec.processes_per_task,
                 "event_bytes": event_bytes,
                 "source_window_cap_ev_s": source_window_cap(spec, tb.topology, links, broker_node,
                                                             placement.clouds(tb.topology), event_bytes),
                 **{f"cpu_{role}": round(c, 3) for role, c in cpus.items()},
                 "taskmanager_nodes": ",".join(placement.nodes),
                 "taskmanager_clouds": ",".join(placement.clouds(tb.topology)),
                 "provider": tb.provider.name, "wan_backend": tb.wan.backend if tb.wan else "none",
                 "wan_links": json.dumps([vars(d) for d in tb.wan.links.values()]) if tb.wan else "[]",
                 "wan_check": tb.wan_check, **cpu_model.record(),
                 "link_sources": "; ".join(f"{ln.name}: {ln.source}" for ln in tb.topology.links if ln.source),
                 "started": now()}
    # with faults: a lost taskmanager noticed within seconds (by default after two missed 10 s heartbeats)
    heartbeat = {"heartbeat.interval": "1000 ms", "heartbeat.timeout": "8000 ms"} if spec.scenario else {}
    row["heartbeat"] = ", ".join(f"{k.split('.')[1]} {v}" for k, v in heartbeat.items()) or "default (10 s, 50 s)"
    # and Flink's metric readings frozen for seconds, not minutes: the jobmanager starts no new fetch of
    # metrics while one is waiting for an unreachable taskmanager, for up to web.timeout (10 min)
    fetch = {"web.timeout": METRIC_FETCH_TIMEOUT} if spec.scenario else {}
    row["metric_fetch_timeout"] = fetch.get("web.timeout", "default (10 min)")
    detect = {**heartbeat, **fetch}
    cluster = flink.deploy(tb, placement, spec.slots, spare_slots=spec.spare_slots, config=detect,
                           jobmanager_cpus=cpus["jobmanager"],
                           taskmanager_cpus=cpus["taskmanager"])
    clear_leftovers(tb, cluster, settle=False)     # the cell before's job may still be ending: see below
    row["flink_ui"] = cluster.rest_url
    row["flink_version"] = cluster.rest("/config").get("flink-version")
    row["registered_taskmanagers"] = len(cluster.taskmanagers())
    broker = kafka.BrokerSpec.of(tb.topology)
    row["broker"] = broker.name
    events, results = (f"{prefix}{cell}" for prefix in TOPIC_PREFIXES)
    parts = cluster.parallelism
    job_id = None
    prober = Prober(tb, list(links), spec.duration + 240)      # (stopped once the load ends)

    def cleanup(wait: bool) -> list:
        """The cell's steps to undo. Without ``wait`` its job is left ending (its cancellation takes
        2-3 s) while the next cell prepares; that one waits for it before submitting its own."""
        return [lambda: prober.stop(),
                lambda: injector and injector.stop(),        # the topology as written, before anything else
                lambda: _together([lambda: job_id and pipeline.cancel(cluster, job_id, wait=wait),
                                   lambda: load.remove(tb)])]
    try:
        settings = pipeline.recovery_settings(spec.checkpoint_interval_s, spec.checkpoint_mode)
        restarted = kafka.ensure(tb, broker_node, broker, cpus=cpus["broker"])
        bootstrap = broker.bootstrap

        def resolvable() -> None:
            # Flink's Kafka clients run in the jobmanager and the taskmanagers, maybe in another
            # cloud: the broker's name must resolve there (a new task's spreads by gossip)
            services.wait_resolvable(tb, kafka.BROKER, [flink.JOBMANAGER, flink.TASKMANAGER])
        with ThreadPoolExecutor(2) as pool:
            # the RTT across each link under the load: its containers start now, so that starting them
            # (the nodes' engines busy for a moment) is over long before the load's first event
            beside = [pool.submit(prober.start)] + ([] if restarted else [pool.submit(resolvable)])
            # meanwhile the cell's own topics, by the command that waits for the broker to answer,
            # which also deletes every earlier cell's (a killed run's too) but those of a job this
            # process left ending (the cell just before): the next cell deletes those
            kafka.admin(tb, bootstrap, driver_nodes[0], [f"{events}:{parts}", f"{results}:{parts}"], [], timeout=90,
                        delete_prefix=list(TOPIC_PREFIXES), keep=list(_ENDING.get(tb.run_id, ())))
            for f in beside:
                f.result()
        if restarted:           # its name resolves only once its new task does
            resolvable()
        # the drivers' services are created before the job is submitted, and their containers start
        # and connect while it is; they send nothing before t0, which is fixed once the job runs
        drivers = load.start(tb, load_spec, bootstrap, events, results)
        flink.wait_jobs_ended(tb, cluster)      # the cell before's, which shares the slots and the CPU
        phases.mark("prepare")
        submitting = time.monotonic()
        job_id = _submit(cluster, spec, bootstrap, events, results, window, settings)
        row["job_id"] = job_id
        row["submit_s"] = round(time.monotonic() - submitting, 2)
        if tb.wan:
            tb.wan.check()      # a broken link would be measured as the system's
        phases.mark("submit")
        raw, rd, used = _drive(tb, cluster, job_id, load_spec, bootstrap, events, results, injector,
                               checkpoints=spec.checkpoint_interval_s > 0, drivers=drivers, mark=phases.mark)
        with ThreadPoolExecutor(2) as pool:     # each asks another service
            stopping = pool.submit(prober.stop)
            checking = pool.submit(tb.wan.check) if tb.wan else None    # and it held during the load
            counters = pipeline.path_counters(cluster, job_id)      # while the job still runs
            state_at_end, restarts = pipeline.job_status(cluster, job_id)
            probes = stopping.result()
            if checking:
                checking.result()
        if injector:    # a job still restarting after a fault is a result (not recovered), a failed one an error
            row["job_state_at_end"] = state_at_end
            if state_at_end in ("FAILED", "CANCELED", "FINISHED"):
                pipeline.check_running(cluster, job_id)
        else:
            pipeline.check_running(cluster, job_id)     # a job that failed during the load: its root causes
        row.update(measure.cell_metrics(raw, spec.warmup, rd.source))
        t0 = raw.t0
        measured = (t0 + spec.warmup, t0 + spec.duration)
        row.update(measure.stale_readings(rd.clocks, t0, *measured, names=rd.taskmanagers))
        row.update(measure.checkpoint_progress(rd.checkpoints, *measured))
        rtt = loaded_rtt(probes, list(links), *measured)
        row.update(counters)
        row["restarts"] = restarts
        parts = testbed_parts(raw, spec.warmup, used, rd.path, cpus["broker"], broker_node,
                              cpu_model.budgets.get(broker_node, 0.0) if cpu_model.kind == "node budget" else 0.0,
                              metrics_stale=row["metrics_stale"], loaded_rtt=rtt["wan_rtt_loaded"])
        row.update(rtt, wan_rtt_loaded=json.dumps(rtt["wan_rtt_loaded"]))
        row.update(used)
        row.update(saturation.columns(parts))
        row.update(saturation.limited(row, parts))
        series = measure.timeseries(raw, rd.source)
        secs = series["t_s"].to_numpy()
        series["job_state"] = recovery.job_state_at([(t - t0, st, r) for t, st, r in rd.states], secs)
        series["tasks_running"] = recovery.tasks_running_at([(t - t0, n, k) for t, n, k in rd.tasks], secs)
        series["taskmanagers_stale"] = measure.stale_at(rd.clocks, secs, t0)
        series["broker_cpu_cores"] = measure.cores_at([(t - t0, v) for t, v in rd.broker_cpu], secs)
        for col, values in rtt_per_second(probes, secs, t0).items():
            series[col] = values
        row["lag_slope"] = measure.lag_slope(series, spec.warmup, spec.duration)
        row["source_behind_at_end"] = round(measure.source_behind_at_end(series, spec.duration), 0)
        latency = measure.measured_latency(raw, spec.warmup)
        if injector:
            injector.stop()
            row.update(recovery.recovery(injector.events, latency, series, [(t - t0, st, r) for t, st, r in rd.states],
                                         spec.warmup, spec.rate, tasks=[(t - t0, n, k) for t, n, k in rd.tasks]))
            row["missing_windows_after_fault"] = _missing_after(raw, row["fault_at_s"])
            row["scenario_events"] = json.dumps(injector.events)
        row.update(measure.loss_attribution(row))
        if artifacts is not None:
            artifacts["latency"] = latency
            artifacts["timeseries"] = series
    except BaseException as e:
        _cleanup(cleanup(wait=True), failing=True)     # the cell's own error is the one raised, unless:
        if tb.wan and isinstance(e, Exception) and not isinstance(e, WanBroken):
            # a link the emulation lost (a holder gone) fails what crosses it, Flink's job first,
            # whose own error would hide the cause: the broken link is what the cell fails with
            try:
                tb.wan.check(cause=e)
            except WanBroken as broken:
                raise broken from e
            except Exception:  # noqa: BLE001 - the router unreachable: the cell's own error stands
                log.warning("the WAN's health could not be read after the cell failed", exc_info=True)
        raise
    phases.mark("measure")
    _cleanup(cleanup(wait=False))
    _ENDING[tb.run_id] = (events, results)
    phases.mark("cleanup")
    row["ended"] = now()
    # what the cell cost besides its load: Flink (re)deployed, broker and topics, the job submitted,
    # the driver started, the results collected, everything removed (python -m testbed bench cell)
    row["cell_wall_s"] = round(time.monotonic() - began, 2)
    row["fixed_cost_s"] = round(row["cell_wall_s"] - spec.duration, 2)
    row["cell_phases"] = json.dumps(phases.seconds)
    return row


class Phases:
    """Where a cell's wall time went: seconds per phase, each from the end of the one before
    (``cell_phases``): prepare (Flink, broker, topics), submit, drivers (their containers up and
    connected after the submission), start (t0's margin), load, collect, measure, cleanup."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._last = time.monotonic()

    def mark(self, phase: str) -> None:
        t = time.monotonic()
        self.seconds[phase] = round(self.seconds.get(phase, 0.0) + t - self._last, 2)
        self._last = t


def _together(steps) -> None:
    """Run independent cleanup steps at once (each waits on a different engine or service); every
    step runs, and the first failure is raised once all have ended."""
    with ThreadPoolExecutor(len(steps)) as pool:
        futures = [pool.submit(fn) for fn in steps]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]


def source_window_cap(spec: CellSpec, topology, links, broker_node: str, clouds: list[str],
                      event_bytes: int) -> float:
    """The most events/s the job's tightest source consumer can read across a link with its fixed
    receive buffer (measure/window.py): NaN where no taskmanager is in another cloud than the broker,
    the buffer autotunes, or the job builds its own clients (a JAR). Across several links, the longest."""
    if spec.job.kind == "jar":
        return math.nan
    here = topology.node(broker_node).cloud
    rtts = [ln.rtt_ms for ln in links if here in ln.clouds and (set(ln.clouds) - {here}) & set(clouds)]
    if not rtts:
        return math.nan
    props = pipeline.client_properties(pipeline.SOURCE_DEFAULTS, spec.source_properties)
    key_bytes = len(b"k%d" % (spec.keys - 1))
    return round(window.consumer_cap(window.receive_buffer(props), max(rtts),
                                     window.record_bytes(event_bytes, key_bytes)), 1)


def _submit(cluster, spec: CellSpec, bootstrap: str, events: str, results: str, window: WindowSpec,
            settings: dict[str, str]) -> str:
    """Start the cell's job with ``settings`` (its Flink configuration); its id once every task runs."""
    job = spec.job
    if job.kind == "jar":
        values = jobs.template_values(bootstrap=bootstrap, events=events, results=results,
                                      parallelism=cluster.parallelism, window=window)
        return pipeline.submit_jar(cluster, job.path, job.entry_class, job.program_args(values), settings=settings)
    return pipeline.submit(cluster, job.sql(events, results, bootstrap, window, cluster.parallelism, settings,
                                            spec.source_properties, spec.sink_properties), via=spec.submit)


def _missing_after(raw: Record, fault_s: float) -> int:
    """Expected (key, window)s ending after the fault that no result reported."""
    if fault_s != fault_s:
        return 0
    size = round(raw.params.window * 1000)
    edge = raw.t0_ms + fault_s * 1000
    got = {(k, ws) for k, ws, *_ in measure.window_results(raw)}
    return sum(1 for k, ws, _n in raw.expected if ws + size >= edge and (k, ws) not in got)


def _cleanup(steps, failing: bool = False) -> None:
    """Every step runs even if one before it fails; the first failure is raised, or only logged when
    the cell is ``failing`` already (its own error must not be masked by a cleanup's)."""
    error = None
    for fn in steps:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - raised below, after the other steps
            error = error or e
            if failing:
                log.warning(f"cleaning up after a failed cell: {type(e).__name__}: {e}")
    if error is not None and not failing:
        raise error


CPU_MEASURED = {"taskmanager": flink.TASKMANAGER, "jobmanager": flink.JOBMANAGER, "broker": kafka.BROKER}


@dataclass
class Readings:
    """What is sampled while the load runs, each with the time it was read (s since the epoch)."""
    source: list = field(default_factory=list)        # (t, records the source read so far)
    states: list = field(default_factory=list)        # (t, job state, restarts)
    tasks: list = field(default_factory=list)         # (t, tasks running, tasks)
    clocks: list = field(default_factory=list)        # (t, {taskmanager id: JVM CPU time}): which readings were fresh
    checkpoints: list = field(default_factory=list)   # (t, completed, failed), with checkpointing on
    broker_cpu: list = field(default_factory=list)    # (t, the broker's CPU seconds so far), every ~5 s
    path: tuple = ({}, {})                            # the measuring path's counters at the load's start and end
    taskmanagers: dict = field(default_factory=dict)  # taskmanager id -> where it ran


def _drive(tb: Testbed, cluster, job_id: str, spec: load.LoadSpec, bootstrap: str, events: str,
           results: str, injector=None, checkpoints: bool = False, drivers: list | None = None,
           mark=None) -> tuple[Record, Readings, dict]:
    """Run the load (and the scenario's faults, from t0); sample Flink's source counter, the job's
    state and the freshness of Flink's readings meanwhile; return the driver's record, the
    readings, and the CPU the services used during the load (cores, from their containers)."""
    rd = Readings()
    stop = threading.Event()
    cpu_at: dict[str, tuple[float, dict]] = {}

    def cpu_now() -> tuple[float, dict]:
        return time.time(), {role: services.cpu_seconds(tb, name) for role, name in CPU_MEASURED.items()}

    def path_now() -> dict:
        """The measuring path's own counters: the host's CPU (emulated clouds run on it) and the WAN's."""
        out: dict = {}
        if tb.provider.name == "emulated":
            with open("/proc/stat") as f:
                out["host"] = saturation.host_cpu_times(f.read())
        try:
            out["nodes"] = (time.time(), cpu.node_seconds(tb))
        except Exception as e:  # noqa: BLE001
            log.warning(f"could not read the nodes' CPU time: {e}")
        if tb.wan:
            try:
                out["wan"] = tb.wan.counters()
            except Exception as e:  # noqa: BLE001 - the row then says "not measured"
                log.warning(f"could not read the WAN's counters: {e}")
        return out

    counter = pipeline.SourceCounter(cluster, job_id)

    def name_taskmanagers(ids) -> None:
        if set(ids) - set(rd.taskmanagers):
            rd.taskmanagers.update({tm["id"]: f"taskmanager on {tm['node'] or tm['address']}"
                                    for tm in cluster.taskmanagers()})

    def sample() -> None:
        n = 0
        while not stop.is_set():
            if n % 5 == 0:
                try:
                    rd.broker_cpu.append((time.time(), sum(services.cpu_seconds(tb, kafka.BROKER).values())))
                except Exception:  # noqa: BLE001 - a missed sample is not an error
                    pass
            if checkpoints and n % 2 == 0:
                try:
                    rd.checkpoints.append((time.time(), *pipeline.checkpoint_counts(cluster, job_id)))
                except Exception:  # noqa: BLE001
                    pass
            n += 1
            try:
                rd.source.append(counter.sample())
                t = time.time()
                clocks = pipeline.taskmanager_clocks(cluster)   # the fetch the counter's query started
                rd.clocks.append((t, clocks))
                name_taskmanagers(clocks)
            except Exception:  # noqa: BLE001 - a missed sample is not an error
                pass
            if stop.is_set():       # the load is over: its readings are complete
                break
            try:
                t = time.time()
                state, restarts, running, total = pipeline.job_sample(cluster, job_id)
                rd.states.append((t, state, restarts))
                rd.tasks.append((t, running, total))
            except Exception:  # noqa: BLE001
                pass
            stop.wait(0.8)     # with the sample's own wait: a fetch every ~1.05 s (update interval 1 s)

    timers: list[threading.Timer] = []

    def started(t0: float) -> None:
        if injector:
            injector.start(t0)
        cpu_at["start"] = cpu_now()
        cpu_at["path_start"] = path_now()

        def at_end():
            cpu_at.setdefault("end", cpu_now())
            cpu_at.setdefault("path_end", path_now())
        timers.append(threading.Timer(max(0.0, t0 + spec.duration - time.time()), at_end))
        timers[0].start()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        raw = load.run(tb, spec, bootstrap, events, results, on_start=started, started=drivers, mark=mark)
    finally:
        stop.set()
        sampler.join()
        for t in timers:
            t.cancel()
            t.join()
    used = cpu_used(cpu_at, raw)
    rd.path = start, end = cpu_at.get("path_start", {}), cpu_at.get("path_end", {})
    (ta, a), (tb_, b) = start.get("nodes", (0, None)), end.get("nodes", (0, None))
    used["node_cpu_used"] = cpu.node_used(a, b, tb_ - ta)
    return raw, rd, used


def testbed_parts(raw: Record, warmup_s: float, used: dict, path: tuple, broker_cpus: float,
                  broker_node: str = "", broker_node_budget: float = 0.0, metrics_stale: str = "",
                  loaded_rtt: dict | None = None) -> dict:
    """Each part of the measuring path's report on itself (measure/saturation.py)."""
    start, end = path
    node = None
    if broker_node_budget and used.get("node_cpu_used"):
        node = (json.loads(used["node_cpu_used"]).get(broker_node, float("nan")), broker_node_budget)
    return {"broker": saturation.broker(raw, warmup_s, used.get("broker_cpu_cores", float("nan")), broker_cpus,
                                        node=node),
            "collector": saturation.collector(raw),
            "wan": saturation.wan(start.get("wan"), end.get("wan"), loaded_rtt),
            "host": saturation.host(start.get("host"), end.get("host")),
            "readings": saturation.readings(metrics_stale)}


def cpu_used(cpu_at: dict, raw: Record) -> dict:
    """Cores used during the load: each service's (the largest of its tasks', the busiest
    taskmanager) and the driver's own processes'."""
    out: dict = {"driver_cpu_cores": round(sum(p.cpu_s for p in raw.producers) / raw.params.duration, 3)}
    if "start" in cpu_at and "end" in cpu_at:
        (ta, a), (tb_, b) = cpu_at["start"], cpu_at["end"]
        for role in CPU_MEASURED:
            per_node = {n: round((b[role][n] - a[role][n]) / (tb_ - ta), 3) for n in b[role] if n in a[role]}
            out[f"{role}_cpu_cores"] = max(per_node.values()) if per_node else float("nan")
            if role == "taskmanager":
                out["taskmanager_cpu_cores_all"] = json.dumps(per_node)
    return out
