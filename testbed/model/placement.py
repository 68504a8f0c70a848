"""Where taskmanagers go: the experiment's axis.

A policy names a set of eligible nodes and an order to fill them; the stack then labels exactly the
chosen nodes and runs one taskmanager per chosen node, as the seed did ("one deployed to each
node"). Taskmanagers never go to the Swarm manager or the jobmanager node.

    single-cloud            all in one cloud (the cloud with the most worker nodes)
    single-cloud:<cloud>    all in the named cloud
    multi-cloud             spread across clouds, round-robin, so the clouds differ by at most one
                            (at least 2 taskmanagers: one cannot span clouds)
    nodes:<h1>+<h2>+...     exactly these nodes, in this order (',' works too outside lists)
"""

from __future__ import annotations

from dataclasses import dataclass

from .topology import Topology


class PlacementError(ValueError):
    """A placement that cannot hold this many taskmanagers on this topology."""


class BadPlacement(PlacementError):
    """A placement that names no policy, cloud or worker node of the topology: wrong for any count."""


@dataclass(frozen=True)
class Placement:
    policy: str                 # as given
    nodes: tuple[str, ...]      # chosen hostnames, one taskmanager each

    def clouds(self, topology: Topology) -> tuple[str, ...]:
        return tuple(topology.node(h).cloud for h in self.nodes)


def eligible(topology: Topology) -> list[str]:
    return [n.hostname for n in topology.nodes if n.role == "worker"]


def choose(topology: Topology, policy: str, taskmanagers: int) -> Placement:
    """The nodes for ``taskmanagers`` taskmanagers under ``policy``; raises PlacementError naming
    what is wrong (unknown cloud or node, too few eligible nodes)."""
    if not isinstance(taskmanagers, int) or taskmanagers < 1:
        raise PlacementError(f"taskmanagers must be a whole number >= 1, got {taskmanagers!r}")
    workers = eligible(topology)
    by_cloud: dict[str, list[str]] = {}
    for h in workers:
        by_cloud.setdefault(topology.node(h).cloud, []).append(h)
    kind, _, arg = policy.partition(":")
    if kind == "single-cloud":
        if arg:
            if arg not in topology.clouds:
                raise BadPlacement(f"placement {policy!r}: unknown cloud {arg!r}; clouds: "
                                     + ", ".join(topology.clouds))
            cloud = arg
        else:
            if not by_cloud:
                raise PlacementError("placement 'single-cloud': the topology has no worker nodes")
            cloud = max(by_cloud, key=lambda c: len(by_cloud[c]))
        pool = by_cloud.get(cloud, [])
        where = f"worker nodes in cloud {cloud!r}"
    elif kind == "multi-cloud" and not arg:
        if taskmanagers < 2:
            raise PlacementError("placement 'multi-cloud' needs at least 2 taskmanagers to span two clouds "
                                 "(with one, use single-cloud[:<cloud>])")
        if len(by_cloud) < 2:
            raise PlacementError(f"placement 'multi-cloud' needs worker nodes in two clouds; "
                                 f"workers are only in: {', '.join(by_cloud) or 'none'}")
        queues = [list(v) for v in by_cloud.values()]
        pool = []
        while any(queues):
            for q in queues:
                if q:
                    pool.append(q.pop(0))
        where = "worker nodes across clouds"
    elif kind == "nodes" and arg:
        pool = [h.strip() for h in arg.replace("+", ",").split(",") if h.strip()]
        for h in pool:
            if h not in {n.hostname for n in topology.nodes}:
                raise BadPlacement(f"placement {policy!r}: unknown node {h!r}; worker nodes: "
                                     + ", ".join(workers))
            if h not in workers:
                raise BadPlacement(f"placement {policy!r}: {h!r} is the {topology.node(h).role} node; "
                                     "taskmanagers run on worker nodes: " + ", ".join(workers))
        if len(set(pool)) != len(pool):
            raise BadPlacement(f"placement {policy!r} names a node twice")
        where = "listed nodes"
    else:
        raise BadPlacement(f"unknown placement {policy!r}; use single-cloud, single-cloud:<cloud>, "
                             "multi-cloud or nodes:<host>+<host>+...")
    if taskmanagers > len(pool):
        raise PlacementError(
            f"{taskmanagers} taskmanagers do not fit placement {policy!r}: one taskmanager per node and "
            f"only {len(pool)} eligible ({where}: {', '.join(pool) or 'none'})")
    return Placement(policy, tuple(pool[:taskmanagers]))
