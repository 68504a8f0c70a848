"""Placement policies choose worker nodes, and refuse what cannot be placed with a clear reason."""

from __future__ import annotations

import pytest

from testbed.experiment.cell import CellSpec, CellSpecError
from testbed.model.placement import PlacementError, choose
from testbed.model.topology import SEED_TOPOLOGY, load
from testbed.workload.pipeline import SEED_WINDOW

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
    ({"rate": 0}, "rate: must be > 0 events/s, got 0"),
    ({"rate": -5}, "rate: must be > 0 events/s, got -5"),
    ({"duration": 10, "warmup": 10}, r"warmup: must be >= 0 s and shorter than duration \(10s\), got 10"),
])
def test_bad_cells_are_refused(kw, says):
    with pytest.raises(ValueError, match=says):
        CellSpec(**kw)


def test_every_bad_setting_of_a_cell_is_named_in_one_error():
    """Every rule is checked, those between fields too: one error lists each problem, naming its
    field and the value it got."""
    with pytest.raises(CellSpecError) as e:
        CellSpec(rate=0, duration=60, warmup=15, window=SEED_WINDOW, keys=0, spare_slots=-1, cpu_scale=float("nan"),
                 checkpoint_mode="sometimes", source_properties=(("group.id", "mine"),))
    assert isinstance(e.value, ValueError)      # what callers catch
    fields = [name for name, _ in e.value.problems]
    assert sorted(fields) == sorted(["rate", "keys", "spare_slots", "cpu_scale", "checkpoint_mode",
                                     "source_properties", "duration"])
    text = str(e.value)
    assert text.startswith("7 bad cell settings:\n")
    for line in ("rate: must be > 0 events/s, got 0", "keys: must be >= 1, got 0", "spare_slots: must be >= 0, got -1",
                 "cpu_scale: must be >= 0 (0: no CPU limits), got nan",
                 "checkpoint_mode: must be at-least-once or exactly-once, got 'sometimes'",
                 "source_properties: the harness sets group.id itself",
                 "duration: 60s is too short for windows of 300s sliding by 60s"):
        assert f"\n  - {line}" in text, text
    # a rule between fields is left out where one of them is bad itself: its own problem says it once
    with pytest.raises(CellSpecError) as e:
        CellSpec(duration=-5, warmup=15)
    assert e.value.problems == [("duration", "must be > 0 s, got -5")]
