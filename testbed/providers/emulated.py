"""Emulated clouds on one machine: a Docker-in-Docker container per node, a LAN per cloud.

Each cloud is a bridge network of the host's engine; its nodes are containers running their own
Docker engine. Clouds are joined by a router container (``wan``) with a leg in every cloud LAN,
and every node routes the other clouds' subnets through it. Traffic *inside* a cloud stays on its
bridge; traffic *between* clouds crosses the router, where a WAN (delay, loss, bandwidth) can be
emulated on its interfaces without touching intra-cloud traffic.

Everything carries the run's labels, so ``destroy`` (and ``clean`` after a killed run) find it all.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker
import docker.errors

from ..core import run as runmod
from ..core.plan import Plan
from ..core.run import LABEL_KIND, LABEL_PROJECT, LABEL_RUN, step
from ..images.recipes import NODE, ROUTER
from ..model.topology import Topology, parse
from .base import Machine, wait_engines
from .engine import dind_host_config
from .wan import Wan, directions

log = logging.getLogger(__name__)

DOCKER_PORT = 2375
# Address plan inside every node: its engine's own bridges (docker0, docker_gwbridge) come from
# these ranges, never from the engine's default pools, which could pick a subnet another cloud's
# LAN already uses on the host and so shadow the route to that cloud.
NODE_BRIDGE_IP = "10.201.0.1/24"
NODE_LOCAL_POOL = "10.202.0.0/16"
# The router is the emulated WAN, and a real WAN does not slow down when the clouds' machines are busy.
# Its holder runs at nice -20, but that only ranks it inside the router's own cgroup; against the node
# containers (1024 shares each) it waited its turn, and with every node busy the measured RTT grew from
# 20.5 to 22-24 ms (20 ms target, 2 ms tolerance). The largest weight (cgroup v1 cpu.shares 262144,
# cgroup v2 cpu.weight 10000) lets it run as soon as a packet is due: 20.3-20.7 ms under the same load.
ROUTER_CPU_SHARES = 262144


CPU_PERIOD_US = 100_000
CGROUP_STATE = "/run/fst-cgroup"     # written by the node's entrypoint: "nested <parent>" or "flat: <why>"


def _name(run_id: str, suffix: str) -> str:
    return f"fst-{run_id}-{suffix}"


class EmulatedProvider:
    """Implements ``providers.base.Provider`` with containers of the engine ``client`` talks to."""

    name = "emulated"
    disposable = True       # the nodes' engines hold the Swarm and its services: removing them is enough
    topology = None         # any topology file
    registry = ""           # images are loaded from this host
    weave = ("", "")        # overlay only: Weave Net needs SSH to real hosts

    def __init__(self, client: docker.DockerClient):
        self.client = client

    def node_recipes(self) -> list:
        return [NODE, ROUTER]

    def preflight(self) -> dict:
        return {}

    def engine_facts(self) -> dict[str, str]:
        return {"host": self.client.version().get("Version")}

    def mark_plan(self, machines: list[Machine], run_id: str, owner: str, manager_labels: dict[str, str]) -> Plan:
        return Plan()       # the node containers carry the run's labels from the start

    def unmark_plan(self, machines: list[Machine], run_id: str) -> Plan:
        return Plan()       # removing the containers removes the labels

    def marked(self, run_id: str | None = None, keep=lambda owner: False) -> dict[str, dict]:
        return {rid: {**r, "driver": "overlay", "hosts": []} for rid, r in self.runs().items()
                if (run_id is None and not keep(r["owner"])) or rid == run_id}

    # -- create ------------------------------------------------------------------------------
    def create(self, topology: Topology, run_id: str, owner: str, images: dict[str, str],
               manager_labels: dict[str, str], ssh_authorized_keys: str = "") -> list[Machine]:
        """Networks, router (with the WAN emulated on it) and node containers; returns when every
        node's engine answers. ``images``: recipe name -> tag (``node`` and ``router`` are used).
        ``manager_labels`` go on the manager node's container (what a later attach needs). With
        ``ssh_authorized_keys`` the nodes also run sshd, accepting those keys for root, like cloud
        VMs (the real-cloud path can then be driven against them)."""
        node_image, router_image = images["node"], images["router"]
        base = runmod.labels(run_id, owner, topology=topology.name)
        nets: dict[str, docker.models.networks.Network] = {}
        with step(log, f"create {len(topology.clouds)} cloud network(s)"):
            for cloud in topology.clouds:
                nets[cloud] = self.client.networks.create(
                    _name(run_id, cloud), driver="bridge", check_duplicate=True,
                    labels={**base, LABEL_KIND: "cloud-net", runmod.LABEL_CLOUD: cloud})
        subnets = {c: self._subnet(n) for c, n in nets.items()}
        _check_address_plan(subnets, topology.network.address_pool)

        router_ips: dict[str, str] = {}
        if len(nets) > 1:
            router_ips = self._start_router(run_id, base, nets, router_image)
            wan = self._wan(run_id, subnets, router_ips)
            wan.apply(topology.links)

        with step(log, f"start {len(topology.nodes)} node containers"):
            shared_hc = dind_host_config(self.client, node_image, tmpfs={"/run": "", "/tmp": ""})
            ncpu = self.client.info()["NCPU"]
            if any(n.cpus > ncpu for n in topology.nodes):
                log.info(f"nodes ask for up to {max(n.cpus for n in topology.nodes):g} CPUs; this engine "
                              f"has {ncpu}: each node is capped at {ncpu}")
            containers = {}
            for node in topology.nodes:
                labels = {**base, LABEL_KIND: "node", runmod.LABEL_HOSTNAME: node.hostname,
                          runmod.LABEL_CLOUD: node.cloud, runmod.LABEL_ROLE: node.role}
                if node.role == "manager":
                    labels.update(manager_labels)
                vol = self.client.volumes.create(
                    _name(run_id, f"{node.hostname}-docker"),
                    labels={**base, LABEL_KIND: "node-data", runmod.LABEL_HOSTNAME: node.hostname})
                containers[node.hostname] = self._start_node(
                    node_image, _name(run_id, node.hostname), node.hostname, nets[node.cloud].name,
                    labels, {**shared_hc, "Binds": shared_hc.get("Binds", []) + [f"{vol.name}:/var/lib/docker:rw"],
                             # the VM's size, as a cap (the host is shared; nothing is reserved);
                             # a cell sets the node's CPU budget on it (set_node_cpus)
                             "CpuPeriod": CPU_PERIOD_US, "CpuQuota": int(min(node.cpus, ncpu) * CPU_PERIOD_US),
                             "Memory": node.memory_bytes},
                    {"FST_AUTHORIZED_KEYS": ssh_authorized_keys} if ssh_authorized_keys else {})

        machines = []
        for node in topology.nodes:
            c = containers[node.hostname]
            c.reload()
            addr = c.attrs["NetworkSettings"]["Networks"][nets[node.cloud].name]["IPAddress"]
            for other, subnet in subnets.items():
                if other != node.cloud:
                    self._exec(c, ["ip", "route", "add", subnet, "via", router_ips[node.cloud]])
            machines.append(Machine(node.hostname, node.cloud, node.role, addr,
                                    f"tcp://{addr}:{DOCKER_PORT}",
                                    {"container": c.name, "subnet": subnets[node.cloud]}))
        self._wait_engines(machines)
        return machines

    # -- CPU: one budget per node, as a VM's CPUs ------------------------------------------------
    def cpu_nesting(self, machines: list[Machine]) -> dict[str, str]:
        """hostname -> how its engine places containers: ``nested <cgroup>`` (under the node
        container's own cgroup, so the node's CPU limit is shared by all of them) or ``flat: <why>``."""
        out = {}
        for m in machines:
            code, text = self.client.containers.get(m.info["container"]).exec_run(["cat", CGROUP_STATE])
            out[m.hostname] = text.decode(errors="replace").strip() if code == 0 else "flat: the node did not say"
        return out

    def set_node_cpus(self, machines: list[Machine], cores: dict[str, float]) -> None:
        """Give each node ``cores`` CPUs (its budget), shared by everything on it; unchanged ones stay."""
        for m in machines:
            c = self.client.containers.get(m.info["container"])
            quota = int(round(cores[m.hostname] * CPU_PERIOD_US))
            if c.attrs["HostConfig"].get("NanoCpus"):
                raise RuntimeError(f"node {m.hostname} was made by an older version of the testbed (its CPUs are "
                                   "fixed as NanoCpus, which cannot be updated): take the run down and up again")
            if c.attrs["HostConfig"].get("CpuQuota") != quota:
                c.update(cpu_quota=quota)

    def node_cpu_seconds(self, machines: list[Machine]) -> dict[str, float]:
        """CPU time each node's container has used so far (the containers inside it included where
        its engine nests their cgroups under the node's, provision/cpu.py; not on a flat node):
        from its cgroup's counter where the engine runs on this host (read at once), else from the
        engine's stats, all nodes at once (about a second per call even with one_shot)."""
        def used(m: Machine) -> float:
            c = self.client.containers.get(m.info["container"])
            cid = c.id
            for path, scale in ((f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", 1e-9),  # cgroup v1
                                (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", 1e-6),
                                (f"/sys/fs/cgroup/docker/{cid}/cpu.stat", 1e-6)):       # v2: usage_usec
                try:
                    text = Path(path).read_text()
                except OSError:
                    continue
                value = text.split()[1] if text.startswith("usage_usec") else text.strip()
                return int(value) * scale
            return c.stats(stream=False, one_shot=True)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9
        with ThreadPoolExecutor(max(1, len(machines))) as pool:
            return dict(zip((m.hostname for m in machines), pool.map(used, machines)))

    def _wan(self, run_id: str, subnets: dict[str, str], router_ips: dict[str, str]) -> Wan:
        router = self.client.containers.get(_name(run_id, "wan"))
        iface_of = {}
        for line in router.exec_run(["ip", "-o", "-4", "addr", "show"]).output.decode().splitlines():
            parts = line.split()
            iface_of[parts[3].split("/")[0]] = parts[1].split("@")[0]
        return Wan(router, subnets, {c: iface_of[ip] for c, ip in router_ips.items()})

    def wan(self, run_id: str, topology: Topology) -> Wan | None:
        """The WAN of a running run, with its links as last set (at run time perhaps)."""
        try:
            router = self.client.containers.get(_name(run_id, "wan"))
        except docker.errors.NotFound:
            return None
        subnets = {c: self._subnet(self.client.networks.get(_name(run_id, c))) for c in topology.clouds}
        router_ips = {c: router.attrs["NetworkSettings"]["Networks"][_name(run_id, c)]["IPAddress"]
                      for c in topology.clouds}
        wan = self._wan(run_id, subnets, router_ips)
        wan.links = wan.saved_links() or {(d.src, d.dst): d for d in directions(topology.links)}
        return wan

    def _start_node(self, image: str, name: str, hostname: str, network: str, labels: dict, hc: dict,
                    env: dict[str, str]):
        """A Docker-in-Docker container (low-level API: the HostConfig needs fields the
        high-level one does not pass)."""
        created = self.client.api.create_container(
            image, name=name, hostname=hostname, labels=labels, host_config=hc, detach=True, environment=env,
            command=[f"--bip={NODE_BRIDGE_IP}", f"--default-address-pool=base={NODE_LOCAL_POOL},size=24"],
            networking_config=self.client.api.create_networking_config(
                {network: self.client.api.create_endpoint_config()}))
        self.client.api.start(created["Id"])
        return self.client.containers.get(created["Id"])

    def _subnet(self, net) -> str:
        net.reload()
        return net.attrs["IPAM"]["Config"][0]["Subnet"]

    def _start_router(self, run_id: str, base: dict, nets: dict, image: str) -> dict[str, str]:
        """A forwarding container with one leg per cloud LAN; returns cloud -> its address there."""
        clouds = list(nets)
        with step(log, f"start the WAN router between {', '.join(clouds)}"):
            router = self.client.containers.run(
                image, name=_name(run_id, "wan"), hostname="wan", detach=True,
                entrypoint=["sleep", "infinity"], network=nets[clouds[0]].name,
                labels={**base, LABEL_KIND: "router"}, cap_add=["NET_ADMIN", "NET_RAW", "SYS_NICE"],
                sysctls={"net.ipv4.ip_forward": "1"}, cpu_shares=ROUTER_CPU_SHARES)
            for cloud in clouds[1:]:
                nets[cloud].connect(router)
            router.reload()
            ips = {c: router.attrs["NetworkSettings"]["Networks"][nets[c].name]["IPAddress"] for c in clouds}
        return ips

    def _exec(self, container, cmd: list[str]) -> str:
        code, out = container.exec_run(cmd)
        if code != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed in {container.name} (exit {code}): "
                               f"{out.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    def _wait_engines(self, machines: list[Machine], timeout: float = 90) -> None:
        def logs(m: Machine) -> str:
            c = self.client.containers.get(m.info["container"])
            return f"{m.hostname} is {c.status}; its log ends:\n" + c.logs(tail=30).decode(errors="replace")
        wait_engines(machines, timeout, logs)

    # -- attach / destroy ----------------------------------------------------------------------
    def freeze(self, machine: Machine, frozen: bool) -> None:
        """Freeze a node (``docker pause``: every process in it, its engine and its network stop
        answering, as a VM gone dark) or thaw it."""
        c = self.client.containers.get(machine.info["container"])
        c.reload()
        if frozen and c.attrs["State"].get("Paused") is not True:
            c.pause()
        elif not frozen and c.attrs["State"].get("Paused"):
            c.unpause()

    def runs(self) -> dict[str, dict]:
        """Run id -> {owner, topology, nodes} for every run with node containers on the engine."""
        runs: dict[str, dict] = {}
        for c in self.client.containers.list(all=True, filters={"label": [LABEL_PROJECT, f"{LABEL_KIND}=node"]}):
            r = runs.setdefault(c.labels.get(LABEL_RUN, "?"), {
                "owner": c.labels.get(runmod.LABEL_OWNER, ""), "topology": c.labels.get(runmod.LABEL_TOPOLOGY, ""),
                "nodes": 0})
            r["nodes"] += 1
        return runs

    def manager_labels(self, run_id: str) -> dict[str, str]:
        """The labels of the run's manager node container (topology text, image ids)."""
        found = self.client.containers.list(filters={"label": [     # running: a stopped run is not attachable
            f"{LABEL_RUN}={run_id}", f"{LABEL_KIND}=node", f"{runmod.LABEL_ROLE}=manager"]})
        return dict(found[0].labels) if found else {}

    def machines(self, run_id: str) -> list[Machine]:
        """The running nodes of a run, rebuilt from the engine's labels, in the topology's order."""
        out = self._machines(run_id)
        text = self.manager_labels(run_id).get(runmod.LABEL_TOPOLOGY_TEXT)
        if text:
            order = [n.hostname for n in parse(text, source=f"run {run_id}").nodes]
            out.sort(key=lambda m: order.index(m.hostname) if m.hostname in order else len(order))
        return out

    def _machines(self, run_id: str) -> list[Machine]:
        out = []
        subnets: dict[str, str] = {}
        for c in self.client.containers.list(filters={"label": [f"{LABEL_RUN}={run_id}", f"{LABEL_KIND}=node"]}):
            lab = c.labels
            cloud = lab[runmod.LABEL_CLOUD]
            net = _name(run_id, cloud)
            if cloud not in subnets:
                subnets[cloud] = self._subnet(self.client.networks.get(net))
            addr = c.attrs["NetworkSettings"]["Networks"][net]["IPAddress"]
            out.append(Machine(lab[runmod.LABEL_HOSTNAME], cloud, lab[runmod.LABEL_ROLE], addr,
                               f"tcp://{addr}:{DOCKER_PORT}", {"container": c.name, "subnet": subnets[cloud]}))
        return out

    def destroy(self, run_id: str | None = None, keep=lambda owner: False) -> list[str]:
        """Remove the containers, networks and volumes of one run (or of every run whose owner
        ``keep`` does not vouch for). Returns what was removed."""
        flt = [f"{LABEL_RUN}={run_id}"] if run_id else [LABEL_RUN]

        def wanted(labels: dict) -> bool:
            return run_id is not None or not keep(labels.get(runmod.LABEL_OWNER, ""))

        removed: list[str] = []
        lock = threading.Lock()

        def rm_container(c) -> None:
            try:
                c.remove(force=True, v=True)
                with lock:
                    removed.append(f"container {c.name}")
            except docker.errors.NotFound:
                pass

        containers = [c for c in self.client.containers.list(all=True, filters={"label": flt})
                      if wanted(c.labels)]
        if containers:
            with ThreadPoolExecutor(min(8, len(containers))) as pool:
                list(pool.map(rm_container, containers))
        for n in self.client.networks.list(filters={"label": flt}):
            if wanted(n.attrs.get("Labels") or {}):
                try:
                    n.remove()
                    removed.append(f"network {n.name}")
                except docker.errors.NotFound:
                    pass
        vols = [v for v in self.client.volumes.list(filters={"label": flt}) if wanted(v.attrs.get("Labels") or {})]

        def rm_volume(v) -> None:
            try:
                v.remove(force=True)
                with lock:
                    removed.append(f"volume {v.name}")
            except docker.errors.NotFound:
                pass

        if vols:
            with ThreadPoolExecutor(min(8, len(vols))) as pool:
                list(pool.map(rm_volume, vols))
        return removed



def _check_address_plan(subnets: dict[str, str], overlay_pool: str) -> None:
    """Cloud LANs, the nodes' own bridges and the overlay must not share addresses."""
    inner = {"the nodes' docker0": NODE_BRIDGE_IP, "the nodes' local networks": NODE_LOCAL_POOL,
             "the overlay address pool (network.address_pool)": overlay_pool}
    for cloud, subnet in subnets.items():
        for what, cidr in inner.items():
            if ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(cidr, strict=False)):
                raise RuntimeError(f"the host engine gave cloud {cloud!r} the subnet {subnet}, which overlaps "
                                   f"{what} ({cidr}); change network.address_pool or the host's address pools")
