"""RTT and throughput between cloud regions, as published, for links a topology does not give.

A topology may name each cloud's region (``azure: {region: westeurope, nodes: [...]}``); a link between
two clouds with regions and without an ``rtt_ms`` takes the RTT measured between those regions, and,
without a ``bandwidth_mbit``, their throughput. The table (``topologies/regions.csv``) comes from
Skyplane's published profiles (github.com/skyplane-project/skyplane, Apache-2.0, at commit
2e3b2c01735054a8053d6a939d69fe43a652d2d0; built by ``scripts/regions-from-skyplane.py``, whose
docstring says how): RTTs from ping runs between VMs (2022-04-16), each pair's value the median over
its runs of each run's minimum RTT; throughput from iperf3 with 64 parallel connections (2022-01-29),
the median of its runs. Both on the premium network tier. 64 connections together reach far more
than one TCP flow: the throughput is what the path carries, not what one Kafka client gets.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent.parent / "topologies" / "regions.csv"
SOURCE = "Skyplane's profiles (2022; RTT: median of runs' minimum, throughput: 64 connections)"
PROVIDERS = {"azure": "azure", "google": "gcp", "gcp": "gcp", "aws": "aws", "amazon": "aws"}


@dataclass(frozen=True)
class Measured:
    a: str
    b: str
    rtt_ms: float | None
    rtt_runs: int
    throughput_gbit: float | None
    throughput_runs: int

    def describe(self) -> str:
        out = [f"{self.a} - {self.b}:"]
        if self.rtt_ms is not None:
            out.append(f"RTT {self.rtt_ms:g} ms (median of {self.rtt_runs} runs' minimum)")
        if self.throughput_gbit is not None:
            out.append(f"{self.throughput_gbit:g} Gbit/s with 64 connections ({self.throughput_runs} runs)")
        return " ".join(out) + f"; {SOURCE}"


@lru_cache(maxsize=1)
def table() -> dict[tuple[str, str], Measured]:
    out = {}
    with open(TABLE) as f:
        for r in csv.DictReader(f):
            out[(r["a"], r["b"])] = Measured(r["a"], r["b"], float(r["rtt_ms"]) if r["rtt_ms"] else None,
                                             int(r["rtt_runs"]),
                                             float(r["throughput_gbit"]) if r["throughput_gbit"] else None,
                                             int(r["throughput_runs"]))
    return out


@lru_cache(maxsize=1)
def known() -> dict[str, str]:
    """Every region the table has, by the names a topology may use for it: 'azure:westeurope',
    'gcp:europe-west4-a' and 'gcp:europe-west4' (GCP's profiles were measured in one zone)."""
    out: dict[str, str] = {}
    for a, b in table():
        for name in (a, b):
            out[name] = name
            provider, _, region = name.partition(":")
            if provider == "gcp" and region[-2:-1] == "-":
                out.setdefault(f"gcp:{region[:-2]}", name)
    return out


def resolve(cloud: str, region: str) -> str:
    """The table's name for a cloud's ``region`` ('westeurope' in cloud 'azure', or 'azure:westeurope');
    ValueError saying what is known."""
    name = region if ":" in region else f"{PROVIDERS.get(cloud, '?')}:{region}"
    provider = name.split(":", 1)[0]
    if name in known():
        return known()[name]
    if ":" not in region and cloud not in PROVIDERS:
        raise ValueError(f"cloud {cloud!r} is not a provider the table knows ({', '.join(sorted(PROVIDERS))}): "
                         f"name the region with its provider, e.g. azure:{region}")
    regions = sorted({k.split(":", 1)[1] for k in known() if k.startswith(provider + ":")})
    raise ValueError(f"no published measurements for region {name!r}; {provider}'s regions in the table: "
                     + (", ".join(regions) or "none"))


def between(a: str, b: str) -> Measured | None:
    """The measurements between two resolved regions, or None."""
    return table().get(tuple(sorted((a, b))))
