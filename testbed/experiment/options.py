"""The options of a testbed and of an experiment, declared once for pytest and for the CLI.

``pytest experiments/ --taskmanagers 1,2 --rates 1000`` and ``python -m testbed run --taskmanagers 1,2
--rates 1000`` read the same declarations (``add_to``), so they take the same options with the same
defaults and help, and give the same ``Experiment``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Container

from ..model.placement import BadPlacement, choose
from ..provision import cpu
from ..provision.cpu import host_cores  # noqa: F401 - part of this module's interface
from ..providers.base import CLOUDS
from ..results.store import RESULTS
from ..model.topology import LINK_PARAMS, Topology, find_link
from ..model.scenario import Scenario, ScenarioError
from ..model.scenario import load as load_scenario
from ..workload import driver
from ..workload.jobs import Job, JobError
from ..workload.load import parse_properties
from ..workload.pipeline import SEED_WINDOW, WindowSpec
from .cell import CellSpec, CellSpecError


class OptionError(ValueError):
    """Bad experiment options, found before anything starts: every problem, each once, each naming
    its option."""

    def __init__(self, *problems: str):
        self.problems = [p.removeprefix("bad experiment option: ") for p in problems]
        if len(self.problems) == 1:
            text = f"bad experiment option: {self.problems[0]}"
        else:
            text = f"{len(self.problems)} bad experiment options:\n" + "\n".join(
                "  - " + p.replace("\n", "\n    ") for p in self.problems)
        super().__init__(text)


@dataclass(frozen=True)
class Opt:
    names: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.kwargs.get("dest") or self.names[0].lstrip("-").replace("-", "_")


_W = WindowSpec()

TESTBED = (
    Opt(("--topology",), dict(default="seed", help="topology YAML to provision, or a built-in name (default: seed, "
                                                   "the runbook's five VMs in two clouds)")),
    Opt(("--cloud",), dict(choices=CLOUDS, default="emulated",
                           help="emulated: Docker-in-Docker nodes on this machine (default); real: VMs from --inventory")),
    Opt(("--inventory",), dict(default=None, help="hosts YAML for --cloud=real (see examples/inventory.yaml); "
                                                  "several, comma-separated, give each pytest-xdist worker its own")),
    Opt(("--dry-run",), dict(action="store_true", help="with --cloud=real: print the commands of up and down per "
                                                       "host, in order, and stop")),
    Opt(("--testbed-run",), dict(default=None, metavar="RUN_ID",
                                 help="use a testbed already up (python -m testbed up); it is left running")),
    Opt(("--keep-testbed",), dict(action="store_true", help="leave the provisioned testbed running at the end "
                                                            "(remove it with python -m testbed down)")),
    Opt(("--wan-check",), dict(choices=("fail", "flag", "off"), default="fail",
                               help="after provisioning, measure the network against the topology's links: fail when "
                                    "it misses (default), only flag the run, or skip the check")),
    Opt(("--results",), dict(default=str(RESULTS), help="results folder; each run writes <folder>/<session id>/")),
    Opt(("--experiment",), dict(default=None, metavar="FILE", help="an experiment file (YAML) of these options' "
        "fields, e.g. examples/seed-experiment.yaml; options also given on the command line override its fields "
        "(docs/experiments.md, 'Experiment files')")),
)

EXPERIMENT = (
    Opt(("--taskmanagers",), dict(default="1,2,3", help="taskmanager counts, one per node (default 1,2,3)")),
    Opt(("--placements", "--placement"), dict(dest="placements", default="single-cloud,multi-cloud",
        help="placement policies: single-cloud[:<cloud>], multi-cloud, nodes:<host>+<host>...; comma-separated "
             "(default single-cloud,multi-cloud)")),
    Opt(("--rates", "--rate"), dict(dest="rates", default="1000", help="offered events/s, comma-separated (default 1000)")),
    Opt(("--repetitions",), dict(type=int, default=3, help="repetitions of every cell (default 3)")),
    Opt(("--duration",), dict(type=float, default=60.0, help="seconds of load per cell (default 60)")),
    Opt(("--warmup",), dict(type=float, default=15.0, help="seconds excluded from the statistics (default 15)")),
    Opt(("--warmup-fraction",), dict(type=float, default=1.0,
        help="offered rate during the warm-up, as a fraction of the cell's rate (default 1: the full rate throughout); "
             "below 1, a job that starts cold (JIT, code generation) warms up at a lower rate before it is measured")),
    Opt(("--window",), dict(type=float, default=_W.size_s,
        help=f"sliding window size in s, whole ms (default {_W.size_s:g}; the seed's own window is --window "
             f"{SEED_WINDOW.size_s:g} --slide {SEED_WINDOW.slide_s:g}, with a --duration of many windows)")),
    Opt(("--slide",), dict(type=float, default=_W.slide_s,
        help=f"window slide in s; the size must be a multiple of it (default {_W.slide_s:g}; the seed's is "
             f"{SEED_WINDOW.slide_s:g})")),
    Opt(("--watermark-delay",), dict(type=float, default=_W.watermark_delay_s,
        help=f"bounded out-of-orderness in s (default {_W.watermark_delay_s:g}); --duration must be at least "
             "--warmup + --slide + this, so that a window closes in the measured part of the load")),
    Opt(("--job", "--jobs"), dict(dest="jobs", default="hop-window", help="the job(s) to measure, comma-separated, an "
        "axis of the matrix: hop-window (default, the seed's sliding windows), tumble-window, passthrough (the "
        "zero-work baseline), sql:FILE (statements on the events and results tables), jar:FILE[:CLASS] (uploaded "
        "through Flink's REST API); docs/your-own-job.md")),
    Opt(("--job-args",), dict(default="", help="program arguments of jar: jobs, split like a shell, with {bootstrap}, "
        "{events}, {results}, {parallelism}, {window_ms}, {slide_ms}, {watermark_delay_ms}, {group_id}")),
    Opt(("--scenario", "--scenarios"), dict(dest="scenario", default="", metavar="FILE[,FILE...]", help="faults during "
        "the load, an axis of the matrix: YAML lists of timed actions (kill, stop-node/start-node, partition/heal, "
        "link, stress), comma-separated; 'none' is a cell without faults; docs/experiments.md, 'Faults'")),
    Opt(("--checkpoint-interval",), dict(default="auto", help="seconds between Flink checkpoints, with restarts "
        "(fixed delay 2 s) and checkpoints in the jobmanager's memory; auto (default): 5 with --scenario, else off; 0: off")),
    Opt(("--spare-slots",), dict(type=int, default=0, help="task slots per taskmanager beyond those the job uses, so "
        "that a job that lost a taskmanager can run again on the others at once (default 0)")),
    Opt(("--checkpoint-mode",), dict(choices=("at-least-once", "exactly-once"), default="at-least-once",
        help="checkpointing mode (default at-least-once)")),
    Opt(("--keys",), dict(type=int, default=16, help="distinct event keys (default 16)")),
    Opt(("--payload-bytes",), dict(type=int, default=0, help="each event's size in bytes, padded (default 0: unpadded, "
                                                             "about 50 bytes)")),
    Opt(("--driver-nodes",), dict(default="", help="nodes of the driver tasks, comma-separated, one task per entry (a node "
                                                   "may repeat); they share one schedule (default: one on the broker's node)")),
    Opt(("--driver-processes",), dict(type=int, default=0, help="processes per driver task (default 0: one per "
                                                                "100,000 events/s of its share)")),
    Opt(("--cpu-scale",), dict(default="auto", help="give every emulated node its CPUs times this as one budget, shared "
        "by everything on it as a VM's CPUs are (where nodes cannot share one: each service its node's CPUs times "
        "this); auto (default): with --cloud=emulated, (this machine's cores - 0.25 for the WAN router and the "
        "harness) / the topology's CPUs; with --cloud=real, none; 0: none")),
    Opt(("--cpu-limits",), dict(default="", metavar="ROLE=CORES,...", help="per-role CPU limits that replace "
        "--cpu-scale's for taskmanager, jobmanager, broker or driver, in cores (0: none), e.g. broker=1,driver=0.5")),
    Opt(("--links",), dict(default="", metavar="LINK:FIELD=V,V...[;...]", help="link settings as an axis of the "
        "matrix, e.g. azure-google:rtt_ms=10,20,40 (fields: " + ", ".join(LINK_PARAMS) + "); several, separated by ';', "
        "give every combination. Each value is a group of cells: the emulated WAN is set to it, and calibrated, "
        "before the group's first cell")),
    Opt(("--producer-properties",), dict(default="", metavar="K=V,...[|...]", help="the load driver's librdkafka "
        "settings over its defaults, e.g. linger.ms=20 (recorded in every row; docs/pipeline.md, 'The broker'); "
        "alternatives separated by '|' are an axis of the matrix")),
    Opt(("--source-properties",), dict(default="", metavar="K=V,...[|...]", help="the SQL job's Kafka source: consumer "
        "settings over the connector's defaults and the testbed's (fetch.max.wait.ms=100), e.g. "
        "receive.buffer.bytes=-1 (recorded in every row); alternatives separated by '|' are an axis of the "
        "matrix, e.g. '|receive.buffer.bytes=-1' (the defaults, and an autotuned receive buffer)")),
    Opt(("--sink-properties",), dict(default="", metavar="K=V,...[|...]", help="the SQL job's Kafka sink: producer "
        "settings over the connector's defaults, e.g. linger.ms=5 (recorded in every row); alternatives "
        "separated by '|' are an axis of the matrix")),
    Opt(("--include-saturated",), dict(action="store_true", help="report: average cells whose row says the testbed "
        "itself was the limit (testbed_limited) into the means; by default they are drawn hollow and left out")),
    Opt(("--resume",), dict(default=None, metavar="SESSION",
                            help="continue results/<SESSION>/: skip the cells it already finished")),
    Opt(("--sustainable",), dict(action="store_true",
                                 help="also search the sustainable throughput of every taskmanager count and placement")),
    Opt(("--search-start",), dict(type=float, default=1000.0, help="first rate of the search (default 1000)")),
    Opt(("--search-max",), dict(type=float, default=32000.0, help="highest rate the search tries (default 32000)")),
    Opt(("--search-refine",), dict(type=int, default=2, help="bisection steps after the first failure (default 2)")),
    Opt(("--lag-slope",), dict(type=float, default=0.05, help="keeps up while the lag grows by less than this "
                                                              "fraction of the rate per second (default 0.05)")),
    Opt(("--max-p99",), dict(type=float, default=10_000.0, help="keeps up while p99 latency is below this, ms "
                                                                "(default 10000)")),
)

# what a cell's numbers depend on besides its key (taskmanagers, placement, rate, repetition):
# a resumed run must give the same
# (the axes, client settings and link values among them, are in the cell's key instead)
MEASUREMENT_OPTIONS = ("job_args", "checkpoint_interval", "checkpoint_mode", "spare_slots", "duration", "warmup",
                       "warmup_fraction", "window", "slide", "watermark_delay", "keys", "payload_bytes",
                       "driver_nodes", "cpu_scale", "cpu_limits")
CPU_ROLES = ("taskmanager", "jobmanager", "broker", "driver")
# the option that sets each of a cell's settings (CellSpec's fields), which names its problems
CELL_OPTIONS = {"taskmanagers": "--taskmanagers", "placement": "--placements", "rate": "--rates",
                "duration": "--duration", "warmup": "--warmup", "warmup_fraction": "--warmup-fraction",
                "window": "--window/--slide/--watermark-delay", "keys": "--keys", "payload_bytes": "--payload-bytes",
                "driver_processes": "--driver-processes", "driver_nodes": "--driver-nodes", "cpu_scale": "--cpu-scale",
                "cpu_limits": "--cpu-limits", "job": "--job", "scenario": "--scenario",
                "checkpoint_interval_s": "--checkpoint-interval", "checkpoint_mode": "--checkpoint-mode",
                "spare_slots": "--spare-slots", "producer_properties": "--producer-properties",
                "source_properties": "--source-properties", "sink_properties": "--sink-properties",
                "links": "--links"}


def cell_problems(e: CellSpecError, skip: Container[str] = ()) -> list[str]:
    """A cell's problems, each named by its option (a setting no option sets: by its field), but
    those of the fields in ``skip``."""
    return [f"{CELL_OPTIONS.get(name, name)}: {problem}" for name, problem in e.problems if name not in skip]


def parse_cpu_limits(text: str) -> tuple[tuple[str, float], ...]:
    """'broker=1,driver=0.5' -> (('broker', 1.0), ('driver', 0.5)); OptionError naming every bad part."""
    out, bad = [], []
    for part in _csv(text or "", "cpu-limits"):
        role, eq, cores = part.partition("=")
        role = role.strip()
        try:
            value = float(cores)
            if not eq or role not in CPU_ROLES or not (value >= 0 and math.isfinite(value)):
                raise ValueError
            out.append((role, value))
        except ValueError:
            bad.append(f"--cpu-limits: {part!r} is not ROLE=CORES with ROLE one of {', '.join(CPU_ROLES)} "
                       "and CORES >= 0")
    if bad:
        raise OptionError(*bad)
    return tuple(out)


Props = tuple[tuple[str, str], ...]
LinkAxis = tuple[str, str, tuple[float, ...]]      # (link name as written, field, values)


def parse_links(text: str) -> tuple[LinkAxis, ...]:
    """'azure-google:rtt_ms=10,20;azure-google:bandwidth_mbit=50' -> one axis per ';' part, each
    (link, field, values); OptionError naming every bad part. Links are looked up in ``Experiment.cells``."""
    out, bad = [], []
    for part in filter(None, (p.strip() for p in (text or "").split(";"))):
        link, colon, rest = part.partition(":")
        name, eq, vals = rest.partition("=")
        name = name.strip()
        try:
            values = tuple(float(v) for v in vals.split(",") if v.strip())
        except ValueError:
            values = ()
        if not colon or not eq or not link.strip() or name not in LINK_PARAMS or not values \
                or not all(math.isfinite(v) and v >= 0 for v in values):
            bad.append(f"--links: {part!r} is not LINK:FIELD=V,V... with FIELD one of {', '.join(LINK_PARAMS)} "
                       "and values >= 0")
        elif name in ("bandwidth_mbit", "buffer_ms") and not all(v > 0 for v in values) \
                or name == "loss_pct" and not all(v <= 100 for v in values):
            bad.append(f"--links: {part!r}: {name} must be " + ("> 0" if name != "loss_pct" else "in [0, 100]"))
        elif any(a[0] == link.strip() and a[1] == name for a in out):
            bad.append(f"--links: {link.strip()}:{name} is given twice")
        else:
            out.append((link.strip(), name, tuple(dict.fromkeys(values))))
    if bad:
        raise OptionError(*bad)
    return tuple(out)


def parse_property_sets(text: str, what: str) -> tuple[Props, ...]:
    """'k=v,k=v|k=v' -> the alternatives ('' alone: one, the defaults); ValueError naming the option."""
    sets = tuple(parse_properties(alt, what) for alt in (text or "").split("|"))
    if len(set(sets)) < len(sets):
        raise ValueError(f"{what}: an alternative is given twice")
    return sets


def auto_cpu_scale(topology: Topology, cloud: str, cores: int | None = None) -> float:
    """Emulated: shrink every node so that the topology's CPUs and a reserve for the instrument fit
    this machine's cores (never grow them; provision/cpu.py); real VMs are their own size (0: no limits)."""
    if cloud != "emulated":
        return 0.0
    return cpu.auto_scale(sum(n.cpus for n in topology.nodes), cores)


def add_to(group, options: tuple[Opt, ...]) -> None:
    """Declare ``options`` on an argparse parser (or group) or a pytest option group."""
    for o in options:
        group.addoption(*o.names, **o.kwargs) if hasattr(group, "addoption") else group.add_argument(*o.names, **o.kwargs)


def values(get: Callable[[str], Any], options: tuple[Opt, ...] = TESTBED + EXPERIMENT) -> dict[str, Any]:
    """dest -> value, read through ``get`` (pytest's ``config.getoption`` or ``vars(args).get``)."""
    return {o.dest: get(o.dest) for o in options}


def _csv(text: Any, what: str, cast=str) -> list:
    try:
        return [cast(v.strip()) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise OptionError(f"--{what}: expected a comma-separated list{' of numbers' if cast is not str else ''}, "
                          f"got {text!r}") from None


@dataclass(frozen=True)
class Search:
    start: float = 1000.0
    max: float = 32000.0
    refine: int = 2
    lag_slope: float = 0.05
    max_p99_ms: float = 10_000.0


@dataclass(frozen=True)
class Experiment:
    """The matrix an experiment run measures: taskmanagers x placement x job x rate x repetition, each cell
    with the same duration, warm-up and window; and whether to search sustainable throughput."""

    taskmanagers: tuple[int, ...] = (1, 2, 3)
    placements: tuple[str, ...] = ("single-cloud", "multi-cloud")
    rates: tuple[float, ...] = (1000.0,)
    repetitions: int = 3
    duration: float = 60.0
    warmup: float = 15.0
    warmup_fraction: float = 1.0
    window: WindowSpec = field(default_factory=WindowSpec)
    sustainable: bool = False
    search: Search = field(default_factory=Search)
    keys: int = 16
    payload_bytes: int = 0
    driver_nodes: tuple[str, ...] = ()
    driver_processes: int = 0
    cpu_scale: float | None = None      # None: auto_cpu_scale for the topology and cloud
    cpu_limits: tuple[tuple[str, float], ...] = ()   # per-role cores replacing the scale's
    cloud: str = "emulated"
    jobs: tuple[Job, ...] = (Job.parse("hop-window"),)
    scenarios: tuple[Scenario | None, ...] = (None,)   # None: no faults
    checkpoint_interval_s: float | None = None      # None: 5 s with a scenario, else off
    checkpoint_mode: str = "at-least-once"
    spare_slots: int = 0
    # client settings, each an axis: its alternatives (one, () , by default)
    producer_properties: tuple[Props, ...] = ((),)
    source_properties: tuple[Props, ...] = ((),)
    sink_properties: tuple[Props, ...] = ((),)
    links: tuple[LinkAxis, ...] = ()      # link axes; the topology's links where none

    @classmethod
    def from_options(cls, o: dict[str, Any]) -> "Experiment":
        """From option values (``values``); raises one OptionError naming every bad option, each once."""
        bad: list[str] = []

        def check(ok: bool, problem: str) -> bool:
            if not ok:
                bad.append(problem)
            return ok

        def number(name: str, text: Any, what: str, auto: str = "auto") -> float | None:
            """The option's number (its bounds are a cell's rules, checked below), or None for ``auto``."""
            value = str(text if text is not None else auto).strip().lower()
            try:
                return None if value == auto else float(value)
            except ValueError:
                bad.append(f"--{name}: must be {auto} or {what}, got {value!r}")
                return None

        def listed(text: Any, name: str, cast=str) -> list:
            try:
                return _csv(text, name, cast)
            except OptionError as e:
                bad.append(e.problems[0])
                return []

        window: WindowSpec | None = None        # None: named as bad, and left out of the cells' rules
        try:
            window = WindowSpec(o["window"], o["slide"], o["watermark_delay"])
        except ValueError as e:
            bad.append(f"--window/--slide/--watermark-delay: {e}")
        check(o["repetitions"] >= 1, f"--repetitions: must be >= 1, got {o['repetitions']}")
        cpu_scale = number("cpu-scale", o.get("cpu_scale", "auto"), "a number")
        checkpoint = number("checkpoint-interval", o.get("checkpoint_interval") or "auto", "a number of seconds")
        try:
            cpu_limits = parse_cpu_limits(o.get("cpu_limits") or "")
        except OptionError as e:
            bad.extend(e.problems)
            cpu_limits = ()
        try:
            producer_properties = parse_property_sets(o.get("producer_properties") or "", "--producer-properties")
            fixed = sorted({k for alt in producer_properties for k in dict(alt)} & set(driver.FIXED))
            check(not fixed, f"--producer-properties: may not set {', '.join(fixed)} (the driver's measurements need them)")
        except ValueError as e:
            bad.append(str(e))
            producer_properties = ((),)
        clients = {}
        for what in ("source", "sink"):
            try:
                clients[what] = parse_property_sets(o.get(f"{what}_properties") or "", f"--{what}-properties")
            except ValueError as e:
                bad.append(str(e))
                clients[what] = ((),)
        try:
            links = parse_links(o.get("links") or "")
        except OptionError as e:
            bad.extend(e.problems)
            links = ()
        check(not links or (o.get("cloud") or "emulated") == "emulated",
              "--links: the links of real clouds are what they are; --links sets the emulated WAN's")
        taskmanagers = tuple(listed(o["taskmanagers"], "taskmanagers", int))
        for tm in dict.fromkeys(taskmanagers):
            check(tm >= 1, f"--taskmanagers: a count must be a whole number >= 1, got {tm}")
        rates = tuple(listed(o["rates"], "rates", float))
        jobs: list[Job] = []
        specs = listed(o.get("jobs") or "hop-window", "job")
        for j in specs:
            try:
                jobs.append(Job.parse(j, o.get("job_args") or "" if j.startswith("jar:") else ""))
            except JobError as e:
                bad.append(str(e))
        check(not o.get("job_args") or any(j.startswith("jar:") for j in specs),
              "--job-args is for jar: jobs, and no --job is one")
        check(len({j.label for j in jobs}) == len(jobs),
              f"--job: two jobs with one name ({', '.join(j.label for j in jobs)})")
        # what every cell shares: checked with each job, rate and client settings by a cell's own rules
        # (CellSpec's), each problem named by its option; a value that could not be read (named above) is
        # left out of the rules that need it
        shared = dict(duration=o["duration"], warmup=o["warmup"], warmup_fraction=o.get("warmup_fraction", 1.0),
                      window=window, keys=o.get("keys", 16), payload_bytes=o.get("payload_bytes", 0),
                      driver_processes=o.get("driver_processes", 0), spare_slots=o.get("spare_slots") or 0,
                      checkpoint_mode=o.get("checkpoint_mode") or "at-least-once")
        unread = {"window"} if window is None else set()
        if specs and not jobs:
            unread.add("job")
        for job, rate, source, sink in itertools.product(
                jobs or [None if "job" in unread else Job.parse("hop-window")], dict.fromkeys(rates) or [CellSpec.rate],
                clients["source"], clients["sink"]):
            try:
                CellSpec(rate=rate, job=job, source_properties=source, sink_properties=sink, cpu_scale=cpu_scale or 0.0,
                         checkpoint_interval_s=checkpoint or 0.0, **shared)
            except CellSpecError as e:
                bad.extend(cell_problems(e, skip=unread))
        scenarios: list[Scenario | None] = []
        for f in listed(o.get("scenario") or "none", "scenario"):
            try:
                scenarios.append(None if f.lower() == "none" else load_scenario(f))
            except ScenarioError as e:
                bad.append(f"--scenario: {e}")
        names = [sc.name if sc else "none" for sc in scenarios]
        check(len(set(names)) == len(names), f"--scenario: two scenarios with one name ({', '.join(names)})")
        if bad:
            raise OptionError(*dict.fromkeys(bad))
        return cls(taskmanagers=taskmanagers, placements=tuple(_csv(o["placements"], "placements")),
                   rates=rates, repetitions=o["repetitions"], sustainable=bool(o["sustainable"]),
                   search=Search(o["search_start"], o["search_max"], o["search_refine"], o["lag_slope"], o["max_p99"]),
                   driver_nodes=tuple(_csv(o.get("driver_nodes") or "", "driver-nodes")),
                   cpu_scale=cpu_scale, cpu_limits=cpu_limits,
                   cloud=o.get("cloud") or "emulated", jobs=tuple(jobs) or (Job.parse("hop-window"),),
                   scenarios=tuple(scenarios) or (None,), checkpoint_interval_s=checkpoint, **shared,
                   producer_properties=producer_properties, source_properties=clients["source"],
                   sink_properties=clients["sink"], links=links)

    def cell_options(self, topology: Topology) -> dict:
        """What every cell of the matrix shares besides its key, on ``topology``."""
        bad = [f"--driver-nodes: no node {n!r} in topology {topology.name!r}; nodes: "
               f"{', '.join(m.hostname for m in topology.nodes)}"
               for n in dict.fromkeys(self.driver_nodes) if n not in {m.hostname for m in topology.nodes}]
        scale = self.cpu_scale if self.cpu_scale is not None else auto_cpu_scale(topology, self.cloud)
        for sc in self.scenarios:
            if sc:
                try:
                    sc.check(topology, self.duration)
                except ScenarioError as e:
                    bad.append(f"--scenario: {e}")
        if bad:
            raise OptionError(*bad)
        return dict(duration=self.duration, warmup=self.warmup, warmup_fraction=self.warmup_fraction,
                    window=self.window, keys=self.keys,
                    payload_bytes=self.payload_bytes, driver_nodes=self.driver_nodes,
                    driver_processes=self.driver_processes, cpu_scale=scale, cpu_limits=self.cpu_limits,
                    checkpoint_mode=self.checkpoint_mode, spare_slots=self.spare_slots)

    def link_values(self, topology: Topology) -> list[tuple[tuple[str, str, str, float], ...]]:
        """The link axes' combinations on ``topology``, in run order, each ((cloud, cloud, field,
        value), ...); [()] without axes. OptionError naming every link the topology does not have."""
        axes, bad = [], []
        for name, param, vals in self.links:
            link = find_link(topology.links, name)
            if link is None:
                bad.append(f"--links: no link {name!r} in topology {topology.name!r}; its links: "
                           + (", ".join(ln.name for ln in topology.links) or "none"))
            else:
                axes.append([(*link.clouds, param, v) for v in vals])
        if bad:
            raise OptionError(*bad)
        return [tuple(c) for c in itertools.product(*axes)]

    def cells(self, topology: Topology) -> tuple[list[CellSpec], list[str]]:
        """The matrix in run order (link values, taskmanagers, placement, job, scenario, client settings,
        rate, repetition), so that consecutive cells share the WAN's settings and Flink's configuration;
        and the combinations that cannot be placed on ``topology`` or whose scenario kills a taskmanager
        the placement does not have (left out, said why). None left, or a bad value, raises OptionError."""
        problems: list[str] = []
        cells: list[CellSpec] = []
        shared = self.cell_options(topology)
        links = self.link_values(topology)
        errors: list[str] = []
        clients = list(itertools.product(self.producer_properties, self.source_properties, self.sink_properties))
        for link, tm, placement in itertools.product(links, self.taskmanagers, self.placements):
            try:
                chosen = choose(topology, placement, tm)
            except BadPlacement as e:
                errors.append(f"--placements: {e}")
                continue
            except ValueError as e:
                problems.append(str(e))
                continue
            for job, sc in itertools.product(self.jobs, self.scenarios):
                if sc:
                    try:
                        sc.check_placement(list(chosen.nodes))
                    except ScenarioError as e:
                        problems.append(f"{tm} taskmanager(s) {placement} with scenario {sc.name}: {e}")
                        continue
                # checkpoints (and restarts) by default only where there are faults
                checkpoint = self.checkpoint_interval_s
                checkpoint = (5.0 if sc else 0.0) if checkpoint is None else checkpoint
                for (producer, source, sink), rate, rep in itertools.product(
                        clients, self.rates, range(1, self.repetitions + 1)):
                    try:
                        cells.append(CellSpec(taskmanagers=tm, placement=placement, rate=rate, repetition=rep,
                                              job=job, scenario=sc, checkpoint_interval_s=checkpoint,
                                              producer_properties=producer, source_properties=source,
                                              sink_properties=sink, links=link, **shared))
                    except CellSpecError as e:
                        errors.extend(cell_problems(e))
        if errors:
            raise OptionError(*dict.fromkeys(errors))
        problems = list(dict.fromkeys(problems))
        if not cells:
            raise OptionError("no cell of the matrix can be placed:\n  " + "\n  ".join(problems))
        return cells, problems

    def searches(self, cells: list[CellSpec]) -> list[CellSpec]:
        """One sustainable-throughput search per (taskmanagers, placement, job, repetition), if asked for."""
        if not self.sustainable:
            return []
        out, seen = [], set()
        for c in cells:
            group = (c.links, c.taskmanagers, c.placement, c.job, c.producer_properties, c.source_properties,
                     c.sink_properties, c.repetition)
            if group not in seen:
                seen.add(group)
                out.append(replace(c, rate=self.search.start))
        return out
