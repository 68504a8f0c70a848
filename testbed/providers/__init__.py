"""The providers: where a topology's machines come from. ``for_cloud`` chooses one, from ``--cloud``
and ``--inventory``; the interface they implement is ``base.Provider``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import docker

from .base import CLOUDS, Provider

if TYPE_CHECKING:
    from ..model.inventory import Inventory


def for_cloud(cloud: str = "emulated", inventory: "str | Inventory | None" = None, *,
              client: docker.DockerClient | None = None) -> Provider:
    """The provider for ``--cloud`` (and ``--inventory`` with ``real``)."""
    if cloud not in CLOUDS:
        raise ValueError(f"unknown cloud {cloud!r}; choose one of {', '.join(CLOUDS)}")
    if cloud == "real":
        if inventory is None:
            raise ValueError("--cloud real needs --inventory FILE (see examples/inventory.yaml)")
        from ..model.inventory import load as load_inventory
        from .real import RealProvider
        return RealProvider(load_inventory(inventory) if isinstance(inventory, (str, bytes)) or hasattr(inventory, "__fspath__")
                            else inventory)
    if inventory is not None:
        raise ValueError("--inventory is for --cloud real")
    from .emulated import EmulatedProvider
    from .engine import host_client
    return EmulatedProvider(client or host_client())
