"""Waiting on conditions: time-outs name what was awaited and what was seen; GiveUp ends at once."""

from __future__ import annotations


import pytest

from testbed.core import run as runmod
from testbed.core.run import GiveUp, wait_for


def test_wait_for_returns_the_value():
    calls = iter([0, None, "ready"])
    assert wait_for(lambda: next(calls), 5, "x", interval=0.01) == "ready"


def test_timeout_names_the_condition_the_last_error_and_the_details():
    def boom():
        raise ConnectionError("refused")
    with pytest.raises(TimeoutError) as e:
        wait_for(boom, 0.2, "the broker", interval=0.05, detail=lambda: "broker log: nothing")
    assert "waiting for the broker" in str(e.value) and "refused" in str(e.value) and "broker log" in str(e.value)


def test_give_up_ends_the_wait_at_once():
    asked = []

    def job_failed():
        asked.append(1)
        raise GiveUp("job FAILED")
    with pytest.raises(GiveUp, match="FAILED"):
        wait_for(job_failed, 30, "the job")
    assert len(asked) == 1          # not asked again: the wait ended at the first GiveUp


def test_owner_tokens_tell_live_from_dead_processes():
    import subprocess
    assert runmod.owner_alive(runmod.owner_token())
    p = subprocess.Popen(["sleep", "0"])
    token = runmod.owner_token(p.pid)
    p.wait()
    assert not runmod.owner_alive(token)
    assert runmod.owner_alive("cli") and runmod.owner_alive("another-host:1:1")
