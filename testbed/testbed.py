"""The testbed handle: a topology, provisioned and joined into one Swarm.

    tb = Testbed.up(load_topology("topologies/seed.yaml"))
    tb.node("google-cloud-worker-1").client.containers.list()
    tb.down()

``up`` builds (or finds) the images, has the provider create the machines, forms the Swarm,
loads the stack's images on every node and creates the overlay network. If any step fails,
everything already created is removed before the error is raised. ``attach`` rebuilds the handle
of a running run from the labels on the engine, so other processes (pytest-xdist workers, the CLI)
share one provisioned topology.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import docker

from . import images as img
from . import run as runmod
from .engine import host_client
from .providers.base import Machine
from .providers.emulated import EmulatedProvider
from .providers.wan import Wan
from .run import LABEL_KIND, LABEL_PROJECT, LABEL_RUN, Progress, default_progress, step
from .stack import images as stack_images
from .stack import swarm
from .topology import Topology, parse

LABEL_IMAGES = "io.flink-swarm-testbed.images"   # on the manager node: recipe name -> image id


@dataclass
class Testbed:
    __test__ = False  # not a test class, despite the name

    run_id: str
    topology: Topology
    machines: list[Machine]
    provider: EmulatedProvider
    images: dict[str, str] = field(default_factory=dict)   # recipe name -> image id on every node
    timings: dict[str, float] = field(default_factory=dict)
    wan: Wan | None = None                                  # the emulated WAN between clouds
    calibration: list[dict] = field(default_factory=list)   # the network's fidelity check, if run

    # -- lookups -------------------------------------------------------------------------------
    def node(self, hostname: str) -> Machine:
        for m in self.machines:
            if m.hostname == hostname:
                return m
        raise KeyError(f"no node {hostname!r} in run {self.run_id}; nodes: "
                       + ", ".join(m.hostname for m in self.machines))

    @property
    def manager(self) -> Machine:
        return next(m for m in self.machines if m.role == "manager")

    @property
    def clouds(self) -> dict[str, list[Machine]]:
        out: dict[str, list[Machine]] = {}
        for m in self.machines:
            out.setdefault(m.cloud, []).append(m)
        return out

    @property
    def network(self) -> str:
        return self.topology.network.name

    def labels(self, **extra: str) -> dict[str, str]:
        """Labels for resources created on the nodes during this run."""
        return {LABEL_PROJECT: "1", LABEL_RUN: self.run_id, **extra}

    # -- lifecycle -----------------------------------------------------------------------------
    @classmethod
    def up(cls, topology: Topology, *, run_id: str | None = None, owner: str | None = None,
           progress: Progress = default_progress, client: docker.DockerClient | None = None) -> "Testbed":
        client = client or host_client()
        run_id = run_id or runmod.new_run_id()
        owner = owner or runmod.owner_token()
        provider = EmulatedProvider(client, progress)
        timings: dict[str, float] = {}
        t0 = time.monotonic()
        with step(progress, "images (built only if their inputs changed)"):
            tags = img.build_all(client, img.ALL_RECIPES, progress)
            app_tags = [tags[r.name] for r in img.APP_RECIPES]
            archive = img.bundle(client, app_tags, progress)
            image_ids = {r.name: client.images.get(tags[r.name]).id for r in img.APP_RECIPES}
        timings["images_s"] = time.monotonic() - t0
        progress(f"run {run_id}: provisioning topology {topology.name!r} "
                 f"({len(topology.nodes)} nodes in {len(topology.clouds)} clouds)")
        tb: Testbed | None = None
        try:
            t1 = time.monotonic()
            # what any other process needs to attach to this run later
            manager_labels = {runmod.LABEL_TOPOLOGY_TEXT: topology.text, LABEL_IMAGES: json.dumps(image_ids)}
            machines, wan = provider.create(topology, run_id, owner, tags["node"], tags["router"], manager_labels)
            tb = cls(run_id, topology, machines, provider, image_ids, timings, wan)
            timings["nodes_s"] = time.monotonic() - t1
            # images load while the swarm forms: both only need the node engines
            loader_error: list[BaseException] = []

            def load() -> None:
                try:
                    stack_images.distribute(machines, archive, list(image_ids.values()), progress)
                except BaseException as e:  # noqa: BLE001 - re-raised below
                    loader_error.append(e)

            loader = threading.Thread(target=load, daemon=True)
            loader.start()
            swarm.form(machines, progress, topology.network.address_pool)
            timings["swarm_ready_s"] = time.monotonic() - t0
            swarm.create_network(tb.manager, topology.network.name, topology.network.driver,
                                 tb.labels())
            loader.join()
            if loader_error:
                raise loader_error[0]
            timings["up_s"] = time.monotonic() - t0
            progress(f"run {run_id}: swarm Ready after {timings['swarm_ready_s']:.1f}s, "
                     f"everything up after {timings['up_s']:.1f}s")
            return tb
        except BaseException:
            progress(f"run {run_id}: provisioning failed; removing what was created")
            if tb:
                tb.close()
            provider.destroy(run_id)
            raise

    @classmethod
    def attach(cls, run_id: str, *, progress: Progress = default_progress,
               client: docker.DockerClient | None = None) -> "Testbed":
        """The handle of a running run, from the labels on the engine."""
        client = client or host_client()
        provider = EmulatedProvider(client, progress)
        machines = provider.machines(run_id)
        if not machines:
            raise LookupError(f"no running testbed with run id {run_id!r}; "
                              f"running: {', '.join(list_runs(client)) or 'none'}")
        mgr = client.containers.get(next(m.info["container"] for m in machines if m.role == "manager"))
        topology = parse(mgr.labels[runmod.LABEL_TOPOLOGY_TEXT], source=f"run {run_id}")
        order = [n.hostname for n in topology.nodes]
        machines.sort(key=lambda m: order.index(m.hostname))
        return cls(run_id, topology, machines, provider, json.loads(mgr.labels.get(LABEL_IMAGES, "{}")),
                   wan=provider.wan(run_id, topology))

    def close(self) -> None:
        for m in self.machines:
            m.close()

    def down(self, progress: Progress | None = None) -> float:
        """Remove everything of this run; returns the seconds it took."""
        progress = progress or self.provider.progress
        t0 = time.monotonic()
        self.close()
        with step(progress, f"run {self.run_id}: tear down"):
            self.provider.destroy(self.run_id)
        self.timings["down_s"] = time.monotonic() - t0
        return self.timings["down_s"]

    def status(self) -> dict:
        out = {"run_id": self.run_id, "topology": self.topology.name, "provider": self.provider.name,
               "network": {"name": self.network, "driver": self.topology.network.driver},
               "clouds": {c: [m.hostname for m in ms] for c, ms in self.clouds.items()},
               "wan": {"backend": self.wan.backend if self.wan else None,
                       "links": [vars(d) for d in self.wan.links.values()] if self.wan else []},
               "nodes": [{"hostname": m.hostname, "cloud": m.cloud, "role": m.role, "address": m.address,
                          "docker": m.docker_url} for m in self.machines]}
        try:
            out["swarm"] = swarm.nodes(self.manager)
        except Exception as e:  # noqa: BLE001 - status reports what it can
            out["swarm"] = {"error": str(e)}
        return out


def list_runs(client: docker.DockerClient) -> dict[str, dict]:
    """Run id -> {owner, topology, nodes} for every run with containers on the engine."""
    runs: dict[str, dict] = {}
    for c in client.containers.list(all=True, filters={"label": [LABEL_PROJECT, f"{LABEL_KIND}=node"]}):
        r = runs.setdefault(c.labels.get(LABEL_RUN, "?"), {
            "owner": c.labels.get(runmod.LABEL_OWNER, ""), "topology": c.labels.get(runmod.LABEL_TOPOLOGY, ""),
            "nodes": 0})
        r["nodes"] += 1
    return runs


def leftovers(run_id: str, client: docker.DockerClient | None = None) -> list[str]:
    """Every container, network and volume on the host engine that carries the run's label."""
    client = client or host_client()
    flt = {"label": f"{LABEL_RUN}={run_id}"}
    return ([f"container {x.name}" for x in client.containers.list(all=True, filters=flt)]
            + [f"network {x.name}" for x in client.networks.list(filters=flt)]
            + [f"volume {x.name}" for x in client.volumes.list(filters=flt)])


def clean(client: docker.DockerClient | None = None, progress: Progress = default_progress,
          everything: bool = False) -> list[str]:
    """Remove what earlier runs left behind: every run whose owning process is gone (and, with
    ``everything``, also runs started by the CLI and still in use)."""
    client = client or host_client()
    provider = EmulatedProvider(client, progress)
    keep = (lambda owner: False) if everything else runmod.owner_alive
    return provider.destroy(None, keep=keep)
