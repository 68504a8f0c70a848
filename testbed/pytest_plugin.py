"""pytest glue (entry point ``pytest11``): options, fixtures and hooks over the library.

The work is in the library: providers and ``Testbed`` provision, ``experiment.Session`` runs and
records the matrix (the CLI's ``python -m testbed run`` uses the same). Here:

- options: the same declarations as the CLI (experiment/options.py);
- ``fst_testbed``: the provisioned topology, shared by the whole pytest run. With pytest-xdist it is
  provisioned once per run, not once per worker: the first process that needs it provisions it under
  a lock in a directory shared by the run, the others attach to it by run id, and the controlling
  process (which outlives the workers) tears it down in ``pytest_sessionfinish`` — after failing
  tests and after Ctrl-C (SIGINT) or SIGTERM as well. With ``--cloud=real --inventory a.yaml,b.yaml``
  and ``-n 2`` each worker has its own testbed instead, so that cells run side by side honestly;
- ``fst_session``: the experiment session writing ``results/<session id>/``; ``fst_cell`` and
  ``fst_search_cell``: the matrix's cells and searches, one test each;
- the ``exclusive(name)`` marker: tests that reconfigure the shared testbed run one at a time;
- the library's log records on the terminal, past pytest's capture (or in pytest's live log when
  ``log_cli`` is on).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import signal
import tempfile
import warnings
from typing import Iterator
from pathlib import Path

import pytest

from .core import compat, progress
from .core.locks import Locks
from .core import run as runmod
from .experiment.options import EXPERIMENT, TESTBED, Experiment, OptionError, add_to, values
from .experiment.session import Session
from .model.inventory import load as load_inventory
from .provision import teardown
from .provision.testbed import Testbed, clean
from .model.topology import TopologyError, load

_SHARED = "fst_shared_dir"
_OWNER = "fst_owner"
_SESSION = "fst_session_id"
_shared_key = pytest.StashKey[Path]()
_owner_key = pytest.StashKey[str]()
_session_key = pytest.StashKey[str]()
_cells_key = pytest.StashKey[tuple]()
_inventories_key = pytest.StashKey[list]()
_live_key = pytest.StashKey[bool]()
_locks_key = pytest.StashKey["Locks"]()
_experiment_key = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_to(parser.getgroup("testbed", "flink-swarm-testbed"), TESTBED)
    add_to(parser.getgroup("experiment", "experiments (flink-swarm-testbed)"), EXPERIMENT)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class _TerminalHandler(logging.Handler):
    """The testbed's records on stderr while pytest captures output (long steps must be seen)."""

    def __init__(self, config: pytest.Config):
        super().__init__(logging.INFO)
        self.setFormatter(runmod.Formatter())

    def emit(self, record: logging.LogRecord) -> None:
        progress.echo(self.format(record))     # past the capture (``progress.configure``), above any bar


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "exclusive(name, ...): run one at a time with other tests of that "
                                       "name (of each name given), across xdist workers")
    config.addinivalue_line("markers", "engine: needs a running Docker engine (started by scripts/with-env)")
    config.addinivalue_line("markers", "quiet: runs while no other engine test runs (it measures the network)")
    logger = logging.getLogger("testbed")
    logger.setLevel(logging.INFO)
    live = config.pluginmanager.has_plugin("logging") and (config.getini("log_cli")
                                                           or config.getoption("log_cli_level", None))
    if not live:
        handler = _TerminalHandler(config)
        logger.addHandler(handler)
        config.add_cleanup(lambda: logger.removeHandler(handler))
    config.stash[_live_key] = bool(live)
    if config.getoption("--experiment"):
        # the file's fields become the options' values (what the command line gives wins), before
        # anything reads them; xdist workers do the same with the same arguments
        from .experiment.file import ExperimentFileError, apply
        try:
            config.stash[_experiment_key] = apply(config.option, config.getoption("--experiment"),
                                                  list(config.invocation_params.args))
        except ExperimentFileError as e:
            raise pytest.UsageError(str(e)) from None
    capman = config.pluginmanager.getplugin("capturemanager")    # lines until the session starts
    progress.configure("lines", suspend=capman.global_and_fixture_disabled if capman is not None else None)
    config.add_cleanup(progress.configure)
    if _is_worker(config):
        return
    if config.getoption("--cloud") == "real" or config.getoption("--dry-run"):
        inventories = _inventories(config)
        if config.getoption("--dry-run"):
            from .providers.real import RealProvider
            for inv in inventories:
                print(Testbed.dry_run(RealProvider(inv)))
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


def _inventories(config: pytest.Config) -> list:
    """The --inventory file(s) of a --cloud=real run, validated (a bad one stops pytest before anything
    starts; a missing key file is only a warning for --dry-run, which connects to nothing)."""
    if config.getoption("--cloud") != "real":
        raise pytest.UsageError("--dry-run shows what a real run would execute: use it with --cloud=real --inventory FILE")
    if _inventories_key in config.stash:          # read and validated once per process
        return config.stash[_inventories_key]
    paths = [p for p in (config.getoption("--inventory") or "").split(",") if p.strip()]
    if not paths:
        raise pytest.UsageError("--cloud=real needs --inventory FILE (see examples/inventory.yaml)")
    try:
        config.stash[_inventories_key] = [load_inventory(p.strip(), check_keys=not config.getoption("--dry-run"))
                                          for p in paths]
        return config.stash[_inventories_key]
    except TopologyError as e:
        raise pytest.UsageError(str(e)) from None


def _sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt("SIGTERM")


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


def _workers(config: pytest.Config) -> tuple[int, int]:
    """(this process's worker index, number of workers); (0, 1) without xdist."""
    if not _is_worker(config):
        return 0, 1
    return int(config.workerinput.get("workerid", "gw0")[2:] or 0), int(config.workerinput.get("workercount", 1))


def _slot(config: pytest.Config) -> int:
    """Which testbed this process uses: its worker's own where each worker has an inventory, else the one."""
    index, count = _workers(config)
    if config.getoption("--cloud") == "real" and count > 1 and len(_inventories(config)) >= count:
        return index
    return 0


def session_id(config: pytest.Config) -> str:
    """The name of this pytest run's results folder: --resume's, or one new id per run (shared by
    its xdist workers)."""
    if config.getoption("--resume"):
        return config.getoption("--resume")
    return config.workerinput[_SESSION] if _is_worker(config) else config.stash[_session_key]


def _session(config: pytest.Config) -> Session:
    opts = values(config.getoption)
    if _experiment_key in config.stash:
        opts["experiment_file"] = config.stash[_experiment_key]
    return Session(Experiment.from_options(opts), opts["results"], session_id=session_id(config),
                   resume=opts["resume"], options=opts, command=["pytest", *config.invocation_params.args])


@pytest.fixture(autouse=True)
def _fst_exclusive(request: pytest.FixtureRequest):
    """Tests marked ``exclusive(name)`` run one at a time across all xdist workers of this pytest
    run (an inter-process lock), e.g. those that reconfigure the shared testbed's Flink or WAN.
    Every ``engine`` test then holds the machine's load lock shared, and a test marked ``quiet``
    holds it alone: no other engine test runs meanwhile (it measures the network)."""
    mark = request.node.get_closest_marker("exclusive")
    engine = request.node.get_closest_marker("engine") is not None
    quiet = request.node.get_closest_marker("quiet") is not None
    # several names: taken in the order given (the testbed's own network check takes
    # "seed-network" before "lifecycle"; keep that order to never wait in a cycle); the load lock
    # last, so that no test waits for a name while holding it
    locks = _locks(request.config)
    with locks.exclusive(*(mark.args if mark else ())), \
            (locks.load("ex" if quiet else "sh") if engine or quiet else contextlib.nullcontext()):
        yield


@pytest.fixture
def fst_exclusive(request: pytest.FixtureRequest):
    """``with fst_exclusive("lifecycle"): ...`` runs a block while no test marked with that name runs
    in another worker (for a part of a test only, e.g. a sub-run that measures the network)."""
    return lambda name: _locks(request.config).exclusive(name)


@pytest.fixture
def fst_quiet(request: pytest.FixtureRequest):
    """``with fst_quiet(): ...`` runs a block while no other engine test runs in another worker (it
    waits for those running to end): for a part of a test that measures the network."""
    return lambda: _locks(request.config).load("ex")


@pytest.fixture(scope="session")
def fst_locks(request: pytest.FixtureRequest) -> Locks:
    """The same locks for fixtures wider than a test, whose setup runs before any test's locks are
    taken: ``with fst_locks.exclusive("lifecycle"), fst_locks.load(): ...`` around provisioning a
    topology of a module's own, ``with fst_locks.load(): ...`` around other heavy work (compiling a
    job), so that none of it runs while a ``quiet`` test measures the network."""
    return _locks(request.config)


def _locks(config: pytest.Config) -> Locks:
    """This process's locks in the run's shared folder (core/locks.py)."""
    if _locks_key not in config.stash:
        config.stash[_locks_key] = Locks(_shared(config)[0])
    return config.stash[_locks_key]


class _OptionError(pytest.Collector.CollectError):
    """Shown by pytest as its message alone, and nothing runs."""


def _cells(config: pytest.Config):
    """The matrix (and searches) from the options, checked before anything starts; cached per process."""
    if _cells_key in config.stash:
        return config.stash[_cells_key]
    _, count = _workers(config)
    if count > 1 and not (config.getoption("--cloud") == "real" and len(_inventories(config)) >= count):
        raise _OptionError(
            f"experiments do not run with pytest-xdist (-n {count}) on one testbed: cells would run at the same "
            "time on one Flink cluster and measure each other (a second cell rescales Flink under the first). "
            "Run without -n: cells run one after another. To shorten a matrix with -n N, give each worker its "
            "own testbed on real clouds: --cloud=real --inventory a.yaml,b.yaml,... (one inventory per worker).")
    try:
        session = _session(config)
        if config.getoption("--cloud") == "real":
            topology = _inventories(config)[_slot(config)].topology
        else:
            topology = load(config.getoption("--topology"))
        cells = session.plan(topology)
    except (OptionError, TopologyError) as e:
        raise _OptionError(str(e) if isinstance(e, OptionError) else f"bad experiment option: {e}") from None
    for w in session.left_out:
        warnings.warn(w, pytest.PytestConfigWarning, stacklevel=1)
    config.stash[_cells_key] = (cells, session.experiment.searches(cells))
    return config.stash[_cells_key]


@pytest.hookimpl(trylast=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """Progress bars reach the terminal past the capture, as the log lines do. A worker's output
    and pytest's live log get lines (a bar there would be drawn between pytest's own writes)."""
    config = session.config
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    markup, line = compat.terminal(reporter) if reporter is not None else (False, lambda: "")
    terminal = not config.stash.get(_live_key, False) and not _is_worker(config) and markup
    progress.configure("auto" if terminal else "lines", terminal=terminal,
                       suspend=capman.global_and_fixture_disabled if capman is not None else None, line=line)


def pytest_keyboard_interrupt(excinfo) -> None:
    progress.shutdown()      # Ctrl-C: no bar over the teardown's lines and pytest's last words


# pytest writes each phase's report (".", "F", "PASSED") where the bars are: they step aside for it
@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report) -> None:
    progress.pause()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item) -> None:
    progress.resume()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item) -> None:
    progress.resume()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item) -> None:
    progress.resume()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "fst_cell" in metafunc.fixturenames:
        cells, _ = _cells(metafunc.config)
        metafunc.parametrize("fst_cell", cells, ids=[c.key for c in cells])
    if "fst_search_cell" in metafunc.fixturenames:
        _, searches = _cells(metafunc.config)
        metafunc.parametrize("fst_search_cell", searches,
                             ids=[f"tm{c.taskmanagers}-{c.placement}-rep{c.repetition}" for c in searches])


@pytest.fixture(scope="session")
def fst_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """The experiment session writing ``results/<session id>/`` (its manifest before the first cell)."""
    session = _session(request.config)
    session.expect(sum(1 for item in request.session.items
                       if hasattr(item, "callspec") and "fst_cell" in item.callspec.params
                       and not session.finished(item.callspec.params["fst_cell"].key)))
    yield session
    session.close()          # its bar of cells (the controller draws the report at the end)


@pytest.fixture(scope="session")
def fst_testbed(request: pytest.FixtureRequest) -> Testbed:
    """The provisioned topology (--topology, default the seed; with --cloud=real the inventory's
    hosts), shared by the whole pytest run (or one per worker, see the module's docstring)."""
    from .providers import for_cloud
    config = request.config
    slot = _slot(config)
    inventory = _inventories(config)[slot] if config.getoption("--cloud") == "real" else None
    provider = for_cloud(config.getoption("--cloud"), inventory)
    external = config.getoption("--testbed-run")
    shared, owner = _shared(config)
    state = shared / f"run-{slot}.json"
    with runmod.file_lock(shared / f"lock-{slot}"):
        if state.exists():
            st = json.loads(state.read_text())
            if st.get("error"):
                pytest.fail(f"provisioning the testbed failed (in another worker): {st['error']}", pytrace=False)
            tb = Testbed.attach(provider, st["run_id"])
            tb.calibration = st.get("calibration", [])
            tb.wan_check = st.get("wan_check", tb.wan_check)
            tb.preflight = st.get("preflight", {})
            return tb
        if not external:
            removed = clean(provider)
            if removed:
                logging.getLogger("testbed").info(
                    f"removed {len(removed)} leftovers of killed runs: {', '.join(removed[:6])}"
                    + (" ..." if len(removed) > 6 else ""))
        # an external run (--testbed-run: `python -m testbed up` or another run's) is left running
        # at the end, and its network is checked all the same
        st = {"run_id": external or runmod.new_run_id(), "external": bool(external), "slot": slot,
              "inventory": inventory.source if inventory else None}
        # written before provisioning, so the controller can remove a half-made run too
        state.write_text(json.dumps(st))
        try:
            if external:
                tb = Testbed.attach(provider, external)
            else:
                topology = None if inventory else load(config.getoption("--topology"))
                # a kept run outlives this process: owned like `python -m testbed up`'s, so that a
                # later clean does not take it for a killed run's leftovers
                tb = Testbed.up(provider, topology, run_id=st["run_id"],
                                owner="cli" if config.getoption("--keep-testbed") else owner)
            # measured while no test that loads the machine runs in another worker: the
            # "seed-network" ones and the "lifecycle" ones (provisioning topologies of their own)
            _session(config).calibrate(tb, config.getoption("--wan-check"), lock=_locks(config).quietly)
        except BaseException as e:
            state.write_text(json.dumps({**st, "error": f"{type(e).__name__}: {e}"}))
            raise
        state.write_text(json.dumps({**st, "timings": tb.timings, "calibration": tb.calibration,
                                     "wan_check": tb.wan_check, "preflight": tb.preflight}))
        return tb


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Tear down every testbed this run provisioned (each on its own, so one failure does not keep
    another standing), then close the manifest and draw the figures."""
    progress.shutdown()      # whatever bar is still up (a session ended by SIGTERM): lines from here
    config = session.config
    if _is_worker(config) or _shared_key not in config.stash:
        return
    log = logging.getLogger("testbed")
    shared = config.stash[_shared_key]
    try:
        for state in sorted(shared.glob("run-*.json")):
            try:
                st = json.loads(state.read_text())
                run_id = st["run_id"]
                if st.get("external"):
                    continue      # --testbed-run: not ours to remove
                if config.getoption("--keep-testbed"):
                    log.info(f"run {run_id} left running (--keep-testbed); remove it with "
                             f"`python -m testbed down --run {run_id}`")
                    continue
                from .providers import for_cloud
                provider = for_cloud(config.getoption("--cloud"), st.get("inventory"))
                with runmod.step(log, f"run {run_id}: tear down"):
                    teardown.destroy(provider, run_id)
            except Exception as e:  # noqa: BLE001 - the next testbed is torn down all the same
                log.error(f"tearing down {state.name} failed: {type(e).__name__}: {e}; "
                          "`python -m testbed clean` removes what is left")
        try:
            _session(config).finish()
        except OptionError:
            pass
    finally:
        shutil.rmtree(shared, ignore_errors=True)
