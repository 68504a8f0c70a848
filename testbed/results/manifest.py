"""manifest.json: everything needed to trace a results folder back to how it was made.

Versions (Flink, broker, Docker engines, Python and key packages), the topology file and its
hash, every option, the git commit, host facts, and start/end times (each resumption adds one).
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from ..images.recipes import FLINK_VERSION, KAFKA_CLIENTS_VERSION, KAFKA_CONNECTOR_VERSION
from ..stack.kafka import BrokerSpec
from ..workload.driver import PRODUCER_DEFAULTS
from ..core.run import file_lock
from .store import now

PACKAGES = ("flink-swarm-testbed", "docker", "pytest", "pytest-xdist", "pandas", "numpy", "scipy", "pyarrow",
            "matplotlib", "kafka-python", "PyYAML")
ROOT = Path(__file__).resolve().parents[2]   # the checkout, if the package runs from one


def _git() -> dict:
    def run(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {"commit": run("rev-parse", "HEAD") or None, "dirty": bool(run("status", "--porcelain"))}


def _versions() -> dict:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = None
    return out


def versions(topology) -> dict:
    """What this checkout and machine measure with: Flink, its Kafka connector and clients, the
    broker of ``topology``, Python and the key packages."""
    return {"flink": FLINK_VERSION, "kafka_connector": KAFKA_CONNECTOR_VERSION, "kafka_clients": KAFKA_CLIENTS_VERSION,
            "broker": BrokerSpec.of(topology).name, "python": platform.python_version(), "packages": _versions()}


def write(folder: Path, *, options: dict, topology, testbed=None, command: list[str] | None = None,
          jobs: list[dict] | None = None) -> Path:
    """Create or update ``manifest.json`` (a resumed run keeps the first start and adds a session).
    ``jobs``: what each job of the matrix is (``Job.record``: its file's sha256, class, arguments)."""
    folder.mkdir(parents=True, exist_ok=True)
    with file_lock(folder / ".manifest.lock"):    # xdist workers with testbeds of their own share it
        return _write(folder, options, topology, testbed, command, jobs)


def _write(folder: Path, options: dict, topology, testbed, command, jobs=None) -> Path:
    path = folder / "manifest.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    engines = {}
    if testbed is not None:
        engines.update(testbed.provider.engine_facts())   # emulated: the engine the nodes run on
        for m in testbed.machines:
            try:
                engines[m.hostname] = m.client.version().get("Version")
            except Exception as e:  # noqa: BLE001 - a manifest records what it can
                engines[m.hostname] = f"unknown ({e})"
    doc = {
        **old,
        "started": old.get("started", now()),
        "sessions": old.get("sessions", []) + [{"started": now(), "options": options, "command": command or [],
                                                "run_id": testbed.run_id if testbed else None}],
        "versions": {**versions(topology),
                     "docker_engines": engines or old.get("versions", {}).get("docker_engines", {})},
        "jobs": jobs or old.get("jobs", []),
        # the broker as started, and the driver's producer settings a cell starts from (its own are in
        # each row's producer_properties)
        "broker": {**_broker(topology), "producer_defaults": dict(PRODUCER_DEFAULTS)},
        "topology": {"source": topology.source, "sha256": topology.sha256, "text": topology.text},
        "testbed": {"run_id": testbed.run_id if testbed else None,
                    "provider": testbed.provider.name if testbed else None,
                    "preflight": testbed.preflight if testbed else {},
                    "images": testbed.images if testbed else {},
                    "wan_backend": testbed.wan.backend if testbed and testbed.wan else None,
                    "calibration": testbed.calibration if testbed else [],
                    "wan_check": testbed.wan_check if testbed else None},
        "git": _git(),
        "host": {"hostname": socket.gethostname(), "cpus": os.cpu_count(), "kernel": platform.release(),
                 "machine": platform.machine(),
                 "memory_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")},
        "ended": None,
    }
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    os.replace(tmp, path)
    return path


def finish(folder: Path) -> None:
    path = folder / "manifest.json"
    if not path.exists():
        return
    with file_lock(folder / ".manifest.lock"):
        doc = json.loads(path.read_text())
        doc["ended"] = now()
        doc["sessions"][-1]["ended"] = doc["ended"]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2, default=str))
        os.replace(tmp, path)


def _broker(topology) -> dict:
    spec = BrokerSpec.of(topology)
    return {"name": spec.name, "image": spec.image or "the testbed's own", "args": list(spec.args), "env": spec.env}
