"""The inventory of real hosts (``--cloud=real --inventory FILE``): how to reach each VM.

An inventory names the hosts a real run uses and how to reach them over SSH; the topology of the
run (clouds, roles, network, broker) is derived from it: each host is a node of the topology model,
validated where it is written (``hosts[1].memory``), with the same rules as in a topology file::

    name: seed-real
    ssh: {user: thalita, key: ~/.ssh/id_ed25519, port: 22}     # defaults for every host
    network: {driver: overlay, name: flinknet, address_pool: 10.203.0.0/16}
    hosts:
      - {hostname: azure-swarm-manager, cloud: azure, role: manager, address: 203.0.113.10}
      - {hostname: google-cloud-worker-1, cloud: google, role: worker, address: 198.51.100.7,
         private_address: 10.132.0.2, user: thalita_g}

``address`` is where the harness and the other hosts reach the VM (its public address across
clouds); ``private_address`` is the address on the VM's own interface when the public one is NATed
(found over SSH when not given). Every problem is reported before anything connects, naming the
file, the field's path and what is allowed — including a key file that does not exist. The file
format is ``InventorySchema`` and its parts below.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import warnings
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, ValidationInfo

# the topology model's schema and rules: the same messages as a topology file, at the inventory's paths
from .topology import (BrokerSchema, CloudName, CloudSchema, NetworkSchema, NodeSchema, Topology, TopologyError,
                       TopologySchema, _build, _get, _list, _read_yaml, _relations, _Schema, _validate)

log = logging.getLogger(__name__)

WEAVE_PLUGIN = "weaveworks/net-plugin:2.8.1"
WEAVE_SCRIPT = "https://github.com/weaveworks/weave/releases/download/v2.8.1/weave"
HOST_POLICIES = ("accept-new", "strict")
_DNS_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


class InventoryError(TopologyError):
    """An inventory that cannot be used; like TopologyError, it names the file and the fields."""

    what = "inventory"

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class SshTarget:
    """How to reach one host. The key is a path; its content is never read into logs or results."""

    hostname: str
    address: str
    user: str
    key: str
    port: int = 22
    known_hosts: str = "~/.ssh/known_hosts"
    host_keys: str = "accept-new"
    sudo: bool = False
    timeout: float = 10.0

    @property
    def docker_url(self) -> str:
        return f"ssh://{self.user}@{self.address}:{self.port}"

    @property
    def where(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"


@dataclass(frozen=True)
class Host:
    hostname: str
    cloud: str
    role: str
    address: str
    ssh: SshTarget
    private_address: str = ""


@dataclass(frozen=True)
class Inventory:
    name: str
    hosts: tuple[Host, ...]
    topology: Topology
    weave_plugin: str = WEAVE_PLUGIN
    weave_script: str = WEAVE_SCRIPT
    registry: str = ""
    source: str = "<memory>"

    def host(self, hostname: str) -> Host:
        for h in self.hosts:
            if h.hostname == hostname:
                return h
        raise KeyError(f"no host {hostname!r} in {self.source}; hosts: "
                       + ", ".join(h.hostname for h in self.hosts))


def load(path: str | Path, check_keys: bool = True) -> Inventory:
    """Read and validate an inventory. ``check_keys=False`` (a dry run, which connects to nothing):
    a key file that does not exist is a warning, not an error."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InventoryError(str(path), [("", f"cannot read file: {e.strerror}")]) from None
    return parse_inventory(text, source=str(path), base=path.parent, check_keys=check_keys)


# -- the file format --------------------------------------------------------------------------------
def _address(value: str) -> str:
    value = value.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _DNS_NAME.fullmatch(value):
            raise ValueError(f"{value!r} is neither an IP address nor a DNS name") from None
    return value


def _ip(value: str) -> str:
    try:
        if value:
            ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return value


def _resolve(name: str, base: Path) -> Path:
    """A file named in the inventory: ~ expanded, relative to the inventory's folder."""
    path = Path(os.path.expanduser(name))
    return path if path.is_absolute() else base / path


def _key_file(value: str, info: ValidationInfo) -> str:
    path = _resolve(value, info.context["base"])
    if not path.is_file():
        if not info.context.get("check_keys", True):
            info.context["warnings"].append(f"key file {value!r} does not exist ({path}); a real run will refuse it")
            return str(path)
        raise ValueError(f"key file {value!r} does not exist ({path})")
    if not os.access(path, os.R_OK):
        raise ValueError(f"key file {value!r} is not readable ({path})")
    return str(path)


Address = Annotated[str, AfterValidator(_address)]
KeyFile = Annotated[str, Field(min_length=1), AfterValidator(_key_file)]     # its resolved path
Port = Annotated[int, Field(ge=1, le=65535)]


class SshSchema(_Schema):
    """How to log in to every host; a host may say its own user, key, port and sudo."""

    user: str = Field(None, min_length=1, description="the SSH login name")
    key: KeyFile = Field(None, description="the private key file to log in with (~ expanded, relative to the "
                                           "inventory's folder); its content never reaches a log")
    port: Port = Field(22, description="SSH port")
    known_hosts: str = Field("~/.ssh/known_hosts", description="known_hosts file (default ~/.ssh/known_hosts)")
    host_keys: Literal[HOST_POLICIES] = Field("accept-new", title="policy", description=(
        "unknown host keys: accept-new (added to known_hosts) or strict (refused)"))
    sudo: bool = Field(False, description="run host commands with sudo -n (true/false)")
    timeout: float = Field(10.0, gt=0, description="connect timeout, s")


class HostSchema(NodeSchema):
    """A VM: a node of the topology (hostname, role, cpus, memory), its cloud and how to reach it."""

    cloud: CloudName = Field(description="the cloud the VM is in (lowercase letters, digits, '-')")
    address: Address = Field(description="the host's address (IP or DNS name) the harness and the other hosts "
                                         "reach it at")
    private_address: Annotated[str, AfterValidator(_ip)] = Field("", description=(
        "the IP address on the VM's own interface when the public one is NATed (default: found over SSH)"))
    user: str = Field(None, min_length=1, description="the SSH login name (default: ssh.user)")
    key: KeyFile = Field(None, description="the private key file (default: ssh.key)")
    port: Port = Field(None, description="SSH port (default: ssh.port)")
    sudo: bool = Field(None, description="run host commands with sudo -n (default: ssh.sudo)")


class WeaveSchema(_Schema):
    plugin: str = Field(WEAVE_PLUGIN, description="the Weave Net Docker plugin")
    script: str = Field(WEAVE_SCRIPT, description="where hosts download the weave script from")


class ImagesSchema(_Schema):
    registry: str | None = Field(None, description="a registry host[:port] the hosts pull the testbed's images "
                                                   "from; empty: ship them over SSH")


class InventorySchema(_Schema):
    name: str = Field(None, description="inventory name (default: the file's name)")
    description: str = Field("", description="free text")
    ssh: SshSchema = Field(default_factory=SshSchema, description="SSH defaults for every host")
    network: NetworkSchema = Field(default_factory=NetworkSchema, description=(
        "the network the stack's services share ({driver, name, address_pool})"))
    weave: WeaveSchema = Field(default_factory=WeaveSchema, description=(
        "Weave Net settings ({plugin, script}) for network.driver: weave"))
    images: ImagesSchema = Field(default_factory=ImagesSchema, description=(
        "where hosts get the testbed's images ({registry})"))
    broker: BrokerSchema = Field(default_factory=BrokerSchema, description=(
        "the Kafka-protocol broker ({node: hostname, image, args}; default Tansu on the manager)"))
    hosts: list[HostSchema] = Field(min_length=1, description="list the VMs (hostname, cloud, role, address)")


# -- reading a file ---------------------------------------------------------------------------------
def parse_inventory(text: str, source: str = "<string>", base: Path = Path("."), check_keys: bool = True) -> Inventory:
    doc = _read_yaml(text, source, InventoryError)
    nodes = [(f"hosts[{i}]", _get(h, "hostname"), _get(h, "role")) for i, h in enumerate(_list(_get(doc, "hosts")))]
    hostnames = list(dict.fromkeys(h for _, h, _ in nodes if isinstance(h, str)))
    context = {"base": base, "nodes": hostnames, "check_keys": check_keys, "warnings": []}
    inv, problems = _validate(InventorySchema, doc, context)
    for w in dict.fromkeys(context["warnings"]):
        log.warning(f"{source}: {w}")
        warnings.warn(f"{source}: {w}", stacklevel=3)
    problems += _relations(nodes, "hosts") + _logins(doc)
    if problems:   # a default's problem (ssh.user) is found once per host: say it once
        raise InventoryError(source, list(dict.fromkeys(problems)))

    ssh = inv.ssh
    known_hosts = str(_resolve(ssh.known_hosts, base))
    hosts = tuple(Host(h.hostname, h.cloud, h.role, h.address, SshTarget(
        h.hostname, h.address, _or(h.user, ssh.user), _or(h.key, ssh.key), _or(h.port, ssh.port), known_hosts,
        ssh.host_keys, _or(h.sudo, ssh.sudo), ssh.timeout), h.private_address) for h in inv.hosts)
    # the run's topology: each host is a node (a HostSchema is a NodeSchema), in its cloud
    clouds: dict[str, list[NodeSchema]] = {}
    for h in inv.hosts:
        clouds.setdefault(h.cloud, []).append(h)
    name = (Path(source).stem if inv.name is None else inv.name) or "inventory"
    topology = _build(TopologySchema(name=name, description=inv.description, network=inv.network,
                                     broker=inv.broker, clouds={c: CloudSchema(nodes=n) for c, n in clouds.items()}),
                      source)
    return Inventory(name, hosts, topology, inv.weave.plugin, inv.weave.script, inv.images.registry or "", source)


def _logins(doc: Any) -> list[tuple[str, str]]:
    """Every host needs a user and a key: its own or the ssh section's."""
    return [(f"ssh.{k}", f"missing; {what} (ssh.{k} or the host's {k})")
            for h in _list(_get(doc, "hosts")) if isinstance(h, dict)
            for k, what in (("user", "the SSH login name"), ("key", "the private key file to log in with"))
            if h.get(k) is None and _get(_get(doc, "ssh"), k) is None]


def _or(value: Any, default: Any) -> Any:
    return default if value is None else value
