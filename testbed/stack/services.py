"""Small helpers over Swarm services, shared by the stack's modules."""

from __future__ import annotations

import logging

import docker.errors
import docker.types

from ..core.run import GiveUp, wait_for
from ..provision.testbed import Testbed

log = logging.getLogger(__name__)


def run_once(machine, image: str, args: list[str], *, labels: dict, timeout: float, what: str,
             ok_codes: tuple[int, ...] = (0,), **kw) -> str:
    """Run a container to completion on a node (through its Docker API), return its output and
    remove it; a non-zero exit raises with the output. ``kw`` go to ``containers.run``
    (network, network_mode, entrypoint, environment). ``ok_codes``: exit codes that are not errors
    (a tool that reports its own failure in its output)."""
    c = _start(machine, image, args, labels, kw)
    try:
        code = c.wait(timeout=timeout)["StatusCode"]
        out = c.logs().decode(errors="replace")
        if code not in ok_codes:
            raise RuntimeError(f"{what} on {machine.hostname} exited {code}:\n{out[-3000:]}")
        return out
    finally:
        c.remove(force=True)


def run_standing(machine, image: str, args: list[str], *, name: str, labels: dict, timeout: float, what: str,
                 network: str) -> str:
    """``run_once`` in a container that stays on the node (``name``, asleep between calls, removed
    with the run by its labels): a ``docker exec`` of the image's entrypoint with ``args`` instead of
    a container created, attached to ``network``, started and removed each time, which costs a
    second or more per call. A standing container of another image is replaced."""
    c = None
    try:
        c = machine.client.containers.get(name)
        if c.status != "running" or c.attrs["Config"]["Image"] != image:
            c.remove(force=True)
            c = None
    except docker.errors.NotFound:
        pass
    if c is None:
        try:
            c = _start(machine, image, ["infinity"], labels, dict(name=name, network=network, entrypoint=["sleep"]))
        except docker.errors.APIError as e:
            if e.status_code != 409:      # another process created it meanwhile
                raise
            c = machine.client.containers.get(name)
    entry = machine.client.images.get(image).attrs["Config"]["Entrypoint"] or []
    # (the node's API client gives up on a call after 120 s: ``timeout`` must end the command first)
    code, out = c.exec_run(["timeout", "-k", "5", str(max(1, round(timeout))), *entry, *args])
    text = out.decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"{what} on {machine.hostname} exited {code}" + (" (timed out)" if code == 124 else "")
                           + f":\n{text[-3000:]}")
    return text


ATTACH_TRIES = 3


def _start(machine, image: str, args: list[str], labels: dict, kw: dict):
    """Create and start the container; one that does not start is removed (never left behind).
    Starting a container on an attachable overlay waits for Swarm to allocate its attachment, and
    dockerd gives up after a fixed deadline ("attaching to network failed ... context deadline
    exceeded", moby/moby#41841): on a busy host that happened once in a CI run, on a node of a
    topology formed a minute before. Only that failure is tried again, and said so."""
    for attempt in range(1, ATTACH_TRIES + 1):
        c = machine.client.containers.create(image, args, labels=labels, **kw)
        try:
            c.start()
            return c
        except docker.errors.APIError as e:
            c.remove(force=True)
            if "attaching to network failed" not in str(e) or attempt == ATTACH_TRIES:
                raise
            log.warning(f"{machine.hostname}: a container did not attach to {kw.get('network')} in time "
                        f"({attempt}/{ATTACH_TRIES}); again")


def resources(cores: float = 0.0, mem_limit: int | None = None) -> docker.types.Resources:
    """A service's limits: ``cores`` of CPU (0: none) and memory in bytes (None: none)."""
    # NanoCPUs 0 is "no limit", and it must be said: the SDK's update merges the new limits into
    # the old ones, so leaving the field out of an update would keep the old limit
    return docker.types.Resources(cpu_limit=int(round(cores * 1e9)), mem_limit=mem_limit)


def cpu_limit(svc) -> float:
    """The CPU limit of a service, cores (0: none)."""
    res = svc.attrs["Spec"]["TaskTemplate"].get("Resources") or {}
    return (res.get("Limits") or {}).get("NanoCPUs", 0) / 1e9


def container_cpu_seconds(container) -> float:
    """CPU time (user + system, s) a container has used so far."""
    return container.stats(stream=False, one_shot=True)["cpu_stats"]["cpu_usage"]["total_usage"] / 1e9


def cpu_seconds(tb: Testbed, name: str) -> dict[str, float]:
    """CPU time (user + system, s) of each running task of a service so far, by node hostname."""
    nodes = node_names(tb)
    out: dict[str, float] = {}
    for t in running_tasks(tb, name):
        node = nodes.get(t["NodeID"], "?")
        try:
            container = tb.node(node).client.containers.get(t["Status"]["ContainerStatus"]["ContainerID"])
            out[node] = out.get(node, 0.0) + container_cpu_seconds(container)
        except Exception:  # noqa: BLE001 - a task being replaced has no stats
            continue
    return out


def get(tb: Testbed, name: str):
    try:
        return tb.manager.client.services.get(name)
    except docker.errors.NotFound:
        return None


def exists(tb: Testbed, name: str) -> bool:
    return get(tb, name) is not None


def remove(tb: Testbed, name: str) -> None:
    svc = get(tb, name)
    if svc is not None:
        svc.remove()


def update(tb: Testbed, service: str, /, timeout: float = 180, **spec) -> None:
    """Update a service (``spec`` as for the SDK's ``Service.update``) and wait until it has
    converged: as many tasks as it wants, each running and created from the new spec. Swarm stops
    the old task before the new one starts, and a client that connected to the old one (its DNS
    entry, its port) in between loses it: nothing may use the service before this returns."""
    svc = get(tb, service)
    svc.update(**spec)
    svc.reload()
    # read once: every later write of the service (the updater's "completed" too) moves UpdatedAt
    updated = _instant(svc.attrs["UpdatedAt"])       # both times are the manager's clock

    def converged() -> bool:
        svc.reload()
        state = (svc.attrs.get("UpdateStatus") or {}).get("State")
        if state in ("paused", "rollback_paused", "rollback_completed"):
            raise GiveUp(f"the update of service {service} stopped ({state}): "
                         f"{svc.attrs['UpdateStatus'].get('Message', '')}")
        template = _template(svc.attrs["Spec"]["TaskTemplate"])
        want = svc.attrs["Spec"].get("Mode", {}).get("Replicated", {}).get("Replicas")
        tasks = svc.tasks(filters={"desired-state": "running"})
        # a task of the new spec: created after the update, or (an update that changed nothing
        # Swarm restarts for) carrying the service's task template
        if want == 0:
            return not tasks
        return (bool(tasks) and (want is None or len(tasks) == want)
                and all(t["Status"]["State"] == "running"
                        and (_instant(t["CreatedAt"]) >= updated or _template(t.get("Spec", {})) == template)
                        for t in tasks))

    wait_for(converged, timeout, f"service {service} to run its new configuration", interval=0.5,
             detail=lambda: describe(tb, service))


def _template(spec: dict) -> dict:
    return {k: v for k, v in spec.items() if k != "Runtime"}   # a default the tasks' copy leaves out


def _instant(stamp: str) -> tuple[str, int]:
    """An engine's RFC 3339 time (``2026-11-27T04:40:01.5Z``, 0 to 9 decimals) as a sortable pair."""
    whole, _, frac = stamp.rstrip("Z").partition(".")
    return whole, int((frac + "000000000")[:9])


def running_tasks(tb: Testbed, name: str) -> list[dict]:
    svc = get(tb, name)
    if svc is None:
        return []
    return [t for t in svc.tasks(filters={"desired-state": "running"}) if t["Status"]["State"] == "running"]


def node_names(tb: Testbed) -> dict[str, str]:
    """Swarm node id -> hostname."""
    return {n.id: n.attrs["Description"]["Hostname"] for n in tb.manager.client.nodes.list()}


def task_addresses(tb: Testbed, name: str) -> dict[str, str]:
    """Overlay address -> hostname of the node, for a service's running tasks."""
    names = node_names(tb)
    out = {}
    for t in running_tasks(tb, name):
        for att in t.get("NetworksAttachments", []):
            for addr in att.get("Addresses", []):
                out[addr.split("/")[0]] = names.get(t["NodeID"], "?")
    return out


def task_nodes(tb: Testbed, name: str) -> list[str]:
    """Hostnames of the nodes running a service's tasks (one entry per running task)."""
    names = node_names(tb)
    return [names.get(t["NodeID"], "?") for t in running_tasks(tb, name)]


def wait_resolvable(tb: Testbed, name: str, services: list[str], timeout: float = 60) -> None:
    """Wait until ``name`` resolves inside every running task of ``services``. Swarm spreads a new
    service's DNS entry to the other nodes by gossip: the node that runs it knows it at once, a
    node in the other cloud some time later (seconds, on a busy host)."""
    names = node_names(tb)

    def missing() -> list[str]:
        out = []
        for svc in services:
            for t in running_tasks(tb, svc):
                node = names.get(t["NodeID"], "?")
                cid = t["Status"].get("ContainerStatus", {}).get("ContainerID")
                try:
                    code, _ = tb.node(node).client.containers.get(cid).exec_run(["getent", "hosts", name])
                except Exception as e:  # noqa: BLE001 - a task just being replaced: asked again
                    code = f"{type(e).__name__}"
                if code != 0:
                    out.append(f"{svc} on {node}")
        return out

    wait_for(lambda: not missing(), timeout, f"'{name}' to resolve in the tasks of {', '.join(services)}",
             interval=0.5, detail=lambda: "not yet in: " + ", ".join(missing()))


def label_nodes(tb: Testbed, label: str, hostnames: tuple[str, ...] | list[str]) -> None:
    """Set ``label=true`` on exactly these nodes and remove it from the others."""
    for node in tb.manager.client.nodes.list():
        spec = node.attrs["Spec"]
        labels = dict(spec.get("Labels", {}))
        want = node.attrs["Description"]["Hostname"] in hostnames
        if want == (labels.get(label) == "true"):
            continue
        if want:
            labels[label] = "true"
        else:
            labels.pop(label, None)
        spec["Labels"] = labels
        node.update(spec)


def logs(tb: Testbed, name: str, tail: int = 40) -> str:
    svc = get(tb, name)
    if svc is None:
        return f"(no service {name})"
    try:
        raw = b"".join(svc.logs(stdout=True, stderr=True, tail=tail, timestamps=False))
        return raw.decode(errors="replace")
    except docker.errors.APIError as e:
        return f"(logs of {name} unavailable: {e})"


def describe(tb: Testbed, name: str, tail: int = 30) -> str:
    """Tasks (node, state, error) and the last log lines of a service, for failure messages."""
    svc = get(tb, name)
    if svc is None:
        return f"service {name}: not created"
    names = node_names(tb)
    lines = [f"service {name} tasks:"]
    for t in sorted(svc.tasks(), key=lambda t: t.get("CreatedAt", ""))[-10:]:
        st = t["Status"]
        lines.append(f"  {names.get(t.get('NodeID'), '-'):24} {st['State']:10} {st.get('Err') or st.get('Message', '')}")
    lines.append(f"service {name} log (last {tail} lines):")
    lines += ["  " + ln for ln in logs(tb, name, tail).splitlines()]
    return "\n".join(lines)
