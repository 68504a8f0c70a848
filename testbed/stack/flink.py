"""Flink as Swarm services, as the seed ran it.

``jobmanager`` is pinned to the topology's jobmanager node; ``taskmanager`` runs one replica per
node chosen by a placement policy, never on the Swarm manager or the jobmanager node. Ports are
fixed (jobmanager RPC 6123, blob 6124, query 6125; taskmanager RPC 6122, data 6121); endpoints are
``dnsrr`` (no IPVS needed); the REST API and web UI (8081) are published in host mode on the
jobmanager node, so the Flink UI opens from the host during a run.
"""

from __future__ import annotations

import logging
import json
import urllib.request
from dataclasses import dataclass

import docker.types

from ..core.run import step, wait_for
from ..provision.testbed import Testbed
from . import services
from ..model.placement import Placement

log = logging.getLogger(__name__)

JOBMANAGER = "jobmanager"
TASKMANAGER = "taskmanager"
REST_PORT = 8081
TM_LABEL = "fst-taskmanager"


@dataclass
class FlinkCluster:
    testbed: Testbed
    placement: Placement
    slots: int

    @property
    def rest_url(self) -> str:
        return f"http://{self.testbed.node(self.testbed.topology.jobmanager.hostname).address}:{REST_PORT}"

    @property
    def tunnel(self) -> str:
        """On hosts reached over SSH, the command that brings the web UI to this machine's
        localhost:8081 (when the VM's firewall does not open 8081 to you); "" otherwise."""
        url = self.testbed.node(self.testbed.topology.jobmanager.hostname).docker_url
        if not url.startswith("ssh://"):
            return ""
        target = url[len("ssh://"):]
        host, _, port = target.rpartition(":") if target.count(":") == 1 else (target, "", "")
        return f"ssh -N -L {REST_PORT}:localhost:{REST_PORT} {'-p ' + port + ' ' if port else ''}{host}"

    def rest(self, path: str, timeout: float = 10, method: str = "GET", body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.rest_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def taskmanagers(self) -> list[dict]:
        """Registered taskmanagers, each with the hostname of the node it runs on."""
        addr_to_node = services.task_addresses(self.testbed, TASKMANAGER)
        out = []
        for tm in self.rest("/taskmanagers")["taskmanagers"]:
            ip = tm["id"].rsplit(":", 1)[0] if ":" in tm["id"] else tm.get("path", "")
            ip = tm.get("path", "").split("@")[-1].split(":")[0] or ip
            node = addr_to_node.get(ip)
            out.append({"id": tm["id"], "address": ip, "node": node,
                        "cloud": self.testbed.node(node).cloud if node else None,
                        "slots": tm.get("slotsNumber")})
        return out

    @property
    def parallelism(self) -> int:
        return len(self.placement.nodes) * self.slots


def properties(slots: int, extra: dict[str, str] | None = None) -> str:
    props = {
        "jobmanager.rpc.address": JOBMANAGER,
        "rest.address": JOBMANAGER,
        "taskmanager.numberOfTaskSlots": str(slots),
        # spread subtasks over taskmanagers (without it, Flink fills one taskmanager first)
        "taskmanager.load-balance.mode": "SLOTS",
        "taskmanager.memory.process.size": "1024m",
        "jobmanager.memory.process.size": "1024m",
        "metrics.fetcher.update-interval": "1000",
    }
    props.update(extra or {})
    return "\n".join(f"{k}: {v}" for k, v in props.items())


MEMORY = 1536 * 2**20


def deploy(tb: Testbed, placement: Placement, slots: int, jobmanager_cpus: float = 0.0,
           taskmanager_cpus: float = 0.0, timeout: float = 180, spare_slots: int = 0,
           config: dict[str, str] | None = None) -> FlinkCluster:
    """Start (or rescale) the jobmanager and taskmanager services; returns when the jobmanager
    lists exactly ``len(placement.nodes)`` taskmanagers on the chosen nodes. CPU limits in cores
    (0: none); a running service with another limit is restarted. ``spare_slots`` per taskmanager
    beyond the ``slots`` the job's parallelism counts; ``config``: more Flink configuration (a
    change restarts the jobmanager and the taskmanagers)."""
    mgr = tb.manager.client
    jm_node = tb.topology.jobmanager.hostname
    jm_cpus, tm_cpus = jobmanager_cpus, taskmanager_cpus
    # spare slots: each taskmanager offers more than the job uses, so that a job that lost one can
    # run again on the others at once (its parallelism stays taskmanagers x slots)
    env = [f"FLINK_PROPERTIES={properties(slots + spare_slots, config)}"]
    cluster = FlinkCluster(tb, placement, slots)
    if not services.exists(tb, JOBMANAGER):
        with step(log, f"start the Flink jobmanager on {jm_node}"):
            mgr.services.create(
                tb.images["flink"], name=JOBMANAGER, args=["jobmanager"], env=env,
                networks=[tb.network], constraints=[f"node.hostname == {jm_node}"],
                endpoint_spec=docker.types.EndpointSpec(mode="dnsrr", ports=[
                    {"Protocol": "tcp", "TargetPort": REST_PORT, "PublishedPort": REST_PORT,
                     "PublishMode": "host"}]),
                labels=tb.labels(), container_labels=tb.labels(),
                resources=services.resources(jm_cpus, MEMORY))
    elif services.cpu_limit(jm := services.get(tb, JOBMANAGER)) != round(jm_cpus, 9) \
            or jm.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") != env:
        with step(log, f"restart the Flink jobmanager with {jm_cpus:g} cores" if jm_cpus else
                  "restart the Flink jobmanager without a CPU limit"):
            services.update(tb, JOBMANAGER, resources=services.resources(jm_cpus, MEMORY), env=env,
                            force_update=True)
    services.label_nodes(tb, TM_LABEL, placement.nodes)
    n = len(placement.nodes)
    with step(log, f"{n} taskmanager(s) on {', '.join(placement.nodes)}"):
        mode = docker.types.ServiceMode("replicated", replicas=n)
        spec = dict(
            name=TASKMANAGER, args=["taskmanager"], env=env, networks=[tb.network],
            constraints=[f"node.labels.{TM_LABEL} == true", "node.labels.role == worker"],
            maxreplicas=1, mode=mode, endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
            labels=tb.labels(), container_labels=tb.labels(),
            resources=services.resources(tm_cpus, MEMORY))
        existing = services.get(tb, TASKMANAGER)
        if existing is None:
            mgr.services.create(tb.images["flink"], **spec)
        elif (sorted(services.task_nodes(tb, TASKMANAGER)) != sorted(placement.nodes)
              or existing.attrs["Spec"]["TaskTemplate"]["ContainerSpec"].get("Env") != env
              or services.cpu_limit(existing) != round(tm_cpus, 9)):
            # Swarm does not move running tasks when node labels change, and a new slot count is a
            # new configuration: restart them all
            services.update(tb, TASKMANAGER, timeout=timeout, image=tb.images["flink"], force_update=True,
                            **spec)
        log.info(f"Flink web UI: {cluster.rest_url}" + (f" (or, through SSH: {cluster.tunnel}, then "
                 f"http://localhost:{REST_PORT})" if cluster.tunnel else ""), extra={"flink_ui": cluster.rest_url})

        def registered() -> bool:
            tms = cluster.taskmanagers()
            return (len(tms) == n and sorted(t["node"] or "?" for t in tms) == sorted(placement.nodes)
                    and all(t["slots"] == slots + spare_slots for t in tms))

        wait_for(registered, timeout, f"{n} taskmanagers registered with the jobmanager on "
                 f"{', '.join(placement.nodes)}", interval=1,
                 detail=lambda: _describe(cluster))
    return cluster


def _describe(cluster: FlinkCluster) -> str:
    lines = []
    try:
        tms = cluster.taskmanagers()
        lines.append(f"registered taskmanagers ({len(tms)}): " + (", ".join(
            f"{t['address']} on {t['node'] or 'unknown node'}" for t in tms) or "none"))
    except Exception as e:  # noqa: BLE001
        lines.append(f"jobmanager REST API at {cluster.rest_url} not answering: {e}")
    lines.append(services.describe(cluster.testbed, JOBMANAGER))
    lines.append(services.describe(cluster.testbed, TASKMANAGER))
    return "\n".join(lines)


ENDING = ("CANCELLING", "FAILING")     # a job that still holds its slots and uses CPU


def wait_jobs_ended(tb: Testbed, cluster: FlinkCluster | None = None, timeout: float = 60) -> None:
    """Until no Flink job of the testbed is still ending (a cell's, whose cancel the cell did not
    wait for): before a job is submitted and before the network is measured, so that no job's end
    overlaps a measurement. Nothing to wait for where Flink does not run."""
    if cluster is None:
        if not services.exists(tb, JOBMANAGER):
            return
        cluster = FlinkCluster(tb, None, 1)

    def ending() -> list[str]:
        return [j["id"] for j in cluster.rest("/jobs")["jobs"] if j["status"] in ENDING]
    try:
        now = ending()
    except OSError:         # its REST API not up (yet, or any more): no job of it runs
        return
    if now:
        with step(log, f"wait for job {', '.join(now)} to end"):
            wait_for(lambda: not ending(), timeout, "the jobs before to end", interval=0.2,
                     detail=lambda: f"still ending: {', '.join(ending())}")

