"""What a provider hands to the stack: machines with a Docker engine, grouped into clouds."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import docker

from ..engine import node_client


@dataclass
class Machine:
    """One node of the topology, running: its address on its cloud's network and its engine."""

    hostname: str
    cloud: str
    role: str
    address: str            # the underlay address other nodes reach it at (--advertise-addr)
    docker_url: str         # how the harness reaches its Docker engine
    info: dict = field(default_factory=dict)   # provider details (container name, subnet, ...)

    @cached_property
    def client(self) -> docker.DockerClient:
        return node_client(self.docker_url)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]
