"""Making the stack's images available on every node's engine, through the Docker API.

The images are saved once into an archive (a ``docker save`` of all of them, shared layers once)
and loaded into each node in parallel — over SSH for real hosts (the Docker API over ``ssh://``).
A real inventory may name a registry its hosts can reach (``images.registry``): a host then pulls
``<registry>/<tag>`` and only falls back to the archive when the pull fails. A node that already
has every image is skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..providers.base import Machine
from ..core.plan import Plan
from ..core.progress import Progress
from ..core.run import step

log = logging.getLogger(__name__)


def missing(machine: Machine, image_ids: list[str]) -> list[str]:
    have = {img.id for img in machine.client.images.list()}
    return [i for i in image_ids if i not in have]


class _Counted:
    """A file for the Docker API's upload that counts what was read of it (the bytes sent)."""

    def __init__(self, f, size: int, progress: Progress):
        self.f, self.size, self.progress = f, size, progress

    def __len__(self) -> int:          # requests sends a Content-Length, as for the file itself
        return self.size

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.progress.advance(len(data))
        return data


def _load(m: Machine, archive: Path, image_ids: list[str]) -> None:
    size = archive.stat().st_size
    with open(archive, "rb") as f, \
            step(log, f"{m.hostname}: load {size / 1e6:,.0f} MB of images", unit="bytes", total=size, host=m.hostname) as p:
        for chunk in m.client.api.load_image(_Counted(f, size, p)):
            if "error" in chunk:
                raise RuntimeError(f"loading images into {m.hostname} failed: {chunk['error']}")
    gone = missing(m, image_ids)
    if gone:
        raise RuntimeError(f"{m.hostname} lacks images {gone} after loading {archive}")


def _pull(m: Machine, registry: str, tags: dict[str, str], image_ids: dict[str, str]) -> bool:
    """Pull every image from the registry; False (and a progress note) if any pull fails."""
    for name, tag in tags.items():
        repo, _, version = tag.rpartition(":")
        try:
            pulled = m.client.images.pull(f"{registry}/{repo}", tag=version)
        except Exception as e:  # noqa: BLE001 - any failure means: ship the archive instead
            log.info(f"{m.hostname}: cannot pull {registry}/{tag} ({e}); shipping the images over SSH instead")
            return False
        if pulled.id != image_ids[name]:
            log.info(f"{m.hostname}: {registry}/{tag} is not the image built here; shipping the images instead")
            return False
    return True


def plan(machines: list[Machine], archive: str, image_ids: dict[str, str], tags: dict[str, str],
         registry: str = "") -> Plan:
    """One step per host (in parallel): pull from ``registry`` if given, else load the archive."""
    p = Plan()
    ids = list(image_ids.values())

    def one(m: Machine):
        def run(ctx: dict) -> None:
            if not missing(m, ids):
                return
            if registry and _pull(m, registry, tags, image_ids):
                return
            _load(m, Path(ctx.get("archive", archive)), ids)
        return run

    for m in machines:
        if registry:
            cmd = " && ".join(f"docker pull {registry}/{t}" for t in tags.values()) + f" || docker load -i {archive}"
        else:
            cmd = f"docker load -i {archive}"
        p.add(m.hostname, cmd, one(m), group="images", note="skipped where the images are already there")
    return p
