"""Run identity: run ids, the labels every resource carries, who owns a run; logging of long steps.

Every container, network and volume the testbed creates carries ``LABEL_PROJECT`` and
``LABEL_RUN``. A run started by a process (a pytest session) also carries ``LABEL_OWNER``, so
that a later start can tell leftovers of a killed run (owner gone) from a run still in use.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Callable, Iterator

from . import progress

LABEL_PROJECT = "io.flink-swarm-testbed"          # value: "1"
LABEL_RUN = "io.flink-swarm-testbed.run"           # value: the run id
LABEL_OWNER = "io.flink-swarm-testbed.owner"       # value: host:pid:starttime, or "cli"
LABEL_KIND = "io.flink-swarm-testbed.kind"         # node | router | cloud-net | node-data
LABEL_HOSTNAME = "io.flink-swarm-testbed.hostname"
LABEL_CLOUD = "io.flink-swarm-testbed.cloud"
LABEL_ROLE = "io.flink-swarm-testbed.role"
LABEL_TOPOLOGY = "io.flink-swarm-testbed.topology"
LABEL_TOPOLOGY_TEXT = "io.flink-swarm-testbed.topology-yaml"
LABEL_IMAGES = "io.flink-swarm-testbed.images"     # on the manager: recipe name -> image id
ROUTE_PROTO = 213    # the protocol number of the testbed's blackhole routes on real hosts (partitions)



def new_run_id() -> str:
    """Sortable and unique: 20261125-131500-3fa2."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def _starttime(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_token(pid: int | None = None) -> str:
    """Identifies this process across pid reuse: host:pid:starttime."""
    pid = pid or os.getpid()
    return f"{socket.gethostname()}:{pid}:{_starttime(pid) or '?'}"


def owner_alive(token: str) -> bool:
    """Is the process named by an owner token still running? 'cli' runs are kept until `down`."""
    if token == "cli":
        return True
    try:
        host, pid, start = token.rsplit(":", 2)
    except ValueError:
        return False
    if host != socket.gethostname():
        return True  # another machine's run on a shared engine: not ours to judge
    return _starttime(int(pid)) == start


def labels(run_id: str, owner: str, **extra: str) -> dict[str, str]:
    out = {LABEL_PROJECT: "1", LABEL_RUN: run_id, LABEL_OWNER: owner}
    out.update({f"{LABEL_PROJECT}.{k.replace('_', '-')}": v for k, v in extra.items()})
    return out


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive lock shared by every process on this machine (xdist workers, parallel runs)."""
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Formatter(logging.Formatter):
    """``[testbed 12:00:01] message``; warnings and errors say so: ``[testbed 12:00:01] WARNING, message``."""

    def __init__(self) -> None:
        super().__init__("[testbed %(asctime)s] %(message)s", "%H:%M:%S")

    def formatMessage(self, record: logging.LogRecord) -> str:
        if record.levelno >= logging.WARNING:
            record.message = f"{record.levelname}, {record.message}"
        return super().formatMessage(record)


class _EchoHandler(logging.Handler):
    """Records on stderr, above the progress bars while they are shown."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            progress.echo(self.format(record))
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def configure_logging(level: int = logging.INFO, stream=None) -> None:
    """Show the testbed's log on stderr as the CLI prints it: ``[testbed 12:00:01] message``.
    (pytest shows the same records with its live log; the plugin turns that on.)"""
    logger = logging.getLogger("testbed")
    if any(getattr(h, "_fst", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream) if stream is not None else _EchoHandler()
    handler.setFormatter(Formatter())
    handler._fst = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@contextmanager
def step(logger: logging.Logger, what: str, *, unit: str = "", total: float | None = None,
         **extra) -> Iterator[progress.Progress | None]:
    """Log a long step's start and its duration (or failure). Records carry ``step`` (what),
    ``phase`` (start, done, failed) and ``seconds``, so a reader need not parse the text. With a
    ``unit`` (cells, bytes, s) the step counts its work: it yields a ``Progress`` (a bar on a
    terminal, a line every few seconds elsewhere), else None."""
    t0 = time.monotonic()
    logger.info("%s ...", what, extra={"step": what, "phase": "start", **extra})
    try:
        if unit:
            with progress.Progress(what, total, unit, logger=logger) as p:
                yield p
        else:
            yield None
    except BaseException:
        dt = time.monotonic() - t0
        logger.info("%s: failed after %.1fs", what, dt, extra={"step": what, "phase": "failed", "seconds": dt, **extra})
        raise
    dt = time.monotonic() - t0
    logger.info("%s: done in %.1fs", what, dt, extra={"step": what, "phase": "done", "seconds": dt, **extra})


class GiveUp(Exception):
    """Raised by a ``wait_for`` condition that can no longer become true (a job that FAILED)."""


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.25,
             detail: Callable[[], str] | None = None):
    """Poll ``check`` until it returns something truthy; raise TimeoutError naming ``what``.

    Other errors of ``check`` are retried until the deadline (a service not answering yet), except
    ``GiveUp``, which ends the wait at once. ``detail`` is called on timeout to say what was seen."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except GiveUp:
            raise
        except Exception as e:  # noqa: BLE001 - the condition is retried until the deadline
            last_exc = e
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout:.0f}s waiting for {what}"
            if last_exc is not None:
                msg += f"; last error: {last_exc}"
            if detail is not None:
                try:
                    msg += "\n" + detail()
                except Exception as e:  # noqa: BLE001
                    msg += f"\n(could not collect details: {e})"
            raise TimeoutError(msg)
        time.sleep(interval)
