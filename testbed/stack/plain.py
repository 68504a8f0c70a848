"""Flink and the broker as plain containers on one engine: no Swarm, no emulated nodes, no WAN. The
reference the testbed's own overhead is measured against (``experiment/overhead.py``).

    with PlainStack(client, images, labels) as stack:     # its network, the broker, a jobmanager,
        stack.rest("/taskmanagers")                       # one taskmanager, ready
        stack.run_once(images["driver"], [...])           # a one-shot container on its network

One testcontainers class per container type, each a context manager that waits for its own
readiness; everything carries the testbed's labels (``python -m testbed clean`` finds the leftovers
of a killed run). testcontainers' Ryuk reaper is off: its image comes from Docker Hub, which machines
like this one cannot reach, and the labels already do its job.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import docker
from testcontainers.core.config import testcontainers_config
from testcontainers.core.container import DockerContainer
from testcontainers.core.network import Network

from ..core.run import LABEL_RUN, step, wait_for
from . import flink
from .kafka import BROKER, BrokerSpec

log = logging.getLogger(__name__)
testcontainers_config.ryuk_disabled = True


class _Container(DockerContainer):
    """A container of the stack: on its network under ``alias``, with the run's labels."""

    def __init__(self, image: str, alias: str, network: Network, labels: dict, env: dict | None = None):
        super().__init__(image, env=env or {}, labels=labels)   # (the engine of DOCKER_HOST, as host_client)
        self.with_network(network).with_network_aliases(alias).with_name(f"fst-{labels[LABEL_RUN]}-{alias}")
        self.alias = alias

    def address(self) -> str:
        """Its address on the stack's network (the host reaches it there: a local bridge)."""
        c = self.get_wrapped_container()
        c.reload()
        return next(iter(c.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]


class BrokerContainer(_Container):
    def __init__(self, image: str, network: Network, labels: dict, spec: BrokerSpec = BrokerSpec()):
        super().__init__(spec.image or image, BROKER, network, labels, dict(spec.env))
        self.with_command(list(spec.args))
        self.bootstrap = spec.bootstrap     # the driver's admin command waits until it answers


class JobManagerContainer(_Container):
    def __init__(self, image: str, network: Network, labels: dict, slots: int = 1):
        super().__init__(image, flink.JOBMANAGER, network, labels, {"FLINK_PROPERTIES": flink.properties(slots)})
        self.with_command("jobmanager")

    def start(self):
        super().start()
        wait_for(self._answers, 120, "the plain jobmanager's REST API", interval=1,
                 detail=lambda: self.get_wrapped_container().logs(tail=40).decode(errors="replace"))
        return self

    def _answers(self) -> bool:
        try:
            return self.rest("/overview") is not None
        except OSError:
            return False

    def rest(self, path: str, timeout: float = 10, method: str = "GET", body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://{self.address()}:{flink.REST_PORT}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None


class TaskManagerContainer(_Container):
    def __init__(self, image: str, network: Network, labels: dict, slots: int = 1):
        super().__init__(image, flink.TASKMANAGER, network, labels, {"FLINK_PROPERTIES": flink.properties(slots)})
        self.with_command("taskmanager")


class PlainStack:
    """A network, the broker, a jobmanager and one taskmanager (``slots`` slots) on ``client``'s
    engine. Offers what a job needs of a cluster (``rest``, ``parallelism``) and ``run_once``."""

    def __init__(self, client: docker.DockerClient, images: dict, labels: dict, slots: int = 1):
        self.client, self.images, self.labels, self.slots = client, images, labels, slots
        self.network = Network(docker_network_kw={"labels": labels})
        self._started: list[DockerContainer] = []

    @property
    def parallelism(self) -> int:
        return self.slots

    def __enter__(self) -> "PlainStack":
        with step(log, "plain containers on this machine's engine: broker, jobmanager, 1 taskmanager"):
            self.network.create()
            try:
                self.broker = self._start(BrokerContainer(self.images["broker"], self.network, self.labels))
                self.jobmanager = self._start(JobManagerContainer(self.images["flink"], self.network, self.labels,
                                                                  self.slots))
                self._start(TaskManagerContainer(self.images["flink"], self.network, self.labels, self.slots))
                wait_for(lambda: len(self.rest("/taskmanagers")["taskmanagers"]) == 1, 120,
                         "the plain taskmanager registered", interval=1)
            except BaseException:
                self.__exit__(None, None, None)
                raise
        return self

    def _start(self, c: DockerContainer):
        self._started.append(c)
        return c.start()

    def __exit__(self, *exc) -> None:
        for c in reversed(self._started):
            try:
                c.stop()
            except Exception as e:  # noqa: BLE001 - the rest must still go
                log.warning(f"removing a plain container: {e}")
        self._started.clear()
        try:
            self.network.remove()
        except Exception as e:  # noqa: BLE001
            log.warning(f"removing the plain network: {e}")

    @property
    def rest_url(self) -> str:
        return f"http://{self.jobmanager.address()}:{flink.REST_PORT}"

    def rest(self, path: str, **kw):
        return self.jobmanager.rest(path, **kw)

    def start(self, image: str, args: list[str], environment: dict | None = None, what: str = "container"):
        """A container on the stack's network, started and returned (the caller removes it)."""
        name = f"fst-{self.labels[LABEL_RUN]}-{what.replace(' ', '-')}-{time.monotonic_ns() % 10**6}"
        return self.client.containers.run(image, args, detach=True, network=self.network.name, labels=self.labels,
                                          environment=environment or {}, name=name)

    def run_once(self, image: str, args: list[str], environment: dict | None = None, timeout: float = 180,
                 what: str = "container") -> str:
        c = self.start(image, args, environment, what)
        try:
            code = c.wait(timeout=timeout)["StatusCode"]
            out = c.logs().decode(errors="replace")
            if code != 0:
                raise RuntimeError(f"{what} exited {code}:\n{out[-3000:]}")
            return out
        finally:
            c.remove(force=True)
