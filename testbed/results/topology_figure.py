"""The set-up in one picture: clouds as groups, their nodes inside, what runs on each node, and the
links between clouds labelled with their target and, where measured, what the fidelity check read.

    boxes = layout(topology)                       # pure: where every cloud and node goes
    draw(topology, out_dir, "tm2-multi-cloud", runs=..., measured=..., title=...)

``runs`` maps a hostname to what runs there (``"JM"``, ``"TM"``, ``"broker"``, ``"driver"``);
``measured`` maps a (cloud, cloud) pair to ``{"rtt_ms": .., "mbit": ..}`` (either may be absent).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..model.topology import Topology

NODE_W, NODE_H, GAP, PAD = 3.2, 0.9, 0.25, 0.35
ROLE_LABEL = {"manager": "Swarm manager", "jobmanager": "jobmanager node", "worker": "worker"}
RUNS_COLOUR = {"JM": "C0", "TM": "C2", "broker": "C1", "driver": "C4"}


@dataclass(frozen=True)
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


def layout(topology: Topology) -> tuple[dict[str, Box], dict[str, Box]]:
    """Cloud boxes on a circle (side by side for one or two clouds) and node boxes stacked inside
    their cloud; returns (cloud -> box, hostname -> box)."""
    clouds = topology.clouds
    n = len(clouds)
    tallest = max(len(v) for v in clouds.values())
    ch = tallest * (NODE_H + GAP) - GAP + 2 * PAD + 0.4     # room for the cloud's name
    cw = NODE_W + 2 * PAD
    radius = 0.0 if n == 1 else (cw + 4.0) / (2 * math.sin(math.pi / n)) if n > 2 else (cw + 3.0) / 2
    cloud_box, node_box = {}, {}
    for i, (name, nodes) in enumerate(clouds.items()):
        angle = math.pi - 2 * math.pi * i / n if n > 2 else math.pi * (1 - i)
        cx, cy = radius * math.cos(angle), radius * math.sin(angle) * (1.0 if n > 2 else 0.0)
        box = Box(cx - cw / 2, cy - ch / 2, cw, ch)
        cloud_box[name] = box
        top = box.y + box.h - PAD - 0.4
        for j, node in enumerate(nodes):
            node_box[node.hostname] = Box(box.x + PAD, top - (j + 1) * NODE_H - j * GAP, NODE_W, NODE_H)
    return cloud_box, node_box


def _link_label(link, measured: dict | None) -> str:
    parts = [f"RTT {link.rtt_ms:g} ms" + (f" ± {link.jitter_ms:g}" if link.jitter_ms else "")]
    if measured and measured.get("rtt_ms") == measured.get("rtt_ms") and measured.get("rtt_ms") is not None:
        parts[0] += f" (measured {measured['rtt_ms']:.1f})"
    if link.bandwidth_mbit:
        bw = f"{link.bandwidth_mbit:g} Mbit/s"
        if measured and measured.get("mbit") is not None and measured.get("mbit") == measured.get("mbit"):
            bw += f" ({measured['mbit']:.0f})"
        parts.append(bw)
    if link.loss_pct:
        parts.append(f"loss {link.loss_pct:g} %")
    return "\n".join(parts)


def draw(topology: Topology, out: Path, name: str, *, runs: dict[str, list[str]] | None = None,
         measured: dict[tuple[str, str], dict] | None = None, title: str = "",
         budgets: dict[str, float] | None = None) -> list[Path]:
    """Write ``<out>/<name>.pdf`` and ``.png``; returns the files. ``budgets``: the cores each node was
    given (a row's ``node_cpu_budgets``), drawn beside the size of the VM it emulates."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    runs, measured = runs or {}, measured or {}
    clouds, nodes = layout(topology)
    xs = [b.x for b in clouds.values()] + [b.x + b.w for b in clouds.values()]
    ys = [b.y for b in clouds.values()] + [b.y + b.h for b in clouds.values()]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * (max(xs) - min(xs)) + 1), max(3.5, 0.9 * (max(ys) - min(ys)) + 1.2)))
    for link in topology.links:
        a, b = (clouds[c].centre for c in link.clouds)
        ax.plot([a[0], b[0]], [a[1], b[1]], color="0.35", lw=2, zorder=1)
        got = measured.get(tuple(link.clouds)) or measured.get(tuple(link.clouds[::-1]))
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, _link_label(link, got), ha="center", va="center", fontsize=8,
                zorder=4, bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="0.6"))
    for cname, box in clouds.items():
        ax.add_patch(FancyBboxPatch((box.x, box.y), box.w, box.h, boxstyle="round,pad=0.05,rounding_size=0.3",
                                    fc="#eef3fb", ec="#5b7db1", lw=1.5, zorder=2))
        ax.text(box.x + PAD, box.y + box.h - PAD, cname, fontsize=11, fontweight="bold", va="top", zorder=3)
    for node in topology.nodes:
        box = nodes[node.hostname]
        ax.add_patch(FancyBboxPatch((box.x, box.y), box.w, box.h, boxstyle="round,pad=0.02,rounding_size=0.1",
                                    fc="white", ec="0.4", lw=1, zorder=3))
        ax.text(box.x + 0.12, box.y + box.h - 0.12, node.hostname, fontsize=8, va="top", zorder=4)
        given = (budgets or {}).get(node.hostname)
        size = f"{node.cpus:g}-CPU VM" + (f", {given:.2g} cores" if given else "")
        ax.text(box.x + 0.12, box.y + 0.12, f"{ROLE_LABEL.get(node.role, node.role)}, {size}",
                fontsize=7, color="0.4", va="bottom", zorder=4)
        for k, what in enumerate(runs.get(node.hostname, [])):
            ax.text(box.x + box.w - 0.1 - 0.62 * k, box.y + box.h / 2, what, fontsize=7, ha="right", va="center",
                    color="white", zorder=5, fontweight="bold",
                    bbox=dict(boxstyle="round,pad=0.2", fc=RUNS_COLOUR.get(what, "0.3"), ec="none"))
    ax.set_xlim(min(xs) - 0.4, max(xs) + 0.4)
    ax.set_ylim(min(ys) - 0.4, max(ys) + 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or f"topology {topology.name}", fontsize=10)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("pdf", "png"):
        p = out / f"{name}.{ext}"
        fig.savefig(p, bbox_inches="tight", dpi=150)
        paths.append(p)
    plt.close(fig)
    return paths


def runs_of(topology: Topology, row: dict) -> dict[str, list[str]]:
    """What ran where in a cell, from its row (taskmanager_nodes, broker_node, driver_nodes)."""
    out: dict[str, list[str]] = {}

    def add(host: str, what: str) -> None:
        if host and what not in out.setdefault(host, []):
            out[host].append(what)

    add(topology.jobmanager.hostname, "JM")
    for h in str(row.get("taskmanager_nodes") or "").split(","):
        add(h.strip(), "TM")
    add(str(row.get("broker_node") or topology.broker_node or topology.manager.hostname), "broker")
    for h in str(row.get("driver_nodes") or "").split(","):
        add(h.strip(), "driver")
    return out


def measured_links(calibration) -> dict[tuple[str, str], dict]:
    """Per cloud pair, the median RTT measured between its nodes (mean over the pairs) and the mean
    TCP throughput of both directions, from a calibration table (``calibration.csv``)."""
    out: dict[tuple[str, str], dict] = {}
    if calibration is None or len(calibration) == 0:
        return out
    inter = calibration[calibration["src_cloud"] != calibration["dst_cloud"]]
    for (a, b), g in inter.groupby([inter[["src_cloud", "dst_cloud"]].min(axis=1),
                                    inter[["src_cloud", "dst_cloud"]].max(axis=1)]):
        rtt = g.loc[g["kind"] == "rtt", "measured"]
        tcp = g.loc[g["kind"] == "tcp_throughput", "measured"]
        out[(a, b)] = {"rtt_ms": float(rtt.mean()) if len(rtt) else None,
                       "mbit": float(tcp.mean()) if len(tcp) else None}
    return out
