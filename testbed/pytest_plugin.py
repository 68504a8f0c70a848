"""pytest glue: options and the session-scoped ``testbed`` fixture. The work is in the library.

With pytest-xdist the topology is provisioned once per pytest run, not once per worker: the first
process that needs it provisions it under a lock in a directory shared by the run, the others
attach to it by run id, and the controlling process (which outlives the workers) tears it down in
``pytest_sessionfinish`` — after failing tests and after Ctrl-C (SIGINT) or SIGTERM as well.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import tempfile
import warnings
from pathlib import Path

import pytest

from .core import run as runmod
from .experiment.cell import CellSpec
from .results.store import RESULTS, ResultsDir
from .model.placement import choose
from .provision.testbed import Testbed, clean
from .topology import SEED_TOPOLOGY, TopologyError, load
from .workload.pipeline import SEED_WINDOW, WindowSpec

_SHARED = "fst_shared_dir"
_OWNER = "fst_owner"
_SESSION = "fst_session_id"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("testbed", "flink-swarm-testbed")
    g.addoption("--topology", default=str(SEED_TOPOLOGY),
                help="topology YAML to provision (default: the seed, topologies/seed.yaml)")
    g.addoption("--cloud", choices=("emulated", "real"), default="emulated",
                help="emulated: Docker-in-Docker nodes on this machine (default); real: VMs from --inventory")
    g.addoption("--inventory", default=None, help="hosts YAML for --cloud=real (see examples/inventory.yaml)")
    g.addoption("--dry-run", action="store_true",
                help="with --cloud=real: print the commands a run would execute per host, in order, and stop")
    g.addoption("--testbed-run", default=None, metavar="RUN_ID",
                help="use a testbed already up (python -m testbed up); it is left running")
    g.addoption("--keep-testbed", action="store_true",
                help="leave the provisioned testbed running at the end (remove it with python -m testbed down)")
    g.addoption("--wan-check", choices=("fail", "flag", "off"), default="fail",
                help="after provisioning, measure the network against the topology's links: fail setup when "
                     "it misses (default), only flag the run, or skip the check")
    g.addoption("--results", default=str(RESULTS), help="results folder; each pytest run writes <folder>/<session id>/")
    e = parser.getgroup("experiment", "experiments (flink-swarm-testbed)")
    e.addoption("--taskmanagers", default="1,2,3", help="taskmanager counts, one per node (default 1,2,3)")
    e.addoption("--placements", "--placement", dest="placements", default="single-cloud,multi-cloud",
                help="placement policies: single-cloud[:<cloud>], multi-cloud, nodes:<host>+<host>...; "
                     "comma-separated (default single-cloud,multi-cloud)")
    e.addoption("--rates", "--rate", dest="rates", default="1000", help="offered events/s, comma-separated (default 1000)")
    e.addoption("--repetitions", type=int, default=3, help="repetitions of every cell (default 3)")
    e.addoption("--duration", type=float, default=60.0, help="seconds of load per cell (default 60)")
    e.addoption("--warmup", type=float, default=15.0, help="seconds excluded from the statistics (default 15)")
    w = WindowSpec()
    e.addoption("--window", type=float, default=w.size_s,
                help=f"sliding window size in s, whole ms (default {w.size_s:g}; the seed's own window is "
                     f"--window {SEED_WINDOW.size_s:g} --slide {SEED_WINDOW.slide_s:g}, with a --duration of many "
                     "windows)")
    e.addoption("--slide", type=float, default=w.slide_s,
                help=f"window slide in s; the size must be a multiple of it (default {w.slide_s:g}; the seed's is "
                     f"{SEED_WINDOW.slide_s:g})")
    e.addoption("--watermark-delay", type=float, default=w.watermark_delay_s,
                help=f"bounded out-of-orderness in s (default {w.watermark_delay_s:g}); --duration must be at least "
                     "--warmup + --slide + this, so that a window closes in the measured part of the load")
    e.addoption("--resume", default=None, metavar="SESSION",
                help="continue results/<SESSION>/: skip the cells it already finished")
    e.addoption("--sustainable", action="store_true",
                help="also search the sustainable throughput of every taskmanager count and placement")
    e.addoption("--search-start", type=float, default=1000.0, help="first rate of the search (default 1000)")
    e.addoption("--search-max", type=float, default=32000.0, help="highest rate the search tries (default 32000)")
    e.addoption("--search-refine", type=int, default=2, help="bisection steps after the first failure (default 2)")
    e.addoption("--lag-slope", type=float, default=0.05,
                help="keeps up while the lag grows by less than this fraction of the rate per second (default 0.05)")
    e.addoption("--max-p99", type=float, default=10_000.0, help="keeps up while p99 latency is below this, ms (default 10000)")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exclusive(name): run one at a time with other tests of that name, "
                                       "across xdist workers")
    if _is_worker(config):
        return
    if config.getoption("--cloud") == "real" or config.getoption("--dry-run"):
        inv = _inventory(config)
        if config.getoption("--dry-run"):
            print(Testbed.dry_run(inv))
            pytest.exit("dry run: nothing was executed", returncode=0)
    shared = tempfile.mkdtemp(prefix="fst-session-")
    config.stash[_shared_key] = Path(shared)
    config.stash[_owner_key] = runmod.owner_token()
    config.stash[_session_key] = runmod.new_run_id()
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(shared, config.stash[_owner_key], config.stash[_session_key]))
    # SIGTERM (CI time-outs, `kill`) becomes KeyboardInterrupt, so teardown runs as on Ctrl-C.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm)


def _inventory(config: pytest.Config):
    """The --inventory of a --cloud=real run, validated (a bad one stops pytest before anything starts)."""
    from .inventory import load as load_inventory
    if config.getoption("--cloud") != "real":
        raise pytest.UsageError("--dry-run shows what a real run would execute: use it with --cloud=real --inventory FILE")
    path = config.getoption("--inventory")
    if not path:
        raise pytest.UsageError("--cloud=real needs --inventory FILE (see examples/inventory.yaml)")
    try:
        return load_inventory(path)
    except TopologyError as e:
        raise pytest.UsageError(str(e)) from None


def _sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt("SIGTERM")


_shared_key = pytest.StashKey[Path]()
_owner_key = pytest.StashKey[str]()
_session_key = pytest.StashKey[str]()


class _XdistHooks:
    def __init__(self, shared: str, owner: str, session: str):
        self.shared, self.owner, self.session = shared, owner, session

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[_SHARED] = self.shared
        node.workerinput[_OWNER] = self.owner
        node.workerinput[_SESSION] = self.session


def _shared(config: pytest.Config) -> tuple[Path, str]:
    if _is_worker(config):
        return Path(config.workerinput[_SHARED]), config.workerinput[_OWNER]
    return config.stash[_shared_key], config.stash[_owner_key]


def _report(config: pytest.Config) -> None:
    """Draw the figures of this run's results, if the experiments wrote any."""
    from .results import manifest, report
    folder = ResultsDir(session_id(config), config.getoption("--results")).path
    if not (folder / "cells.csv").exists():
        return
    progress = progress_for(config)
    manifest.finish(folder)
    try:
        written = report.report(folder)
        progress(f"report: {len(written)} files in {folder / 'report'}")
    except Exception as e:  # noqa: BLE001 - the data is safe; the figures can be redrawn
        progress(f"report failed ({type(e).__name__}: {e}); redraw with: python -m testbed report {folder}")


def progress_for(config: pytest.Config):
    capman = config.pluginmanager.getplugin("capturemanager")

    def progress(msg: str) -> None:
        if capman is not None:
            with capman.global_and_fixture_disabled():
                runmod.default_progress(msg)
        else:
            runmod.default_progress(msg)
    return progress


@pytest.fixture(autouse=True)
def _exclusive(request: pytest.FixtureRequest):
    """Tests marked ``exclusive(name)`` run one at a time across all xdist workers of this pytest
    run (an inter-process lock), e.g. those that reconfigure the shared testbed's Flink or WAN."""
    mark = request.node.get_closest_marker("exclusive")
    if mark is None:
        yield
        return
    shared, _ = _shared(request.config)
    with runmod.file_lock(shared / f"exclusive-{mark.args[0]}.lock"):
        yield


def session_id(config: pytest.Config) -> str:
    """The name of this pytest run's results folder: --resume's, or one new id per run (shared by
    its xdist workers)."""
    if config.getoption("--resume"):
        return config.getoption("--resume")
    return config.workerinput[_SESSION] if _is_worker(config) else config.stash[_session_key]


@pytest.fixture(scope="session")
def results_dir(request: pytest.FixtureRequest) -> ResultsDir:
    """``results/<session id>/``: where this pytest run's tidy tables go."""
    return ResultsDir(session_id(request.config), request.config.getoption("--results"))


class _OptionError(pytest.Collector.CollectError):
    """Shown by pytest as its message alone, and nothing runs."""


def _csv(text: str, what: str, cast=str) -> list:
    try:
        return [cast(v.strip()) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise _OptionError(f"--{what}: expected a comma-separated list, got {text!r}") from None


def matrix_cells(config: pytest.Config) -> list[CellSpec]:
    """The experiment matrix from the options, in run order (taskmanagers, placement, rate,
    repetition), so that consecutive cells share Flink's configuration. Cells that cannot be placed
    are left out with a warning; none left, or a bad value, is a usage error."""
    o = config.getoption
    problems: list[str] = []
    cells: list[CellSpec] = []
    try:
        topology = _inventory(config).topology if o("--cloud") == "real" else load(o("--topology"))
        window = WindowSpec(o("--window"), o("--slide"), o("--watermark-delay"))
        for tm in _csv(o("--taskmanagers"), "taskmanagers", int):
            for placement in _csv(o("--placements"), "placements"):
                try:
                    choose(topology, placement, tm)
                except ValueError as e:
                    problems.append(str(e))
                    continue
                for rate in _csv(o("--rates"), "rates", float):
                    for rep in range(1, o("--repetitions") + 1):
                        cells.append(CellSpec(taskmanagers=tm, placement=placement, rate=rate, repetition=rep,
                                              duration=o("--duration"), warmup=o("--warmup"), window=window))
    except ValueError as e:  # TopologyError, a bad rate, window or warm-up
        raise _OptionError(f"bad experiment option: {e}") from None
    if o("--repetitions") < 1:
        raise _OptionError("bad experiment option: --repetitions must be >= 1")
    resume = o("--resume")
    if resume and not (Path(o("--results")) / resume / "cells.csv").exists():
        raise _OptionError(f"bad experiment option: --resume {resume}: no {Path(o('--results')) / resume / 'cells.csv'}")
    if resume:
        _check_resume(config, Path(o("--results")) / resume, topology)
    if not cells:
        raise _OptionError("bad experiment option: no cell of the matrix can be placed:\n  "
                           + "\n  ".join(problems))
    for p in problems:
        warnings.warn(f"left out of the matrix: {p}", pytest.PytestConfigWarning, stacklevel=1)
    return cells


# what a cell's numbers depend on besides its key (taskmanagers, placement, rate, repetition)
MEASUREMENT_OPTIONS = ("duration", "warmup", "window", "slide", "watermark_delay")


def _check_resume(config: pytest.Config, folder: Path, topology) -> None:
    """A resumed run must measure its remaining cells as the first session measured its own:
    otherwise the table would mix cells measured differently under the same keys."""
    path = folder / "manifest.json"
    if not path.exists():
        return
    doc = json.loads(path.read_text())
    first = (doc.get("sessions") or [{}])[0].get("options", {})
    differ = [f"--{k.replace('_', '-')} {config.getoption(k)!r} (the run used {first[k]!r})"
              for k in MEASUREMENT_OPTIONS if k in first and first[k] != config.getoption(k)]
    sha = doc.get("topology", {}).get("sha256")
    if sha and sha != topology.sha256:
        differ.append(f"topology {topology.source} (sha256 {topology.sha256[:12]}; the run's was {sha[:12]})")
    if differ:
        raise _OptionError(f"bad experiment option: --resume {folder.name} with other measurement settings: "
                           + "; ".join(differ) + ". Give the same options, or start a new run.")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cell" in metafunc.fixturenames:
        cells = matrix_cells(metafunc.config)
        metafunc.parametrize("cell", cells, ids=[c.key for c in cells])
    if "search_cell" in metafunc.fixturenames:
        searches = []
        if metafunc.config.getoption("--sustainable"):
            seen = set()
            for c in matrix_cells(metafunc.config):
                if (c.taskmanagers, c.placement, c.repetition) not in seen:
                    seen.add((c.taskmanagers, c.placement, c.repetition))
                    searches.append(dataclasses.replace(c, rate=metafunc.config.getoption("--search-start")))
        metafunc.parametrize("search_cell", searches,
                             ids=[f"tm{c.taskmanagers}-{c.placement}-rep{c.repetition}" for c in searches])


@pytest.fixture(scope="session")
def search_options(request: pytest.FixtureRequest) -> dict:
    o = request.config.getoption
    return {"start": o("--search-start"), "max": o("--search-max"), "refine": o("--search-refine"),
            "lag_slope": o("--lag-slope"), "max_p99_ms": o("--max-p99")}


class Matrix:
    """Where a long matrix is: cell i of n, elapsed time, an estimate of the rest."""

    def __init__(self, total: int, manifest_write):
        self.total, self.count, self.t0, self._manifest = total, 0, None, manifest_write

    def begin(self) -> None:
        """Write the manifest before the first measurement (a cell or a search)."""
        if self._manifest is not None:
            self._manifest()
            self._manifest = None

    def start(self, cell: CellSpec, progress) -> None:
        import time
        self.begin()
        if self.t0 is None:
            self.t0 = time.monotonic()
        self.count += 1
        elapsed = time.monotonic() - self.t0
        eta = f", about {elapsed / (self.count - 1) * (self.total - self.count + 1) / 60:.0f} min left" \
            if self.count > 1 else ""
        progress(f"cell {self.count} of {self.total}: {cell.key} (elapsed {elapsed / 60:.1f} min{eta})")


@pytest.fixture(scope="session")
def matrix(request: pytest.FixtureRequest, results_dir: ResultsDir, testbed: Testbed) -> Matrix:
    config = request.config
    total = sum(1 for item in request.session.items
                if hasattr(item, "callspec") and "cell" in item.callspec.params
                and not results_dir.finished(item.callspec.params["cell"].key))
    from .results import manifest
    options = {k: v for k, v in vars(config.option).items() if isinstance(v, (str, int, float, bool, type(None)))}
    return Matrix(total, lambda: manifest.write(results_dir.path, options=options, topology=testbed.topology,
                                                testbed=testbed))


@pytest.fixture
def progress(request: pytest.FixtureRequest):
    """Print a progress line on the terminal, past pytest's output capture."""
    return progress_for(request.config)


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Testbed:
    """The provisioned topology (--topology, default the seed; with --cloud=real the inventory's
    hosts), shared by the whole pytest run."""
    config = request.config
    progress = progress_for(config)
    inventory = _inventory(config) if config.getoption("--cloud") == "real" else None
    external = config.getoption("--testbed-run")
    topology = inventory.topology if inventory else load(config.getoption("--topology"))
    shared, owner = _shared(config)
    state = shared / "run.json"
    with runmod.file_lock(shared / "lock"):
        if state.exists():
            st = json.loads(state.read_text())
            if st.get("error"):
                pytest.fail(f"provisioning the testbed failed (in another worker): {st['error']}", pytrace=False)
            tb = Testbed.attach(st["run_id"], progress=progress, inventory=inventory)
            tb.calibration = st.get("calibration", [])
            tb.wan_check = st.get("wan_check", tb.wan_check)
            tb.preflight = st.get("preflight", {})
            return tb
        if not external:
            if inventory is not None:
                from .providers.real import RealProvider
                removed = RealProvider(inventory, progress).destroy(None, keep=runmod.owner_alive)
            else:
                removed = clean(progress=progress)
            if removed:
                progress(f"removed {len(removed)} leftovers of killed runs: {', '.join(removed[:6])}"
                         + (" ..." if len(removed) > 6 else ""))
        # an external run (--testbed-run: `python -m testbed up` or another run's) is left running
        # at the end, and its network is checked all the same
        st = {"run_id": external or runmod.new_run_id(), "external": bool(external)}
        # written before provisioning, so the controller can remove a half-made run too
        state.write_text(json.dumps(st))
        try:
            if external:
                tb = Testbed.attach(external, progress=progress, inventory=inventory)
            elif inventory is not None:
                tb = Testbed.up_real(inventory, run_id=st["run_id"], owner=owner, progress=progress)
            else:
                tb = Testbed.up(topology, run_id=st["run_id"], owner=owner, progress=progress)
            _calibrate(tb, config, progress)
        except BaseException as e:
            state.write_text(json.dumps({**st, "error": f"{type(e).__name__}: {e}"}))
            raise
        state.write_text(json.dumps({**st, "timings": tb.timings, "calibration": tb.calibration,
                                     "wan_check": tb.wan_check, "preflight": tb.preflight}))
        return tb


def _calibrate(tb: Testbed, config: pytest.Config, progress) -> None:
    """The fidelity check: measured network vs the topology's links, kept with the results."""
    mode = config.getoption("--wan-check")
    if mode == "off" or not tb.topology.links:
        tb.wan_check = "off" if mode == "off" else "no links"
        return
    from .stack.calibrate import CalibrationError, calibrate, check, table
    # measured while no test that loads the machine runs in another worker: the "seed-network"
    # ones (e.g. the real-cloud path shipping images over SSH) and the "lifecycle" ones
    # (provisioning topologies of their own)
    shared, _ = _shared(config)
    with runmod.file_lock(shared / "exclusive-seed-network.lock"), \
            runmod.file_lock(shared / "exclusive-lifecycle.lock"):
        rows = calibrate(tb, progress)
    tb.calibration = rows
    results = ResultsDir(session_id(config), config.getoption("--results"))
    for r in rows:
        results.append("calibration", r)
    progress("calibration (backend " + (tb.wan.backend if tb.wan else "none") + "):\n" + table(rows))
    try:
        check(rows)
        tb.wan_check = "passed"
    except CalibrationError as e:
        if mode == "fail":
            raise
        # recorded with every row and in the manifest, so the flag travels with the numbers
        tb.wan_check = f"flagged: {e}"
        progress(f"WARNING, run flagged: {e}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config) or _shared_key not in config.stash:
        return
    _report(config)
    shared = config.stash[_shared_key]
    state = shared / "run.json"
    try:
        if not state.exists():
            return
        st = json.loads(state.read_text())
        run_id = st["run_id"]
        progress = progress_for(config)
        if st.get("external"):
            return      # --testbed-run: not ours to remove
        if config.getoption("--keep-testbed"):
            progress(f"run {run_id} left running (--keep-testbed); remove it with "
                     f"`python -m testbed down --run {run_id}`")
            return
        with runmod.step(progress, f"run {run_id}: tear down"):
            if config.getoption("--cloud") == "real":
                from .providers.real import RealProvider
                RealProvider(_inventory(config), progress).destroy(run_id)
            else:
                from .providers.engine import host_client
                from .providers.emulated import EmulatedProvider
                EmulatedProvider(host_client(), progress).destroy(run_id)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
