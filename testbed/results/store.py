"""Tidy results: one row per measurement, appended and flushed as soon as it exists.

Rows land in ``results/<session-id>/<table>.csv`` (appended and fsynced row by row, so a run killed
half-way keeps every finished row) and ``<table>.parquet`` (rewritten from the CSV after each row).
Each row carries its provenance (run id, timestamps, host and engine facts).
"""

from __future__ import annotations

import csv
import os
import platform
import socket
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..core.run import file_lock

RESULTS = Path("results")   # relative to where pytest or the CLI runs
# identifiers are text, whatever they look like: a cell id such as 01384710 or 12e45678 would
# otherwise be read back as a number (and lose its zeros, or become 1.2e46)
TEXT_COLUMNS = ("cell", "cell_key", "run_id", "job_id", "started", "ended", "error", "logs")


def read_table(path: Path) -> pd.DataFrame:
    """A results table (CSV) as written: identifier columns stay text."""
    with open(path, newline="") as f:
        header = next(csv.reader(f), [])
    # (copied: a frame read with per-column types comes in many blocks, and each column added to it
    # later would warn that it is fragmented)
    return pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS if c in header}).copy()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def host_facts() -> dict:
    """The harness host: name, cores, Python, kernel (the engine's version is the caller's to add)."""
    return {"host": socket.gethostname(), "host_cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release()}


class ResultsDir:
    def __init__(self, run_id: str, root: Path | str = RESULTS):
        self.path = Path(root) / run_id   # created with the first row, not before

    def append(self, table: str, row: dict) -> Path:
        """Append one row to ``<table>.csv`` and refresh ``<table>.parquet``; new columns extend
        the header (older rows get blanks). Returns the CSV's path."""
        self.path.mkdir(parents=True, exist_ok=True)
        # one writer at a time: pytest-xdist workers on testbeds of their own share the folder
        with file_lock(self.path / f".{table}.lock"):
            path = self._append_csv(table, row)
            frame = read_table(path)
            tmp = path.with_suffix(".parquet.tmp")
            frame.to_parquet(tmp, index=False)
            os.replace(tmp, path.with_suffix(".parquet"))
        return path

    def _append_csv(self, table: str, row: dict) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.path / f"{table}.csv"
        if path.exists():
            with open(path, newline="") as f:
                header = next(csv.reader(f), [])
            if set(row) - set(header):
                frame = pd.concat([read_table(path), pd.DataFrame([row])], ignore_index=True)
                tmp = path.with_suffix(".tmp")
                frame.to_csv(tmp, index=False)
                os.replace(tmp, path)
                return path
        else:
            header = list(row)
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=header)
            if f.tell() == 0:
                w.writeheader()
            w.writerow(row)
            f.flush()
            os.fsync(f.fileno())
        return path

    def finished(self, key: str, table: str = "cells") -> bool:
        """Has a row for ``cell_key == key`` without an error been written (by any session)?"""
        path = self.path / f"{table}.csv"
        if not path.exists():
            return False
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        if "cell_key" not in frame:
            return False
        done = frame[frame["cell_key"] == key]
        return bool(len(done) and (done.get("error", pd.Series("", index=done.index)) == "").any())

    def write_frame(self, relpath: str, frame: pd.DataFrame) -> Path:
        path = self.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def write_text(self, relpath: str, text: str) -> Path:
        path = self.path / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path
