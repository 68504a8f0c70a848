"""Recorded cells for tests of a session's own rules (resume, order, failures, searches, the folder's
files), which the engine adds nothing to.

``recorded/20261203-131731-ff5c`` is a real run's results folder (its manifest names the command and
the commit): six cells of 2 taskmanagers, single-cloud and multi-cloud, 500 ev/s. ``Recorded`` gives a
session those rows back, one after the other, under each cell's own settings (``CellSpec.params``),
with their latency samples and time series; the measured columns are the recording's, not the cell's.
``testbed`` is a ``Testbed`` with no machines: what a session reads of one (run id, topology,
provider facts) and nothing it could start.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

import pandas as pd

from testbed.core.run import new_run_id
from testbed.experiment.cell import CellSpec
from testbed.experiment.session import CellRunner
from testbed.model.topology import Topology
from testbed.provision.testbed import Testbed

RECORDED = Path(__file__).resolve().parent / "recorded" / "20261203-131731-ff5c"


class RecordedProvider:
    """The two things a session asks of a provider: its name and the engine's facts."""
    name = "recorded"

    def engine_facts(self) -> dict[str, str]:
        return {"host": "recorded"}


def testbed(topology: Topology) -> Testbed:
    return Testbed(run_id=new_run_id(), topology=topology, machines=[], provider=RecordedProvider(),
                   wan_check="off")


class Recorded(CellRunner):
    """``fail``: cell keys whose run raises; ``adjust(spec, row)``: a row's measured columns as a test
    wants them (e.g. a search's trials keeping up below some rate)."""

    def __init__(self, fail: tuple[str, ...] = (), adjust: Callable[[CellSpec, dict], dict] | None = None,
                 folder: Path = RECORDED):
        self.folder = folder
        self.rows = pd.read_parquet(folder / "cells.parquet").to_dict("records")
        self.fail, self.adjust = set(fail), adjust
        self.ran: list[str] = []
        self.jobs_checked = 0

    def check_jobs(self, tb, jobs, window) -> None:
        self.jobs_checked += 1

    def run(self, tb: Testbed, spec: CellSpec, artifacts: dict) -> dict:
        self.ran.append(spec.key)
        if spec.key in self.fail:
            raise RuntimeError(f"{spec.key}: failed as the test asked")
        rec = self.rows[(len(self.ran) - 1) % len(self.rows)]
        row = {**rec, "run_id": tb.run_id, "cell": uuid.uuid4().hex[:8], **spec.params(), "offered_rate": spec.rate}
        artifacts["latency"] = pd.read_parquet(self.folder / "latency" / f"{rec['cell']}.parquet")
        artifacts["timeseries"] = pd.read_parquet(self.folder / "timeseries" / f"{rec['cell']}.parquet")
        return self.adjust(spec, row) if self.adjust else row

    def failure_logs(self, tb: Testbed) -> str:
        return "(a recorded run: no services to describe)"
