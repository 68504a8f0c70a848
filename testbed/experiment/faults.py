"""Carrying out a fault scenario (``model/scenario.py``) during a cell's load, and undoing it.

    injector = Injector(tb, scenario)
    injector.check(taskmanager_nodes)      # before anything starts: what this provider cannot do
    injector.start(t0)                     # actions fire at t0 + at, in a thread
    ...
    injector.stop()                        # always (also when the cell fails): undo what is in effect
    injector.events                        # what was done when (s after t0), and what it undid

Undoing restores the topology as the cell has it: stopped nodes started, partitions healed, links reset
to the topology's values, stress containers removed. A killed container is not undone: Swarm
starts its service's task again, which is the fault's point.

A partition is made on the emulated WAN's router (every packet between the clouds dropped) or,
where the testbed does not route between the clouds (real hosts), on the hosts themselves: every
host of each cloud gets a blackhole route to every host of the other, so each end drops what it
would send and nothing crosses either way. The routes are set from a host-network container with
NET_ADMIN (through the host's Docker API, as everything else) and carry protocol number
``ROUTE_PROTO``, so that ``ip route show proto 213`` finds any a killed run left.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import docker.errors

from ..core.run import ROUTE_PROTO
from ..model.scenario import Action, Scenario
from ..provision.testbed import Testbed
from ..stack import flink, kafka, services

log = logging.getLogger(__name__)

STRESS = "fst-stress"


class FaultError(RuntimeError):
    """A fault the testbed could not inject or undo."""


class Injector:
    def __init__(self, tb: Testbed, scenario: Scenario, links=None):
        """``links``: the links as the cell has them (a link axis's value), which undoing restores;
        default the topology's."""
        self.tb, self.scenario = tb, scenario
        self.links = tuple(tb.topology.links if links is None else links)
        self.events: list[dict] = []
        self._undo: dict[tuple, tuple[str, callable]] = {}      # what is in effect -> how to undo it
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    # -- before anything starts ----------------------------------------------------------------------
    def check(self, taskmanager_nodes: list[str]) -> None:
        """The scenario against this cell's placement and what this testbed can do."""
        self.scenario.check_placement(taskmanager_nodes)
        can_freeze = hasattr(self.tb.provider, "freeze")
        for i, a in enumerate(self.scenario.actions):
            if a.action in ("stop-node", "start-node") and not can_freeze:
                raise FaultError(f"scenario {self.scenario.source}, [{i}]: {a.action} needs nodes the testbed can "
                                 f"freeze; on {self.tb.provider.name} hosts it does not control the machines "
                                 "(kill a service instead)")
            if a.action == "link" and self.tb.wan is None:
                raise FaultError(f"scenario {self.scenario.source}, [{i}]: link needs the emulated WAN router; on "
                                 f"{self.tb.provider.name} hosts the testbed does not route between clouds, and "
                                 "shaping the hosts' own traffic (tc netem on every host) is not built")

    # -- during the load -----------------------------------------------------------------------------
    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        timeline = sorted([(a.at_s, 0, a) for a in self.scenario.actions]
                          + [(a.at_s + a.for_s, 1, a) for a in self.scenario.actions if a.for_s])
        for when, undo, a in timeline:
            if self._stop.wait(max(0.0, self._t0 + when - time.time())):
                return
            try:
                self._undo_one(a, "for") if undo else self._do(a)
            except Exception as e:  # noqa: BLE001 - recorded; the cell reports it
                log.error(f"fault {a.describe()} at {when:g}s failed: {type(e).__name__}: {e}")
                self._record(a, "undo" if undo else "do", error=f"{type(e).__name__}: {e}")

    def _record(self, a: Action, what: str, **kw) -> dict:
        ev = {"t_s": round(time.time() - self._t0, 3), "at_s": a.at_s, "action": a.action, "what": what,
              "describe": a.describe(), **kw}
        with self._lock:
            self.events.append(ev)
        return ev

    def _do(self, a: Action) -> None:
        log.info(f"fault at {time.time() - self._t0:.1f}s: {a.describe()}")
        tb = self.tb
        if a.action == "kill":
            kind, _, node = a.target.partition("@")
            name = {"taskmanager": flink.TASKMANAGER, "jobmanager": flink.JOBMANAGER, "broker": kafka.BROKER}[kind]
            killed = self._kill(name, node or None)
            self._record(a, "do", detail=f"killed {killed}")
        elif a.action == "stop-node":
            tb.provider.freeze(tb.node(a.node), True)
            self._in_effect(("node", a.node), a, lambda: tb.provider.freeze(tb.node(a.node), False))
        elif a.action == "start-node":
            self._undo_key(("node", a.node), a)
        elif a.action == "partition" and tb.wan is None:
            self._blackhole(a.clouds, True)
            self._in_effect(("link", frozenset(a.clouds)), a, lambda: self._blackhole(a.clouds, False))
        elif a.action == "partition":
            tb.wan.set_link(*a.clouds, loss_pct=100.0)
            self._in_effect(("link", frozenset(a.clouds)), a, lambda: self._reset_link(a.clouds))
        elif a.action == "heal":
            self._undo_key(("link", frozenset(a.clouds)), a)
        elif a.action == "link":
            tb.wan.set_link(*a.clouds, **dict(a.changes))
            self._in_effect(("link", frozenset(a.clouds)), a, lambda: self._reset_link(a.clouds))
        elif a.action == "stress":
            c = self._stress(a.node, a.cpus)
            self._in_effect(("stress", a.node, a.at_s), a, lambda: c.remove(force=True))
        else:
            raise FaultError(f"unknown action {a.action!r}")

    def _in_effect(self, key: tuple, a: Action, undo) -> None:
        with self._lock:
            self._undo.setdefault(key, (a.describe(), undo))
        self._record(a, "do")

    def _undo_key(self, key: tuple, a: Action) -> None:
        with self._lock:
            entry = self._undo.pop(key, None)
        if entry:
            entry[1]()
        self._record(a, "do", detail=f"undid {entry[0]}" if entry else "nothing in effect")

    def _undo_one(self, a: Action, why: str) -> None:
        key = {"stop-node": ("node", a.node), "partition": ("link", frozenset(a.clouds)),
               "link": ("link", frozenset(a.clouds)), "stress": ("stress", a.node, a.at_s)}[a.action]
        with self._lock:
            entry = self._undo.pop(key, None)
        if entry:
            entry[1]()
            self._record(a, "undo", detail=f"after {a.for_s:g}s")

    def _kill(self, service: str, node: str | None) -> str:
        names = services.node_names(self.tb)
        for t in services.running_tasks(self.tb, service):
            where = names.get(t["NodeID"], "?")
            if node is None or where == node:
                cid = t["Status"]["ContainerStatus"]["ContainerID"]
                self.tb.node(where).client.containers.get(cid).kill()
                return f"{service} on {where} ({cid[:12]})"
        raise FaultError(f"no running {service} task{' on ' + node if node else ''} to kill")

    def _stress(self, node: str, cpus: float):
        """Busy loops on ``cpus`` cores of a node, as a container of its engine (the driver image's Python)."""
        n = max(1, math.ceil(cpus))
        code = ("import multiprocessing as m\ndef busy():\n    while True:\n        pass\n"
                f"for _ in range({n}):\n    m.Process(target=busy).start()\n")
        return self.tb.node(node).client.containers.run(
            self.tb.images["driver"], ["-c", code], detach=True, name=f"{STRESS}-{int(time.time() * 1000) % 10**8}",
            labels=self.tb.labels(component="stress"), nano_cpus=int(cpus * 1e9))

    def _blackhole(self, clouds: tuple[str, ...], on: bool) -> None:
        """On every host of each cloud, blackhole routes to the other cloud's hosts (``on``) or none."""
        a, b = clouds
        for here, there in ((a, b), (b, a)):
            peers = [m.address for m in self.tb.machines if m.cloud == there]
            verb = "replace" if on else "del"
            script = " && ".join(f"ip route {verb} blackhole {p}/32 proto {ROUTE_PROTO}" for p in peers)
            if not on:      # heal: whatever is there (a route already gone is not an error)
                script = " ; ".join(f"ip route {verb} blackhole {p}/32 proto {ROUTE_PROTO} 2>/dev/null" for p in peers) + " ; true"
            for m in (m for m in self.tb.machines if m.cloud == here):
                services.run_once(m, self.tb.images["driver"], [script], entrypoint=["sh", "-c"], network_mode="host",
                                  cap_add=["NET_ADMIN"], labels=self.tb.labels(component="fault"), timeout=60,
                                  what=f"{'partition' if on else 'heal'} routes")

    def _reset_link(self, clouds: tuple[str, ...]) -> None:
        link = next(ln for ln in self.links if set(ln.clouds) == set(clouds))
        self.tb.wan.use([link])

    # -- afterwards ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop firing and undo everything still in effect; raises FaultError if something could not be."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        errors = []
        with self._lock:
            pending = list(self._undo.items())
            self._undo.clear()
        for key, (what, undo) in reversed(pending):
            try:
                undo()
                self.events.append({"t_s": round(time.time() - self._t0, 3), "action": key[0], "what": "undo",
                                    "describe": what, "detail": "at the end of the cell"})
            except Exception as e:  # noqa: BLE001 - the others must still be undone
                errors.append(f"undoing {what}: {type(e).__name__}: {e}")
        for c in self._leftover_stress():
            c.remove(force=True)
        if errors:
            raise FaultError("; ".join(errors))

    def _leftover_stress(self) -> list:
        out = []
        for m in self.tb.machines:
            try:
                out += m.client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in
                                                                             self.tb.labels(component="stress").items()]})
            except docker.errors.APIError:
                pass
        return out
