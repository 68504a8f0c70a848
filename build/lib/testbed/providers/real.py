"""Real hosts from an inventory: VMs in real clouds, reached over SSH.

Nothing is created here — the VMs exist. A run leaves a *marker* on every host it uses: a small
Docker volume labelled with the run id (on the manager also with what ``attach`` needs: the
topology and the image ids). Provisioning's teardown (provision/teardown.py) finds the markers and
undoes the run on those hosts only: the run's services and containers, the Swarm (each host leaves
it), Weave Net if the run installed it, and last the marker. Images stay (they are loaded again
only if their content changed).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor


from ..core import run as runmod
from ..core.plan import Plan, execute
from ..core.run import LABEL_KIND, LABEL_PROJECT, LABEL_RUN
from ..model.inventory import Inventory
from .base import Machine, manager_of, wait_engines

log = logging.getLogger(__name__)

MARKER_KIND = "run-marker"
LABEL_NETWORK_DRIVER = "io.flink-swarm-testbed.network-driver"


def marker_name(run_id: str) -> str:
    return f"fst-{run_id}-marker"


class RealProvider:
    """Implements ``providers.base.Provider`` with the hosts of an inventory."""

    name = "real"
    disposable = False      # the VMs outlive the run: provisioning's teardown plan undoes it on them

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self.topology = inventory.topology
        self.registry = inventory.registry
        self.weave = (inventory.weave_plugin, inventory.weave_script)
        self._private: dict[str, str] = {}

    def node_recipes(self) -> list:
        return []

    def engine_facts(self) -> dict[str, str]:
        return {}

    def preflight(self) -> dict:
        """SSH, engines, kernels, clocks and the port matrix between the hosts; reads only. Raises
        PreflightError naming each failing host, port and pair."""
        from . import preflight
        report = preflight.run(self.inventory)
        log.info("preflight:\n%s", report.text(), extra={"preflight": report.ok})
        if not report.ok:
            raise preflight.PreflightError(report)
        self._private = {h["hostname"]: h["private_address"] for h in report.hosts}
        return {"hosts": report.hosts, "ports": report.matrix, "warnings": report.warnings}

    def machines(self, run_id: str | None = None) -> list[Machine]:
        """The inventory's hosts as machines (nothing connects until a client is used); a run on real
        hosts uses all of them."""
        return [Machine(h.hostname, h.cloud, h.role, h.address, h.ssh.docker_url,
                        {"private_address": h.private_address or self._private.get(h.hostname) or h.address},
                        ssh=h.ssh) for h in self.inventory.hosts]

    # -- create --------------------------------------------------------------------------------
    def create(self, topology, run_id: str, owner: str, images: dict[str, str],
               manager_labels: dict[str, str], ssh_authorized_keys: str = "") -> list[Machine]:
        """The VMs exist: connect to their engines (after ``preflight`` has found their addresses)."""
        machines = self.machines()
        log.info(f"run {run_id}: {len(machines)} real hosts from {self.inventory.source}")
        wait_engines(machines, 60)
        return machines

    def mark_plan(self, machines: list[Machine], run_id: str, owner: str, manager_labels: dict[str, str]) -> Plan:
        """The run's marker on every host (what ``runs``, ``attach`` and teardown look for)."""
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

    def unmark_plan(self, machines: list[Machine], run_id: str) -> Plan:
        """Remove the run's marker from these hosts (the last step of undoing a run)."""
        p = Plan()
        for m in machines:
            def unmark(ctx: dict, m: Machine = m) -> None:
                for v in self._markers(m, run_id):
                    v.remove(force=True)
                    ctx.setdefault("removed", []).append(f"marker {v.name} on {m.hostname}")
            p.add(m.hostname, f"docker volume rm {marker_name(run_id)}", unmark, group="unmark")
        return p

    # -- attach / destroy ----------------------------------------------------------------------
    def _markers(self, m: Machine, run_id: str | None) -> list:
        flt = {"label": [LABEL_PROJECT, f"{LABEL_KIND}={MARKER_KIND}"] + ([f"{LABEL_RUN}={run_id}"] if run_id else [])}
        return m.client.volumes.list(filters=flt)

    def marked(self, run_id: str | None = None, keep=lambda owner: False) -> dict[str, dict]:
        """Run id -> {owner, topology, hosts, driver} of each run marked on the inventory's hosts: one
        run, or every run whose owner ``keep`` does not vouch for (``keep`` is not asked about a run
        named by id)."""
        out: dict[str, dict] = {}
        lock = threading.Lock()

        def scan(m: Machine) -> None:
            for v in self._markers(m, run_id):
                lab = v.attrs.get("Labels") or {}
                if run_id is None and keep(lab.get(runmod.LABEL_OWNER, "")):
                    continue
                with lock:
                    r = out.setdefault(lab.get(LABEL_RUN, "?"), {
                        "owner": lab.get(runmod.LABEL_OWNER, ""), "topology": lab.get(runmod.LABEL_TOPOLOGY, ""),
                        "driver": lab.get(LABEL_NETWORK_DRIVER, "overlay"), "weave_plugin": self.inventory.weave_plugin,
                        "hosts": [], "nodes": 0})
                    r["hosts"].append(m.hostname)
                    r["nodes"] += 1

        machines = self.machines()
        try:
            with ThreadPoolExecutor(len(machines)) as pool:
                list(pool.map(scan, machines))
        finally:
            for m in machines:
                m.close()
        return out

    def runs(self) -> dict[str, dict]:
        """Run id -> {owner, topology, nodes} for every run marked on the inventory's hosts."""
        return self.marked(None, keep=lambda owner: False)

    def manager_labels(self, run_id: str) -> dict[str, str]:
        """The labels of the run's marker on the manager (topology text, image ids)."""
        mgr = manager_of(self.machines())
        try:
            vols = self._markers(mgr, run_id)
            return (vols[0].attrs.get("Labels") or {}) if vols else {}
        finally:
            mgr.close()

    def wan(self, run_id: str, topology) -> None:
        return None         # the clouds' own network: nothing emulated

    def destroy(self, run_id: str | None = None, keep=lambda owner: False) -> list[str]:
        """Remove the markers of one run (or of every run ``keep`` does not vouch for). What the run
        started on the hosts is undone by provisioning's teardown plan (provision/teardown.py),
        which ends with these same steps."""
        ctx: dict = {"removed": []}
        for rid, info in self.marked(run_id, keep).items():
            machines = [m for m in self.machines() if m.hostname in info["hosts"]]
            try:
                execute(self.unmark_plan(machines, rid), ctx)
            finally:
                for m in machines:
                    m.close()
        return ctx["removed"]
