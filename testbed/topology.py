"""The topology model: clouds, their nodes, the overlay network and the links between clouds.

A topology file is YAML. It is validated completely before anything starts; every problem is
reported with the file, the path of the offending field and what would have been allowed::

    name: seed
    network: {driver: overlay, name: flinknet}
    defaults: {cpus: 2, memory: 7GB}
    clouds:
      azure:
        nodes:
          - {hostname: azure-swarm-manager, role: manager}
          - {hostname: azure-flink-jobmanager, role: jobmanager}
      google:
        nodes:
          - {hostname: google-cloud-worker-1, role: worker}
    links:
      - {clouds: [azure, google], rtt_ms: 20, bandwidth_mbit: 100}

Only the model lives here; providers turn it into machines.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROLES = ("manager", "jobmanager", "worker")
NETWORK_DRIVERS = ("overlay", "weave")
LINK_FIELDS = {
    "clouds": "a list of two cloud names",
    "rtt_ms": "round-trip delay added between the two clouds, in ms (split evenly per direction)",
    "jitter_ms": "delay variation in ms",
    "loss_pct": "packet loss in percent, per direction",
    "bandwidth_mbit": "bandwidth cap in Mbit/s, per direction",
}
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CLOUDNAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
MIN_NODE_MEMORY = 256 * 2**20
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


class TopologyError(ValueError):
    """A topology file that cannot be used. ``problems`` lists (field path, message) pairs."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems]
        super().__init__("invalid topology\n  " + "\n  ".join(lines))


@dataclass(frozen=True)
class Node:
    hostname: str
    cloud: str
    role: str
    cpus: float
    memory_bytes: int


@dataclass(frozen=True)
class Link:
    clouds: tuple[str, str]
    rtt_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0
    bandwidth_mbit: float | None = None


@dataclass(frozen=True)
class Network:
    driver: str = "overlay"
    name: str = "flinknet"
    address_pool: str = "10.203.0.0/16"   # where overlay networks take their subnets from


@dataclass(frozen=True)
class Topology:
    name: str
    nodes: tuple[Node, ...]
    network: Network = Network()
    links: tuple[Link, ...] = ()
    broker_node: str = ""           # where the Kafka-protocol broker runs; "" = the Swarm manager
    broker_image: str = ""          # "" = the testbed's Tansu image; e.g. apache/kafka:3.9.1 on real clouds
    broker_args: tuple[str, ...] = ()   # the image's command (with broker_image); () = its default
    broker_env: tuple[tuple[str, str], ...] = ()   # its environment (Apache Kafka's image reads KAFKA_*)
    source: str = "<memory>"
    sha256: str = ""
    text: str = field(default="", repr=False)

    @property
    def clouds(self) -> dict[str, list[Node]]:
        out: dict[str, list[Node]] = {}
        for n in self.nodes:
            out.setdefault(n.cloud, []).append(n)
        return out

    def node(self, hostname: str) -> Node:
        for n in self.nodes:
            if n.hostname == hostname:
                return n
        raise KeyError(f"no node {hostname!r} in topology {self.name!r}; nodes: "
                       + ", ".join(n.hostname for n in self.nodes))

    def with_role(self, role: str) -> list[Node]:
        return [n for n in self.nodes if n.role == role]

    @property
    def manager(self) -> Node:
        return self.with_role("manager")[0]

    @property
    def jobmanager(self) -> Node:
        return self.with_role("jobmanager")[0]


def parse_memory(value: Any) -> int:
    """'7GB' -> 7e9, '7GiB' -> 7*2**30, 512 (plain number) -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 7GB or 512MiB")
    if isinstance(value, (int, float)):
        return int(value)
    m = _MEMORY.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size; use e.g. 7GB, 7GiB or 512MiB")
    unit = (m.group(2) or "").lower().rstrip("b")
    return int(float(m.group(1)) * _UNITS[unit])


class _Checker:
    """Collects problems while walking the parsed YAML."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def bad(self, path: str, msg: str) -> None:
        self.problems.append((path, msg))

    def mapping(self, value: Any, path: str, allowed: dict[str, str] | tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            self.bad(path, f"expected a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.bad(f"{path}.{key}" if path else str(key),
                         f"unknown key; allowed: {', '.join(allowed)}")
        return value

    def number(self, value: Any, path: str, *, minimum: float = 0.0, maximum: float | None = None,
               positive: bool = False) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.bad(path, f"expected a number, got {value!r}")
            return None
        if value < minimum or (positive and value == 0) or (maximum is not None and value > maximum):
            rng = f"> {minimum:g}" if positive else f">= {minimum:g}"
            if maximum is not None:
                rng += f" and <= {maximum:g}"
            self.bad(path, f"{value!r} is out of range; allowed: {rng}")
            return None
        return float(value)

    def string(self, value: Any, path: str, pattern: re.Pattern | None = None, what: str = "") -> str | None:
        if not isinstance(value, str):
            self.bad(path, f"expected a string, got {value!r}")
            return None
        if pattern and not pattern.match(value):
            self.bad(path, f"{value!r} is not a valid {what}")
            return None
        return value


_TOP_KEYS = {"name": "topology name", "description": "free text", "network": "overlay network",
             "broker": "the Kafka-protocol broker ({node: hostname, image, args}; default Tansu on the manager)",
             "defaults": "default node resources", "clouds": "clouds and their nodes",
             "links": "per cloud-pair WAN links"}
BROKER_KEYS = {"node": "hostname (default: the Swarm manager)", "image": "broker image (default: Tansu)",
               "args": "the image's command, a list", "env": "its environment, a mapping"}
_NODE_KEYS = {"hostname": "", "role": "", "cpus": "", "memory": ""}


def load(path: str | Path) -> Topology:
    """Read and validate a topology file; raises TopologyError naming every bad field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError(str(path), [("", f"cannot read file: {e.strerror}")]) from None
    return parse(text, source=str(path))


def _start(text: str, source: str, error: type[TopologyError], top_keys) -> tuple["_Checker", dict]:
    """Parse YAML text into a checked top-level mapping (for topologies and inventories)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(source, [("", f"not valid YAML: {e}")]) from None
    c = _Checker()
    return c, c.mapping(doc, "", top_keys)


def parse(text: str, source: str = "<string>") -> Topology:
    c, doc = _start(text, source, TopologyError, _TOP_KEYS)

    name = c.string(doc.get("name", Path(source).stem), "name") or "topology"

    net = c.mapping(doc.get("network", {}), "network", ("driver", "name", "address_pool"))
    driver = net.get("driver", "overlay")
    if driver not in NETWORK_DRIVERS:
        c.bad("network.driver", f"unknown driver {driver!r}; allowed: {', '.join(NETWORK_DRIVERS)}")
    net_name = c.string(net.get("name", "flinknet"), "network.name", _HOSTNAME, "network name") or "flinknet"
    pool = str(net.get("address_pool", Network.address_pool))
    try:
        if ipaddress.ip_network(pool).prefixlen > 24:
            c.bad("network.address_pool", f"{pool} is too small; overlay subnets are /24, use /24 or larger")
    except ValueError:
        c.bad("network.address_pool", f"{pool!r} is not a network like 10.203.0.0/16")

    defaults = c.mapping(doc.get("defaults", {}), "defaults", ("cpus", "memory"))
    default_cpus = c.number(defaults.get("cpus", 2), "defaults.cpus", positive=True) or 2.0
    try:
        default_mem = parse_memory(defaults.get("memory", "7GB"))
    except ValueError as e:
        c.bad("defaults.memory", str(e))
        default_mem = 7 * 10**9

    nodes: list[Node] = []
    seen: dict[str, str] = {}
    clouds = doc.get("clouds")
    if not isinstance(clouds, dict) or not clouds:
        c.bad("clouds", "missing or empty; a topology needs at least one cloud with nodes")
        clouds = {}
    for cloud, cdoc in clouds.items():
        cpath = f"clouds.{cloud}"
        if not isinstance(cloud, str) or not _CLOUDNAME.match(cloud):
            c.bad(cpath, f"{cloud!r} is not a valid cloud name (lowercase letters, digits, '-')")
            continue
        cdoc = c.mapping(cdoc, cpath, ("nodes",))
        ndocs = cdoc.get("nodes")
        if not isinstance(ndocs, list) or not ndocs:
            c.bad(f"{cpath}.nodes", "expected a non-empty list of nodes")
            continue
        for i, ndoc in enumerate(ndocs):
            npath = f"{cpath}.nodes[{i}]"
            ndoc = c.mapping(ndoc, npath, _NODE_KEYS)
            if not ndoc:
                continue
            host = c.string(ndoc.get("hostname"), f"{npath}.hostname", _HOSTNAME,
                            "hostname (lowercase letters, digits and '-', at most 63)")
            role = ndoc.get("role")
            if role not in ROLES:
                c.bad(f"{npath}.role", f"unknown role {role!r}; allowed: {', '.join(ROLES)}")
                role = None
            cpus = c.number(ndoc.get("cpus", default_cpus), f"{npath}.cpus", positive=True)
            try:
                mem = parse_memory(ndoc.get("memory", default_mem))
                if mem < MIN_NODE_MEMORY:
                    raise ValueError(f"{ndoc.get('memory', default_mem)!r} is too small; a node needs at "
                                     "least 256MiB (its Docker engine and a Flink process)")
            except ValueError as e:
                c.bad(f"{npath}.memory", str(e))
                mem = None
            if host is not None:
                if host in seen:
                    c.bad(f"{npath}.hostname", f"duplicate hostname {host!r} (also at {seen[host]})")
                    continue
                seen[host] = npath
            if host and role and cpus and mem is not None:
                nodes.append(Node(host, cloud, role, cpus, mem))

    managers = [n for n in nodes if n.role == "manager"]
    jobmanagers = [n for n in nodes if n.role == "jobmanager"]
    if nodes and len(managers) != 1:
        c.bad("clouds", f"exactly one node must have role 'manager' (the Swarm manager); found "
              f"{len(managers)}" + (f": {', '.join(n.hostname for n in managers)}" if managers else ""))
    if nodes and len(jobmanagers) != 1:
        c.bad("clouds", f"exactly one node must have role 'jobmanager' (the Flink jobmanager); found "
              f"{len(jobmanagers)}" + (f": {', '.join(n.hostname for n in jobmanagers)}" if jobmanagers else ""))

    links: list[Link] = []
    ldocs = doc.get("links", [])
    if not isinstance(ldocs, list):
        c.bad("links", "expected a list of links")
        ldocs = []
    pairs: set[frozenset] = set()
    for i, ldoc in enumerate(ldocs):
        lpath = f"links[{i}]"
        ldoc = c.mapping(ldoc, lpath, LINK_FIELDS)
        if not ldoc:
            continue
        pair = ldoc.get("clouds")
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
            c.bad(f"{lpath}.clouds", f"expected a list of two cloud names, got {pair!r}")
            continue
        ok = True
        for j, p in enumerate(pair):
            if p not in clouds:
                c.bad(f"{lpath}.clouds[{j}]", f"unknown cloud {p!r}; clouds: {', '.join(map(str, clouds))}")
                ok = False
        if pair[0] == pair[1]:
            c.bad(f"{lpath}.clouds", "a link joins two different clouds")
            ok = False
        if frozenset(pair) in pairs:
            c.bad(f"{lpath}.clouds", f"a second link between {pair[0]} and {pair[1]}")
            ok = False
        pairs.add(frozenset(pair))
        vals = {}
        for key in ("rtt_ms", "jitter_ms", "loss_pct", "bandwidth_mbit"):
            if key in ldoc:
                v = c.number(ldoc[key], f"{lpath}.{key}", maximum=100.0 if key == "loss_pct" else None,
                             positive=key == "bandwidth_mbit")
                ok = ok and v is not None
                vals[key] = v
        if ok:
            links.append(Link(clouds=(pair[0], pair[1]), **vals))

    broker = c.mapping(doc.get("broker", {}), "broker", BROKER_KEYS)
    broker_node = broker.get("node", "")
    if broker_node and broker_node not in {n.hostname for n in nodes}:
        c.bad("broker.node", f"unknown node {broker_node!r}; nodes: {', '.join(n.hostname for n in nodes)}")
    broker_image = c.string(broker.get("image", ""), "broker.image") or ""
    broker_args = broker.get("args", [])
    if not isinstance(broker_args, list) or not all(isinstance(a, (str, int, float)) for a in broker_args):
        c.bad("broker.args", f"expected a list of strings (the image's command), got {broker_args!r}")
        broker_args = []
    elif broker_args and not broker_image:
        c.bad("broker.args", "args need broker.image (the default Tansu image has its own command)")
    broker_env = broker.get("env", {})
    if not isinstance(broker_env, dict) or not all(isinstance(v, (str, int, float)) for v in broker_env.values()):
        c.bad("broker.env", f"expected a mapping of names to values, got {broker_env!r}")
        broker_env = {}
    elif broker_env and not broker_image:
        c.bad("broker.env", "env needs broker.image")

    if c.problems:
        raise TopologyError(source, c.problems)
    return Topology(name=name, nodes=tuple(nodes), network=Network(driver, net_name, pool), links=tuple(links),
                    broker_node=broker_node or (managers[0].hostname if len(managers) == 1 else ""),
                    broker_image=broker_image, broker_args=tuple(str(a) for a in broker_args),
                    broker_env=tuple((str(k), str(v)) for k, v in broker_env.items()),
                    source=source, sha256=hashlib.sha256(text.encode()).hexdigest(), text=text)



SEED_TOPOLOGY = Path(__file__).resolve().parent.parent / "topologies" / "seed.yaml"
