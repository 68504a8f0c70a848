"""Provisioning as a plan of steps: what runs on which host, in order, shown before it runs.

Each step names its host, the command it amounts to (the ``docker`` CLI line for a Docker API call,
the shell line for a command over SSH) and the function that does it. ``execute`` runs a plan;
``render`` prints it (``--dry-run``). Both read the same list, so what a dry run prints is what a
run does. Secrets never enter a step's text: the Swarm join token is ``<worker-join-token>``.

Steps with the same ``group`` that follow one another run at the same time (one per host). Steps
marked ``background`` start and the plan goes on; it waits for them at its end (image loading,
while the Swarm forms).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable


log = logging.getLogger(__name__)

HARNESS = "harness"   # the machine running pytest / the CLI


@dataclass
class Step:
    host: str
    command: str
    fn: Callable[[dict], object] | None = None    # None: nothing to do but show (a note)
    group: str | None = None
    note: str = ""
    background: bool = False

    def line(self) -> str:
        return self.command + (f"    # {self.note}" if self.note else "")


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)

    def add(self, host: str, command: str, fn: Callable[[dict], object] | None = None, *,
            group: str | None = None, note: str = "") -> None:
        self.steps.append(Step(host, command, fn, group, note))

    def extend(self, other: "Plan", background: bool = False) -> "Plan":
        """Append ``other``'s steps (with ``background``: to run while the steps after them run)."""
        self.steps += [Step(s.host, s.command, s.fn, s.group, s.note, True) for s in other.steps] \
            if background else other.steps
        return self

    def hosts(self) -> list[str]:
        out: list[str] = []
        for s in self.steps:
            if s.host not in out:
                out.append(s.host)
        return out


def batches(plan: Plan) -> list[tuple[str, list[Step]]]:
    """The order ``execute`` runs a plan in: ("background", [step]) starts a step and goes on;
    ("together", steps) runs consecutive steps of one group at the same time; ("alone", [step]) one
    step. Notes (steps without a function) are left out."""
    out: list[tuple[str, list[Step]]] = []
    steps = plan.steps
    i = 0
    while i < len(steps):
        s = steps[i]
        if s.background:
            if s.fn is not None:
                out.append(("background", [s]))
            i += 1
            continue
        j = i + 1
        if s.group is not None:
            while j < len(steps) and steps[j].group == s.group and not steps[j].background:
                j += 1
        batch = [x for x in steps[i:j] if x.fn is not None]
        if batch:
            out.append(("together" if len(batch) > 1 else "alone", batch))
        i = j
    return out


class _Background(threading.Thread):
    """A background step on a daemon thread: a failing run is not held up by it, nor is the exit."""

    def __init__(self, step: Step, ctx: dict):
        super().__init__(daemon=True, name=f"plan-{step.host}")
        self.step, self.ctx, self.error = step, ctx, None

    def run(self) -> None:
        try:
            self.step.fn(self.ctx)
        except BaseException as e:  # noqa: BLE001 - raised by execute
            self.error = e


def execute(plan: Plan, ctx: dict | None = None) -> dict:
    """Run the steps in order (see ``batches``); background steps run beside the rest and are awaited
    at the end; one that failed fails the plan at the next step. On a failure the plan stops at once,
    without waiting for background steps (whoever undoes the run does not wait for them either).
    Returns ``ctx``, the dict the steps pass values through (e.g. the join token)."""
    ctx = {} if ctx is None else ctx
    background: list[_Background] = []

    def check() -> None:
        for b in background:
            if b.error is not None:
                raise b.error

    for kind, batch in batches(plan):
        check()
        for s in batch:
            log.info(f"[{s.host}] $ {s.command}" + (" &" if kind == "background" else ""), extra={"host": s.host})
        if kind == "background":
            background.append(_Background(batch[0], ctx))
            background[-1].start()
        elif kind == "alone":
            batch[0].fn(ctx)
        else:
            with ThreadPoolExecutor(len(batch)) as pool:
                for f in [pool.submit(s.fn, ctx) for s in batch]:
                    f.result()
    for b in background:
        b.join()
    check()
    return ctx


def render(plan: Plan, title: str = "") -> str:
    """The plan in order, then per host: what ``--dry-run`` prints."""
    width = max([len(s.host) for s in plan.steps] + [4])
    lines = [title] if title else []
    lines.append("in order (steps marked || run at the same time on their hosts; & in the background, "
                 "awaited at the end):")
    for n, s in enumerate(plan.steps, 1):
        par = "&" if s.background else "||" if s.group else "  "
        lines.append(f"  {n:3d} {par} {s.host:<{width}}  $ {s.line()}")
    lines.append("")
    lines.append("per host:")
    for h in plan.hosts():
        lines.append(f"  {h}:")
        for n, s in enumerate(plan.steps, 1):
            if s.host == h:
                lines.append(f"    {n:3d}  $ {s.line()}")
    return "\n".join(lines)
