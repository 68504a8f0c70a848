"""Docker Swarm over the provider's machines, as the seed built it by hand.

``docker swarm init --advertise-addr <manager>`` on the manager; every other node joins with
``--advertise-addr <its own address>`` (the seed's lesson: without it, only single-cloud works);
nodes are labelled with their cloud and role so that services can be placed by constraint.
"""

from __future__ import annotations

import logging
import time
import docker.errors

from ..providers.base import Machine, manager_of
from ..core.run import step, wait_for
from ..core.plan import Plan, execute

log = logging.getLogger(__name__)

NODE_LABEL_CLOUD = "cloud"
NODE_LABEL_ROLE = "role"


def _addr_flags(m: Machine) -> dict:
    """--advertise-addr is the address the others reach the node at. Where that address is not on
    the node's own interfaces (a NATed cloud VM's public address), Swarm cannot listen on it: it
    listens on the private address and advertises the public one for the data path too."""
    private = m.info.get("private_address")
    if private and private != m.address:
        return {"advertise_addr": m.address, "listen_addr": f"{private}:2377", "data_path_addr": m.address}
    return {"advertise_addr": m.address, "listen_addr": "0.0.0.0:2377"}


def _cli_flags(flags: dict) -> str:
    return " ".join(f"--{k.replace('_', '-')} {v}" for k, v in flags.items())


def plan(machines: list[Machine], address_pool: str, timeout: float = 120) -> Plan:
    """Init, join (in parallel), wait for Ready, label: the steps, with their CLI equivalents."""
    manager = manager_of(machines)
    workers = [m for m in machines if m is not manager]
    p = Plan()
    mflags = _addr_flags(manager)

    def init(ctx: dict) -> None:
        ctx["swarm_id"] = manager.client.swarm.init(**mflags, default_addr_pool=[address_pool], subnet_size=24)
        manager.client.swarm.reload()
        ctx["token"] = manager.client.swarm.attrs["JoinTokens"]["Worker"]

    p.add(manager.hostname, f"docker swarm init {_cli_flags(mflags)} --default-addr-pool {address_pool} "
          "--default-addr-pool-mask-length 24", init)

    def join(m: Machine):
        flags = _addr_flags(m)

        def run(ctx: dict) -> None:
            token = ctx["token"]
            try:
                m.client.swarm.join(remote_addrs=[f"{manager.address}:2377"], join_token=token, **flags)
            except docker.errors.APIError as e:
                # the token is a secret: never let it reach a log or an exception text
                raise RuntimeError(f"{m.hostname} could not join the swarm at {manager.address}:2377: "
                                   f"{str(e).replace(token, '<worker-join-token>')}") from None
        return run

    for m in workers:
        p.add(m.hostname, f"docker swarm join --token <worker-join-token> {_cli_flags(_addr_flags(m))} "
              f"{manager.address}:2377", join(m), group="join")

    def all_ready() -> bool:
        nodes = manager.client.nodes.list()
        return len(nodes) == len(machines) and all(n.attrs["Status"]["State"] == "ready" for n in nodes)

    def ready(ctx: dict) -> None:
        wait_for(all_ready, timeout, f"{len(machines)} Ready swarm nodes", detail=lambda: describe(manager))
        ctx["swarm_ready"] = time.monotonic()

    p.add(manager.hostname, "docker node ls", ready, note=f"until {len(machines)} nodes are Ready (at most {timeout:.0f}s)")
    for m in machines:
        p.add(manager.hostname, f"docker node update --label-add {NODE_LABEL_CLOUD}={m.cloud} "
              f"--label-add {NODE_LABEL_ROLE}={m.role} {m.hostname}",
              lambda ctx, m=m: label_nodes(manager, [m]))
    return p


def form(machines: list[Machine], address_pool: str, timeout: float = 120) -> str:
    """Init, join and label; returns the Swarm id once every node is Ready. Overlay networks take
    their subnets from ``address_pool`` (Swarm's default, 10.0.0.0/8, overlaps many cloud VPCs)."""
    manager = manager_of(machines)
    with step(log, f"swarm on {len(machines)} nodes (manager {manager.hostname}, each node with its "
                        "own --advertise-addr)"):
        ctx = execute(plan(machines, address_pool, timeout))
    return ctx["swarm_id"]


def label_nodes(manager: Machine, machines: list[Machine]) -> None:
    by_host = {m.hostname: m for m in machines}
    for node in manager.client.nodes.list():
        m = by_host.get(node.attrs["Description"]["Hostname"])
        if m is None:
            continue
        spec = node.attrs["Spec"]
        spec["Labels"] = {**spec.get("Labels", {}), NODE_LABEL_CLOUD: m.cloud, NODE_LABEL_ROLE: m.role}
        node.update(spec)


def nodes(manager: Machine) -> list[dict]:
    """What `docker node ls` shows, plus labels and addresses."""
    out = []
    for n in manager.client.nodes.list():
        a = n.attrs
        out.append({
            "hostname": a["Description"]["Hostname"],
            "state": a["Status"]["State"],
            "availability": a["Spec"].get("Availability"),
            "swarm_role": a["Spec"].get("Role"),
            "manager_status": (a.get("ManagerStatus") or {}).get("Leader") and "Leader"
            or (a.get("ManagerStatus") or {}).get("Reachability", ""),
            "address": a["Status"].get("Addr"),
            "labels": a["Spec"].get("Labels", {}),
            "engine": a["Description"].get("Engine", {}).get("EngineVersion"),
        })
    return sorted(out, key=lambda d: d["hostname"])


def describe(manager: Machine) -> str:
    try:
        return "swarm nodes now:\n" + "\n".join(
            f"  {n['hostname']:28} {n['state']:8} {n['address']}" for n in nodes(manager))
    except Exception as e:  # noqa: BLE001
        return f"(swarm nodes unavailable: {e})"
