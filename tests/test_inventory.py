"""The inventory of real hosts: each host validates at its own path, and its topology is the topology
model's own (no Docker, no SSH: the key files are made in tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from testbed.model.inventory import InventoryError, load
from testbed.model.topology import SEED_TOPOLOGY, parse
from testbed.model.topology import load as load_topology

ROOT = Path(__file__).resolve().parent.parent
HOSTS = [
    {"hostname": "azure-swarm-manager", "cloud": "azure", "role": "manager", "address": "203.0.113.10"},
    {"hostname": "azure-flink-jobmanager", "cloud": "azure", "role": "jobmanager", "address": "203.0.113.11"},
    {"hostname": "google-cloud-worker-1", "cloud": "google", "role": "worker", "address": "198.51.100.20",
     "private_address": "10.132.0.2"},
]


def _write(tmp_path: Path, doc: dict) -> Path:
    (tmp_path / "id_test").write_text("not a real key; only its existence is checked\n")
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _doc(**changes) -> dict:
    """A valid inventory; the key file is named relative to the inventory's folder."""
    return {"name": "t", "ssh": {"user": "root", "key": "id_test"}, "hosts": [dict(h) for h in HOSTS], **changes}


def _problems(tmp_path: Path, doc: dict) -> list[tuple[str, str]]:
    path = _write(tmp_path, doc)
    with pytest.raises(InventoryError) as e:
        load(path)
    assert str(e.value).startswith(f"invalid inventory\n  {path}: ")
    return e.value.problems


def test_a_valid_inventory(tmp_path):
    inv = load(_write(tmp_path, _doc()))
    assert [h.hostname for h in inv.hosts] == [h["hostname"] for h in HOSTS]
    ssh = inv.host("google-cloud-worker-1").ssh
    assert (ssh.user, ssh.key, ssh.port, ssh.sudo) == ("root", str(tmp_path / "id_test"), 22, False)
    assert inv.host("google-cloud-worker-1").private_address == "10.132.0.2"
    t = inv.topology
    assert (t.name, t.manager.hostname, t.jobmanager.hostname, t.broker_node) == (
        "t", "azure-swarm-manager", "azure-flink-jobmanager", "azure-swarm-manager")
    assert {c: [n.hostname for n in ns] for c, ns in t.clouds.items()} == {
        "azure": ["azure-swarm-manager", "azure-flink-jobmanager"], "google": ["google-cloud-worker-1"]}
    assert all(n.cpus == 2 and n.memory_bytes == 7 * 10**9 for n in t.nodes)


def test_a_host_overrides_the_ssh_defaults_and_sizes_its_node(tmp_path):
    doc = _doc()
    doc["hosts"][2].update(user="g", port=2222, sudo=True, cpus=4, memory="16GiB")
    inv = load(_write(tmp_path, doc))
    ssh = inv.host("google-cloud-worker-1").ssh
    assert (ssh.user, ssh.port, ssh.sudo, ssh.where) == ("g", 2222, True, "g@198.51.100.20:2222")
    assert inv.host("azure-swarm-manager").ssh.user == "root"
    node = inv.topology.node("google-cloud-worker-1")
    assert (node.cpus, node.memory_bytes) == (4.0, 16 * 2**30)


def test_the_key_file_may_be_under_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    inv = load(_write(tmp_path, _doc(ssh={"user": "root", "key": "~/id_test"})))
    assert inv.hosts[0].ssh.key == str(tmp_path / "id_test")


def test_the_topology_text_reads_back_to_the_same_topology(tmp_path):
    doc = _doc(network={"driver": "weave", "address_pool": "10.40.0.0/16"},
               broker={"node": "google-cloud-worker-1", "image": "apache/kafka:3.9.1", "env": {"A": 1}})
    doc["hosts"][1]["memory"] = "512MiB"
    path = _write(tmp_path, doc)
    inv = load(path)
    t = inv.topology
    assert parse(t.text, source=t.source) == t            # what a run's label holds, read back
    assert (t.network.driver, t.broker_node, t.broker_env) == ("weave", "google-cloud-worker-1", (("A", "1"),))
    assert t.node("azure-flink-jobmanager").memory_bytes == 512 * 2**20
    assert len(t.sha256) == 64 and load(path).topology.sha256 == t.sha256   # the same inventory, the same sha


def test_a_bad_field_on_a_host_is_the_only_problem_and_names_the_host(tmp_path):
    doc = _doc()
    doc["hosts"][1]["memory"] = "lots"                   # the jobmanager: its role still counts
    assert _problems(tmp_path, doc) == [("hosts[1].memory", "'lots' is not a size; use e.g. 7GB, 7GiB or 512MiB")]


@pytest.mark.parametrize("i, change, path, says", [
    (0, {"cpus": "two"}, "hosts[0].cpus", "expected a number, got 'two'"),
    (1, {"cpus": 0}, "hosts[1].cpus", "0 is out of range; allowed: > 0"),
    (1, {"memory": "100MiB"}, "hosts[1].memory", "'100MiB' is too small; a node needs at least 256MiB"),
    (1, {"gpu": 1}, "hosts[1].gpu", "unknown key; allowed: hostname, role, cpus, memory, cloud, address"),
    (2, {"role": "boss"}, "hosts[2].role", "unknown role 'boss'; allowed: manager, jobmanager, worker"),
    (2, {"hostname": "azure-swarm-manager"}, "hosts[2].hostname",
     "duplicate hostname 'azure-swarm-manager' (also at hosts[0])"),
    (2, {"hostname": "Worker_1"}, "hosts[2].hostname", "'Worker_1' is not a valid hostname"),
    (2, {"cloud": "GCP"}, "hosts[2].cloud", "'GCP' is not a valid cloud name"),
    (2, {"private_address": "nope"}, "hosts[2].private_address", "'nope' is not an IP address"),
    (0, {"port": 0}, "hosts[0].port", "0 is out of range; allowed: 1-65535"),
    (0, {"sudo": "yes please"}, "hosts[0].sudo", "expected true or false, got 'yes please'"),
    (1, {"key": "nope"}, "hosts[1].key", "key file 'nope' does not exist"),
])
def test_a_bad_host_field_is_named_at_its_path(tmp_path, i, change, path, says):
    doc = _doc()
    doc["hosts"][i].update(change)
    problems = _problems(tmp_path, doc)
    assert len(problems) == 1 and problems[0][0] == path and says in problems[0][1], problems


def test_every_problem_is_reported_at_once(tmp_path):
    doc = _doc(ssh={"key": "id_test", "host_keys": "trusting"}, network={"driver": "flannel"})
    doc["hosts"][0].update(port="22")
    doc["hosts"][1].update(memory="lots")
    doc["hosts"][2].pop("address")
    assert dict(_problems(tmp_path, doc)) == {
        "ssh.host_keys": "unknown policy 'trusting'; allowed: accept-new, strict",
        "network.driver": "unknown driver 'flannel'; allowed: overlay, weave",
        "hosts[0].port": "expected a whole number, got '22'",
        "hosts[1].memory": "'lots' is not a size; use e.g. 7GB, 7GiB or 512MiB",
        "hosts[2].address": "missing; the host's address (IP or DNS name) the harness and the other hosts reach it at",
        "ssh.user": "missing; the SSH login name (ssh.user or the host's user)",   # said once, not once per host
    }


def test_roles_and_references_between_hosts(tmp_path):
    doc = _doc(broker={"node": "nowhere", "args": ["serve"]})
    doc["hosts"][1]["role"] = "manager"
    assert _problems(tmp_path, doc) == [
        ("broker.node", ("unknown node 'nowhere'; nodes: azure-swarm-manager, azure-flink-jobmanager, "
                         "google-cloud-worker-1")),
        ("broker.args", "args need broker.image (the default Tansu image has its own command)"),
        ("hosts", ("exactly one node must have role 'manager' (the Swarm manager); found 2: "
                   "azure-swarm-manager, azure-flink-jobmanager")),
        ("hosts", "exactly one node must have role 'jobmanager' (the Flink jobmanager); found 0"),
    ]


def test_an_empty_or_unreadable_inventory(tmp_path):
    assert _problems(tmp_path, {"name": "x"}) == [
        ("hosts", "missing or empty; list the VMs (hostname, cloud, role, address)")]
    with pytest.raises(InventoryError, match="nope.yaml: cannot read file"):
        load(tmp_path / "nope.yaml")


def test_the_example_inventory_is_the_seed(tmp_path):
    doc = yaml.safe_load((ROOT / "examples" / "inventory.yaml").read_text())
    doc["ssh"]["key"] = "id_test"
    inv = load(_write(tmp_path, doc))
    seed = load_topology(SEED_TOPOLOGY)
    assert [(n.hostname, n.cloud, n.role, n.cpus, n.memory_bytes) for n in inv.topology.nodes] == [
        (n.hostname, n.cloud, n.role, n.cpus, n.memory_bytes) for n in seed.nodes]
