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

The file format is ``TopologySchema`` and its parts below (pydantic models: each field's
description documents it); the rules between fields (one manager, unique hostnames) are in
``_relations``. Only the model lives here; providers turn it into machines.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError,
                      ValidationInfo, field_validator)

ROLES = ("manager", "jobmanager", "worker")
NETWORK_DRIVERS = ("overlay", "weave")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_CLOUDNAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
MIN_NODE_MEMORY = 256 * 2**20
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


class TopologyError(ValueError):
    """A topology file that cannot be used. ``problems`` lists (field path, message) pairs; a
    subclass names its kind of file in ``what``."""

    what = "topology"

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in problems]
        super().__init__(f"invalid {self.what}\n  " + "\n  ".join(lines))


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
    buffer_ms: float | None = None      # the bottleneck queue, in ms at the bandwidth; None: one BDP
    source: str = ""                    # where values not in the file came from (model/regions.py)

    @property
    def name(self) -> str:
        return f"{self.clouds[0]}-{self.clouds[1]}"

    def queue_packets(self) -> int:
        """The bottleneck queue's length in full-size packets: ``buffer_ms`` at the link's bandwidth
        (by default one bandwidth-delay product, at least 5 ms), never fewer than ``MIN_QUEUE``. A link
        without a bandwidth has no bottleneck of its own: its queue is as for 10 Gbit/s."""
        ms = self.buffer_ms if self.buffer_ms is not None else max(self.rtt_ms, 5.0)
        mbit = self.bandwidth_mbit or 10_000
        return max(MIN_QUEUE, math.ceil(mbit * 1e6 / 8 * ms / 1000 / MTU))


MTU = 1500
MIN_QUEUE = 16          # packets: TCP's initial window and a little more
LINK_PARAMS = ("rtt_ms", "jitter_ms", "loss_pct", "bandwidth_mbit", "buffer_ms")


def links_with(links: tuple[Link, ...], changes: tuple[tuple[str, str, str, float], ...]) -> tuple[Link, ...]:
    """``links`` with ``changes`` applied, each (cloud, cloud, field, value): a link axis's value."""
    out = []
    for ln in links:
        mine = {f: v for a, b, f, v in changes if {a, b} == set(ln.clouds)}
        out.append(replace(ln, **mine) if mine else ln)
    return tuple(out)


def find_link(links: tuple[Link, ...], name: str) -> Link | None:
    """The link called ``name`` ('azure-google' or 'google-azure'; cloud names may hold '-')."""
    return next((ln for ln in links if name in (f"{ln.clouds[0]}-{ln.clouds[1]}", f"{ln.clouds[1]}-{ln.clouds[0]}")),
                None)


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


# -- the file format: value types -----------------------------------------------------------------
def _matching(pattern: re.Pattern, what: str) -> AfterValidator:
    def check(value: str) -> str:
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid {what}")
        return value
    return AfterValidator(check)


def _known(what: str, names: str) -> AfterValidator:
    """A reference to a cloud or a node; the names the file defines are in the validation context."""
    def check(value: str, info: ValidationInfo) -> str:
        known = info.context[names]
        if value not in known:
            raise ValueError(f"unknown {what} {value!r}; {names}: {', '.join(known)}")
        return value
    return AfterValidator(check)


def _memory(value: Any) -> int:
    size = parse_memory(value)
    if size < MIN_NODE_MEMORY:
        raise ValueError(f"{value!r} is too small; a node needs at least 256MiB (its Docker engine and a Flink process)")
    return size


def _address_pool(value: str) -> str:
    try:
        pool = ipaddress.ip_network(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a network like 10.203.0.0/16") from None
    if pool.prefixlen > 24:
        raise ValueError(f"{value} is too small; overlay subnets are /24, use /24 or larger")
    return value


Hostname = Annotated[str, _matching(_HOSTNAME, "hostname (lowercase letters, digits and '-', at most 63)")]
CloudName = Annotated[str, _matching(_CLOUDNAME, "cloud name (lowercase letters, digits, '-')")]
CloudRef = Annotated[str, _known("cloud", "clouds")]
NodeRef = Annotated[str, _known("node", "nodes")]
Role = Literal[ROLES]
Cpus = Annotated[float, Field(gt=0)]
Memory = Annotated[int, BeforeValidator(_memory)]              # bytes, from 7GB, 7GiB, 512MiB or a number
Scalar = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, (int, float)) else v)]


# -- the file format: its parts -------------------------------------------------------------------
class _Schema(BaseModel):
    """A mapping in the file. Unknown keys are errors, and values are taken as written (2, not "2").
    A field whose default is None is optional (its value then comes from elsewhere), but null is no value."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class NetworkSchema(_Schema):
    driver: Literal[NETWORK_DRIVERS] = Field("overlay", description="overlay (Docker's) or weave (the Weave Net plugin)")
    name: Annotated[str, _matching(_HOSTNAME, "network name")] = Field("flinknet", description="the network's name")
    address_pool: Annotated[str, AfterValidator(_address_pool)] = Field(
        Network.address_pool, description="where the overlay networks take their /24 subnets from, /24 or larger")


class BrokerSchema(_Schema):
    node: NodeRef = Field(None, description="hostname (default: the Swarm manager)")
    image: str = Field("", description="broker image (default: Tansu)")
    args: list[Scalar] = Field(default_factory=list, description="the image's command, a list")
    env: dict[str, Scalar] = Field(default_factory=dict, description="its environment, a mapping")

    @field_validator("args", "env")
    @classmethod
    def _need_image(cls, value: Any, info: ValidationInfo) -> Any:
        if value and not info.data.get("image"):
            raise ValueError({"args": "args need broker.image (the default Tansu image has its own command)",
                              "env": "env needs broker.image"}[info.field_name])
        return value


class DefaultsSchema(_Schema):
    cpus: Cpus = Field(2.0, description="CPUs of a node that does not say")
    memory: Memory = Field(7 * 10**9, description="memory of a node that does not say")


class NodeSchema(_Schema):
    hostname: Hostname = Field(description="the machine's hostname, unique in the topology")
    role: Role = Field(description="manager (the Swarm manager), jobmanager (the Flink jobmanager) or worker")
    cpus: Cpus = Field(None, description="CPUs, a number > 0 (default: defaults.cpus, else 2)")
    memory: Memory = Field(None, description="e.g. 7GB, 7GiB or 512MiB; at least 256MiB "
                                             "(default: defaults.memory, else 7GB)")


class CloudSchema(_Schema):
    nodes: list[NodeSchema] = Field(min_length=1, description="the cloud's machines")
    region: str = Field(None, description="the cloud's region, e.g. westeurope (or azure:westeurope): links "
                        "to another cloud with a region take their rtt_ms and bandwidth_mbit, where not "
                        "given, from published measurements (model/regions.py)")


class LinkSchema(_Schema):
    clouds: list[CloudRef] = Field(min_length=2, max_length=2, description="a list of two cloud names")
    rtt_ms: float = Field(None, ge=0, description="round-trip delay added between the two clouds, in ms "
                                                   "(split evenly per direction; default: the regions' "
                                                   "published RTT where both clouds name one, else 0)")
    jitter_ms: float = Field(0.0, ge=0, description="delay variation in ms")
    loss_pct: float = Field(0.0, ge=0, le=100, description="packet loss in percent, per direction")
    bandwidth_mbit: float = Field(None, gt=0, description="bandwidth cap in Mbit/s, per direction")
    buffer_ms: float = Field(None, gt=0, description="the queue in front of the bandwidth cap, in ms of "
                             "packets at the bandwidth (default: one bandwidth-delay product, the RTT, at "
                             "least 5 ms); what a sender that outruns the link queues before packets drop")

    @field_validator("clouds")
    @classmethod
    def _new_pair(cls, pair: list[str], info: ValidationInfo) -> list[str]:
        if pair[0] == pair[1]:
            raise ValueError("a link joins two different clouds")
        seen = info.context["pairs"]        # the pairs of the links before this one
        if frozenset(pair) in seen:
            raise ValueError(f"a second link between {pair[0]} and {pair[1]}")
        seen.add(frozenset(pair))
        return pair


class TopologySchema(_Schema):
    name: str = Field(None, description="topology name (default: the file's name)")
    description: str = Field("", description="free text")
    network: NetworkSchema = Field(default_factory=NetworkSchema, description="overlay network")
    broker: BrokerSchema = Field(default_factory=BrokerSchema, description="the Kafka-protocol broker "
                                 "({node: hostname, image, args}; default Tansu on the manager)")
    defaults: DefaultsSchema = Field(default_factory=DefaultsSchema, description="default node resources")
    clouds: dict[CloudName, CloudSchema] = Field(
        min_length=1, description="a topology needs at least one cloud with nodes")
    links: list[LinkSchema] = Field(default_factory=list, description="per cloud-pair WAN links")


LINK_FIELDS = {k: f.description for k, f in LinkSchema.model_fields.items()}
BROKER_KEYS = {k: f.description for k, f in BrokerSchema.model_fields.items()}


# -- reading a file ---------------------------------------------------------------------------------
def builtin() -> dict[str, Path]:
    """The topologies shipped with the package, by name (``seed``: the runbook's five VMs)."""
    return {p.stem: p for p in sorted(BUILTIN.glob("*.yaml"))}


def load(path: str | Path) -> Topology:
    """Read and validate a topology file, or a built-in one by name (``seed``); raises TopologyError
    naming every bad field."""
    if isinstance(path, str) and path in builtin() and not Path(path).exists():
        path = builtin()[path]
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise TopologyError(str(path), [("", f"cannot read file: {e.strerror}")]) from None
    return parse(text, source=str(path))


def parse(text: str, source: str = "<string>") -> Topology:
    doc = _read_yaml(text, source, TopologyError)
    nodes = [(f"clouds.{cloud}.nodes[{i}]", _get(n, "hostname"), _get(n, "role"))
             for cloud, c in _items(_get(doc, "clouds")) for i, n in enumerate(_list(_get(c, "nodes")))]
    context = {"clouds": [c for c, _ in _items(_get(doc, "clouds")) if isinstance(c, str)],
               "nodes": list(dict.fromkeys(h for _, h, _ in nodes if isinstance(h, str))), "pairs": set()}
    topology, problems = _validate(TopologySchema, doc, context)
    problems += _relations(nodes, "clouds")
    filled: dict[int, tuple[float | None, float | None, str]] = {}
    if topology is not None:
        filled, more = _from_regions(topology)
        problems += more
    if problems:
        raise TopologyError(source, problems)
    return _build(topology, source, text, filled)


def _from_regions(doc: "TopologySchema") -> tuple[dict[int, tuple[float | None, float | None, str]], list]:
    """Per link (by index) the rtt_ms and bandwidth_mbit its clouds' regions give where the link does
    not, and where they came from; and the problems (an unknown region, a pair without measurements)."""
    from . import regions
    names, problems, out = {}, [], {}
    for cloud, c in doc.clouds.items():
        if c.region is not None:
            try:
                names[cloud] = regions.resolve(cloud, c.region)
            except ValueError as e:
                problems.append((f"clouds.{cloud}.region", str(e)))
    for i, k in enumerate(doc.links):
        a, b = k.clouds
        if a not in names or b not in names or (k.rtt_ms is not None and k.bandwidth_mbit is not None):
            continue
        m = regions.between(names[a], names[b])
        if m is None or (k.rtt_ms is None and m.rtt_ms is None):
            problems.append((f"links[{i}]", f"no published RTT between {names[a]} and {names[b]}: give rtt_ms"))
            continue
        rtt = m.rtt_ms if k.rtt_ms is None else None
        mbit = m.throughput_gbit * 1000 if k.bandwidth_mbit is None and m.throughput_gbit else None
        out[i] = (rtt, mbit, m.describe())
    return out, problems


def _build(doc: TopologySchema, source: str, text: str | None = None,
           filled: dict[int, tuple[float | None, float | None, str]] | None = None) -> Topology:
    """The Topology a valid document describes. Without ``text`` (a document built rather than read, as
    from an inventory) its text is the document's canonical YAML, which parse() reads to an equal topology."""
    if text is None:
        text = yaml.safe_dump(doc.model_dump(exclude_defaults=True), sort_keys=False)
    d, b = doc.defaults, doc.broker
    nodes = tuple(Node(n.hostname, cloud, n.role, d.cpus if n.cpus is None else n.cpus,
                       d.memory if n.memory is None else n.memory)
                  for cloud, c in doc.clouds.items() for n in c.nodes)
    return Topology(
        name=(Path(source).stem if doc.name is None else doc.name) or "topology", nodes=nodes,
        network=Network(doc.network.driver, doc.network.name, doc.network.address_pool),
        links=tuple(_link(k, (filled or {}).get(i)) for i, k in enumerate(doc.links)),
        broker_node=b.node or next(n.hostname for n in nodes if n.role == "manager"),
        broker_image=b.image, broker_args=tuple(b.args), broker_env=tuple(b.env.items()),
        source=source, sha256=hashlib.sha256(text.encode()).hexdigest(), text=text)


def _link(k: "LinkSchema", filled: tuple[float | None, float | None, str] | None) -> Link:
    rtt, mbit, source = filled or (None, None, "")
    return Link((k.clouds[0], k.clouds[1]), k.rtt_ms if k.rtt_ms is not None else (rtt or 0.0), k.jitter_ms,
                k.loss_pct, k.bandwidth_mbit if k.bandwidth_mbit is not None else mbit, k.buffer_ms, source)


def _relations(nodes: list[tuple[str, Any, Any]], where: str) -> list[tuple[str, str]]:
    """The rules between nodes: unique hostnames, exactly one manager and one jobmanager. ``nodes`` are
    (path, hostname, role) as written, so a node with some other bad field still counts."""
    problems, first = [], {}
    for path, host, _ in nodes:
        if isinstance(host, str) and host in first:
            problems.append((f"{path}.hostname", f"duplicate hostname {host!r} (also at {first[host]})"))
        elif isinstance(host, str):
            first[host] = path
    for role, what in (("manager", "the Swarm manager"), ("jobmanager", "the Flink jobmanager")):
        having = [str(h) for _, h, r in nodes if r == role]
        if nodes and len(having) != 1:
            problems.append((where, f"exactly one node must have role {role!r} ({what}); found {len(having)}"
                             + (f": {', '.join(having)}" if having else "")))
    return problems


# -- validation: a document against a schema, problems as paths and messages --------------------------
def _read_yaml(text: str, source: str, error: type[TopologyError]) -> Any:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise error(source, [("", f"not valid YAML: {e}")]) from None
    return {} if doc is None else doc       # an empty file: say what it lacks


def _get(doc: Any, key: str) -> Any:
    return doc.get(key) if isinstance(doc, dict) else None


def _items(doc: Any) -> list:
    return list(doc.items()) if isinstance(doc, dict) else []


def _list(doc: Any) -> list:
    return doc if isinstance(doc, list) else []


def _validate(schema: type[BaseModel], doc: Any, context: dict) -> tuple[Any, list[tuple[str, str]]]:
    try:
        return schema.model_validate(doc, context=context), []
    except ValidationError as e:
        return None, [(_path(err["loc"]), _message(schema, err)) for err in e.errors()]


def _path(loc: tuple) -> str:
    """('clouds', 'azure', 'nodes', 1, 'memory') -> clouds.azure.nodes[1].memory"""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part != "[key]":              # a bad mapping key: the path names the key already
            path += f".{part}" if path else str(part)
    return path


_EXPECTED = {"string_type": "a string", "float_type": "a number", "int_type": "a whole number",
             "bool_type": "true or false", "list_type": "a list", "dict_type": "a mapping of names to values"}


def _message(schema: type[BaseModel], err: dict) -> str:
    """A pydantic error as the testbed words it: what is wrong and what is allowed."""
    kind, value, ctx, loc = err["type"], err["input"], err.get("ctx", {}), err["loc"]
    type_at, field_at = _schema_at(schema, loc)
    about = field_at.description if field_at and field_at.description else ""
    limits = {k: getattr(m, k) for m in (field_at.metadata if field_at else ())
              for k in ("gt", "ge", "lt", "le", "min_length") if hasattr(m, k)}
    if kind == "extra_forbidden":
        return f"unknown key; allowed: {', '.join(_schema_at(schema, loc[:-1])[0].model_fields)}"
    if kind == "missing" or (kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1):
        return ("missing or empty" if limits.get("min_length") else "missing") + (f"; {about}" if about else "")
    if kind in ("too_short", "too_long"):
        return f"expected {about}, got {value!r}"
    if kind == "literal_error":
        what = (field_at.title if field_at else None) or loc[-1]
        return f"unknown {what} {value!r}; allowed: {', '.join(get_args(type_at))}"
    if kind.startswith(("greater_than", "less_than")):
        bounds = limits or ctx
        allowed = (f"{bounds['ge']:g}-{bounds['le']:g}" if "ge" in bounds and "le" in bounds else " and ".join(
            f"{op} {bounds[k]:g}" for k, op in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if k in bounds))
        return f"{value!r} is out of range; allowed: {allowed}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "model_type":
        return f"expected a mapping, got {type(value).__name__}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {value!r}"
    return err["msg"]


def _schema_at(schema: type[BaseModel], loc: tuple) -> tuple[Any, Any]:
    """The type ``schema`` gives the value at ``loc``, and the model field declaring it (None for the
    items of a list or mapping)."""
    at, declared = schema, None
    for part in loc:
        at = _bare(at)
        if isinstance(at, type) and issubclass(at, BaseModel) and part in at.model_fields:
            declared = at.model_fields[part]
            at = declared.annotation
        else:                               # list[X] or dict[K, X]: X
            declared, args = None, get_args(at)
            at = args[-1] if args else None
    return _bare(at), declared


def _bare(t: Any) -> Any:
    """X from Annotated[X, ...] and X | None."""
    while get_origin(t) in (Annotated, Union, UnionType):
        t = next(a for a in get_args(t) if a is not type(None))
    return t


BUILTIN = Path(__file__).resolve().parent.parent / "topologies"    # package data
SEED_TOPOLOGY = BUILTIN / "seed.yaml"
