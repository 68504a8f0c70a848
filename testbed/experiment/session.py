"""An experiment session: one results folder being written, cell by cell, by pytest or by the CLI.

    session = Session(experiment, "results")              # or resume="<session id>"
    cells = session.plan(topology)                        # validated before anything starts
    with Testbed.up(provider, topology) as tb:
        session.calibrate(tb, "fail")                     # the WAN fidelity check, kept with the results
        session.run(tb, cells)                            # cells, searches; rows written as they end
    session.finish()                                      # manifest closed, figures drawn

Both ``pytest experiments/`` (one test per cell, through the plugin) and ``python -m testbed run`` go
through this class, so both write the same folder: ``cells.csv``/``.parquet``, ``latency/``,
``timeseries/``, ``calibration.csv``, ``sustainable.csv``, ``logs/``, ``manifest.json``, ``report/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from pathlib import Path

from ..core.progress import Progress
from ..core.run import new_run_id
from ..provision.testbed import Testbed
from ..results import columns, manifest, report
from ..results.store import ResultsDir, host_facts, now
from ..stack import services
from ..model.topology import Topology, links_with
from .cell import CellSpec, clear_leftovers, links_text, run_cell
from ..measure.metrics import BACKLOG, NOT_APPLICABLE
from ..workload.jobs import JobError
from .options import MEASUREMENT_OPTIONS, Experiment, OptionError
from .search import Criteria, find, max_trials

log = logging.getLogger(__name__)

SERVICES = ("jobmanager", "taskmanager", "broker", "driver")


def duplicates_expected(row: dict) -> bool:
    """A cell with faults and at-least-once checkpoints: after a restart the job replays from its last
    checkpoint and emits again what it had emitted since, by design. In exactly-once mode, and in a
    cell without faults, a duplicate is a failure."""
    mode = row.get("checkpoint_mode")
    return _text(row.get("scenario")) != "" and _number(row.get("checkpoint_interval_s")) > 0 \
        and (_text(mode) or "at-least-once") == "at-least-once"


def _text(v) -> str:
    """A row's text field; '' for one absent or read back from CSV as NaN."""
    return v if isinstance(v, str) else ""


def _number(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def cell_problems(row: dict) -> list[str]:
    """What is wrong with a cell, in words: its error, events lost, unexpected duplicates. Empty for a
    cell that ran and whose accounting adds up, or whose job gives nothing to account ("not
    applicable"). A scenario cell that did not recover is a result, not a problem. Rows read back
    from cells.csv (NaN for empty fields) give the same answer as the rows written."""
    if _text(row.get("error")):
        return [f"error: {row['error'].splitlines()[0][:200]}"]
    if row.get("accounting") == NOT_APPLICABLE:
        return []
    out = []
    lost, duplicated = _number(row.get("lost")), _number(row.get("duplicated"))
    if math.isnan(lost):
        out.append("lost: not measured")
    elif lost and _text(row.get("loss_cause")).startswith(BACKLOG):
        pass    # a job behind its input is a throughput result (its loss_cause says so), not a failure
    elif lost:
        out.append(f"lost {lost:.0f}")
    if math.isnan(duplicated):
        out.append("duplicated: not measured")
    elif duplicated and not duplicates_expected(row):
        mode = (" (a cell without faults)" if not _text(row.get("scenario"))
                else " (no checkpoints)" if not _number(row.get("checkpoint_interval_s")) > 0
                else f" ({row.get('checkpoint_mode')} checkpoints)")
        out.append(f"duplicated {duplicated:.0f}{mode}")
    return out


def saturated_parts(row: dict) -> str:
    """What the row says saturated on the measuring path ('' if nothing): such a cell measured the
    testbed, and the report leaves it out of means."""
    v = row.get("testbed_limited")
    return "" if v is None or v != v else str(v)


def cell_ok(row: dict) -> bool:
    return not cell_problems(row)


class CellRunner:
    """What a session asks of the testbed: check the jobs, run a cell, describe the services when one
    fails. This one does it on the testbed; the matrix's own rules (resume, order, searches, the
    folder's files) are tested with one that gives recorded rows back (tests/canned.py)."""

    def check_jobs(self, tb: Testbed, jobs, window) -> None:
        """Every job through Flink's planner (raises JobError)."""
        for job in jobs:
            job.validate(tb, job.window(window))

    def run(self, tb: Testbed, spec: CellSpec, artifacts: dict) -> dict:
        return run_cell(tb, spec, artifacts)

    def failure_logs(self, tb: Testbed) -> str:
        return "\n\n".join(services.describe(tb, s, tail=80) for s in SERVICES)


class Session:
    def __init__(self, experiment: Experiment, results: str | Path, *, session_id: str | None = None,
                 resume: str | None = None, options: dict | None = None, command: list[str] | None = None,
                 runner: CellRunner | None = None):
        """``options``: every option as given (recorded in the manifest; compared on ``resume``);
        ``command``: the command line that ran this session (recorded); ``runner``: how cells are run
        (on the testbed, unless a test gives its own)."""
        self.experiment = experiment
        self.runner = runner or CellRunner()
        self.resume = resume
        self.id = resume or session_id or new_run_id()
        self.results = ResultsDir(self.id, results)
        self.options = options or {}
        self.command = command or []
        self._manifest_written = False
        self._jobs_checked: str | None = None     # "" once every job passed, else why not
        self._done = 0
        self._total = 0
        self._t0: float | None = None
        self._matrix: Progress | None = None     # a bar of cells done (on a terminal)
        self.left_out: list[str] = []
        self._first_links: tuple = ()           # the first cell's link values (a link axis), set before calibrating
        self._wan_mode, self._wan_lock = "fail", contextlib.nullcontext
        self._links_error = ""                  # why the links as set now failed their fidelity check

    @property
    def path(self) -> Path:
        return self.results.path

    # -- before anything starts ------------------------------------------------------------------
    def plan(self, topology: Topology) -> list[CellSpec]:
        """The matrix's cells on ``topology`` (those that cannot be placed are left out with a warning);
        with ``resume``, the folder must exist and have been measured with the same settings."""
        cells, left_out = self.experiment.cells(topology)
        if self.resume:
            self.check_resume(topology)
        self.left_out = [f"left out of the matrix: {p}" for p in left_out]
        for w in self.left_out:
            log.warning(w)
        for ln in topology.links:
            if ln.source:   # filled in from the clouds' regions: said, beside the seed's assumption
                log.info(f"link {ln.name}: rtt_ms {ln.rtt_ms:g}, bandwidth_mbit {ln.bandwidth_mbit or 'none'} from "
                         f"{ln.source} (the seed assumes 20 ms and 100 Mbit/s)")
        todo = [c for c in cells if not self.finished(c.key)] if self.resume else cells
        self._first_links = (todo or cells)[0].links
        return cells

    def check_resume(self, topology: Topology) -> None:
        """A resumed run must measure its remaining cells as the first session measured its own:
        otherwise the table would mix cells measured differently under the same keys."""
        if not (self.path / "cells.csv").exists():
            raise OptionError(f"bad experiment option: --resume {self.id}: no {self.path / 'cells.csv'}")
        path = self.path / "manifest.json"
        if not path.exists():
            return
        differ = resume_conflicts(json.loads(path.read_text()), self.options, topology,
                                  [j.record() for j in self.experiment.jobs])
        if differ:
            raise OptionError(f"bad experiment option: --resume {self.id} with other measurement settings: "
                              + "; ".join(differ) + ". Give the same options, or start a new run.")

    # -- the testbed -----------------------------------------------------------------------------
    def calibrate(self, tb: Testbed, mode: str, lock=contextlib.nullcontext) -> None:
        """The fidelity check: the measured network against the topology's links, written to
        ``calibration.csv``. ``mode``: fail (raise when it misses), flag (record the misses with
        every row) or off. ``lock``: held while measuring (nothing else may load the machine)."""
        self._wan_mode, self._wan_lock = mode, lock
        if tb.wan:      # the first group's link values (a link axis), so that they are the ones measured
            tb.wan.use(links_with(tb.topology.links, self._first_links))
        self._measure_wan(tb, mode, lock, self._first_links)

    def _measure_wan(self, tb: Testbed, mode: str, lock, links: tuple) -> None:
        from ..stack.calibrate import CalibrationError, calibrate, check, table
        if mode == "off" or not tb.topology.links:
            tb.wan_check = "off" if mode == "off" else "no links"
            return
        with lock():
            clear_leftovers(tb)         # a killed session's load would be measured too
            rows = calibrate(tb)
        tb.calibration = rows
        for r in rows:
            self.results.append("calibration", {**r, "links": links_text(links)})
        log.info("calibration (backend " + (tb.wan.backend if tb.wan else "none") + "):\n" + table(rows))
        try:
            check(rows)
            tb.wan_check = "passed"
        except CalibrationError as e:
            if mode == "fail":
                raise
            # recorded with every row and in the manifest, so the flag travels with the numbers
            tb.wan_check = f"flagged: {e}"
            log.warning(f"run flagged: {e}")

    def expect(self, total: int) -> None:
        """How many cells are still to run (for the time-left estimate)."""
        self._total = total

    def begin(self, tb: Testbed) -> None:
        """Check the jobs with Flink's planner and write the manifest, before the first measurement."""
        if self._jobs_checked is None:
            try:
                self.runner.check_jobs(tb, self.experiment.jobs, self.experiment.window)
                self._jobs_checked = ""
            except JobError as e:
                self._jobs_checked = f"bad experiment option: {e}"
        if self._jobs_checked:
            raise OptionError(self._jobs_checked)
        if not self._manifest_written:
            manifest.write(self.path, options=self.options, topology=tb.topology, testbed=tb, command=self.command,
                           jobs=[j.record() for j in self.experiment.jobs])
            self._manifest_written = True

    # -- measuring ---------------------------------------------------------------------------------
    def finished(self, key: str, table: str = "cells") -> bool:
        return self.results.finished(key, table)

    def record(self, tb: Testbed, spec: CellSpec) -> dict:
        """Run one cell and write everything it produced; on failure write the error and the logs of
        the services involved (``logs/<cell>-<time>.txt``), then raise."""
        if not spec.search:
            self._announce(spec)
        self.begin(tb)      # a job Flink rejects stops here, before any cell, with no rows
        started = now()
        artifacts: dict = {}
        try:
            self._use_links(tb, spec)
            row = self.runner.run(tb, spec, artifacts)
        except Exception as e:
            self._cell_done(spec)
            logs = self.runner.failure_logs(tb)
            log_path = self.results.write_text(f"logs/{spec.key}-{started.replace(':', '')}.txt",
                                               f"{type(e).__name__}: {e}\n\n{logs}")
            self.results.append("cells", {"run_id": tb.run_id, **spec.params(), "started": started, "ended": now(),
                                          "error": f"{type(e).__name__}: {e}"[:1000], "logs": str(log_path)})
            raise
        facts = tb.provider.engine_facts()
        row.update(host_facts(), docker_engine=facts.get("host") or _engine_version(tb),
                   topology=tb.topology.name, topology_sha256=tb.topology.sha256, error="", logs="")
        if undeclared := columns.undeclared(row):   # written all the same: the data matters more than its docs
            log.error(f"{spec.key}: columns no declaration in results/columns.py describes: {', '.join(undeclared)}")
        self.results.write_frame(f"latency/{row['cell']}.parquet", artifacts["latency"])
        self.results.write_frame(f"timeseries/{row['cell']}.parquet", artifacts["timeseries"])
        self.results.append("cells", row)
        self._cell_done(spec)
        log.info(f"{spec.key}: p50 {row['latency_p50_ms']:.0f} ms, p99 {row['latency_p99_ms']:.0f} ms, "
                 f"{row['achieved_rate']:.0f} ev/s in, lost {row['lost']}, duplicated {row['duplicated']}"
                 + (", THE DRIVER FELL BEHIND" if row["driver_fell_behind"] else ""),
                 extra={"cell_key": spec.key, "row": row})
        return row

    def _use_links(self, tb: Testbed, spec: CellSpec) -> None:
        """Before a cell: the WAN set to its links (a link axis's value) and, where that changed them,
        measured before any cell measures through them. A group whose check fails (in ``fail`` mode)
        fails each of its cells, naming the check; the matrix goes on with the next group."""
        from ..stack.calibrate import CalibrationError
        if not tb.wan or not tb.wan.use(links_with(tb.topology.links, spec.links)):
            if self._links_error:
                raise RuntimeError(self._links_error)
            return
        what = spec.links_text or "the topology's"
        log.info(f"the WAN's links set to {what}; calibrating them")
        self._links_error = ""
        try:
            self._measure_wan(tb, self._wan_mode, self._wan_lock, spec.links)
        except CalibrationError as e:
            self._links_error = f"the fidelity check of the links {what} failed: {e}"
            raise RuntimeError(self._links_error) from None

    def search(self, tb: Testbed, base: CellSpec) -> dict:
        """The sustainable throughput of ``base``'s taskmanagers and placement (see search.py); each
        trial is a row of ``cells.csv``, the result a row of ``sustainable.csv``."""
        self.begin(tb)
        trials = 0
        s = self.experiment.search
        at_most = max_trials(s.start, s.max, s.refine)

        def trial(spec: CellSpec) -> dict:
            nonlocal trials
            trials += 1
            log.info(f"sustainable throughput of {base.key}: trial {trials} (of at most {at_most}) "
                     f"at {spec.rate:,.0f} events/s")
            spec = dataclasses.replace(spec, search=True)
            try:
                return self.record(tb, spec)
            except Exception as e:  # recorded with its logs by record(); the search stops on it
                return {"offered_rate": spec.rate, "lag_slope": float("nan"), "latency_p99_ms": float("nan"),
                        "lost": 0, "driver_fell_behind": False, "cell": None, "error": f"{type(e).__name__}: {e}"[:300]}
            finally:
                bar.update(trials, note=f"last at {spec.rate:,.0f} events/s")

        # a bar only: the trials log their own lines, and the search may end before "at most"
        with Progress(f"sustainable throughput of {base.key}", at_most, "trials (at most)",
                      every=float("inf"), eta=False) as bar:
            res = find(trial, base, start=s.start, max_rate=s.max, refine=s.refine,
                       criteria=Criteria(s.lag_slope, s.max_p99_ms))
        row = {"cell_key": base.key, "run_id": tb.run_id, **res, "error": "", "ended": now()}
        self.results.append("sustainable", row)
        log.info(f"{base.key}: sustainable {res['sustainable_rate']:,.0f} ev/s (limited by {res['limited_by']})")
        return row

    def run(self, tb: Testbed, cells: list[CellSpec]) -> list[dict]:
        """Every cell not finished in an earlier session of this folder, then the searches; a failing
        cell is recorded and the matrix goes on. Returns the rows of this session's cells."""
        todo = [c for c in cells if not self.finished(c.key)]
        searches = [b for b in self.experiment.searches(cells) if not self.finished(b.key, "sustainable")]
        if len(todo) < len(cells):
            log.info(f"{len(cells) - len(todo)} cell(s) finished in an earlier session of {self.id}: skipped")
        self.expect(len(todo))
        self.begin(tb)
        rows = []
        for c in todo:
            try:
                rows.append(self.record(tb, c))
            except Exception as e:  # noqa: BLE001 - recorded with its logs; the matrix goes on
                log.error(f"{c.key} failed: {type(e).__name__}: {e}")
                rows.append({"cell_key": c.key, "error": f"{type(e).__name__}: {e}"})
        for b in searches:
            self.search(tb, b)
        return rows

    def _announce(self, spec: CellSpec) -> None:
        """Where a long matrix is: cell i of n, elapsed time, an estimate of the rest (a line per
        cell, and on a terminal a bar of the cells done)."""
        if self._t0 is None:
            self._t0 = time.monotonic()
        self._done += 1
        total = max(self._total, self._done)
        elapsed = time.monotonic() - self._t0
        eta = f", about {elapsed / (self._done - 1) * (total - self._done + 1) / 60:.0f} min left" \
            if self._done > 1 else ""
        log.info(f"cell {self._done} of {total}: {spec.key} (elapsed {elapsed / 60:.1f} min{eta})",
                 extra={"cell_key": spec.key, "cell_index": self._done, "cells": total})
        if self._matrix is None:
            self._matrix = Progress(f"matrix of {self.id}", total, "cells", every=float("inf")).start()
        self._matrix.update(total=total, note=spec.key)

    def _cell_done(self, spec: CellSpec) -> None:
        if self._matrix is not None and not spec.search:
            self._matrix.advance()

    # -- afterwards ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Take down the bar of cells (on a terminal)."""
        if self._matrix is not None:
            self._matrix.close()
            self._matrix = None

    def finish(self) -> list[Path]:
        """Close the manifest and draw the figures of what this folder holds (if any cell ran)."""
        self.close()
        if not (self.path / "cells.csv").exists():
            return []
        manifest.finish(self.path)
        try:
            written = report.report(self.path, include_saturated=bool(self.options.get("include_saturated")))
            log.info(f"report: {len(written)} files in {self.path / 'report'}")
            return written
        except Exception as e:  # noqa: BLE001 - the data is safe; the figures can be redrawn
            log.error(f"report failed ({type(e).__name__}: {e}); redraw with: python -m testbed report {self.path}")
            return []


def resume_conflicts(manifest_doc: dict, options: dict, topology: Topology, jobs: list[dict] = ()) -> list[str]:
    """What a resumption would measure differently from the run's first session (its manifest):
    each measurement option that differs, another topology file, a job file whose content changed."""
    first = (manifest_doc.get("sessions") or [{}])[0].get("options", {})
    differ = [f"--{k.replace('_', '-')} {options.get(k)!r} (the run used {first[k]!r})"
              for k in MEASUREMENT_OPTIONS if k in first and k in options and first[k] != options[k]]
    before = {j["job"]: j.get("job_sha256") for j in manifest_doc.get("jobs", [])}
    differ += [f"--job {j['job']} (sha256 {j['job_sha256'][:12]}; the run's file was {before[j['job']][:12]})"
               for j in jobs if before.get(j["job"]) and j["job_sha256"] != before[j["job"]]]
    sha = manifest_doc.get("topology", {}).get("sha256")
    if sha and sha != topology.sha256:
        differ.append(f"topology {topology.source} (sha256 {topology.sha256[:12]}; the run's was {sha[:12]})")
    return differ


def _engine_version(tb: Testbed) -> str | None:
    try:
        return tb.manager.client.version().get("Version")
    except Exception:  # noqa: BLE001 - provenance records what it can
        return None
