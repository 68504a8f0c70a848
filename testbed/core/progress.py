"""Progress of long steps: bars on a terminal, plain lines everywhere else.

A ``Progress`` counts one step's work (bytes loaded into a node, cells of a matrix, seconds of a
load phase). Where it is shown depends on where the output goes:

- ``bars``: output is a terminal. One rich display at the bottom of the terminal holds a bar per
  step in progress; the testbed's log lines are printed above it (through ``echo``), so the two
  never overwrite each other.
- ``lines``: output is a pipe or a file (CI logs, ``| tee``) or pytest's live log. A step in progress
  logs ``what: 3 of 12 cells, about 4 min left`` at most every ``every`` seconds, as an ordinary log
  record (with ``progress``, ``completed`` and ``total`` on it); nothing but text and newlines.

``FST_PROGRESS=lines`` (or ``bars``) overrides the choice. The pytest plugin sets ``suspend`` to
pytest's capture suspension, so that bars and lines reach the terminal while tests run.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from contextlib import nullcontext
from typing import Callable, ContextManager

from . import env

log = logging.getLogger("testbed.progress")

_lock = threading.RLock()
_settings: dict = {"mode": "auto", "terminal": None, "suspend": None, "line": None}
_bars = None            # the rich Progress shown while at least one bar is
_active: list["Progress"] = []
_paused = False          # bars counted but not shown (``pause``)


def configure(mode: str = "auto", *, terminal: bool | None = None,
              suspend: Callable[[], ContextManager] | None = None,
              line: Callable[[], str] | None = None) -> None:
    """``mode``: auto (bars if the output is a terminal), bars or lines. ``terminal``: whether the
    output is a terminal, when the caller knows better than ``sys.stderr.isatty()`` (pytest's
    capture replaces stderr). ``suspend``: a context in which the real stderr may be written.
    ``line``: the text of the terminal's unfinished line (pytest's row of dots), which the bars
    cleared when they were drawn over it and ``pause`` writes back."""
    if mode not in ("auto", "bars", "lines"):
        raise ValueError(f"progress mode {mode!r}: one of auto, bars, lines")
    global _paused
    with _lock:
        _settings.update(mode=mode, terminal=terminal, suspend=suspend, line=line)
        if _bars is None:
            _paused = False


def mode() -> str:
    """``bars`` or ``lines``, as the next step will show."""
    forced = env.PROGRESS.get().lower()
    if forced in ("bars", "lines"):
        return forced
    if _settings["mode"] != "auto":
        return _settings["mode"]
    terminal = _settings["terminal"]
    if terminal is None:
        terminal = sys.stderr.isatty()
    return "bars" if terminal and os.environ.get("TERM", "") != "dumb" else "lines"


def pause() -> None:
    """Take the bars off the terminal (they go on counting) while someone else writes to it:
    pytest, between the phases of a test, writes its report where the bars would be."""
    global _paused
    with _lock:
        if _bars is not None and not _paused:
            _take_down()
        _paused = True


def shutdown() -> None:
    """Take the bars off the terminal for good (Ctrl-C, the end of a session): the steps still
    counting go on as lines."""
    global _bars, _paused
    with _lock:
        if _bars is not None and not _paused:
            _take_down()
        _bars, _paused = None, False
        for p in _active:
            p._task = None
        _active.clear()


def _take_down() -> None:
    """Stop showing the bars; write back the unfinished line they were drawn over."""
    with _suspend():
        _bars.stop()
        unfinished = _settings["line"]() if _settings["line"] else ""
        if unfinished:
            _bars.console.file.write(unfinished)
            _bars.console.file.flush()


def resume() -> None:
    """Show the bars again after ``pause``."""
    global _paused
    with _lock:
        if _bars is not None and _paused:
            with _suspend():
                _bars.start()
                _bars.refresh()
        _paused = False


def _suspend() -> ContextManager:
    return (_settings["suspend"] or nullcontext)()


def echo(line: str) -> None:
    """Print a log line on stderr: above the bars while they are shown."""
    with _lock, _suspend():
        if _bars is not None:
            _bars.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            print(line, file=sys.stderr, flush=True)


def amount(done: float, total: float | None, unit: str) -> str:
    """``3 of 12 cells``, ``120 of 396 MB``, ``14 s of 30 s``, ``7 lines``."""
    if unit == "bytes":
        scale, unit = (1e9, "GB") if (total or done) >= 1e9 else (1e6, "MB")
        done, total = done / scale, (total / scale if total else total)
        fmt = "{:,.1f}" if scale == 1e9 else "{:,.0f}"
    else:
        fmt = "{:,.0f}"
    text = fmt.format(done) + (f" of {fmt.format(total)}" if total else "")
    return f"{text} {unit}".rstrip()


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class Progress:
    """The progress of one step (``with Progress("load images into n1", total=..., unit="bytes")
    as p: ... p.advance(len(chunk))``). ``total`` None: a count without an end. Thread-safe: several
    steps may run at once (one per node), each with its own bar or lines."""

    def __init__(self, what: str, total: float | None = None, unit: str = "", *, every: float = 15.0,
                 logger: logging.Logger | None = None, eta: bool = True):
        self.what, self.total, self.unit, self.every, self.eta = what, total, unit, every, eta
        self.completed = 0.0
        self.note = ""
        self._log = logger or log
        self._task = None
        self._t0 = self._last_line = self._last_draw = 0.0

    # -- life cycle ----------------------------------------------------------------------------------
    def __enter__(self) -> "Progress":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "Progress":
        global _bars
        self._t0 = self._last_line = time.monotonic()
        if mode() != "bars":
            return self
        with _lock:
            if _bars is None:
                from rich.console import Console
                from rich.progress import BarColumn, Progress as Bars, TextColumn

                console = Console(stderr=True, force_terminal=True)
                _bars = Bars(TextColumn("{task.description}"), BarColumn(),
                             TextColumn("{task.fields[text]}"), console=console, transient=True,
                             auto_refresh=_settings["suspend"] is None, redirect_stdout=False,
                             redirect_stderr=False)
                if not _paused:
                    with _suspend():
                        _bars.start()
            with _suspend():     # (rich draws as it adds a bar)
                self._task = _bars.add_task(self.what, total=self.total, text=self.text())
            _active.append(self)
        self._draw(force=True)
        return self

    def close(self) -> None:
        global _bars
        if self._task is None:
            return
        with _lock:
            _active.remove(self)
            if _bars is not None:
                _bars.remove_task(self._task)
                if not _active:
                    if not _paused:
                        _take_down()
                    _bars = None
                elif _settings["suspend"] is not None and not _paused:
                    with _suspend():
                        _bars.refresh()
        self._task = None

    # -- counting ------------------------------------------------------------------------------------
    def advance(self, n: float = 1, note: str | None = None) -> None:
        self.update(self.completed + n, note=note)

    def update(self, completed: float | None = None, *, total: float | None = None,
               note: str | None = None) -> None:
        if completed is not None:
            self.completed = completed
        if total is not None:
            self.total = total
        if note is not None:
            self.note = note
        if self._task is not None:
            self._draw()
        else:
            self._line()

    def left(self) -> float | None:
        """Seconds left at the pace so far (None: not known yet)."""
        elapsed = time.monotonic() - self._t0
        if not self.total or self.completed <= 0 or elapsed < 2:
            return None
        return max(0.0, elapsed / self.completed * (self.total - self.completed))

    def text(self) -> str:
        out = amount(self.completed, self.total, self.unit)
        left = self.left() if self.eta else None
        if left is not None and self.completed < (self.total or 0):
            out += f", about {_minutes(left)} left"
        return out + (f" ({self.note})" if self.note else "")

    def _line(self) -> None:
        now = time.monotonic()
        if now - self._last_line < self.every:
            return
        self._last_line = now
        self._log.info(f"{self.what}: {self.text()}", extra={
            "progress": self.what, "completed": self.completed, "total": self.total, "unit": self.unit})

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        with _lock:
            if _bars is None or self._task is None:
                return
            _bars.update(self._task, completed=self.completed, total=self.total, text=self.text())
            if _settings["suspend"] is not None and not _paused:
                with _suspend():
                    _bars.refresh()
