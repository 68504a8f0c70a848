"""The environment variables the testbed reads, each declared once with what it means. Every other
module asks here; docs/reference.md lists them (``VARIABLES``), and a test checks both."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Variable:
    name: str
    default: str
    meaning: str

    def get(self) -> str:
        """Its value, or its default when it is unset or empty."""
        return os.environ.get(self.name, "").strip() or self.default


CACHE = Variable("FST_CACHE", "", "where downloads, root filesystems and image archives are kept between "
                 "runs (default: $XDG_CACHE_HOME/flink-swarm-testbed, or ~/.cache/flink-swarm-testbed)")
PROGRESS = Variable("FST_PROGRESS", "", "bars or lines: how long steps show their progress (default: bars on "
                    "a terminal, lines otherwise)")
DEBIAN_MIRROR = Variable("FST_DEBIAN_MIRROR", "http://deb.debian.org/debian",
                         "the Debian mirror debootstrap builds the images' root filesystems from")

VARIABLES = (CACHE, PROGRESS, DEBIAN_MIRROR)
