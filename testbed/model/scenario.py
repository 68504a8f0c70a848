"""A fault scenario: timed actions relative to the start of a cell's load.

    # scenario.yaml
    - {at: 20s, action: kill, target: taskmanager@google-cloud-worker-1}
    - {at: 20s, action: partition, clouds: [azure, google], for: 15s}
    - {at: 40s, action: link, clouds: [azure, google], rtt_ms: 200, loss_pct: 5}
    - {at: 20s, action: stress, node: azure-swarm-worker-1, cpus: 1, for: 30s}
    - {at: 20s, action: stop-node, node: azure-swarm-worker-2}
    - {at: 50s, action: start-node, node: azure-swarm-worker-2}

    scenario = load("scenario.yaml")            # ScenarioError naming the entry and field
    scenario.check(topology, duration=60)       # unknown node or cloud, past the load, heal without partition

Times are seconds (``20``, ``20s``, ``1m``, ``500ms``). ``kill`` targets ``taskmanager@<node>``,
``jobmanager`` or ``broker``: its container is killed and Swarm starts it again. ``stop-node``
freezes a node (every process and its network stop answering: a VM gone dark) until
``start-node``; ``partition`` drops every packet between two clouds until ``heal``; ``link`` sets a
link's delay, loss, jitter or bandwidth; ``stress`` runs busy loops on ``cpus`` cores of a node. With
``for``, the action is undone that long after it started; whatever is still in effect at the end
of the cell is undone then (``experiment/faults.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .topology import Topology, TopologyError, _read_yaml, _validate

ACTIONS = ("kill", "stop-node", "start-node", "partition", "heal", "link", "stress")
KILL_TARGETS = ("taskmanager@<node>", "jobmanager", "broker")
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*$")


class ScenarioError(TopologyError):
    """A scenario file that cannot be used; ``problems`` are (entry and field, message) pairs."""

    what = "scenario"


def seconds(value: Any) -> float:
    """20, 20.5, '20s', '1m', '500ms' -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a time like 20s, 1m or 500ms, got {value!r}")
    if isinstance(value, (int, float)):
        s = float(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError(f"expected a time like 20s, 1m or 500ms, got {value!r}")
        s = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[m.group(2)]
    if s < 0:
        raise ValueError(f"a time must be >= 0, got {value!r}")
    return s


class ActionSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    at: float = Field(description="when, after the load starts: 20s, 1m, 500ms or seconds")
    action: Literal[ACTIONS] = Field(title="action", description="what to do")
    target: str | None = Field(None, description="kill: taskmanager@<node>, jobmanager or broker")
    node: str | None = Field(None, description="stop-node, start-node, stress: a hostname of the topology")
    clouds: list[str] | None = Field(None, min_length=2, max_length=2, description="partition, heal, link: "
                                                                                      "two cloud names")
    rtt_ms: float | None = Field(None, ge=0, description="link: round-trip delay, ms")
    jitter_ms: float | None = Field(None, ge=0, description="link: delay variation, ms")
    loss_pct: float | None = Field(None, ge=0, le=100, description="link: loss per direction, %")
    bandwidth_mbit: float | None = Field(None, gt=0, description="link: bandwidth per direction, Mbit/s")
    cpus: float | None = Field(None, gt=0, description="stress: cores to keep busy")
    for_s: float | None = Field(None, alias="for", description="undo the action this long after it (partition, "
                                                              "link, stress, stop-node)")

    @field_validator("at", "for_s", mode="before")
    @classmethod
    def _time(cls, v: Any) -> Any:
        return None if v is None else seconds(v)


NEEDS = {"kill": ("target",), "stop-node": ("node",), "start-node": ("node",), "partition": ("clouds",),
         "heal": ("clouds",), "link": ("clouds",), "stress": ("node", "cpus", "for_s")}
ALLOWED = {"kill": {"target"}, "stop-node": {"node", "for_s"}, "start-node": {"node"},
           "partition": {"clouds", "for_s"}, "heal": {"clouds"},
           "link": {"clouds", "rtt_ms", "jitter_ms", "loss_pct", "bandwidth_mbit", "for_s"},
           "stress": {"node", "cpus", "for_s"}}
LINK_FIELDS = ("rtt_ms", "jitter_ms", "loss_pct", "bandwidth_mbit")


@dataclass(frozen=True)
class Action:
    at_s: float
    action: str
    target: str = ""            # kill: taskmanager@node, jobmanager, broker
    node: str = ""
    clouds: tuple[str, ...] = ()
    changes: tuple[tuple[str, float], ...] = ()     # link: (field, value)
    cpus: float = 0.0
    for_s: float = 0.0

    def describe(self) -> str:
        what = {"kill": self.target, "stop-node": self.node, "start-node": self.node, "stress": f"{self.node} "
                f"{self.cpus:g} cores", "partition": "/".join(self.clouds), "heal": "/".join(self.clouds),
                "link": "/".join(self.clouds) + " " + " ".join(f"{k}={v:g}" for k, v in self.changes)}[self.action]
        return f"{self.action} {what}" + (f" for {self.for_s:g}s" if self.for_s else "")


@dataclass(frozen=True)
class Scenario:
    actions: tuple[Action, ...]
    source: str = "<memory>"
    text: str = ""

    @property
    def name(self) -> str:
        return Path(self.source).stem if self.source != "<memory>" else "scenario"

    def check(self, topology: Topology, duration: float) -> None:
        """Against a topology and the cell's load: ScenarioError naming every problem."""
        problems: list[tuple[str, str]] = []
        hosts = [n.hostname for n in topology.nodes]
        clouds = sorted(topology.clouds)
        linked = {frozenset(ln.clouds) for ln in topology.links}
        stopped: set[str] = set()
        parted: set[frozenset] = set()
        for a in sorted(self.actions, key=lambda a: a.at_s):
            at = f"[{self.actions.index(a)}]"
            if a.at_s >= duration:
                problems.append((f"{at}.at", f"{a.at_s:g}s is not inside the load ({duration:g}s)"))
            if a.node and a.node not in hosts:
                problems.append((f"{at}.node", f"no node {a.node!r} in topology {topology.name}; nodes: "
                                              f"{', '.join(hosts)}"))
            if a.action == "stop-node" and a.node == (topology.broker_node or topology.manager.hostname):
                problems.append((f"{at}.node", f"{a.node} runs the broker and the driver: stopping it stops the "
                                              "measurement; stop another node, or kill the broker"))
            if a.action == "kill":
                kind, _, node = a.target.partition("@")
                if kind not in ("taskmanager", "jobmanager", "broker") or (kind == "taskmanager") != bool(node):
                    problems.append((f"{at}.target", f"unknown target {a.target!r}; allowed: "
                                                    f"{', '.join(KILL_TARGETS)}"))
                elif node and node not in hosts:
                    problems.append((f"{at}.target", f"no node {node!r} in topology {topology.name}; nodes: "
                                                    f"{', '.join(hosts)}"))
            for c in a.clouds:
                if c not in clouds:
                    problems.append((f"{at}.clouds", f"no cloud {c!r} in topology {topology.name}; clouds: "
                                                    f"{', '.join(clouds)}"))
            pair = frozenset(a.clouds)
            if a.clouds and all(c in clouds for c in a.clouds):
                if len(pair) < 2:
                    problems.append((f"{at}.clouds", "two different clouds"))
                elif pair not in linked and a.action in ("partition", "link"):
                    problems.append((f"{at}.clouds", f"no link between {' and '.join(a.clouds)} in topology "
                                                    f"{topology.name} to change (links: "
                                                    f"{', '.join('/'.join(sorted(p)) for p in linked) or 'none'})"))
            if a.action == "partition" and not a.for_s:      # (with for, it heals itself)
                parted.add(pair)
            elif a.action == "heal":
                if pair not in parted:
                    problems.append((f"{at}.action", f"heal {'/'.join(a.clouds)} at {a.at_s:g}s: no partition "
                                                    "of these clouds is in effect then"))
                parted.discard(pair)
            elif a.action == "stop-node" and not a.for_s:
                stopped.add(a.node)
            elif a.action == "start-node":
                if a.node not in stopped:
                    problems.append((f"{at}.action", f"start-node {a.node} at {a.at_s:g}s: it is not stopped then"))
                stopped.discard(a.node)
        if problems:
            raise ScenarioError(self.source, problems)

    def check_placement(self, taskmanager_nodes: list[str], source: str = "") -> None:
        """A kill of ``taskmanager@node`` needs a taskmanager there in this cell."""
        problems = [(f"[{i}].target", f"no taskmanager on {a.target.split('@')[1]} in this cell (taskmanagers on "
                                      f"{', '.join(taskmanager_nodes)})")
                    for i, a in enumerate(self.actions)
                    if a.action == "kill" and a.target.startswith("taskmanager@")
                    and a.target.split("@")[1] not in taskmanager_nodes]
        if problems:
            raise ScenarioError(source or self.source, problems)


def parse(text: str, source: str = "<string>") -> Scenario:
    doc = _read_yaml(text, source, ScenarioError)
    if isinstance(doc, dict) and set(doc) == {"actions"}:
        doc = doc["actions"]
    if not isinstance(doc, list) or not doc:
        raise ScenarioError(source, [("", "expected a list of actions, e.g. - {at: 20s, action: kill, "
                                          "target: taskmanager@<node>}")])
    actions, problems = [], []
    for i, entry in enumerate(doc):
        got, errs = _validate(ActionSchema, entry, {})
        problems += [(f"[{i}].{p}" if p else f"[{i}]", m) for p, m in errs]
        if got is None:
            continue
        given = {k for k in ALLOWED["link"] | ALLOWED["stress"] | {"target", "node", "clouds"}
                 if getattr(got, k) is not None}
        for k in NEEDS[got.action]:
            if getattr(got, k) is None:
                problems.append((f"[{i}].{'for' if k == 'for_s' else k}", f"missing; {got.action} needs it"))
        for k in sorted(given - ALLOWED[got.action]):
            problems.append((f"[{i}].{'for' if k == 'for_s' else k}", f"not used by {got.action} (it takes "
                             f"{', '.join(sorted('for' if a == 'for_s' else a for a in ALLOWED[got.action]))})"))
        if got.action == "link" and not any(getattr(got, k) is not None for k in LINK_FIELDS):
            problems.append((f"[{i}]", f"link needs at least one of {', '.join(LINK_FIELDS)}"))
        actions.append(Action(got.at, got.action, got.target or "", got.node or "", tuple(got.clouds or ()),
                              tuple((k, float(getattr(got, k))) for k in LINK_FIELDS if getattr(got, k) is not None),
                              got.cpus or 0.0, got.for_s or 0.0))
    if problems:
        raise ScenarioError(source, problems)
    return Scenario(tuple(actions), source, text)


def load(path: str | Path) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ScenarioError(str(path), [("", f"cannot read file: {e.strerror}")]) from None
    return parse(text, str(path))
