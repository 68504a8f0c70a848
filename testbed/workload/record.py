"""The load driver's record as the harness holds it, typed: what each driver task reports
(``TaskReport``, its ``driver.json``), what the results collector read (``Collected``, its
``results.json``), and the two joined with the cell's schedule into one ``Record`` (``load.merge``),
which the measures and the cell read. ``ProduceSummary`` is the line ``driver.py produce`` prints,
which the benchmarks read.

The driver writes plain JSON (driver.py, standard library only, knows nothing of these types).
``parse`` turns one such document into its type where the harness receives it, and refuses one
that is not what the driver writes with a ``RecordError`` that names the document and the field
(``driver task driver-1: processes[0].sent is '12' (str), not an int``). Numbers are kept as they
came (an int stays an int where a float is allowed), so everything computed from a record is what
the JSON gives. A field the measures can do without (they then say "not measured") may be absent;
fields the driver adds and no type declares are ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import reprlib
import types
import typing
from dataclasses import dataclass, field

from .schedule import Schedule


class RecordError(ValueError):
    """A driver's document that is not what the driver writes."""


@dataclass(frozen=True)
class Producer:
    """One driver process's report: its slice of the schedule (the events j = slice mod slices),
    what it sent, and how the broker acknowledged it."""
    slice: int
    slices: int
    sent: int
    acked: int
    failed: int                     # sends the broker refused (delivery errors)
    unacknowledged: int             # still queued when the process gave up waiting
    behind: int                     # events sent more than 100 ms after their due time
    max_lag_ms: float
    cpu_s: float                    # the process's CPU time, user + system
    acked_per_s: list[int]          # acknowledgements per second since t0
    queued_per_s: list[int] = field(default_factory=list)   # sent, not yet acknowledged, at each second's end
    ack_stats: list[list[float]] = field(default_factory=list)
    # [s since t0, produce round trip p50, p99, max (ms), queue wait p99 (ms), requests], once a second
    queue_full_waits: int = 0
    ended: float | None = None      # epoch s
    errors: list[str] = field(default_factory=list)        # the first delivery errors


@dataclass(frozen=True)
class TaskReport:
    """One driver task's ``driver.json``: the t0 it kept and its processes' reports."""
    t0: float
    task: int
    tasks: int
    processes: list[Producer]


@dataclass(frozen=True)
class Spread:
    """n, p50, p99 and max of some values (None when there were none)."""
    n: int
    p50: float | None
    p99: float | None
    max: float | None


@dataclass(frozen=True)
class Collected:
    """The results collector's ``results.json``: the job's results as read, each stamped with its
    arrival (epoch ms), and how the reading went."""
    results: list[list] = field(metadata={"row": 6})
    # windowed results: [key, window start (None: not given), window end, count (None), ts, arrival]
    event_results: list[list] = field(default_factory=list, metadata={"row": 3})
    # per-event results: [key, event time, arrival]
    other_results: list[list] = field(default_factory=list)   # the first results of neither kind
    other_count: int = 0
    flush_ts_ms: int | None = None      # the flush events' event time (None: never flushed)
    ended_ms: int | None = None
    read_records: int | None = None     # records of the results topic read, flush results included
    unread_offsets: int | None = None   # offsets not reached when it stopped (0: it read to the end)
    delivery_ms: Spread | None = None   # from each result's timestamp (the job's sink) to its arrival
    behind_max_s: float | None = None   # the longest it stayed behind the topic's end
    behind_max_records: int | None = None


@dataclass(frozen=True)
class Params:
    """The load the record was made under (the cell's ``LoadSpec``)."""
    rate: float                     # events/s after the warm-up phase
    duration: float                 # s, the warm-up phase included
    keys: int
    window: float                   # window size, s
    slide: float                    # s
    watermark_delay: float          # s
    payload_bytes: int
    tasks: int                      # driver tasks
    processes: int                  # processes per task
    warmup_rate: float              # events/s during the warm-up phase (= rate without one)
    warmup_s: float
    output: str                     # what the job writes: windows, events, any

    @property
    def schedule(self) -> Schedule:
        return Schedule(self.rate, self.duration, self.warmup_rate, self.warmup_s)


@dataclass(frozen=True)
class Record:
    """One cell's load: the tasks' reports (they kept one schedule from ``t0`` and covered it once),
    the schedule's expected counts, and the collected results."""
    t0: float                       # the schedule's start, epoch s
    t0_ms: int
    last_due_ms: int                # the last event's due time, epoch ms
    params: Params
    reports: tuple[TaskReport, ...]
    expected: list[list]            # [key, window start (ms), events] for every (key, window) with events
    collected: Collected

    @property
    def producers(self) -> tuple[Producer, ...]:
        """Every process of every task, task by task."""
        return tuple(p for r in self.reports for p in r.processes)


@dataclass(frozen=True)
class ProduceSummary:
    """What ``driver.py produce`` prints when done (the benchmarks read it): its processes' counts
    summed, per-second series added up, round-trip rows of all of them."""
    t0: float
    sent: int
    acked: int
    behind: int
    max_lag_ms: float
    cpu_s: float
    elapsed_s: float                # from t0 to the last process's end
    errors: list[str]
    processes: int
    ack_stats: list[list[float]]
    acked_per_s: list[int]
    queued_per_s: list[int]


T = typing.TypeVar("T")


def parse(cls: type[T], doc, where: str) -> T:
    """``doc`` (a JSON document as ``json.load`` gives it) as ``cls``, one of this module's types;
    a RecordError naming ``where`` (the document: which task, which file) and the field if it is
    not what the driver writes."""
    return _value(doc, cls, where, "")


_PLAIN = {int: lambda x: isinstance(x, int) and not isinstance(x, bool),
          float: lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
          str: lambda x: isinstance(x, str), list: lambda x: isinstance(x, list)}
_NAMES = {int: "an int", float: "a number", str: "a string", list: "a list"}


def _value(v, hint, where: str, path: str):
    if dataclasses.is_dataclass(hint):
        return _build(hint, v, where, path)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if v is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _value(v, inner, where, path)
    if origin is list or hint is list:
        if not isinstance(v, list):
            raise _bad(v, "a list", where, path)
        if not args:
            return v
        if args[0] in _PLAIN and all(map(_PLAIN[args[0]], v)):     # (a long list of results: one pass)
            return v
        out = [_value(x, args[0], where, f"{path}[{i}]") for i, x in enumerate(v)]
        return out if dataclasses.is_dataclass(args[0]) else v     # the document's own list, checked
    if hint in _PLAIN:
        if not _PLAIN[hint](v):
            raise _bad(v, _NAMES[hint], where, path)
        return v
    raise TypeError(f"record.parse cannot check {hint!r} ({path})")


def _build(cls, doc, where: str, path: str):
    if not isinstance(doc, dict):
        raise _bad(doc, "an object", where, path)
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        at = f"{path}.{f.name}" if path else f.name
        if f.name not in doc:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise RecordError(f"{where}: {at} is missing")
            continue
        values[f.name] = v = _value(doc[f.name], hints[f.name], where, at)
        n = f.metadata.get("row")     # a list of lists (checked above), each of n
        if n and any(len(row) != n for row in v):
            i = next(i for i, row in enumerate(v) if len(row) != n)
            raise _bad(v[i], f"a list of {n}", where, f"{at}[{i}]")
    return cls(**values)


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _bad(v, what: str, where: str, path: str) -> RecordError:
    return RecordError(f"{where}: {path or 'the document'} is {reprlib.repr(v)} ({type(v).__name__}), not {what}")
