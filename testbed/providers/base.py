"""What a provider is and what it hands to provisioning: machines with a Docker engine, in clouds.

A provider makes the machines of a topology exist (``create``), finds them again (``machines``,
``runs``, ``manager_labels``), tells what it knows of the network between them (``wan``) and of the
engines (``engine_facts``), and removes what it made (``destroy``). Two providers implement it:

- ``EmulatedProvider`` (providers/emulated.py): Docker-in-Docker nodes on this machine, a router
  emulating the WAN; destroying the nodes removes everything that ran on them (``disposable``);
- ``RealProvider`` (providers/real.py): VMs from an SSH inventory; they exist already, so a run
  only marks them, and undoing a run on them is provisioning's teardown plan.

``providers.for_cloud`` chooses one from ``--cloud`` and ``--inventory``; nothing else asks which
it is, and this interface knows none of them.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

import docker

from ..core.plan import Plan
from ..core.run import step, wait_for
from ..model.inventory import SshTarget
from .engine import node_client

if TYPE_CHECKING:
    from ..images.build import Recipe
    from ..model.inventory import Inventory
    from ..model.topology import Topology
    from .wan import Wan

log = logging.getLogger(__name__)

CLOUDS = ("emulated", "real")


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


def manager_of(machines: list[Machine]) -> Machine:
    """The Swarm manager among a run's machines (a topology has exactly one)."""
    for m in machines:
        if m.role == "manager":
            return m
    raise LookupError("no machine has role 'manager': " + ", ".join(f"{m.hostname} ({m.role})" for m in machines))


def wait_engines(machines: list[Machine], timeout: float, detail: Callable[[Machine], str] | None = None) -> None:
    """Wait until every machine's Docker engine answers (in parallel); a time-out names the machine
    and says what ``detail`` found (e.g. the node container's log)."""
    def ready(m: Machine) -> None:
        wait_for(lambda: m.client.ping(), timeout, f"the Docker engine on {m.hostname} ({m.docker_url})",
                 detail=(lambda: detail(m)) if detail else None)

    with step(log, f"wait for {len(machines)} Docker engines"):
        with ThreadPoolExecutor(len(machines)) as pool:
            list(pool.map(ready, machines))


@runtime_checkable
class Provider(Protocol):
    name: str               # recorded with every row: "emulated" or "real"
    disposable: bool        # destroy() removes everything that ran on the machines
    topology: "Topology | None"   # what the provider itself fixes (an inventory's hosts), if anything
    registry: str           # where hosts pull the stack's images from ("" = shipped from here)
    weave: tuple[str, str]  # Weave Net's plugin and script, for network.driver weave

    def node_recipes(self) -> list["Recipe"]:
        """Images the provider needs besides the stack's (the emulated nodes and router)."""

    def preflight(self) -> dict:
        """Checks before anything changes (raises naming what fails); a report kept in the manifest."""

    def create(self, topology: "Topology", run_id: str, owner: str, images: dict[str, str],
               manager_labels: dict[str, str], ssh_authorized_keys: str = "") -> list[Machine]:
        """The topology's machines, each with an engine that answers."""

    def mark_plan(self, machines: list[Machine], run_id: str, owner: str, manager_labels: dict[str, str]) -> Plan:
        """Steps that mark the machines as this run's (what ``runs`` and ``attach`` find later)."""

    def unmark_plan(self, machines: list[Machine], run_id: str) -> Plan:
        """Steps that remove those marks (the last steps of undoing a run)."""

    def marked(self, run_id: str | None = None, keep: Callable[[str], bool] = lambda owner: False) -> dict[str, dict]:
        """Run id -> {owner, topology, driver, hosts} of the runs marked on the machines (one, or every
        run whose owner ``keep`` does not vouch for)."""

    def machines(self, run_id: str) -> list[Machine]:
        """The machines of a running run, in the topology's order."""

    def manager_labels(self, run_id: str) -> dict[str, str]:
        """What a run recorded on its manager when it was made (topology text, image ids)."""

    def runs(self) -> dict[str, dict]:
        """Run id -> {owner, topology, nodes} of every run the provider can see."""

    def wan(self, run_id: str, topology: "Topology") -> "Wan | None":
        """The emulated WAN of a run, if the provider emulates one."""

    def engine_facts(self) -> dict[str, str]:
        """Versions of the engines the provider itself runs on (not the machines')."""

    def destroy(self, run_id: str | None = None, keep: Callable[[str], bool] = lambda owner: False) -> list[str]:
        """Remove what the provider made for one run (or for every run whose owner ``keep`` does not
        vouch for); returns what was removed."""
