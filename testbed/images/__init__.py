"""Offline images: Debian rootfs (debootstrap) + PyPI artefacts, cached by content."""

from .build import Recipe, Rootfs, build_all, build_image, bundle, cache_dir
from .recipes import ALL_RECIPES, APP_RECIPES, BROKER, DRIVER, FLINK, NODE, ROUTER


def current_ids(client) -> dict[str, str | None]:
    """recipe name -> the id of the application image this checkout's recipe builds, as built on
    ``client``'s engine (None: not built there, or no engine answers)."""
    out: dict[str, str | None] = {}
    for r in APP_RECIPES:
        try:
            out[r.name] = client.images.get(r.tag).id
        except Exception:  # noqa: BLE001 - not built here, or no engine here
            out[r.name] = None
    return out

__all__ = ["Recipe", "Rootfs", "build_all", "build_image", "bundle", "cache_dir",
           "current_ids", "ALL_RECIPES", "APP_RECIPES", "NODE", "ROUTER", "FLINK", "BROKER", "DRIVER"]
