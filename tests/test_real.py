"""The real-cloud path (--cloud=real --inventory): inventory, preflight, dry run, and the whole run
against emulated nodes that run sshd, through SSH and the Docker API over ssh:// only."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from testbed.core.run import wait_for
from testbed.experiment import faults
from testbed.model.scenario import parse
from testbed.providers import preflight
from testbed.stack import services
from testbed.experiment.cell import CellSpec, run_cell
from testbed.model.inventory import InventoryError, load
from testbed.providers.ssh import SshError
from testbed.core.run import LABEL_RUN
from testbed.providers import for_cloud
from testbed.providers.real import RealProvider
from testbed.provision.testbed import Testbed
from tests.conftest import messages, records
from testbed.model.topology import load as load_topology
from testbed.workload.pipeline import WindowSpec

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [
    {"hostname": "azure-swarm-manager", "cloud": "azure", "role": "manager", "address": "203.0.113.10",
     "private_address": "10.0.0.4"},
    {"hostname": "azure-flink-jobmanager", "cloud": "azure", "role": "jobmanager", "address": "203.0.113.11"},
    {"hostname": "google-cloud-worker-1", "cloud": "google", "role": "worker", "address": "198.51.100.20",
     "private_address": "10.132.0.2"},
]


def _key(tmp_path: Path) -> tuple[Path, str]:
    """A fresh ed25519 key pair: the private key file and the public key line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "id_ed25519"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return path, pub.decode() + " fst-test"


def _write(tmp_path: Path, doc: dict) -> Path:
    p = tmp_path / "hosts.yaml"
    p.write_text(yaml.safe_dump(doc, sort_keys=False))
    return p


# -- inventory ---------------------------------------------------------------------------------
def test_example_inventory_describes_the_seeds_five_vms(tmp_path):
    key, _ = _key(tmp_path)
    doc = yaml.safe_load((ROOT / "examples" / "inventory.yaml").read_text())
    doc["ssh"]["key"] = str(key)
    inv = load(_write(tmp_path, doc))
    seed = load_topology("seed")
    assert [(h.hostname, h.cloud, h.role) for h in inv.hosts] == [(n.hostname, n.cloud, n.role) for n in seed.nodes]
    assert inv.host("google-cloud-worker-1").ssh.user == "thalita_vergilio"   # a per-host override
    assert inv.topology.manager.hostname == "azure-swarm-manager"


@pytest.mark.parametrize("change, field, words", [
    (lambda d: d["ssh"].update(key="/nonexistent/id_rsa"), "ssh.key", "does not exist"),
    (lambda d: d["hosts"][1].update(key="missing-key"), "hosts[1].key", "does not exist"),
    (lambda d: d["hosts"][2].update(role="taskmanager"), "hosts[2].role", "allowed: manager, jobmanager, worker"),
    (lambda d: d["hosts"][0].pop("address"), "hosts[0].address", "missing"),
    (lambda d: d["hosts"][1].update(address="not an address!"), "hosts[1].address", "neither an IP"),
    (lambda d: d["hosts"][2].update(hostname="azure-swarm-manager"), "hosts[2].hostname", "duplicate"),
    (lambda d: d["hosts"][0].update(port=70000), "hosts[0].port", "1-65535"),
    (lambda d: d["ssh"].pop("user"), "ssh.user", "missing"),
    (lambda d: d["hosts"][0].update(role="worker"), "hosts", "exactly one node must have role 'manager'"),
    (lambda d: d.update(network={"driver": "flannel"}), "network.driver", "allowed: overlay, weave"),
    (lambda d: d["hosts"][0].update(passwd="x"), "hosts[0].passwd", "unknown key"),
])
def test_bad_inventory_fails_naming_the_file_and_field(tmp_path, change, field, words):
    key, _ = _key(tmp_path)
    doc = {"ssh": {"user": "root", "key": str(key)}, "hosts": [dict(h) for h in HOSTS]}
    change(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InventoryError) as e:
        load(path)
    msg = str(e.value)
    assert f"{path}: {field}" in msg and words in msg, msg


def test_unreachable_host_fails_preflight_naming_it(tmp_path):
    """Port 1 on loopback: nothing listens there, so the SSH connection is refused at once."""
    key, _ = _key(tmp_path)
    doc = {"ssh": {"user": "root", "key": str(key), "timeout": 3, "known_hosts": str(tmp_path / "kh")},
           "hosts": [{**h, "address": "127.0.0.1", "port": 1} for h in HOSTS]}
    for h in doc["hosts"]:
        h.pop("private_address", None)
    inv = load(_write(tmp_path, doc))
    with pytest.raises(SshError) as e:
        preflight.run(inv)
    for h in HOSTS:
        assert f"{h['hostname']} (root@127.0.0.1:1) is unreachable over SSH" in str(e.value)


# -- dry run -----------------------------------------------------------------------------------
def test_dry_run_of_weave_lists_plugin_and_weave_commands_per_host_in_order(tmp_path):
    key, _ = _key(tmp_path)
    doc = {"ssh": {"user": "root", "key": str(key)}, "network": {"driver": "weave", "address_pool": "10.40.0.0/16"},
           "hosts": [dict(h) for h in HOSTS]}
    inv = load(_write(tmp_path, doc))
    text = Testbed.dry_run(RealProvider(inv))
    sections: dict[str, list[str]] = {}
    for line in text.split("per host:")[1].splitlines():
        if re.fullmatch(r"  \S+:", line):
            host = sections.setdefault(line.strip()[:-1], [])
        elif line.startswith("    "):
            host.append(line)
    plugin = "weaveworks/net-plugin:2.8.1"
    for h in HOSTS:
        cmds = [line.split("$ ", 1)[1] for line in sections[h["hostname"]]]
        expect = [f"docker plugin install --grant-all-permissions --disable {plugin}",
                  f"docker plugin set {plugin} IPALLOC_RANGE=10.40.0.0/16",
                  f"docker plugin enable {plugin}", "weave launch"]
        if h["role"] != "manager":
            expect.append("weave connect 203.0.113.10")
        expect.append("docker swarm init" if h["role"] == "manager" else "docker swarm join")
        found = [next(i for i, c in enumerate(cmds) if c.startswith(e)) for e in expect]
        assert found == sorted(found), (h["hostname"], cmds)
    mgr = [line.split("$ ", 1)[1] for line in sections["azure-swarm-manager"]]
    assert any(c.startswith(f"docker network create --driver {plugin} --attachable") for c in mgr)
    # down removes a killed run's partition routes on every host, first
    for h in HOSTS:
        down = [c.split("$ ", 1)[1] for c in sections[h["hostname"]]]
        flush = [i for i, c in enumerate(down) if f"ip route flush proto {faults.ROUTE_PROTO}" in c]
        leave = [i for i, c in enumerate(down) if c.startswith("docker swarm leave")]
        assert len(flush) == 1 and flush[0] < leave[0], (h["hostname"], down)
    # NAT: the public address is advertised, Swarm listens on the private one
    assert "--advertise-addr 203.0.113.10 --listen-addr 10.0.0.4:2377 --data-path-addr 203.0.113.10" in text
    # secrets: a placeholder for the join token, the key file by name only
    assert "--token <worker-join-token>" in text
    assert key.read_text().splitlines()[1] not in text


def test_pytest_dry_run_option_prints_the_plan_and_runs_nothing(tmp_path):
    import subprocess
    import sys
    key, _ = _key(tmp_path)
    path = _write(tmp_path, {"ssh": {"user": "root", "key": str(key)}, "hosts": [dict(h) for h in HOSTS]})
    out = subprocess.run([sys.executable, "-m", "pytest", str(ROOT / "experiments"), "-p", "no:xdist",
                          "--cloud=real", f"--inventory={path}", "--dry-run"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "docker swarm join --token <worker-join-token>" in out.stdout
    assert "docker network create --driver overlay" in out.stdout
    assert "passed" not in out.stdout and "dry run: nothing was executed" in out.stdout + out.stderr


# -- the whole path against emulated nodes running sshd -----------------------------------------
@pytest.fixture(scope="module")
def ssh_hosts(tmp_path_factory, fst_locks):
    """Three emulated VMs (no Swarm yet) that accept a fresh key over SSH, and their inventory."""
    tmp = tmp_path_factory.mktemp("ssh-hosts")
    key, pub = _key(tmp)
    with fst_locks.exclusive("lifecycle"), fst_locks.load():    # a topology of its own: as lifecycle tests
        nodes = Testbed.up(for_cloud("emulated"), load_topology(ROOT / "tests" / "topologies" / "ssh.yaml"),
                           ssh_authorized_keys=pub, form_swarm=False)
    try:
        doc = {"name": "ssh-hosts",
               "ssh": {"user": "root", "key": str(key), "known_hosts": str(tmp / "known_hosts")},
               "hosts": [{"hostname": m.hostname, "cloud": m.cloud, "role": m.role, "address": m.address}
                         for m in nodes.machines]}
        path = tmp / "hosts.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        yield nodes, load(path), key
    finally:
        with fst_locks.load():      # removing is light: not during a measurement, beside anything else
            nodes.down()


def _reaches(tb: Testbed, src: str, dst: str) -> bool:
    out = services.run_once(tb.node(src), tb.images["driver"], [f"ping -n -c 2 -W 1 {tb.node(dst).address}"],
                            entrypoint=["sh", "-c"], network_mode="host", labels=tb.labels(), timeout=60,
                            what="ping", ok_codes=(0, 1, 2))     # 2: a blackhole route refuses the send
    return " 0% packet loss" in out


def _partition_on_the_hosts(tb: Testbed) -> None:
    """Without the emulated router, a partition is blackhole routes on the hosts, and healing removes them."""
    assert _reaches(tb, "west-worker", "east-manager")
    inj = faults.Injector(tb, parse("- {at: 0s, action: partition, clouds: [east, west]}\n", "cut.yaml"))
    inj.check(["west-worker"])
    inj.start(time.time())
    try:
        wait_for(lambda: any(e["action"] == "partition" for e in inj.events), 60, "the partition", interval=0.5)
        assert not _reaches(tb, "west-worker", "east-manager") and not _reaches(tb, "east-jobmanager", "west-worker")
        assert _reaches(tb, "east-jobmanager", "east-manager")          # inside a cloud: untouched
    finally:
        inj.stop()                                                       # heals: the routes are gone
    assert _reaches(tb, "west-worker", "east-manager") and _reaches(tb, "east-manager", "west-worker")
    for m in tb.machines:
        routes = services.run_once(m, tb.images["driver"], [f"ip route show proto {faults.ROUTE_PROTO}"],
                                   entrypoint=["sh", "-c"], network_mode="host", labels=tb.labels(), timeout=60,
                                   what="routes")
        assert routes.strip() == "", (m.hostname, routes)
    with pytest.raises(faults.FaultError, match="link needs the emulated WAN router.*not built"):
        faults.Injector(tb, parse("- {at: 1s, action: link, clouds: [east, west], rtt_ms: 50}\n", "slow.yaml")).check([])


def _iptables(nodes: Testbed, hostname: str, action: str, rule: list[str]) -> None:
    container = nodes.provider.client.containers.get(nodes.node(hostname).info["container"])
    code, out = container.exec_run(["iptables", action, "INPUT", *rule])
    assert code == 0, out


@pytest.mark.engine
@pytest.mark.extended
@pytest.mark.exclusive("lifecycle")     # on nodes of its own: beside the seed's tests, not during a measurement
def test_preflight_names_a_port_closed_by_a_firewall_rule(ssh_hosts):
    nodes, inv, _ = ssh_hosts
    rule = ["-p", "tcp", "--dport", "7946", "-j", "DROP"]
    _iptables(nodes, "west-worker", "-I", rule)
    try:
        report = preflight.run(inv)
    finally:
        _iptables(nodes, "west-worker", "-D", rule)
    print(report.text())
    assert not report.ok
    bad = {(r["src"], r["dst"], r["port"]) for r in report.matrix if r["result"] != "ok"}
    assert bad == {("east-manager", "west-worker", "7946/tcp"), ("east-jobmanager", "west-worker", "7946/tcp")}
    assert any("7946/tcp" in p and "east-manager" in p and "west-worker" in p for p in report.problems)
    assert "FAIL" in report.port_table()

    report = preflight.run(inv)   # the rule is gone
    assert report.ok, report.text()
    assert len(report.matrix) == 3 * 2 * len(preflight.ports("overlay"))
    assert {h["engine"] for h in report.hosts} and all(h["swarm"] == "inactive" for h in report.hosts)


@pytest.mark.engine
@pytest.mark.extended
@pytest.mark.exclusive("lifecycle")
def test_real_path_runs_an_experiment_cell_over_ssh(ssh_hosts):
    nodes, inv, key = ssh_hosts
    with records() as said:
        tb = Testbed.up(RealProvider(inv))
    try:
        assert all(m.docker_url.startswith("ssh://root@") for m in tb.machines)
        token = tb.manager.client.swarm.attrs["JoinTokens"]["Worker"]
        swarm_nodes = {n.attrs["Description"]["Hostname"]: n.attrs for n in tb.manager.client.nodes.list()}
        assert set(swarm_nodes) == {"east-manager", "east-jobmanager", "west-worker"}
        for m in tb.machines:   # every node advertises its own address
            assert swarm_nodes[m.hostname]["Status"]["Addr"] == m.address
        with records() as during:
            row = run_cell(tb, CellSpec(taskmanagers=1, placement="single-cloud:west", rate=200, duration=12,
                                        warmup=3, window=WindowSpec(4, 1, 1)))
        said += during
        assert row["taskmanager_nodes"] == "west-worker" and row["registered_taskmanagers"] == 1
        assert row["events_sent"] > 1000 and row["lost"] == 0 and row["result_records"] > 0
        assert row["latency_p50_ms"] > 0 and row["provider"] == "real"
        _partition_on_the_hosts(tb)
        # a partition its run did not heal (killed mid-cell): `down` removes its routes
        left = faults.Injector(tb, parse("- {at: 0s, action: partition, clouds: [east, west]}\n", "cut.yaml"))
        left.start(time.time())
        wait_for(lambda: any(e["action"] == "partition" for e in left.events), 60, "the partition", interval=0.5)
        assert not _reaches(tb, "west-worker", "east-manager")
    finally:
        tb.down()
    # nothing left on the hosts: no swarm, no run containers, no marker, no route
    for m in nodes.machines:
        routes = services.run_once(m, tb.images["driver"], [f"ip route show proto {faults.ROUTE_PROTO}"],
                                   entrypoint=["sh", "-c"], network_mode="host", labels=tb.labels(), timeout=60,
                                   what="routes")
        assert routes.strip() == "", (m.hostname, routes)
        info = m.client.info()
        assert info["Swarm"]["LocalNodeState"] == "inactive", m.hostname
        assert not m.client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={tb.run_id}"})
        assert not m.client.volumes.list(filters={"label": f"{LABEL_RUN}={tb.run_id}"})
    # no secrets in what the run said
    text = "\n".join(messages(said))
    assert token not in text
    assert key.read_text().splitlines()[1] not in text
