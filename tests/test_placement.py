"""Placement policies choose worker nodes, and refuse what cannot be placed with a clear reason."""

from __future__ import annotations

import pytest

from testbed.experiment.cell import CellSpec
from testbed.model.placement import PlacementError, choose
from testbed.model.topology import SEED_TOPOLOGY, load

SEED = load(SEED_TOPOLOGY)


@pytest.mark.parametrize("policy, n, nodes", [
    ("single-cloud", 2, ("azure-swarm-worker-1", "azure-swarm-worker-2")),
    ("single-cloud:google", 1, ("google-cloud-worker-1",)),
    ("multi-cloud", 2, ("azure-swarm-worker-1", "google-cloud-worker-1")),
    ("multi-cloud", 3, ("azure-swarm-worker-1", "google-cloud-worker-1", "azure-swarm-worker-2")),
    ("nodes:google-cloud-worker-1,azure-swarm-worker-2", 2, ("google-cloud-worker-1", "azure-swarm-worker-2")),
])
def test_policies_choose_workers(policy, n, nodes):
    p = choose(SEED, policy, n)
    assert p.nodes == nodes
    assert "azure-swarm-manager" not in p.nodes and "azure-flink-jobmanager" not in p.nodes


def test_multi_cloud_spans_clouds_single_cloud_does_not():
    assert set(choose(SEED, "multi-cloud", 2).clouds(SEED)) == {"azure", "google"}
    assert set(choose(SEED, "single-cloud", 2).clouds(SEED)) == {"azure"}


@pytest.mark.parametrize("policy, n, says", [
    ("single-cloud:aws", 1, "unknown cloud 'aws'; clouds: azure, google"),
    ("nodes:azure-swarm-worker-9", 1, "unknown node 'azure-swarm-worker-9'"),
    ("nodes:azure-flink-jobmanager", 1, "'azure-flink-jobmanager' is the jobmanager node"),
    ("single-cloud:google", 2, "2 taskmanagers do not fit placement 'single-cloud:google': one taskmanager "
                               "per node and only 1 eligible (worker nodes in cloud 'google': google-cloud-worker-1)"),
    ("multi-cloud", 4, "4 taskmanagers do not fit placement 'multi-cloud'"),
    ("everywhere", 1, "unknown placement 'everywhere'"),
    ("multi-cloud", 0, "taskmanagers must be a whole number >= 1"),
    ("multi-cloud", 1, "placement 'multi-cloud' needs at least 2 taskmanagers to span two clouds"),
])
def test_bad_placements_are_refused(policy, n, says):
    with pytest.raises(PlacementError) as e:
        choose(SEED, policy, n)
    assert says in str(e.value)


@pytest.mark.parametrize("kw, says", [
    ({"rate": 0}, "rate must be > 0 events/s, got 0"),
    ({"rate": -5}, "rate must be > 0 events/s, got -5"),
    ({"duration": 10, "warmup": 10}, "warmup must be >= 0 and shorter than the duration"),
])
def test_bad_cells_are_refused(kw, says):
    with pytest.raises(ValueError, match=says):
        CellSpec(**kw)
