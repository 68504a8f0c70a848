"""What a provider hands to the stack: machines with a Docker engine, grouped into clouds."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import docker

from .engine import node_client
from ..inventory import SshTarget


@dataclass
class Machine:
    """One node of the topology, running: its address on its cloud's network and its engine.

    Emulated nodes are reached at ``tcp://<address>:2375``; real hosts over SSH (``ssh`` set), with
    the Docker API through ``ssh://`` and host commands through ``session``."""

    hostname: str
    cloud: str
    role: str
    address: str            # the underlay address other nodes reach it at (--advertise-addr)
    docker_url: str         # how the harness reaches its Docker engine
    info: dict = field(default_factory=dict)   # provider details (container name, subnet, ...)
    ssh: SshTarget | None = None

    @cached_property
    def client(self) -> docker.DockerClient:
        if self.ssh is not None:
            from .ssh import docker_client
            return docker_client(self.ssh)
        return node_client(self.docker_url)

    @cached_property
    def session(self):
        """Shell commands on the host over SSH (real hosts only; None for emulated nodes)."""
        if self.ssh is None:
            return None
        from .ssh import Session
        return Session(self.ssh)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
            del self.__dict__["client"]
        if "session" in self.__dict__:
            if self.session is not None:
                self.session.close()
            del self.__dict__["session"]
