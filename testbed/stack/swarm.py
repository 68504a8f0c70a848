"""Docker Swarm over the provider's machines, as the seed built it by hand.

``docker swarm init --advertise-addr <manager>`` on the manager; every other node joins with
``--advertise-addr <its own address>`` (the seed's lesson: without it, only single-cloud works);
nodes are labelled with their cloud and role so that services can be placed by constraint.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import docker.errors

from ..providers.base import Machine
from ..run import Progress, step, wait_for

NODE_LABEL_CLOUD = "cloud"
NODE_LABEL_ROLE = "role"


def form(machines: list[Machine], progress: Progress, address_pool: str, timeout: float = 120) -> str:
    """Init, join and label; returns the Swarm id once every node is Ready. Overlay networks take
    their subnets from ``address_pool`` (Swarm's default, 10.0.0.0/8, overlaps many cloud VPCs)."""
    manager = next(m for m in machines if m.role == "manager")
    workers = [m for m in machines if m is not manager]
    with step(progress, f"swarm init on {manager.hostname} (--advertise-addr {manager.address})"):
        swarm_id = manager.client.swarm.init(advertise_addr=manager.address, listen_addr="0.0.0.0:2377",
                                             default_addr_pool=[address_pool], subnet_size=24)
        manager.client.swarm.reload()
        token = manager.client.swarm.attrs["JoinTokens"]["Worker"]

    def join(m: Machine) -> None:
        try:
            m.client.swarm.join(remote_addrs=[f"{manager.address}:2377"], join_token=token,
                                advertise_addr=m.address, listen_addr="0.0.0.0:2377")
        except docker.errors.APIError as e:
            # the token is a secret: never let it reach a log or an exception text
            raise RuntimeError(f"{m.hostname} could not join the swarm at {manager.address}:2377: "
                               f"{str(e).replace(token, '<token>')}") from None

    if workers:
        with step(progress, f"{len(workers)} node(s) join with their own --advertise-addr"):
            with ThreadPoolExecutor(len(workers)) as pool:
                list(pool.map(join, workers))

    def all_ready() -> bool:
        nodes = manager.client.nodes.list()
        return len(nodes) == len(machines) and all(n.attrs["Status"]["State"] == "ready" for n in nodes)

    with step(progress, f"wait for {len(machines)} Ready swarm nodes"):
        wait_for(all_ready, timeout, f"{len(machines)} Ready swarm nodes",
                 detail=lambda: describe(manager))
    label_nodes(manager, machines)
    return swarm_id


def label_nodes(manager: Machine, machines: list[Machine]) -> None:
    by_host = {m.hostname: m for m in machines}
    for node in manager.client.nodes.list():
        m = by_host[node.attrs["Description"]["Hostname"]]
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


def create_network(manager: Machine, name: str, driver: str, labels: dict[str, str]) -> str:
    """The network the stack's services share. ``overlay`` is Swarm's own VXLAN overlay."""
    if driver != "overlay":
        raise NotImplementedError(f"network driver {driver!r} is not available in emulated mode; "
                                  "use 'overlay' (weave belongs to the real-cloud path)")
    net = manager.client.networks.create(name, driver="overlay", attachable=True, labels=labels)
    return net.id
