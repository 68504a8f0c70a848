"""Real hosts from an inventory: VMs in real clouds, reached over SSH.

Nothing is created here — the VMs exist. A run leaves a *marker* on every host it uses: a small
Docker volume labelled with the run id (on the manager also with what ``attach`` needs: the
topology and the image ids). ``destroy`` finds the markers and undoes the run on those hosts only:
the run's services and containers, the Swarm (each host leaves it), Weave Net if the run installed
it, the marker. Images stay (they are loaded again only if their content changed).
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import docker.errors

from ..core import run as runmod
from ..inventory import Inventory
from ..core.run import LABEL_KIND, LABEL_PROJECT, LABEL_RUN, Progress, step, wait_for
from ..provision import network
from ..core.plan import Plan, execute
from .base import Machine

MARKER_KIND = "run-marker"
LABEL_NETWORK_DRIVER = "io.flink-swarm-testbed.network-driver"


def marker_name(run_id: str) -> str:
    return f"fst-{run_id}-marker"


class RealProvider:
    name = "real"

    def __init__(self, inventory: Inventory, progress: Progress):
        self.inventory = inventory
        self.progress = progress

    def machines(self, private: dict[str, str] | None = None) -> list[Machine]:
        """The inventory's hosts as machines (nothing connects until a client is used).
        ``private``: hostname -> the address on the host's own interface, where preflight found one."""
        private = private or {}
        return [Machine(h.hostname, h.cloud, h.role, h.address, h.ssh.docker_url,
                        {"private_address": h.private_address or private.get(h.hostname) or h.address},
                        ssh=h.ssh) for h in self.inventory.hosts]

    # -- create --------------------------------------------------------------------------------
    def mark_plan(self, machines: list[Machine], run_id: str, owner: str, manager_labels: dict[str, str]) -> Plan:
        """The run's marker on every host (what ``destroy`` and ``attach`` look for)."""
        base = {**runmod.labels(run_id, owner, topology=self.inventory.topology.name), LABEL_KIND: MARKER_KIND,
                LABEL_NETWORK_DRIVER: self.inventory.topology.network.driver}
        p = Plan()
        for m in machines:
            labels = {**base, runmod.LABEL_HOSTNAME: m.hostname, runmod.LABEL_CLOUD: m.cloud,
                      runmod.LABEL_ROLE: m.role, **(manager_labels if m.role == "manager" else {})}
            shown = {k: v for k, v in labels.items() if k not in manager_labels}
            p.add(m.hostname, f"docker volume create {' '.join(f'--label {k}={v}' for k, v in shown.items())} "
                  f"{marker_name(run_id)}",
                  lambda ctx, m=m, labels=labels: m.client.volumes.create(marker_name(run_id), labels=labels),
                  group="mark")
        return p

    def wait_engines(self, machines: list[Machine], timeout: float = 60) -> None:
        with step(self.progress, f"connect to {len(machines)} Docker engines over SSH"):
            with ThreadPoolExecutor(len(machines)) as pool:
                list(pool.map(lambda m: wait_for(lambda: m.client.ping(), timeout,
                                                 f"the Docker engine on {m.hostname} ({m.docker_url})"), machines))

    # -- attach / destroy ----------------------------------------------------------------------
    def _markers(self, m: Machine, run_id: str | None) -> list:
        flt = {"label": [LABEL_PROJECT, f"{LABEL_KIND}={MARKER_KIND}"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])}
        return m.client.volumes.list(filters=flt)

    def runs(self) -> dict[str, dict]:
        """Run id -> {owner, topology, hosts} for every run marked on the inventory's hosts."""
        out: dict[str, dict] = {}
        lock = threading.Lock()

        def scan(m: Machine) -> None:
            for v in self._markers(m, None):
                lab = v.attrs.get("Labels") or {}
                with lock:
                    r = out.setdefault(lab.get(LABEL_RUN, "?"), {"owner": lab.get(runmod.LABEL_OWNER, ""),
                                                                  "topology": lab.get(runmod.LABEL_TOPOLOGY, ""),
                                                                  "hosts": 0})
                    r["hosts"] += 1

        machines = self.machines()
        try:
            with ThreadPoolExecutor(len(machines)) as pool:
                list(pool.map(scan, machines))
        finally:
            for m in machines:
                m.close()
        return out

    def manager_labels(self, run_id: str) -> dict[str, str]:
        """The labels of the run's marker on the manager (topology text, image ids)."""
        mgr = next(m for m in self.machines() if m.role == "manager")
        try:
            vols = self._markers(mgr, run_id)
            return (vols[0].attrs.get("Labels") or {}) if vols else {}
        finally:
            mgr.close()

    def destroy(self, run_id: str | None = None, keep=lambda owner: False) -> list[str]:
        """Undo one run (or every marked run whose owner ``keep`` does not vouch for) on the
        inventory's hosts; returns what was removed."""
        machines = self.machines()
        removed: list[str] = []
        lock = threading.Lock()
        try:
            marked: dict[str, list] = {}
            with ThreadPoolExecutor(len(machines)) as pool:
                found = list(pool.map(lambda m: self._markers(m, run_id), machines))
            for m, vols in zip(machines, found):
                vols = [v for v in vols if run_id or not keep((v.attrs.get("Labels") or {}).get(runmod.LABEL_OWNER, ""))]
                if vols:
                    marked[m.hostname] = vols
            if not marked:
                return []
            runs = {(v.attrs.get("Labels") or {}).get(LABEL_RUN) for vs in marked.values() for v in vs}
            drivers = {(v.attrs.get("Labels") or {}).get(LABEL_NETWORK_DRIVER) for vs in marked.values() for v in vs}
            hosts = [m for m in machines if m.hostname in marked]
            for m in hosts:
                if m.role != "manager":
                    continue
                for rid in runs:
                    for svc in m.client.services.list(filters={"label": f"{LABEL_RUN}={rid}"}):
                        svc.remove()
                        removed.append(f"service {svc.name} on {m.hostname}")

            def undo(m: Machine) -> None:
                for rid in runs:
                    # the low-level list: the removed services' tasks are going away meanwhile
                    for c in m.client.api.containers(all=True, filters={"label": f"{LABEL_RUN}={rid}"}):
                        try:
                            m.client.api.remove_container(c["Id"], force=True)
                        except docker.errors.NotFound:
                            continue
                        with lock:
                            removed.append(f"container {c['Names'][0].lstrip('/')} on {m.hostname}")
                if m.role != "manager":   # workers first; the manager leaves last
                    _leave(m, removed, lock)

            with ThreadPoolExecutor(len(hosts)) as pool:
                list(pool.map(undo, hosts))
            for m in hosts:
                if m.role == "manager":
                    _leave(m, removed, lock)
            for m in hosts:
                for rid in runs:
                    for n in m.client.networks.list(filters={"label": f"{LABEL_RUN}={rid}"}):
                        try:
                            n.remove()
                            removed.append(f"network {n.name} on {m.hostname}")
                        except docker.errors.APIError:
                            pass
            if "weave" in drivers:
                execute(network.teardown_plan(hosts, "weave", self.inventory.weave_plugin), self.progress)
                removed += [f"weave on {m.hostname}" for m in hosts]
            for m in hosts:
                for v in marked[m.hostname]:
                    v.remove(force=True)
                    removed.append(f"marker {v.name} on {m.hostname}")
        finally:
            for m in machines:
                m.close()
        return removed


def _leave(m: Machine, removed: list[str], lock: threading.Lock) -> None:
    if m.client.info().get("Swarm", {}).get("LocalNodeState") in ("active", "pending", "error"):
        m.client.swarm.leave(force=True)
        with lock:
            removed.append(f"swarm membership of {m.hostname}")


