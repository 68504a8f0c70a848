"""Helpers shared by the tests."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest


HERE = Path(__file__).parent
MINI = HERE / "topologies" / "mini.yaml"
# modules whose tests share a testbed of the module's own: all on one xdist worker, which
# provisions it once (pytest-xdist's xdist_group does not group under pytest 9: pytest-xdist#1386)
ONE_WORKER = {"test_real.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``-n N`` (``--dist load``) as pytest-xdist does it, but the tests of each ONE_WORKER module
    go to one worker together."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return module if module.rsplit("/", 1)[-1] in ONE_WORKER else nodeid

    return Scheduling(config, log)


@contextmanager
def records() -> Iterator[list[logging.LogRecord]]:
    """The testbed's log records while the block runs (tests read these, not printed text)."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    handler = Keep(logging.INFO)
    logger = logging.getLogger("testbed")
    logger.addHandler(handler)
    try:
        yield got
    finally:
        logger.removeHandler(handler)


def messages(recs: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in recs]


@contextmanager
def own_testbed(fst_locks, topology: str) -> Iterator:
    """A testbed of a module's own, of ``tests/topologies/<topology>.yaml``, next to the seed's: it
    is provisioned while no other topology is (``lifecycle``) and no test measures the network
    (the load lock), and removed at the end."""
    from testbed.model.topology import load
    from testbed.providers import for_cloud
    from testbed.provision.testbed import Testbed

    with fst_locks.exclusive("lifecycle"), fst_locks.load():
        tb = Testbed.up(for_cloud("emulated"), load(HERE / "topologies" / f"{topology}.yaml"))
    try:
        yield tb
    finally:
        with fst_locks.load():
            tb.down()
