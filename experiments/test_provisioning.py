"""Experiment: how long the emulated seed topology takes to come up and go away.

Provisions the topology (--topology, default the seed) on its own, separate from the session's
``fst_testbed`` fixture, because the provisioning itself is what is measured: time from nothing to a
Ready swarm, to everything up (images loaded on every node, overlay network), and teardown.
One tidy row per repetition lands in ``results/<session>/provisioning.csv`` as soon as it exists.
With ``--cloud=real`` the hosts hold one Swarm at a time: the row is the session's testbed, its
preflight and provisioning timings.
"""

from __future__ import annotations

import logging

import pytest

from testbed import images as img
from testbed.providers import for_cloud
from testbed.providers.engine import host_client
from testbed.provision.testbed import Testbed, leftovers
from testbed.results.store import host_facts, now
from testbed.model.topology import load

log = logging.getLogger("testbed.experiments")


@pytest.mark.parametrize("repetition", [1])
def test_provisioning_time(request, fst_session, repetition: int):
    client = host_client()
    real = request.config.getoption("--cloud") == "real"
    if real:
        # real hosts are provisioned once per pytest run (they cannot hold a second Swarm):
        # the session's testbed, with its preflight and up timings, is the measurement
        tb = request.getfixturevalue("fst_testbed")
        topology, warm, started = tb.topology, True, now()
    else:
        topology = load(request.config.getoption("--topology"))
        warm = all(_has(client, r.tag) for r in img.ALL_RECIPES)
        started = now()
        tb = Testbed.up(for_cloud("emulated", client=client), topology)
    try:
        swarm_nodes = tb.manager.client.nodes.list()
        ready = sum(n.attrs["Status"]["State"] == "ready" for n in swarm_nodes)
    finally:
        if not real:
            tb.down()
    row = {"run_id": tb.run_id, "experiment": "provisioning", "repetition": repetition,
           "provider": tb.provider.name, "topology": topology.name, "topology_sha256": topology.sha256,
           "nodes": len(topology.nodes), "clouds": len(topology.clouds), "cache": "warm" if warm else "cold",
           **{k: round(v, 2) for k, v in tb.timings.items()}, "ready_nodes": ready,
           "started": started, "ended": now(), **host_facts(), "docker_engine": client.version().get("Version")}
    path = fst_session.results.append("provisioning", row)
    log.info(f"row written to {path}")
    assert ready == len(topology.nodes)
    if not real:
        assert leftovers(tb.run_id) == []


def _has(client, tag: str) -> bool:
    try:
        client.images.get(tag)
        return True
    except Exception:  # noqa: BLE001
        return False
