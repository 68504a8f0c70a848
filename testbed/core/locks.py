"""Locks between the processes of one test run (pytest-xdist's workers), as files in the run's shared
folder, so that tests that disturb each other never run at the same time:

- ``exclusive(*names)``: one holder per name at a time (tests that reconfigure the shared testbed's
  Flink or WAN, ones that provision a topology of their own);
- ``load(mode)``: the machine's load lock, held shared (``sh``) by every test that loads the machine
  and alone (``ex``) by one that measures it, the network say, so that nothing else runs meanwhile;
- ``quietly()``: both, as the testbed's own fidelity check needs.

One ``Locks`` per process and folder: it remembers the mode in which this process holds the load lock,
so that nested blocks convert it and give it back as it was.
"""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path

from .run import file_lock

_FLOCK = {"sh": fcntl.LOCK_SH, "ex": fcntl.LOCK_EX, None: fcntl.LOCK_UN}


class Locks:
    def __init__(self, folder: Path):
        self.folder = folder
        self._file = None           # the load lock's file, open for the process's life
        self._mode: str | None = None

    def _set(self, mode: str | None) -> None:
        fcntl.flock(self._file, _FLOCK[mode])
        self._mode = mode

    @contextlib.contextmanager
    def load(self, mode: str = "sh"):
        """Hold the load lock in ``mode`` (sh: with other tests; ex: alone), then as before. A change of
        mode converts the lock this process holds (flock converts by releasing first, so two workers
        that both want it alone never wait for each other)."""
        if self._file is None:
            self._file = open(self.folder / "load.lock", "w")   # noqa: SIM115 - held for the process's life
        before = self._mode
        if before != "ex" and before != mode:
            self._set(mode)
        try:
            yield
        finally:
            if self._mode != before:
                self._set(before)

    @contextlib.contextmanager
    def exclusive(self, *names: str):
        """The locks of these names, taken in order. The load lock is let go while waiting for them (a
        test holding it must not wait for one held by a test that waits for the load lock), and taken
        again once they are held."""
        if not names:
            yield
            return
        held = self._mode
        if held:
            self._set(None)
        try:
            with contextlib.ExitStack() as stack:
                for n in names:
                    stack.enter_context(file_lock(self.folder / f"exclusive-{n}.lock"))
                if held:
                    self._set(held)
                yield
        finally:
            if held and self._mode != held:
                self._set(held)

    @contextlib.contextmanager
    def quietly(self):
        """While the testbed's own network is measured: no test that reconfigures it or provisions a
        topology of its own, and no other engine test at all."""
        with self.exclusive("seed-network", "lifecycle"), self.load("ex"):
            yield
