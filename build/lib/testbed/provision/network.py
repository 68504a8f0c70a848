"""The network the stack's services share: Swarm's ``overlay`` (recommended), or Weave Net.

``overlay`` is Swarm's own VXLAN overlay, created on the manager. ``weave`` repeats the seed's
steps on every host — the ``weaveworks/net-plugin`` plugin installed disabled, the same
``IPALLOC_RANGE`` set everywhere, enabled; the ``weave`` script's ``weave launch`` and
``weave connect <manager>`` — before the Swarm forms, then the network is created with the plugin
as its driver. Weave Net is no longer maintained (its company closed in 2024), and it needs SSH to
the hosts (the ``weave`` script), so it belongs to the real-cloud path only.
"""

from __future__ import annotations

import docker.errors

from ..providers.base import Machine, manager_of
from ..core.plan import Plan


def _label_flags(labels: dict[str, str]) -> str:
    return " ".join(f"--label {k}={v}" for k, v in labels.items())


def host_plan(machines: list[Machine], driver: str, address_pool: str, weave_plugin: str,
              weave_script: str) -> Plan:
    """What every host needs before the Swarm forms (nothing for ``overlay``)."""
    p = Plan()
    if driver != "weave":
        return p
    if any(m.session is None for m in machines):
        raise ValueError("network driver 'weave' needs SSH to the hosts (the weave script): "
                         "use it with --cloud=real; emulated clouds use 'overlay'")
    manager = manager_of(machines)

    def install(m: Machine):
        def run(ctx: dict) -> None:
            try:
                m.client.plugins.get(weave_plugin)
            except docker.errors.NotFound:
                m.client.plugins.install(weave_plugin)    # pulled disabled, all permissions granted
        return run

    def configure(m: Machine):
        def run(ctx: dict) -> None:
            plugin = m.client.plugins.get(weave_plugin)
            if not plugin.enabled:
                plugin.configure({"IPALLOC_RANGE": address_pool})
        return run

    def enable(m: Machine):
        def run(ctx: dict) -> None:
            plugin = m.client.plugins.get(weave_plugin)
            if not plugin.enabled:
                plugin.enable(timeout=120)
        return run

    def ssh(m: Machine, command: str, what: str):
        return lambda ctx: m.session.check(command, what, timeout=300)

    for m in machines:
        p.add(m.hostname, f"docker plugin install --grant-all-permissions --disable {weave_plugin}", install(m),
              group="weave-install")
    for m in machines:
        p.add(m.hostname, f"docker plugin set {weave_plugin} IPALLOC_RANGE={address_pool}", configure(m),
              group="weave-set", note="the same range on every host")
    for m in machines:
        p.add(m.hostname, f"docker plugin enable {weave_plugin}", enable(m), group="weave-enable")
    def shown(m: Machine, command: str) -> str:   # as Session.run runs it
        return f"sudo -n sh -c '{command}'" if m.ssh.sudo else command

    get = f"curl -fsSL -o /usr/local/bin/weave {weave_script} && chmod a+x /usr/local/bin/weave"
    for m in machines:
        p.add(m.hostname, shown(m, get), ssh(m, get, "installing the weave script"), group="weave-script")
    for m in machines:
        p.add(m.hostname, shown(m, "weave launch"), ssh(m, "weave launch", "weave launch"), group="weave-launch")
    for m in machines:
        if m is not manager:
            cmd = f"weave connect {manager.address}"
            p.add(m.hostname, shown(m, cmd), ssh(m, cmd, cmd), group="weave-connect")
    return p


def create_plan(manager: Machine, name: str, driver: str, labels: dict[str, str], weave_plugin: str = "") -> Plan:
    """The network itself, created on the manager once the Swarm is formed."""
    if driver not in ("overlay", "weave"):
        raise ValueError(f"unknown network driver {driver!r}; allowed: overlay, weave")
    real_driver = "overlay" if driver == "overlay" else weave_plugin
    p = Plan()
    p.add(manager.hostname, f"docker network create --driver {real_driver} --attachable {_label_flags(labels)} {name}",
          lambda ctx: ctx.__setitem__("network_id", manager.client.networks.create(
              name, driver=real_driver, attachable=True, labels=labels).id))
    return p


def teardown_plan(machines: list[Machine], driver: str, weave_plugin: str) -> Plan:
    """Undo ``host_plan`` (after the hosts left the Swarm)."""
    p = Plan()
    if driver != "weave":
        return p

    def remove(m: Machine):
        def run(ctx: dict) -> None:
            m.session.run("weave reset", timeout=120)
            try:
                plugin = m.client.plugins.get(weave_plugin)
            except docker.errors.NotFound:
                return
            plugin.remove(force=True)
        return run

    for m in machines:
        p.add(m.hostname, f"weave reset && docker plugin rm --force {weave_plugin}", remove(m), group="weave-rm")
    return p
