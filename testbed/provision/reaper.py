"""A reaper for a run on emulated clouds, as Ryuk is for testcontainers: a small process started with
the run that removes the run's containers, networks and volumes (by its label) as soon as the process
that owns the run is gone, so that a harness killed with ``kill -9`` leaves nothing running until the
next start or ``testbed clean``.

    reaper = Reaper.start(run_id, owner)     # Testbed.up, for a run owned by a process (not "cli")
    ...
    reaper.stop()                            # Testbed.down: the run is removed by its owner

It runs as ``python -m testbed.provision.reaper RUN_ID OWNER`` in a session of its own (a signal to the
harness's process group does not reach it), polls the owner once a second (``core.run.owner_alive``:
host, pid and start time, so a reused pid does not pass for it), and touches nothing but its own
run: ``teardown.destroy`` of that run id. A run started for keeps (``--keep-testbed``, ``testbed up``)
is owned by ``cli`` and gets no reaper. Its log is ``<cache>/reapers/<run>.log``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

from ..core import run as runmod

log = logging.getLogger(__name__)

POLL_S = 1.0


class Reaper:
    def __init__(self, proc: subprocess.Popen | None, run_id: str):
        self.proc, self.run_id = proc, run_id

    @classmethod
    def start(cls, run_id: str, owner: str) -> "Reaper":
        from ..images.build import cache_dir
        logs = cache_dir() / "reapers"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{run_id}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "testbed.provision.reaper", run_id, owner],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        return cls(proc, run_id)

    def stop(self) -> None:
        """The owner removes the run itself: the reaper is no longer needed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def watch(run_id: str, owner: str, alive=runmod.owner_alive, destroy=None, poll_s: float = POLL_S) -> list[str]:
    """Wait for ``owner`` to be gone, then remove ``run_id``; returns what was removed."""
    while alive(owner):
        time.sleep(poll_s)
    if destroy is None:
        from ..providers import for_cloud
        from . import teardown
        destroy = lambda rid: teardown.destroy(for_cloud("emulated", None), rid)  # noqa: E731
    return destroy(run_id)


def main(argv: list[str]) -> int:
    run_id, owner = argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reaper %(message)s")
    log.info(f"watching {owner} for run {run_id} (pid {os.getpid()})")
    removed = watch(run_id, owner)
    log.info(f"{owner} is gone: removed {len(removed)} resource(s) of run {run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
