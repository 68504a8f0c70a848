"""Provisioning as a plan of steps: what runs on which host, in order, shown before it runs.

Each step names its host, the command it amounts to (the ``docker`` CLI line for a Docker API call,
the shell line for a command over SSH) and the function that does it. ``execute`` runs a plan;
``render`` prints it (``--dry-run``). Both read the same list, so what a dry run prints is what a
run does. Secrets never enter a step's text: the Swarm join token is ``<worker-join-token>``.

Steps with the same ``group`` that follow one another run at the same time (one per host).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

from .run import Progress

HARNESS = "harness"   # the machine running pytest / the CLI


@dataclass
class Step:
    host: str
    command: str
    fn: Callable[[dict], object] | None = None    # None: nothing to do but show (a note)
    group: str | None = None
    note: str = ""

    def line(self) -> str:
        return self.command + (f"    # {self.note}" if self.note else "")


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def add(self, host: str, command: str, fn: Callable[[dict], object] | None = None, *,
            group: str | None = None, note: str = "") -> None:
        self.steps.append(Step(host, command, fn, group, note))

    def extend(self, other: "Plan") -> "Plan":
        self.steps += other.steps
        return self

    def hosts(self) -> list[str]:
        out: list[str] = []
        for s in self.steps:
            if s.host not in out:
                out.append(s.host)
        return out


def execute(plan: Plan, progress: Progress, ctx: dict | None = None) -> dict:
    """Run the steps in order (a run of steps sharing a group concurrently); returns ``ctx``,
    the dict the steps pass values through (e.g. the join token)."""
    ctx = {} if ctx is None else ctx
    i = 0
    steps = plan.steps
    while i < len(steps):
        j = i + 1
        if steps[i].group is not None:
            while j < len(steps) and steps[j].group == steps[i].group:
                j += 1
        batch = [s for s in steps[i:j] if s.fn is not None]
        for s in batch:
            progress(f"[{s.host}] $ {s.command}")
        if len(batch) == 1:
            batch[0].fn(ctx)
        elif batch:
            with ThreadPoolExecutor(len(batch)) as pool:
                for f in [pool.submit(s.fn, ctx) for s in batch]:
                    f.result()
        i = j
    return ctx


def render(plan: Plan, title: str = "") -> str:
    """The plan in order, then per host: what ``--dry-run`` prints."""
    width = max([len(s.host) for s in plan.steps] + [4])
    lines = [title] if title else []
    lines.append("in order (steps marked || run at the same time on their hosts):")
    for n, s in enumerate(plan.steps, 1):
        par = "||" if s.group else "  "
        lines.append(f"  {n:3d} {par} {s.host:<{width}}  $ {s.line()}")
    lines.append("")
    lines.append("per host:")
    for h in plan.hosts():
        lines.append(f"  {h}:")
        for n, s in enumerate(plan.steps, 1):
            if s.host == h:
                lines.append(f"    {n:3d}  $ {s.line()}")
    return "\n".join(lines)
