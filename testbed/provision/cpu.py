"""CPU as a VM has it: one budget per emulated node, shared by everything that runs on the node.

    model = cpu.apply(tb, scale=0.18)   # every node gets its topology CPUs x 0.18
    model.kind                          # "node budget", or "per service" where nodes cannot nest

An emulated node's engine places its containers in cgroups under the node container's own (its
entrypoint says whether it could: ``nested`` or ``flat: why``), so the CPU quota on the node
container is one budget for the node's taskmanager, broker, driver and engine together, as the VM's
CPUs are. Where a node is flat (the host's cgroup tree does not allow nesting), each service gets
its node's CPUs x scale on its own instead, and the row says so.

A scaled-down node runs CPU-bound phases (JIT compilation, restarts, recovery) 1/scale times slower
than the VM the topology describes; ``describe`` says it in every row.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# what the nodes' budgets leave of the host for the instrument outside them: the WAN router, the
# host's engine and the harness (the nodes' own engines are inside their budgets, as a VM's OS is)
RESERVE_CORES = 0.25


@dataclass(frozen=True)
class CpuModel:
    kind: str                       # node budget | per service | none | the VMs' own
    scale: float = 0.0
    budgets: dict[str, float] = field(default_factory=dict)    # node -> cores
    note: str = ""

    @property
    def per_service(self) -> bool:
        """Whether each service needs a limit of its own (nodes that cannot share a budget)."""
        return self.kind == "per service"

    def describe(self) -> str:
        if self.kind == "node budget":
            return (f"node budget: each node's CPUs x {self.scale:g}, shared by everything on it; CPU-bound "
                    f"phases run {1 / self.scale:.1f}x slower than on the VMs the topology describes")
        if self.kind == "per service":
            return f"per service: each service its node's CPUs x {self.scale:g} ({self.note})"
        return self.kind

    def record(self) -> dict:
        return {"cpu_model": self.describe(), "node_cpu_budgets": json.dumps(self.budgets, sort_keys=True)}


def host_cores() -> int:
    """This machine's cores (those this process may use)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


def auto_scale(total_cpus: float, cores: int | None = None) -> float:
    """The scale at which the nodes' budgets plus ``RESERVE_CORES`` fit this machine (never above 1)."""
    if not total_cpus:
        return 0.0
    return round(min(1.0, max(0.01, (cores or host_cores()) - RESERVE_CORES) / total_cpus), 4)


def apply(tb, scale: float) -> CpuModel:
    """Set every emulated node's CPU budget for a cell (its CPUs x ``scale``; 0: the VM's size, no
    scaling); real VMs keep their own."""
    provider = tb.provider
    if not hasattr(provider, "set_node_cpus"):
        return CpuModel("the VMs' own")
    cap = host_cores()
    nodes = tb.topology.nodes
    if not scale:
        provider.set_node_cpus(tb.machines, {n.hostname: min(n.cpus, cap) for n in nodes})
        return CpuModel("none")
    budgets = {n.hostname: round(n.cpus * scale, 4) for n in nodes}
    nesting = _nesting(tb)
    flat = {h: why for h, why in nesting.items() if not why.startswith("nested")}
    if flat:
        provider.set_node_cpus(tb.machines, {n.hostname: min(n.cpus, cap) for n in nodes})
        note = "; ".join(f"{h}: {why}" for h, why in flat.items())
        log.warning(f"the nodes cannot share one CPU budget ({note}): each service is limited on its own")
        return CpuModel("per service", scale, budgets, note)
    provider.set_node_cpus(tb.machines, budgets)
    return CpuModel("node budget", scale, budgets)


def _nesting(tb) -> dict[str, str]:
    """Each node's cgroup nesting, asked once per testbed (it is fixed when the node starts)."""
    if tb.cpu_nesting is None:
        tb.cpu_nesting = tb.provider.cpu_nesting(tb.machines)
    return tb.cpu_nesting


def node_used(before: dict | None, after: dict | None, seconds: float) -> str:
    """Cores each node used between two ``node_cpu_seconds`` readings, as JSON ('' if not measured)."""
    if not before or not after or seconds <= 0:
        return ""
    return json.dumps({h: round((after[h] - before[h]) / seconds, 3) for h in after if h in before}, sort_keys=True)


def node_seconds(tb) -> dict | None:
    provider = tb.provider
    return provider.node_cpu_seconds(tb.machines) if hasattr(provider, "node_cpu_seconds") else None
