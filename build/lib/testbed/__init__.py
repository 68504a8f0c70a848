"""flink-swarm-testbed: Apache Flink on a multi-cloud Docker Swarm, emulated or real.

Layers, bottom up (each imports only from those below it; tests/test_layers.py checks):
``core`` (run identity, plan of steps, logging) -> ``model`` (topology, inventory, placement) ->
``images`` (offline recipes) -> ``providers`` (machines with a Docker engine: emulated or real) ->
``provision`` (Swarm, network, images on the machines; the ``Testbed`` handle) -> ``stack`` (Flink,
broker, calibration on the Swarm) -> ``workload`` (the job, the load driver) -> ``measure`` (metrics)
-> ``results`` (tidy tables, manifest, report) -> ``experiment`` (cells, search, session).
``cli`` and ``pytest_plugin`` are thin glue over this library.
"""

from .model.topology import Topology, TopologyError, load as load_topology

__all__ = ["Topology", "TopologyError", "load_topology"]
__version__ = "0.1.0"
