"""The topology model: the seed parses as the runbook describes; bad files fail naming the field."""

from __future__ import annotations

import textwrap

import pytest

from testbed.model.topology import SEED_TOPOLOGY, TopologyError, load, parse, parse_memory

GOOD = """
name: t
clouds:
  a:
    nodes:
      - {hostname: m, role: manager}
      - {hostname: j, role: jobmanager}
  b:
    nodes:
      - {hostname: w, role: worker, cpus: 1, memory: 512MiB}
links:
  - {clouds: [a, b], rtt_ms: 20, bandwidth_mbit: 100}
"""


def test_seed_is_the_runbook():
    t = load(SEED_TOPOLOGY)
    assert {c: [n.hostname for n in ns] for c, ns in t.clouds.items()} == {
        "azure": ["azure-swarm-manager", "azure-flink-jobmanager", "azure-swarm-worker-1", "azure-swarm-worker-2"],
        "google": ["google-cloud-worker-1"],
    }
    assert t.manager.hostname == "azure-swarm-manager"
    assert t.jobmanager.hostname == "azure-flink-jobmanager"
    assert all(n.cpus == 2 and n.memory_bytes == 7 * 10**9 for n in t.nodes)
    assert t.network.driver == "overlay"
    assert t.broker_node == "azure-swarm-manager"
    assert len(t.sha256) == 64


def test_good_file_values():
    t = parse(GOOD)
    w = t.node("w")
    assert (w.cloud, w.role, w.cpus, w.memory_bytes) == ("b", "worker", 1.0, 512 * 2**20)
    assert t.links[0].clouds == ("a", "b") and t.links[0].rtt_ms == 20 and t.links[0].bandwidth_mbit == 100
    with pytest.raises(KeyError, match="no node 'x'"):
        t.node("x")


def test_the_broker_image_is_the_topologys_choice():
    from testbed.stack.kafka import BrokerSpec
    assert BrokerSpec.of(parse(GOOD)) == BrokerSpec()          # Tansu, built here
    kafka = parse(GOOD + textwrap.dedent("""
        broker:
          node: w
          image: apache/kafka:3.9.1
          env: {KAFKA_ADVERTISED_LISTENERS: "PLAINTEXT://broker:9092", KAFKA_NUM_PARTITIONS: 4}
        """))
    spec = BrokerSpec.of(kafka)
    assert (kafka.broker_node, spec.image, spec.args, spec.name) == ("w", "apache/kafka:3.9.1", (), "apache/kafka:3.9.1")
    assert spec.env == {"KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://broker:9092", "KAFKA_NUM_PARTITIONS": "4"}


def _problems(text: str) -> str:
    with pytest.raises(TopologyError) as e:
        parse(textwrap.dedent(text), source="bad.yaml")
    return str(e.value)


@pytest.mark.parametrize("change, path, says", [
    (("role: worker, cpus: 1", "role: boss, cpus: 1"), "clouds.b.nodes[0].role",
     "unknown role 'boss'; allowed: manager, jobmanager, worker"),
    (("{hostname: j, role: jobmanager}", "{hostname: j, role: manager}"), "clouds",
     "exactly one node must have role 'manager' (the Swarm manager); found 2: m, j"),
    (("{hostname: m, role: manager}", "{hostname: m, role: worker}"), "clouds",
     "exactly one node must have role 'manager'"),
    (("{hostname: j, role: jobmanager}", "{hostname: j, role: worker}"), "clouds",
     "exactly one node must have role 'jobmanager'"),
    (("hostname: w,", "hostname: m,"), "clouds.b.nodes[0].hostname",
     "duplicate hostname 'm' (also at clouds.a.nodes[0])"),
    (("clouds: [a, b]", "clouds: [a, gcp]"), "links[0].clouds[1]", "unknown cloud 'gcp'; clouds: a, b"),
    (("cpus: 1", "cpus: two"), "clouds.b.nodes[0].cpus", "expected a number, got 'two'"),
    (("cpus: 1", "cpus: 0"), "clouds.b.nodes[0].cpus", "out of range"),
    (("memory: 512MiB", "memory: lots"), "clouds.b.nodes[0].memory", "'lots' is not a size"),
    (("memory: 512MiB", "memory: 0"), "clouds.b.nodes[0].memory", "0 is too small; a node needs at least 256MiB"),
    (("memory: 512MiB", "memory: -5GB"), "clouds.b.nodes[0].memory", "'-5GB' is not a size"),
    (("rtt_ms: 20", "rtt_ms: -1"), "links[0].rtt_ms", "-1 is out of range; allowed: >= 0"),
    (("rtt_ms: 20", "rtt_ms: 20, loss: 1"), "links[0].loss", "unknown key; allowed: clouds, rtt_ms"),
    (("{hostname: m, role: manager}", "{hostname: m, role: manager, gpu: 1}"), "clouds.a.nodes[0].gpu",
     "unknown key; allowed: hostname, role, cpus, memory"),
    (("name: t", "name: t\nnetwork: {driver: flannel}"), "network.driver",
     "unknown driver 'flannel'; allowed: overlay, weave"),
    (("name: t", "name: t\nzones: 3"), "zones", "unknown key"),
    (("name: t", "name: t\nbroker: {node: nowhere}"), "broker.node", "unknown node 'nowhere'; nodes: m, j, w"),
    (("name: t", "name: t\nbroker: {args: [serve]}"), "broker.args", "args need broker.image"),
    (("name: t", "name: t\nbroker: {image: k, env: [A=1]}"), "broker.env", "expected a mapping of names to values"),
    (("name: t", "name: t\nbroker: {image: k, port: 1}"), "broker.port", "unknown key; allowed: node, image, args, env"),
    (("hostname: w,", "hostname: Worker_1,"), "clouds.b.nodes[0].hostname", "not a valid hostname"),
])
def test_bad_files_name_the_field(change, path, says):
    old, new = change
    assert old in GOOD
    msg = _problems(GOOD.replace(old, new, 1))
    assert "bad.yaml" in msg
    assert f"{path}: " in msg and says in msg, msg


def test_every_problem_is_reported_at_once():
    msg = _problems(GOOD.replace("role: worker", "role: boss").replace("clouds: [a, b]", "clouds: [a, c]"))
    assert "clouds.b.nodes[0].role" in msg and "links[0].clouds[1]" in msg


def test_not_yaml_and_missing_clouds():
    assert "not valid YAML" in _problems("clouds: [unclosed")
    assert "clouds: missing or empty" in _problems("name: x\n")


def test_unreadable_file_names_it(tmp_path):
    with pytest.raises(TopologyError, match="nope.yaml: cannot read file"):
        load(tmp_path / "nope.yaml")


@pytest.mark.parametrize("text, expected", [
    ("7GB", 7 * 10**9), ("7GiB", 7 * 2**30), ("512m", 512 * 10**6), ("512MiB", 512 * 2**20), (1024, 1024),
])
def test_memory_sizes(text, expected):
    assert parse_memory(text) == expected
