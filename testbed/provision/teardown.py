"""Undoing a run: a plan of steps like provisioning's, so ``--dry-run`` shows ``down`` as well as ``up``.

On emulated clouds the machines are containers of this host: removing them removes the Swarm and
everything on it, and the provider does that alone. Real hosts outlive the run, so it is undone on
each host that carries the run's marker: the blackhole routes of a partition it did not heal (a
killed run's), the run's services (on the manager), its containers, the Swarm (workers leave first,
the manager last), the run's networks, Weave Net where the run installed it, and last the marker
itself.
"""

from __future__ import annotations

import json
import logging
import threading

import docker.errors

from ..core.plan import Plan, execute
from ..core.run import LABEL_IMAGES, LABEL_RUN, ROUTE_PROTO, step
from ..providers.base import Machine, Provider
from . import network

log = logging.getLogger(__name__)
_lock = threading.Lock()


def _removed(ctx: dict, what: str) -> None:
    with _lock:
        ctx.setdefault("removed", []).append(what)


def plan(provider: Provider, machines: list[Machine], run_id: str, driver: str, weave_plugin: str = "",
         tool_image: str | None = None) -> Plan:
    """The steps that undo run ``run_id`` on ``machines`` (real hosts), in order. ``tool_image``:
    the run's driver image (it has ``ip``), in which the routes are removed; None if not known."""
    p = Plan()
    if provider.disposable:
        return p
    label = f"{LABEL_RUN}={run_id}"
    managers = [m for m in machines if m.role == "manager"]
    workers = [m for m in machines if m.role != "manager"]

    def rm_routes(m: Machine):
        def run(ctx: dict) -> None:
            if tool_image is None:
                log.warning(f"{m.hostname}: the run's images are not known, so blackhole routes of an unhealed "
                            f"partition (if any) stay: remove them with `ip route flush proto {ROUTE_PROTO}`")
                return
            # the routes there were, then none (or the exit status says some stayed)
            script = (f"ip route show proto {ROUTE_PROTO}; ip route flush proto {ROUTE_PROTO} >/dev/null 2>&1; "
                      f"test -z \"$(ip route show proto {ROUTE_PROTO})\"")
            try:
                out = m.client.containers.run(tool_image, ["-c", script], entrypoint=["sh"], network_mode="host",
                                              cap_add=["NET_ADMIN"], labels={LABEL_RUN: run_id}, remove=True)
            except Exception as e:  # noqa: BLE001 - best effort: the rest of the run is undone all the same
                log.warning(f"{m.hostname}: could not remove blackhole routes ({type(e).__name__}: {e}); "
                            f"remove them with `ip route flush proto {ROUTE_PROTO}`")
                return
            for line in out.decode(errors="replace").splitlines():
                if line.strip():
                    _removed(ctx, f"route {line.strip()} on {m.hostname}")
        return run

    def rm_services(m: Machine):
        def run(ctx: dict) -> None:
            for svc in m.client.services.list(filters={"label": label}):
                svc.remove()
                _removed(ctx, f"service {svc.name} on {m.hostname}")
        return run

    def rm_containers(m: Machine):
        def run(ctx: dict) -> None:
            # the low-level list: the removed services' tasks are going away meanwhile
            for c in m.client.api.containers(all=True, filters={"label": label}):
                try:
                    m.client.api.remove_container(c["Id"], force=True)
                except docker.errors.NotFound:
                    continue
                _removed(ctx, f"container {c['Names'][0].lstrip('/')} on {m.hostname}")
        return run

    def leave(m: Machine):
        def run(ctx: dict) -> None:
            if m.client.info().get("Swarm", {}).get("LocalNodeState") in ("active", "pending", "error"):
                m.client.swarm.leave(force=True)
                _removed(ctx, f"swarm membership of {m.hostname}")
        return run

    def rm_networks(m: Machine):
        def run(ctx: dict) -> None:
            for n in m.client.networks.list(filters={"label": label}):
                try:
                    n.remove()
                    _removed(ctx, f"network {n.name} on {m.hostname}")
                except docker.errors.APIError:
                    pass
        return run

    for m in machines:
        p.add(m.hostname, f"docker run --rm --network host --cap-add NET_ADMIN {tool_image or '<driver image>'} "
              f"ip route flush proto {ROUTE_PROTO}", rm_routes(m), group="routes",
              note="a partition's blackhole routes, if a killed run left any")
    for m in managers:
        p.add(m.hostname, f"docker service rm $(docker service ls -q --filter label={label})", rm_services(m))
    for m in machines:
        p.add(m.hostname, f"docker rm -f $(docker ps -aq --filter label={label})", rm_containers(m), group="containers")
    for m in workers:
        p.add(m.hostname, "docker swarm leave --force", leave(m), group="leave")
    for m in managers:
        p.add(m.hostname, "docker swarm leave --force", leave(m))
    for m in machines:
        p.add(m.hostname, f"docker network rm $(docker network ls -q --filter label={label})", rm_networks(m),
              group="networks")
    if driver == "weave":
        weave = network.teardown_plan(machines, driver, weave_plugin)
        p.extend(weave)
        p.add(machines[0].hostname if machines else "-", "(weave removed)",
              lambda ctx: [_removed(ctx, f"weave on {m.hostname}") for m in machines], note="bookkeeping")
    p.extend(provider.unmark_plan(machines, run_id))
    return p


def destroy(provider: Provider, run_id: str | None = None, keep=lambda owner: False) -> list[str]:
    """Remove one run (or every run whose owner ``keep`` does not vouch for): on emulated clouds its
    containers, networks and volumes; on real hosts the teardown plan of each marked run. Returns
    what was removed."""
    if provider.disposable:
        return provider.destroy(run_id, keep)
    ctx: dict = {"removed": []}
    for rid, info in provider.marked(run_id, keep).items():
        machines = [m for m in provider.machines(rid) if m.hostname in info["hosts"]]
        try:
            try:
                image = json.loads(provider.manager_labels(rid).get(LABEL_IMAGES, "{}")).get("driver")
            except Exception:  # noqa: BLE001 - the manager may be gone: then the routes are said to stay
                image = None
            with step(log, f"run {rid}: undo it on {len(machines)} host(s)"):
                execute(plan(provider, machines, rid, info["driver"], info.get("weave_plugin", ""), image), ctx)
        finally:
            for m in machines:
                m.close()
    return ctx["removed"]
