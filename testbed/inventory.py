"""The inventory of real hosts (``--cloud=real --inventory FILE``): how to reach each VM.

An inventory names the hosts a real run uses and how to reach them over SSH; the topology of the
run (clouds, roles, network, broker) is derived from it and goes through the same model and the same
validation as an emulated topology file::

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
file, the field's path and what is allowed — including a key file that does not exist.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# the topology's own checker and patterns: the same messages and paths as a topology file
from .topology import _CLOUDNAME, _HOSTNAME, BROKER_KEYS, NETWORK_DRIVERS, ROLES, Topology, TopologyError, _start, parse

WEAVE_PLUGIN = "weaveworks/net-plugin:2.8.1"
WEAVE_SCRIPT = "https://github.com/weaveworks/weave/releases/download/v2.8.1/weave"
HOST_POLICIES = ("accept-new", "strict")

_TOP_KEYS = {"name": "inventory name", "description": "free text", "ssh": "SSH defaults for every host",
             "network": "the network the stack's services share ({driver, name, address_pool})",
             "weave": "Weave Net settings ({plugin, script}) for network.driver: weave",
             "images": "where hosts get the testbed's images ({registry})",
             "broker": "the Kafka-protocol broker ({node: hostname, image, args}; default Tansu on the manager)",
             "hosts": "the VMs"}
_SSH_KEYS = {"user": "login name", "key": "private key file", "port": "SSH port",
             "known_hosts": "known_hosts file (default ~/.ssh/known_hosts)",
             "host_keys": f"unknown host keys: {' or '.join(HOST_POLICIES)} (default accept-new)",
             "sudo": "run host commands with sudo -n (true/false)", "timeout": "connect timeout, s"}
_HOST_KEYS = {"hostname": "", "cloud": "", "role": "", "address": "", "private_address": "", "cpus": "",
              "memory": "", **{k: "" for k in ("user", "key", "port", "sudo")}}


class InventoryError(TopologyError):
    """An inventory that cannot be used; like TopologyError, it names the file and the fields."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        super().__init__(source, problems)
        self.args = ("invalid inventory\n  " + "\n  ".join(
            f"{source}: {p}: {m}" if p else f"{source}: {m}" for p, m in problems),)

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


def load(path: str | Path) -> Inventory:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InventoryError(str(path), [("", f"cannot read file: {e.strerror}")]) from None
    return parse_inventory(text, source=str(path), base=path.parent)


def _bool(c, value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        c.bad(path, f"expected true or false, got {value!r}")
        return False
    return value


def _port(c, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        c.bad(path, f"expected a port number 1-65535, got {value!r}")
        return 22
    return value


def _address(c, value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        c.bad(path, "missing; the host's address (IP or DNS name) the harness and the other hosts reach it at")
        return ""
    value = value.strip()
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", value):
            c.bad(path, f"{value!r} is neither an IP address nor a DNS name")
            return ""
    return value


def _key_file(c, value: Any, path: str, base: Path) -> str:
    if not isinstance(value, str) or not value:
        c.bad(path, "missing; the private key file to log in with (ssh.key or the host's key)")
        return ""
    p = Path(os.path.expanduser(value))
    if not p.is_absolute():
        p = base / p
    if not p.is_file():
        c.bad(path, f"key file {value!r} does not exist ({p})")
        return ""
    if not os.access(p, os.R_OK):
        c.bad(path, f"key file {value!r} is not readable ({p})")
        return ""
    return str(p)


def parse_inventory(text: str, source: str = "<string>", base: Path = Path(".")) -> Inventory:
    c, doc = _start(text, source, InventoryError, _TOP_KEYS)
    name = c.string(doc.get("name", Path(source).stem), "name") or "inventory"

    sdoc = c.mapping(doc.get("ssh", {}), "ssh", _SSH_KEYS)
    policy = sdoc.get("host_keys", "accept-new")
    if policy not in HOST_POLICIES:
        c.bad("ssh.host_keys", f"unknown policy {policy!r}; allowed: {', '.join(HOST_POLICIES)}")
    timeout = c.number(sdoc.get("timeout", 10), "ssh.timeout", positive=True) or 10.0
    known = sdoc.get("known_hosts", "~/.ssh/known_hosts")
    if not isinstance(known, str):
        c.bad("ssh.known_hosts", f"expected a file name, got {known!r}")
        known = "~/.ssh/known_hosts"
    known_path = Path(os.path.expanduser(known))
    known = str(known_path if known_path.is_absolute() else base / known_path)

    net = c.mapping(doc.get("network", {}), "network", ("driver", "name", "address_pool"))
    if net.get("driver", "overlay") not in NETWORK_DRIVERS:
        c.bad("network.driver", f"unknown driver {net.get('driver')!r}; allowed: {', '.join(NETWORK_DRIVERS)}")
    weave = c.mapping(doc.get("weave", {}), "weave", ("plugin", "script"))
    images = c.mapping(doc.get("images", {}), "images", ("registry",))
    registry = images.get("registry") or ""
    if not isinstance(registry, str):
        c.bad("images.registry", f"expected a registry host[:port] or nothing, got {registry!r}")
        registry = ""
    broker = c.mapping(doc.get("broker", {}), "broker", BROKER_KEYS)

    hosts: list[Host] = []
    hdocs = doc.get("hosts")
    if not isinstance(hdocs, list) or not hdocs:
        c.bad("hosts", "missing or empty; list the VMs (hostname, cloud, role, address)")
        hdocs = []
    seen: dict[str, str] = {}
    for i, hdoc in enumerate(hdocs):
        hp = f"hosts[{i}]"
        hdoc = c.mapping(hdoc, hp, _HOST_KEYS)
        if not hdoc:
            continue
        hostname = c.string(hdoc.get("hostname"), f"{hp}.hostname", _HOSTNAME,
                            "hostname (lowercase letters, digits and '-', at most 63)")
        if hostname and hostname in seen:
            c.bad(f"{hp}.hostname", f"duplicate hostname {hostname!r} (also at {seen[hostname]})")
        elif hostname:
            seen[hostname] = hp
        cloud = c.string(hdoc.get("cloud"), f"{hp}.cloud", _CLOUDNAME, "cloud name (lowercase letters, digits, '-')")
        role = hdoc.get("role")
        if role not in ROLES:
            c.bad(f"{hp}.role", f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
        address = _address(c, hdoc.get("address"), f"{hp}.address")
        private = hdoc.get("private_address", "")
        if private:
            try:
                ipaddress.ip_address(private)
            except ValueError:
                c.bad(f"{hp}.private_address", f"{private!r} is not an IP address")
        user = hdoc.get("user", sdoc.get("user"))
        upath = f"{hp}.user" if "user" in hdoc else "ssh.user"
        if not isinstance(user, str) or not user:
            c.bad(upath, "missing; the SSH login name (ssh.user or the host's user)")
        key = _key_file(c, hdoc.get("key", sdoc.get("key")), f"{hp}.key" if "key" in hdoc else "ssh.key", base)
        port = _port(c, hdoc.get("port", sdoc.get("port", 22)), f"{hp}.port" if "port" in hdoc else "ssh.port")
        sudo = _bool(c, hdoc.get("sudo", sdoc.get("sudo", False)), f"{hp}.sudo" if "sudo" in hdoc else "ssh.sudo")
        if hostname and cloud and role in ROLES and address and isinstance(user, str) and key:
            hosts.append(Host(hostname, cloud, role, address,
                              SshTarget(hostname, address, user, key, port, known, policy, sudo, timeout),
                              private))
    if c.problems:   # a default's problem (ssh.key) is found once per host: say it once
        raise InventoryError(source, list(dict.fromkeys(c.problems)))

    # the run's topology, through the topology model's own validation (roles, managers, broker)
    clouds: dict[str, list[dict]] = {}
    for h, hdoc in zip(hosts, hdocs):
        node = {"hostname": h.hostname, "role": h.role}
        node.update({k: hdoc[k] for k in ("cpus", "memory") if k in hdoc})
        clouds.setdefault(h.cloud, []).append(node)
    tdoc = {"name": name, "clouds": {k: {"nodes": v} for k, v in clouds.items()}}
    if net:
        tdoc["network"] = net
    if broker:
        tdoc["broker"] = broker
    if doc.get("description"):
        tdoc["description"] = doc["description"]
    try:
        topology = parse(yaml.safe_dump(tdoc, sort_keys=False), source=source)
    except TopologyError as e:
        # the topology's paths (clouds.<cloud>...) read as the inventory's hosts list
        raise InventoryError(source, [(p.replace("clouds", "hosts", 1) if p.startswith("clouds") else p, m)
                                      for p, m in e.problems]) from None
    return Inventory(name, tuple(hosts), topology, weave.get("plugin", WEAVE_PLUGIN),
                     weave.get("script", WEAVE_SCRIPT), registry, source)

