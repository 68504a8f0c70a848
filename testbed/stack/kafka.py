"""A Kafka-protocol broker as a Swarm service, and topic administration from inside the cluster.

The default broker is Tansu (a Kafka-API broker in one binary, memory storage), because no Apache
Kafka distribution can be fetched here. The image and command are a ``BrokerSpec``, set in the
topology or inventory (``broker: {image, args}``), so that on real clouds a user can run Apache
Kafka's own image instead.

The broker advertises ``broker:9092``, a name that resolves only on the overlay network, so topics
are administered by a short-lived driver container attached to that network (kafka-python's admin
client), not from the harness host.
"""

from __future__ import annotations

import logging
import json
from dataclasses import dataclass, field

import docker.types

from ..images.recipes import TANSU_VERSION
from ..core.run import step
from ..provision.testbed import Testbed
from . import services
from . import driver_cli

log = logging.getLogger(__name__)

BROKER = "broker"
PORT = 9092


@dataclass(frozen=True)
class BrokerSpec:
    image: str | None = None      # None: the testbed's own Tansu image
    args: tuple[str, ...] = ("broker", "--listener-url", f"tcp://0.0.0.0:{PORT}",
                             "--advertised-listener-url", f"tcp://{BROKER}:{PORT}",
                             "--storage-engine", "memory://tansu/")
    env: dict[str, str] = field(default_factory=dict)
    name: str = f"tansu {TANSU_VERSION}"

    @property
    def bootstrap(self) -> str:
        return f"{BROKER}:{PORT}"

    @classmethod
    def of(cls, topology) -> "BrokerSpec":
        """The topology's broker (``broker: {image, args}``), else Tansu. Another image must listen
        on 9092 and advertise ``broker:9092``, as Tansu's arguments here do."""
        if not topology.broker_image:
            return cls()
        return cls(image=topology.broker_image, args=topology.broker_args, env=dict(topology.broker_env),
                   name=topology.broker_image)


def deploy(tb: Testbed, node: str, spec: BrokerSpec = BrokerSpec(), cpus: float = 0.0,
           topics: list[str] = (), admin_node: str | None = None, replace: list[str] = ()) -> str:
    """Start the broker on ``node`` (if not running) and wait until it answers; returns bootstrap.
    ``cpus`` > 0 limits it to that many cores (a running broker with another limit is restarted).
    ``topics`` (``name:partitions``) are created by the same administration command that waits
    for the broker (on ``admin_node``, default ``node``); every other topic whose name starts with
    one of ``replace`` is deleted by it first."""
    ensure(tb, node, spec, cpus)
    admin(tb, spec.bootstrap, admin_node or node, list(topics), [], timeout=90, delete_prefix=list(replace))
    return spec.bootstrap


def ensure(tb: Testbed, node: str, spec: BrokerSpec = BrokerSpec(), cpus: float = 0.0) -> bool:
    """The broker's service on ``node`` with ``cpus`` cores (0: no limit), created or restarted as
    needed; True if it was (its task is then new, and may not answer yet)."""
    tb.node(node)  # a clear error for an unknown node
    existing = services.get(tb, BROKER)
    if existing is not None and services.cpu_limit(existing) != round(cpus, 9):
        with step(log, f"restart the broker with {cpus:g} cores" if cpus else "restart the broker without a CPU limit"):
            services.update(tb, BROKER, resources=services.resources(cpus))
        return True
    if existing is None:
        with step(log, f"start the Kafka-protocol broker ({spec.name}) on {node}"):
            tb.manager.client.services.create(
                spec.image or tb.images["broker"], name=BROKER, args=list(spec.args),
                env=[f"{k}={v}" for k, v in spec.env.items()], networks=[tb.network],
                constraints=[f"node.hostname == {node}"],
                endpoint_spec=docker.types.EndpointSpec(mode="dnsrr"),
                labels=tb.labels(), container_labels=tb.labels(), resources=services.resources(cpus))
        return True
    return False


def admin(tb: Testbed, bootstrap: str, node: str, create: list[str], delete: list[str],
          timeout: float = 60, delete_prefix: list[str] = (), keep: list[str] = ()) -> list[str]:
    """Create ``name:partitions`` / delete topics with kafka-python's admin client, run on ``node``
    in a driver container on the overlay network; returns the topics that exist afterwards.
    ``delete_prefix``: every other topic whose name starts with one of these is deleted too, but
    those in ``keep``."""
    args = driver_cli.admin(bootstrap, create, delete, timeout, delete_prefix=delete_prefix, keep=keep)
    # in a container that stays on the node for the run: a cell's topics cost an exec, not a container
    out = services.run_standing(tb.node(node), tb.images["driver"], args, name=f"fst-admin-{tb.run_id}",
                                labels=tb.labels(component="topic-admin"), timeout=timeout + 20,
                                what="topic administration", network=tb.network)
    return json.loads(out.strip().splitlines()[-1])["topics"]
