"""The host's Docker engine: connecting with a clear error, and what its kernel allows."""

from __future__ import annotations

import logging
import functools
import os

import docker
import docker.errors

from ..core import run as runmod

log = logging.getLogger(__name__)


class EngineError(RuntimeError):
    pass


def host_client(timeout: int = 300) -> docker.DockerClient:
    """The engine named by DOCKER_HOST (default: the local socket), checked to answer."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any failure here means the same thing to the user
        raise EngineError(
            f"no Docker engine answers at {where}: {e}\n"
            "Start one (scripts/with-env installs docker.io and starts dockerd) or set DOCKER_HOST.") from None
    return client


def node_client(url: str, timeout: int = 120) -> docker.DockerClient:
    """A client for a node's engine (tcp://addr:2375 emulated, ssh://user@host real)."""
    return docker.DockerClient(base_url=url, timeout=timeout, version="auto")


# The flags that run a Docker engine inside a container when --privileged is refused (as on kernels
# whose capability bounding set lacks CAP_SYS_RESOURCE): every capability but that one, no seccomp
# or AppArmor confinement, all devices, the host's cgroup tree, and nothing masked or read-only in
# /proc and /sys (the CLI's "systempaths=unconfined" is empty MaskedPaths/ReadonlyPaths in the API).
_UNPRIVILEGED_DIND = dict(
    cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],
    security_opt=["seccomp=unconfined", "apparmor=unconfined"],
    device_cgroup_rules=["a *:* rwm"], cgroupns="host",
    binds=["/sys/fs/cgroup:/sys/fs/cgroup:rw"],
)
_UNMASKED = {"MaskedPaths": [], "ReadonlyPaths": []}


@functools.lru_cache(maxsize=4)
def _privileged_works(engine_id: str, image: str) -> bool:  # noqa: ARG001 - engine_id keys the cache
    client = docker.from_env()
    probe = client.containers.create(image, entrypoint=["true"], privileged=True,
                                     labels=runmod.labels("probe", runmod.owner_token()))
    try:
        probe.start()
        return True
    except docker.errors.APIError:
        return False
    finally:
        probe.remove(force=True, v=True)


def dind_host_config(client: docker.DockerClient, image: str, binds: list[str] = (),
                     **extra) -> dict:
    """The HostConfig of a Docker-in-Docker node on this engine: --privileged where it works,
    otherwise the explicit set above. Detected, never assumed."""
    if _privileged_works(client.info()["ID"], image):
        return client.api.create_host_config(privileged=True, binds=list(binds), **extra)
    log.info("this engine refuses --privileged; running nodes with explicit capabilities instead")
    opts = dict(_UNPRIVILEGED_DIND)
    hc = client.api.create_host_config(**{**opts, "binds": opts["binds"] + list(binds)}, **extra)
    hc.update(_UNMASKED)
    return hc
