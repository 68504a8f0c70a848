"""The host's Docker engine: connecting with a clear error, and what its kernel allows."""

from __future__ import annotations

import functools
import os

import docker
import docker.errors

from .run import Progress


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
# or AppArmor confinement, writable /proc/sys, all devices, and the host's cgroup tree.
_UNPRIVILEGED_DIND = dict(
    cap_add=["ALL"], cap_drop=["SYS_RESOURCE"],
    security_opt=["seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"],
    device_cgroup_rules=["a *:* rwm"], cgroupns="host",
)


@functools.lru_cache(maxsize=4)
def _privileged_works(engine_id: str, image: str) -> bool:  # noqa: ARG001 - engine_id keys the cache
    client = docker.from_env()
    try:
        client.containers.run(image, entrypoint=["true"], privileged=True, remove=True,
                              labels={"io.flink-swarm-testbed": "probe"})
        return True
    except docker.errors.APIError:
        return False


def dind_options(client: docker.DockerClient, image: str, progress: Progress) -> dict:
    """Container options for a Docker-in-Docker node on this engine: --privileged where it works,
    otherwise the explicit set above. Detected, never assumed."""
    if _privileged_works(client.info()["ID"], image):
        return {"privileged": True}
    progress("this engine refuses --privileged; running nodes with explicit capabilities instead")
    opts = dict(_UNPRIVILEGED_DIND)
    opts["volumes"] = {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}
    return opts
