"""The docs: the site builds with every link and page in place, the reference pages are what the code
says, and the README stays a short guide. No engine needed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_docs_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link, a missing page or a page left out of the nav fails."""
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_the_reference_pages_are_generated_from_the_code():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "reference.py"), "--check"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_the_readme_is_a_short_guide_that_links_into_the_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for command in ("scripts/with-env pytest experiments/", "scripts/with-env pytest -n 2 tests/"):
        assert command in readme, command
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (ROOT / link).exists(), link


def test_every_column_of_a_recorded_cells_csv_is_declared_and_every_declared_column_is_there():
    """The column dictionary (results/columns.py, docs/reference/columns.md) against a real run's
    cells.csv (tests/recorded/): nothing undeclared, and every column declared for every row present."""
    import pandas as pd
    from testbed.results import columns
    from tests.canned import RECORDED
    header = list(pd.read_csv(RECORDED / "cells.csv", nrows=0).columns)
    assert columns.undeclared(header) == []
    every_row = [c.name for c in columns.COLUMNS if not c.when]
    assert [n for n in every_row if n not in header] == []
    assert len({c.name for c in columns.COLUMNS}) == len(columns.COLUMNS)


def test_the_recovery_columns_are_the_ones_a_fault_cell_writes():
    import numpy as np
    import pandas as pd
    from testbed.measure.recovery import recovery
    from testbed.results import columns
    ends = np.arange(5, 40, 1.0)
    r = recovery([{"t_s": 20.0, "action": "kill", "what": "do"}],
                 pd.DataFrame({"window_end_s": ends, "latency_ms": 1000.0, "in_stats": True}),
                 pd.DataFrame({"t_s": np.arange(40.0), "lag": 100.0}),
                 [(t, "RUNNING", 0) for t in np.arange(0, 40, 1.0)], warmup_s=5, rate=1000)
    fault_only = {c.name for c in columns.COLUMNS if c.when == columns.FAULT}
    written_by_cell = {"job_state_at_end", "missing_windows_after_fault", "scenario_events"}   # run_cell adds these
    assert set(r) - {"restarts"} == fault_only - written_by_cell, (set(r) ^ fault_only)


def test_the_text_describes_the_software_not_how_it_was_developed():
    """No page, comment or docstring narrates the project's own development (its issues, sessions of
    work, submissions, rounds)."""
    pattern = re.compile(r"\b(issue #?\d+|(this|last|previous|the last) (try|submission|round)|round \d+|"
                         r"session \d+|subagent)\b", re.IGNORECASE)
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    found = []
    for rel in files:
        path = ROOT / rel
        if rel == "tests/test_docs.py" or not path.is_file() \
                or path.suffix not in {".md", ".py", ".yaml", ".yml", ".java", ".sql", ".sh", ""}:
            continue
        for i, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{rel}:{i}: {line.strip()[:120]}")
    assert found == []


@pytest.mark.parametrize("page", ["spread-200ms", "default-run"])
def test_a_measurements_page_is_regenerated_by_its_command_with_the_same_numbers(tmp_path, page):
    """A generated page of docs/measurements/ comes from the cells.csv and manifest.json kept beside it:
    the command the page names writes it again, word for word."""
    committed = ROOT / "docs" / "measurements" / f"{page}.md"
    command = re.search(r"Regenerate this page with `python -m testbed report (\S+) --markdown (\S+) --title '([^']+)'`",
                        committed.read_text())
    assert command, "the page names the command that wrote it"
    folder, named, title = command.groups()
    out = tmp_path / committed.name
    run = subprocess.run([sys.executable, "-m", "testbed", "report", folder, "--markdown", str(out), "--title", title],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert out.read_text().replace(str(out), named) == committed.read_text()
    assert (tmp_path / f"{committed.stem}-latency.png").stat().st_size > 10_000
