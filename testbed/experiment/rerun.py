"""``python -m testbed rerun results/<session>``: the same experiment again, into a new folder.

The options come from the folder's manifest (its first session's, the command line's and an
experiment file's alike, as they were resolved). Before anything starts, what the new run would
measure with is held against what the old one did: the application images, Flink's, the clients'
and the broker's versions, Python's and the key packages', the topology's and the job files'
hashes. Each difference is named; the caller decides whether to go on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import images as img
from ..model.topology import load as load_topology
from ..results import manifest
from ..workload.jobs import Job, JobError
from .options import EXPERIMENT, TESTBED

# how the old run was carried out, not what it measured: not repeated
NOT_REPEATED = ("testbed_run", "keep_testbed", "resume", "dry_run", "experiment", "experiment_file")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _images_now(testbed_run: str | None, cloud: str) -> dict[str, str | None]:
    """recipe name -> the image id a new run would carry (a testbed's own with ``testbed_run``)."""
    from ..providers.engine import host_client
    if testbed_run:
        from ..providers import for_cloud
        from ..provision.testbed import Testbed
        tb = Testbed.attach(for_cloud(cloud), testbed_run)
        try:
            return {r.name: tb.images.get(r.name) for r in img.APP_RECIPES}
        finally:
            tb.close()
    try:
        client = host_client()
    except Exception:  # noqa: BLE001 - no engine here: nothing built, so nothing is the run's
        return {r.name: None for r in img.APP_RECIPES}
    return img.current_ids(client)


def differences(doc: dict, opts: dict, images: dict[str, str | None]) -> list[str]:
    """What a run with ``opts`` and ``images`` would measure with that the manifest ``doc``'s did not."""
    out = []
    if opts.get("cloud") == "real":
        from ..model.inventory import load as load_inventory
        topology = load_inventory(opts["inventory"]).topology
    else:
        topology = load_topology(opts["topology"])
    if doc.get("topology", {}).get("sha256") not in (None, topology.sha256):
        out.append(f"topology {opts['topology']}: sha256 {topology.sha256[:12]}, the run's "
                   f"{doc['topology']['sha256'][:12]}")
    before = _flat({k: v for k, v in doc.get("versions", {}).items() if k != "docker_engines"})
    for key, now in _flat(manifest.versions(topology)).items():
        if key in before and before[key] != now:
            out.append(f"version of {key.removeprefix('packages.')}: {now}, the run's {before[key]}")
    for name, image in images.items():
        was = doc.get("testbed", {}).get("images", {}).get(name)
        if was and image != was:
            out.append(f"image {name}: {image[:19] if image else 'not built yet'}, the run's {was[:19]}")
    cpus, was_cpus = os.cpu_count(), doc.get("host", {}).get("cpus")
    if was_cpus and cpus != was_cpus and str(opts.get("cpu_scale") or "auto") == "auto":
        out.append(f"this machine's {cpus} cores, the run's {was_cpus} (--cpu-scale auto scales the nodes to them)")
    first = (doc.get("sessions") or [{}])[0].get("options", {})
    for i, later in enumerate((doc.get("sessions") or [])[1:], start=2):
        for k, v in later.get("options", {}).items():
            if k in opts and k not in NOT_REPEATED and k not in ("results",) and first.get(k) != v:
                out.append(f"session {i} of the run (a resumption) used --{k.replace('_', '-')} {v!r}; "
                           f"the rerun repeats the first session's {first.get(k)!r}")
    for j in doc.get("jobs", []):
        if not j.get("job_sha256"):
            continue
        try:
            now = Job.parse(j["job"], j.get("job_args", "")).sha256
        except JobError as e:
            now = f"unreadable ({e})"
        if now != j["job_sha256"]:
            out.append(f"job {j['job']}: sha256 {now[:12]}, the run's {j['job_sha256'][:12]}")
    return out


def plan(folder: str | Path, testbed_run: str | None = None) -> tuple[dict, list[str]]:
    """The options that repeat ``folder``'s experiment (results into the folder's parent) and what
    would differ; FileNotFoundError where the folder has no manifest."""
    folder = Path(folder)
    path = folder / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: is {folder} a results folder of the experiments?")
    doc = json.loads(path.read_text())
    first = (doc.get("sessions") or [{}])[0].get("options", {})
    opts = {o.dest: o.kwargs.get("default") for o in TESTBED + EXPERIMENT}
    opts.update({k: v for k, v in first.items() if k in opts and k not in NOT_REPEATED})
    opts.update(testbed_run=testbed_run, results=str(folder.resolve().parent), resume=None, dry_run=False,
                keep_testbed=False, experiment=None)
    return opts, differences(doc, opts, _images_now(testbed_run, opts["cloud"]))
