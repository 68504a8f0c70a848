"""pytest glue: options and the session-scoped ``testbed`` fixture. The work is in the library.

With pytest-xdist the topology is provisioned once per pytest run, not once per worker: the first
process that needs it provisions it under a lock in a directory shared by the run, the others
attach to it by run id, and the controlling process (which outlives the workers) tears it down in
``pytest_sessionfinish`` — after failing tests and after Ctrl-C (SIGINT) or SIGTERM as well.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from . import run as runmod
from .experiment import CellSpec
from .results import RESULTS, ResultsDir
from .stack.placement import choose
from .testbed import Testbed, clean
from .topology import SEED_TOPOLOGY, load
from .workload.pipeline import WindowSpec

_SHARED = "fst_shared_dir"
_OWNER = "fst_owner"
_SESSION = "fst_session_id"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("testbed", "flink-swarm-testbed")
    g.addoption("--topology", default=str(SEED_TOPOLOGY),
                help="topology YAML to provision (default: the seed, topologies/seed.yaml)")
    g.addoption("--cloud", choices=("emulated", "real"), default="emulated",
                help="emulated: Docker-in-Docker nodes on this machine (default); real: VMs from --inventory")
    g.addoption("--inventory", default=None, help="hosts YAML for --cloud=real")
    g.addoption("--testbed-run", default=None, metavar="RUN_ID",
                help="use a testbed already up (python -m testbed up); it is left running")
    g.addoption("--keep-testbed", action="store_true",
                help="leave the provisioned testbed running at the end (remove it with python -m testbed down)")
    g.addoption("--wan-check", choices=("fail", "flag", "off"), default="fail",
                help="after provisioning, measure the network against the topology's links: fail setup when "
                     "it misses (default), only flag the run, or skip the check")
    g.addoption("--results", default=str(RESULTS), help="results folder; each pytest run writes <folder>/<session id>/")
    e = parser.getgroup("experiment", "experiment cell (flink-swarm-testbed)")
    e.addoption("--taskmanagers", type=int, default=2, help="Flink taskmanagers, one per node (default 2)")
    e.addoption("--placement", default="multi-cloud",
                help="single-cloud[:<cloud>] | multi-cloud | nodes:<host>,<host>... (default multi-cloud)")
    e.addoption("--rate", type=float, default=1000.0, help="offered events per second (default 1000)")
    e.addoption("--duration", type=float, default=60.0, help="seconds of load per cell (default 60)")
    e.addoption("--warmup", type=float, default=15.0, help="seconds excluded from the statistics (default 15)")
    e.addoption("--window", type=float, default=10.0,
                help="sliding window size in s (default 10; the seed's is 300)")
    e.addoption("--slide", type=float, default=2.0, help="window slide in s (default 2; the seed's is 60)")
    e.addoption("--watermark-delay", type=float, default=1.0, help="bounded out-of-orderness in s (default 1)")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exclusive(name): run one at a time with other tests of that name, "
                                       "across xdist workers")
    if _is_worker(config):
        return
    shared = tempfile.mkdtemp(prefix="fst-session-")
    config.stash[_shared_key] = Path(shared)
    config.stash[_owner_key] = runmod.owner_token()
    config.stash[_session_key] = runmod.new_run_id()
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(shared, config.stash[_owner_key], config.stash[_session_key]))
    # SIGTERM (CI time-outs, `kill`) becomes KeyboardInterrupt, so teardown runs as on Ctrl-C.
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm)


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
    with open(shared / f"exclusive-{mark.args[0]}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def session_id(config: pytest.Config) -> str:
    """One id per pytest run (shared by its xdist workers): the name of its results folder."""
    return config.workerinput[_SESSION] if _is_worker(config) else config.stash[_session_key]


@pytest.fixture(scope="session")
def results_dir(request: pytest.FixtureRequest) -> ResultsDir:
    """``results/<session id>/``: where this pytest run's tidy tables go."""
    return ResultsDir(session_id(request.config), request.config.getoption("--results"))


@pytest.fixture
def progress(request: pytest.FixtureRequest):
    """Print a progress line on the terminal, past pytest's output capture."""
    return progress_for(request.config)


@pytest.fixture(scope="session")
def cell_spec(request: pytest.FixtureRequest) -> CellSpec:
    """The experiment cell the command-line options describe. Session-scoped and listed before
    ``testbed`` in a test's arguments, so bad values fail before anything is provisioned."""
    o = request.config.getoption
    problem = None
    try:
        spec = CellSpec(taskmanagers=o("--taskmanagers"), placement=o("--placement"), rate=o("--rate"),
                        duration=o("--duration"), warmup=o("--warmup"),
                        window=WindowSpec(o("--window"), o("--slide"), o("--watermark-delay")))
        choose(load(o("--topology")), spec.placement, spec.taskmanagers)
    except ValueError as e:  # PlacementError and TopologyError are ValueErrors too
        problem = str(e)
    if problem:
        pytest.fail(f"bad experiment option: {problem}", pytrace=False)
    return spec


@pytest.fixture(scope="session")
def testbed(request: pytest.FixtureRequest) -> Testbed:
    """The provisioned topology (--topology, default the seed), shared by the whole pytest run."""
    config = request.config
    if config.getoption("--cloud") == "real":
        pytest.fail("--cloud=real is not implemented yet: the real-cloud path (SSH inventory, "
                    "preflight, Weave) is a later issue; use the emulated default", pytrace=False)
    progress = progress_for(config)
    external = config.getoption("--testbed-run")
    if external:
        return Testbed.attach(external, progress=progress)
    topology = load(config.getoption("--topology"))
    shared, owner = _shared(config)
    state = shared / "run.json"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if state.exists():
            st = json.loads(state.read_text())
            if st.get("error"):
                pytest.fail(f"provisioning the testbed failed (in another worker): {st['error']}", pytrace=False)
            tb = Testbed.attach(st["run_id"], progress=progress)
            tb.calibration = st.get("calibration", [])
            return tb
        removed = clean(progress=progress)
        if removed:
            progress(f"removed {len(removed)} leftovers of killed runs: {', '.join(removed[:6])}"
                     + (" ..." if len(removed) > 6 else ""))
        run_id = runmod.new_run_id()
        # written before provisioning, so the controller can remove a half-made run too
        state.write_text(json.dumps({"run_id": run_id}))
        try:
            tb = Testbed.up(topology, run_id=run_id, owner=owner, progress=progress)
            _calibrate(tb, config, progress)
        except BaseException as e:
            state.write_text(json.dumps({"run_id": run_id, "error": f"{type(e).__name__}: {e}"}))
            raise
        state.write_text(json.dumps({"run_id": run_id, "timings": tb.timings, "calibration": tb.calibration}))
        return tb


def _calibrate(tb: Testbed, config: pytest.Config, progress) -> None:
    """The fidelity check: measured network vs the topology's links, kept with the results."""
    mode = config.getoption("--wan-check")
    if mode == "off" or not tb.topology.links:
        return
    from .stack.calibrate import CalibrationError, calibrate, check, table
    rows = calibrate(tb, progress)
    tb.calibration = rows
    results = ResultsDir(session_id(config), config.getoption("--results"))
    for r in rows:
        results.append("calibration", r)
    progress("calibration (backend " + (tb.wan.backend if tb.wan else "none") + "):\n" + table(rows))
    try:
        check(rows)
    except CalibrationError as e:
        if mode == "fail":
            raise
        progress(f"WARNING, run flagged: {e}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _is_worker(config) or _shared_key not in config.stash:
        return
    shared = config.stash[_shared_key]
    state = shared / "run.json"
    try:
        if not state.exists():
            return
        run_id = json.loads(state.read_text())["run_id"]
        progress = progress_for(config)
        if config.getoption("--keep-testbed"):
            progress(f"run {run_id} left running (--keep-testbed); remove it with "
                     f"`python -m testbed down --run {run_id}`")
            return
        from .engine import host_client
        from .providers.emulated import EmulatedProvider
        with runmod.step(progress, f"run {run_id}: tear down"):
            EmulatedProvider(host_client(), progress).destroy(run_id)
    finally:
        shutil.rmtree(shared, ignore_errors=True)
