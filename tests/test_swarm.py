"""The seed topology, provisioned on the real engine: a 5-node Swarm across two emulated clouds."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
import uuid

import docker
import pytest
from docker.types import EndpointSpec

from testbed.providers.engine import host_client
from testbed.core.run import wait_for

pytestmark = pytest.mark.engine

SEED = {
    "azure-swarm-manager": ("azure", "manager"),
    "azure-flink-jobmanager": ("azure", "jobmanager"),
    "azure-swarm-worker-1": ("azure", "worker"),
    "azure-swarm-worker-2": ("azure", "worker"),
    "google-cloud-worker-1": ("google", "worker"),
}


def _node_cli(fst_testbed, hostname: str, *cmd: str) -> str:
    """Run the docker CLI *inside* a node, independently of the library's API calls."""
    container = host_client().containers.get(fst_testbed.node(hostname).info["container"])
    code, out = container.exec_run(["docker", *cmd])
    assert code == 0, out.decode()
    return out.decode()


def test_docker_node_ls_on_the_manager_lists_the_seed(fst_testbed):
    out = _node_cli(fst_testbed, "azure-swarm-manager", "node", "ls", "--format", "{{.Hostname}} {{.Status}}")
    rows = dict(line.split() for line in out.strip().splitlines())
    assert rows == {h: "Ready" for h in SEED}
    for hostname, (cloud, role) in SEED.items():
        labels = json.loads(_node_cli(fst_testbed, "azure-swarm-manager", "node", "inspect", hostname,
                                      "--format", "{{json .Spec.Labels}}"))
        assert (labels["cloud"], labels["role"]) == (cloud, role), hostname


def test_every_node_advertises_its_own_address(fst_testbed):
    addrs = {n.attrs["Description"]["Hostname"]: n.attrs["Status"]["Addr"]
             for n in fst_testbed.manager.client.nodes.list()}
    assert addrs == {m.hostname: m.address for m in fst_testbed.machines}
    # each cloud is its own LAN: every node sits in its cloud's subnet, and the subnets differ
    subnets = {m.cloud: ipaddress.ip_network(m.info["subnet"]) for m in fst_testbed.machines}
    assert len(set(subnets.values())) == 2
    for m in fst_testbed.machines:
        assert ipaddress.ip_address(m.address) in subnets[m.cloud]


@pytest.mark.parametrize("server, client", [
    ("google-cloud-worker-1", "azure-swarm-worker-1"),
    ("azure-swarm-worker-2", "google-cloud-worker-1"),
])
def test_overlay_reaches_across_clouds_by_service_name(fst_testbed, server, client):
    name = f"echo-{uuid.uuid4().hex[:6]}"
    svc = fst_testbed.manager.client.services.create(
        fst_testbed.images["driver"], name=name, args=["-m", "http.server", "8000"], networks=[fst_testbed.network],
        constraints=[f"node.hostname == {server}"], endpoint_spec=EndpointSpec(mode="dnsrr"),
        labels=fst_testbed.labels())
    try:
        wait_for(lambda: any(t["Status"]["State"] == "running" for t in svc.tasks()), 60,
                 f"service {name} running on {server}", detail=lambda: json.dumps(svc.tasks(), indent=1)[-2000:])
        probe = ("import socket, urllib.request, time\n"
                 "for i in range(60):\n"
                 "    try:\n"
                 f"        r = urllib.request.urlopen('http://{name}:8000/', timeout=5); break\n"
                 "    except OSError: time.sleep(0.5)\n"
                 f"print(socket.gethostname(), socket.gethostbyname('{name}'), r.status)\n")
        out = fst_testbed.node(client).client.containers.run(
            fst_testbed.images["driver"], ["-c", probe], network=fst_testbed.network, remove=True,
            labels=fst_testbed.labels()).decode()
        host, ip, status = out.split()
        assert status == "200"
        # an overlay address from the topology's pool, not an underlay one
        assert ipaddress.ip_address(ip) in ipaddress.ip_network(fst_testbed.topology.network.address_pool)
    finally:
        svc.remove()


def test_status_cli_reports_the_run(fst_testbed):
    r = subprocess.run([sys.executable, "-m", "testbed", "status", "--json", "--run", fst_testbed.run_id],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    (st,) = json.loads(r.stdout)
    assert st["run_id"] == fst_testbed.run_id
    assert st["clouds"] == {"azure": [h for h in SEED if SEED[h][0] == "azure"], "google": ["google-cloud-worker-1"]}
    assert {n["hostname"]: n["state"] for n in st["swarm"]} == {h: "ready" for h in SEED}
    r = subprocess.run([sys.executable, "-m", "testbed", "status", "--run", fst_testbed.run_id],
                       capture_output=True, text=True, timeout=60)
    line = next(ln for ln in r.stdout.splitlines() if "google-cloud-worker-1" in ln)
    assert "cloud=google" in line and "role=worker" in line and "ready" in line, r.stdout
    wan = next(ln for ln in r.stdout.splitlines() if "azure -> google" in ln)
    assert "10 ms" in wan and "100.0 Mbit/s" in wan, r.stdout


def test_node_engines_answer_over_the_docker_api(fst_testbed):
    for m in fst_testbed.machines:
        info = m.client.info()
        assert info["Name"] == m.hostname
        assert info["Swarm"]["LocalNodeState"] == "active"
        with pytest.raises(docker.errors.ImageNotFound):
            m.client.images.get("no-such-image-here")


def test_nodes_are_capped_at_their_vms_size(fst_testbed):
    """The seed's VMs have 2 CPUs / 7 GB: each node container gets that as its limit (CPUs no
    more than the host has) when no cell scales it down (provision/cpu.py sets the budgets)."""
    from testbed.providers.emulated import CPU_PERIOD_US
    from testbed.provision import cpu

    cpu.apply(fst_testbed, 0)
    engine = host_client()
    ncpu = engine.info()["NCPU"]
    for node in fst_testbed.topology.nodes:
        hc = engine.containers.get(fst_testbed.node(node.hostname).info["container"]).attrs["HostConfig"]
        assert hc["Memory"] == node.memory_bytes == 7 * 10**9, node.hostname
        assert hc["CpuQuota"] == int(min(node.cpus, ncpu) * CPU_PERIOD_US), node.hostname
