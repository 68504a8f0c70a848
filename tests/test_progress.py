"""Progress of long steps: bars on a terminal (a pseudo-terminal here), plain lines in a pipe, and
through pytest's capture in both cases. Real processes, real pipes and a real pty."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from testbed.core import progress

ROOT = Path(__file__).resolve().parents[1]

# three steps at once (as images load into three nodes), a log line while they run, a step with an end
SCRIPT = textwrap.dedent("""
    import logging, threading, time
    from testbed.core.run import configure_logging, step
    configure_logging()
    log = logging.getLogger("testbed.demo")

    def node(n):
        with step(log, f"{n}: load 300 MB of images", unit="bytes", total=300e6) as p:
            for i in range(30):
                time.sleep(0.04)
                p.advance(10e6)
                if i == 15:
                    log.info(f"{n} is halfway")

    threads = [threading.Thread(target=node, args=(f"node{i}",)) for i in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    with step(log, "drive", unit="s of load", total=4) as p:
        for i in range(5):
            p.update(i)
            time.sleep(0.25)
    log.info("the end")
""")

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")   # anything but text, tab and newline


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "FST_PROGRESS"}
    return {**env, "PYTHONPATH": str(ROOT), "TERM": "xterm", "COLUMNS": "120", **extra}


def _in_pty(args: list[str], cwd: Path, timeout: float = 120) -> str:
    """Run ``args`` with stdout and stderr on a pseudo-terminal; everything it wrote."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, cwd=cwd, env=_env())
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 1 << 16)
        except OSError:      # the child closed the terminal
            break
        if not data:
            break
        out += data
    proc.wait(timeout=30)
    os.close(master)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")


def _lines_of(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith("[testbed ")]


def test_a_pipe_gets_plain_lines_and_no_control_characters(tmp_path):
    script = tmp_path / "demo.py"
    script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=_env())
    assert r.returncode == 0, r.stderr
    assert not CONTROL.search(r.stdout + r.stderr), repr(CONTROL.search(r.stderr))
    lines = _lines_of(r.stderr)
    assert len(lines) == len(r.stderr.splitlines()), r.stderr     # nothing but log lines
    for n in range(3):
        assert any(f"node{n}: load 300 MB of images: done in" in ln for ln in lines)
        assert any(f"node{n} is halfway" in ln for ln in lines)
    assert lines[-1].endswith("the end")


def test_a_terminal_gets_bars_with_the_log_lines_above_them(tmp_path):
    script = tmp_path / "demo.py"
    script.write_text(SCRIPT)
    out = _in_pty([sys.executable, str(script)], tmp_path)
    assert "\x1b[" in out and "━" in out, out[-2000:]                 # bars were drawn
    assert re.search(r"node\d: load 300 MB of images .*of 300 MB", out), out[-2000:]
    assert re.search(r"drive .*of 4 s of load", out), out[-2000:]
    # every log line arrives whole, on a line of its own, although bars were redrawn around it
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r\n", "\n")
    lines = [ln.split("\r")[-1] for ln in text.split("\n")]
    for n in range(3):
        assert any(re.fullmatch(rf"\[testbed [\d:]+\] node{n} is halfway", ln) for ln in lines), lines
    assert any(re.fullmatch(r"\[testbed [\d:]+\] the end", ln) for ln in lines), lines
    assert out.rstrip().endswith("the end")                     # the bars are gone at the end


def test_lines_come_every_so_often_with_the_time_left(caplog):
    progress.configure("lines")
    try:
        with caplog.at_level("INFO", logger="testbed"):
            with progress.Progress("matrix", 4, "cells", every=0) as p:
                time.sleep(2.1)      # the pace is known after 2 s
                p.advance()
                p.advance(note="tm2-multi-cloud-r1000-rep1")
    finally:
        progress.configure()
    texts = [r.getMessage() for r in caplog.records]
    assert texts[0].startswith("matrix: 1 of 4 cells, about "), texts
    assert texts[1].startswith("matrix: 2 of 4 cells, about ") and texts[1].endswith(
        "left (tm2-multi-cloud-r1000-rep1)"), texts
    assert caplog.records[1].completed == 2 and caplog.records[1].total == 4


@pytest.mark.parametrize("done,total,unit,text", [
    (3, 12, "cells", "3 of 12 cells"),
    (120e6, 396e6, "bytes", "120 of 396 MB"),
    (1.5e9, None, "bytes", "1.5 GB"),
    (7, None, "lines of output", "7 lines of output"),
])
def test_amounts_read_as_words(done, total, unit, text):
    assert progress.amount(done, total, unit) == text


PYTEST_FILE = textwrap.dedent("""
    import logging, time
    import pytest
    from testbed.core.progress import Progress
    from testbed.core.run import step

    @pytest.fixture(scope="module")
    def matrix():
        with Progress("matrix", 2, "cells") as p:   # a bar that outlives each test, as the matrix's
            yield p

    def test_first(matrix):
        time.sleep(0.3)
        matrix.advance()

    def test_long_step(matrix):
        matrix.advance()
        log = logging.getLogger("testbed.demo")
        with step(log, "a long step", unit="s of load", total=3) as p:
            for i in range(4):
                p.update(i)
                log.info(f"tick {i}")
                time.sleep(0.3)
""")


def test_pytest_shows_them_past_its_capture_as_lines_in_a_pipe_and_bars_on_a_terminal(tmp_path):
    (tmp_path / "test_demo.py").write_text(PYTEST_FILE)
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "test_demo.py"]
    piped = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=_env())
    assert piped.returncode == 0, piped.stdout + piped.stderr
    assert not CONTROL.search(piped.stdout + piped.stderr)
    assert "a long step: done in" in piped.stderr and "tick 3" in piped.stderr, piped.stderr
    on_terminal = _in_pty(args, tmp_path)
    assert re.search(r"a long step .*of 3 s of load", on_terminal), on_terminal[-2000:]
    assert re.search(r"matrix .*1 of 2 cells", on_terminal), on_terminal[-2000:]
    # what stays on the screen: pytest's report as without bars (the row of dots was not drawn
    # over), the log lines, and no bar
    screen = _screen(on_terminal)
    assert any(re.fullmatch(r"\.\.\s+\[100%\]", ln) for ln in screen), screen
    assert any(re.fullmatch(r"\[testbed [\d:]+\] tick 3", ln) for ln in screen), screen
    # a second bar (the step's, under the matrix's) drawn without erasing the line above the bars
    assert any(re.fullmatch(r"\[testbed [\d:]+\] a long step \.\.\.", ln) for ln in screen), screen
    assert not any("━" in ln for ln in screen) and "2 passed in" in screen[-1], screen


def _screen(out: str) -> list[str]:
    """The lines left on a terminal that was sent ``out``: enough of a terminal for what rich and
    pytest send (carriage return, erase line, cursor up, colours)."""
    rows, row, col = [""], 0, 0
    for token in re.findall(r"\x1b\[[0-9;?]*[A-Za-z]|\r|\n|[^\x1b\r\n]+", out):
        if token == "\r":
            col = 0
        elif token == "\n":
            row += 1
            col = 0
            if row == len(rows):
                rows.append("")
        elif token.startswith("\x1b["):
            if token.endswith("K"):
                rows[row] = ""
            elif token.endswith("A"):
                row = max(0, row - int(token[2:-1] or 1))
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [r.rstrip() for r in rows if r.strip()]
