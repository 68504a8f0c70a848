"""Helpers shared by the tests."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator



HERE = Path(__file__).parent
MINI = HERE / "topologies" / "mini.yaml"


@contextmanager
def records() -> Iterator[list[logging.LogRecord]]:
    """The testbed's log records while the block runs (tests read these, not printed text)."""
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    handler = Keep(logging.INFO)
    logger = logging.getLogger("testbed")
    logger.addHandler(handler)
    try:
        yield got
    finally:
        logger.removeHandler(handler)


def messages(recs: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in recs]
