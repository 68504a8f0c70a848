"""Provisioning and teardown as a researcher's pytest run sees them: once per run under xdist,
nothing left after a failing test, after Ctrl-C, and after a run that was killed outright."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from testbed import images as img
from testbed.core import run as runmod
from testbed.providers.engine import host_client
from testbed.core.run import GiveUp, wait_for

from testbed.provision.testbed import leftovers

from .conftest import MINI

# These run one at a time, whichever xdist worker has them: each sub-run cleans up dead runs when it
# starts, which would race with the test of `clean` itself.
pytestmark = [pytest.mark.engine, pytest.mark.exclusive("lifecycle")]
ROOT = Path(__file__).resolve().parent.parent

PROBE_TESTS = """
import os, pathlib, time
OUT = pathlib.Path(os.environ["FST_PROBE_OUT"])

def test_records_run(fst_testbed):
    (OUT / f"{os.getpid()}-a").write_text(fst_testbed.run_id)

def test_body_raises(fst_testbed):
    (OUT / f"{os.getpid()}-b").write_text(fst_testbed.run_id)
    raise RuntimeError("this test body fails on purpose")

def test_waits(fst_testbed):
    if os.environ.get("FST_PROBE_WAIT"):
        (OUT / "ready").write_text(fst_testbed.run_id)
        time.sleep(600)
"""


def _subrun(tmp_path: Path, *args: str, wait: bool = False) -> subprocess.Popen:
    (tmp_path / "test_probe.py").write_text(textwrap.dedent(PROBE_TESTS))
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "FST_PROBE_OUT": str(out), **({"FST_PROBE_WAIT": "1"} if wait else {})}
    return subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), "--topology", str(MINI), str(tmp_path / "test_probe.py"), *args],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # Ctrl-C as a terminal delivers it: a job started in the background by a non-interactive
        # shell (a CI script's `cmd &`) inherits SIGINT ignored, and Python then never raises
        # KeyboardInterrupt; the sub-run must see the signal the way a user's run does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_xdist_provisions_once_and_a_failing_test_still_tears_down(tmp_path):
    img.build_all(host_client(), img.ALL_RECIPES)  # warm cache: the sub-run must build nothing
    proc = _subrun(tmp_path, "-n", "2", "--dist", "each", "-k", "records_run or body_raises")
    output, _ = proc.communicate(timeout=600)
    assert proc.returncode == 1, output            # a test failed, and the run says so
    assert "2 failed, 2 passed" in output, output
    records = {p.name: p.read_text() for p in (tmp_path / "out").iterdir()}
    assert len(records) == 4, records
    assert len({name.split("-")[0] for name in records}) == 2, "both xdist workers used the testbed"
    (run_id,) = set(records.values())                # one run shared by both workers
    assert output.count("provisioning topology 'mini'") == 1, output
    assert "docker build" not in output and "debootstrap" not in output, "a warm cache rebuilt an image"
    assert f"run {run_id}: tear down: done" in output, output
    assert leftovers(run_id) == []


def _running(proc: subprocess.Popen, tmp_path: Path) -> str:
    """The run id of a waiting sub-run (``_subrun(..., wait=True)``) once its testbed is up."""
    ready = tmp_path / "out" / "ready"

    def up() -> bool:
        if proc.poll() is not None:
            raise GiveUp("the sub-run ended early:\n" + proc.stdout.read())
        return ready.exists()
    wait_for(up, 300, "the sub-run's testbed to come up")
    run_id = ready.read_text()
    assert leftovers(run_id), "the run's resources exist while it runs"
    return run_id


@pytest.mark.extended
def test_ctrl_c_tears_down(tmp_path):
    proc = _subrun(tmp_path, "-s", "-k", "waits", wait=True)
    try:
        run_id = _running(proc, tmp_path)
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            # where it is stuck: pytest's faulthandler prints every thread's stack on SIGABRT
            proc.send_signal(signal.SIGABRT)
            output, _ = proc.communicate(timeout=30)
            pytest.fail(f"the sub-run did not end within 120 s of Ctrl-C; its output and stacks:\n{output[-12000:]}")
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"run {run_id}: tear down: done" in output, output
    assert leftovers(run_id) == []


@pytest.mark.extended
def test_a_run_killed_with_sigkill_is_reaped_within_a_minute_and_no_other_run_is_touched(fst_testbed, tmp_path):
    """kill -9 of the harness runs no teardown at all: the run's reaper (provision/reaper.py), a process
    of its own watching the harness, removes it by its label."""
    proc = _subrun(tmp_path, "-s", "-k", "waits", wait=True)
    try:
        run_id = _running(proc, tmp_path)
    finally:
        proc.kill()             # SIGKILL: no handler, no teardown
        proc.wait(30)
    t = time.monotonic()
    wait_for(lambda: leftovers(run_id) == [], 60, f"run {run_id} reaped", interval=1,
             detail=lambda: ", ".join(leftovers(run_id)))
    print(f"run {run_id} reaped {time.monotonic() - t:.1f} s after kill -9")
    assert leftovers(fst_testbed.run_id), "the live session's run must be kept"
    assert fst_testbed.wan.health() == [] and fst_testbed.manager.client.ping()


def test_clean_removes_a_killed_runs_leftovers_and_keeps_live_runs(fst_testbed):
    """A run whose owner died (SIGKILL: no teardown ran) is found by label and removed."""
    client = host_client()
    dead = subprocess.Popen(["sleep", "0"])
    owner = runmod.owner_token(dead.pid)   # taken while it exists (a zombie until waited for)
    dead.wait()
    run_id = runmod.new_run_id()
    labels = runmod.labels(run_id, owner)
    net = client.networks.create(f"fst-{run_id}-lan", labels={**labels, runmod.LABEL_KIND: "cloud-net"})
    vol = client.volumes.create(f"fst-{run_id}-data", labels={**labels, runmod.LABEL_KIND: "node-data"})
    node = client.containers.run(img.NODE.tag, entrypoint=["sleep", "600"], detach=True, network=net.name,
                                 name=f"fst-{run_id}-node", volumes={vol.name: {"bind": "/data"}},
                                 labels={**labels, runmod.LABEL_KIND: "node"})
    assert len(leftovers(run_id)) == 3
    r = subprocess.run([sys.executable, "-m", "testbed", "clean"], capture_output=True, text=True, timeout=120,
                       cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert f"container {node.name}" in r.stdout and f"volume {vol.name}" in r.stdout, r.stdout
    assert leftovers(run_id) == []
    assert leftovers(fst_testbed.run_id), "the live session's run must be kept"


def test_cli_up_status_and_down_of_a_run_of_its_own():
    """`python -m testbed up` leaves a run standing after the command ends; status shows it and
    down removes exactly it."""
    def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    up = cli("up", "--topology", str(MINI), timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    run_id = re.search(r"run (\S+) is up: 2 nodes", up.stdout).group(1)
    try:
        (st,) = json.loads(cli("status", "--run", run_id, "--json").stdout)
        assert st["clouds"] == {"east": ["east-manager"], "west": ["west-jobmanager"]}, st
        assert {n["hostname"]: n["state"] for n in st["swarm"]} == {"east-manager": "ready", "west-jobmanager": "ready"}
        assert leftovers(run_id), "the run outlives the command that made it"
    finally:
        down = cli("down", "--run", run_id)
    assert down.returncode == 0 and f"run {run_id} removed" in down.stdout, down.stderr[-3000:]
    assert leftovers(run_id) == []
    again = cli("down", "--run", run_id)
    assert again.returncode != 0 and f"nothing of run '{run_id}'" in again.stderr, again.stderr[-2000:]

