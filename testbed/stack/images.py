"""Making the stack's images available on every node's engine, through the Docker API.

No node can pull from a registry here, so the images are saved once into an archive (a
``docker save`` of all of them, shared layers once) and loaded into each node in parallel.
A node that already has every image is skipped.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..providers.base import Machine
from ..run import Progress, step


def missing(machine: Machine, image_ids: list[str]) -> list[str]:
    have = {img.id for img in machine.client.images.list()}
    return [i for i in image_ids if i not in have]


def distribute(machines: list[Machine], archive: Path, image_ids: list[str], progress: Progress) -> None:
    todo = [m for m in machines if missing(m, image_ids)]
    if not todo:
        return
    size_mb = archive.stat().st_size / 1e6

    def load(m: Machine) -> None:
        with open(archive, "rb") as f:
            for chunk in m.client.api.load_image(f):
                if "error" in chunk:
                    raise RuntimeError(f"loading images into {m.hostname} failed: {chunk['error']}")
        gone = missing(m, image_ids)
        if gone:
            raise RuntimeError(f"{m.hostname} lacks images {gone} after loading {archive}")
        progress(f"images loaded on {m.hostname}")

    with step(progress, f"load {size_mb:.0f} MB of images into {len(todo)} node engine(s)"):
        with ThreadPoolExecutor(len(todo)) as pool:
            list(pool.map(load, todo))
