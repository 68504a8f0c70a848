"""flink-swarm-testbed: Apache Flink on a multi-cloud Docker Swarm, emulated or real.

Layers, bottom up: ``topology`` (the model) -> ``providers`` (machines with a Docker engine)
-> ``stack`` (Swarm, network, Flink, Kafka) -> workload driver -> measurement -> report.
``testbed.pytest_plugin`` is thin glue over this library.
"""

from .topology import Topology, TopologyError, load as load_topology

__all__ = ["Topology", "TopologyError", "load_topology"]
__version__ = "0.1.0"
