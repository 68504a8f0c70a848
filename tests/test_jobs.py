"""The researcher's own job on the emulated seed topology: a JAR built here against the cluster's
jars and uploaded through Flink's REST API, a sql: file, the built-in passthrough, and what Flink
itself rejects, each measured (or refused) as a cell would."""

from __future__ import annotations

import json
import math
from pathlib import Path

import docker
import pytest

from testbed.experiment.cell import CellSpec, run_cell
from testbed.workload.jobs import Job, JobError
from testbed.workload.pipeline import WindowSpec

pytestmark = [pytest.mark.engine, pytest.mark.exclusive("seed-network")]
JOBS = Path(__file__).resolve().parent / "jobs"
JAR_ARGS = "{bootstrap} {events} {results} {window_ms} {slide_ms} {watermark_delay_ms} {group_id}"
# one placement and no CPU limits for every cell here: Flink is deployed once for all of them
CELL = dict(taskmanagers=2, placement="multi-cloud", rate=200, duration=12, warmup=3)


@pytest.fixture(scope="module")
def jar(fst_testbed, fst_locks, tmp_path_factory) -> Path:
    """tests/jobs/*.java compiled against the Flink image's lib/ (the cluster's classpath: Flink, the
    Kafka connector, kafka-clients) with the JRE's own compiler, zipped into a JAR without a manifest."""
    out = tmp_path_factory.mktemp("jar")
    script = ('mkdir -p /tmp/c && java -m jdk.compiler/com.sun.tools.javac.Main '
              '-cp "$(printf \'%s:\' /opt/flink/lib/*.jar)" -d /tmp/c /src/*.java '
              '&& cd /tmp/c && python3 -m zipfile -c /out/job.jar *.class')
    with fst_locks.load():     # a compiler's CPU: not while a quiet test measures the network
        client = docker.from_env()
        c = client.containers.run(fst_testbed.images["flink"], ["bash", "-c", script], detach=True,
                                  volumes={str(JOBS): {"bind": "/src", "mode": "ro"}, str(out): {"bind": "/out"}},
                                  labels=fst_testbed.labels(), network_mode="none")
        try:
            code = c.wait(timeout=300)["StatusCode"]
            assert code == 0, c.logs().decode(errors="replace")[-3000:]
        finally:
            c.remove(force=True)
    return out / "job.jar"


def _accounted(row: dict) -> None:
    assert row["accounting"] == "windows" and row["latency_from"] == "window_end", row
    assert row["expected_windows"] > 0 and row["received_windows"] == row["expected_windows"], row
    assert row["lost"] == 0 and row["duplicated"] == 0, row
    assert 0 < row["latency_p50_ms"] < math.inf and row["latency_samples"] > 0, row


def test_a_jar_uploaded_through_the_rest_api_is_measured(fst_testbed, jar):
    job = Job.parse(f"jar:{jar}:WindowCount", args=JAR_ARGS)
    row = run_cell(fst_testbed, CellSpec(**CELL, window=WindowSpec(2, 1, 0.5), job=job))
    _accounted(row)
    assert row["counted"] == row["events_sent"] * 2           # every event in size/slide = 2 windows
    assert row["job"] == f"jar:{jar}:WindowCount" and row["job_class"] == "WindowCount"
    assert row["job_sha256"] == job.sha256 and row["cell_key"].endswith("-jar-job")
    # nothing left uploaded
    from testbed.stack import flink
    assert flink.FlinkCluster(fst_testbed, None, 1).rest("/jars")["files"] == []


def test_a_jar_whose_main_fails_reports_flinks_root_cause(fst_testbed, jar):
    job = Job.parse(f"jar:{jar}:Broken", args="{bootstrap}")
    with pytest.raises(RuntimeError, match=r"(?s)running Broken from job.jar: HTTP \d+: .*broken on purpose: broker:"):
        run_cell(fst_testbed, CellSpec(**CELL, window=WindowSpec(2, 1, 0.5), job=job))


def test_a_sql_file_with_a_tumbling_window_is_measured(fst_testbed):
    job = Job.parse(f"sql:{JOBS / 'tumble.sql'}")
    window = WindowSpec(2, 2, 0.5)
    job.validate(fst_testbed, window)                     # Flink's planner accepts it
    # with a consumer setting of the cell's own: autotuned receive buffers (docs/experiments.md, "The Kafka clients' settings")
    row = run_cell(fst_testbed, CellSpec(**CELL, window=window, job=job,
                                         source_properties=(("receive.buffer.bytes", "-1"),)))
    _accounted(row)
    assert row["counted"] == row["events_sent"]               # tumbling: every event in one window
    assert json.loads(row["source_properties"]) == {"fetch.max.wait.ms": "100", "receive.buffer.bytes": "-1"}
    assert row["cell_key"].endswith("-sql-tumble-source:receive.buffer.bytes=-1")    # the settings name the cell


def test_passthrough_is_timed_from_each_event_and_counted_per_event(fst_testbed):
    row = run_cell(fst_testbed, CellSpec(**CELL, job=Job.parse("passthrough")))
    assert row["accounting"] == "events" and row["latency_from"] == "ts", row
    assert row["lost"] == 0 and row["duplicated"] == 0 and row["counted"] == row["events_sent"] == 200 * 12, row
    assert 0 < row["latency_p50_ms"] < math.inf and row["latency_samples"] > 0


@pytest.mark.parametrize("body, flink_says", [
    ("INSERT INTO results (`key`, ts) SELECT `key`, ts FROM orders;", "orders"),    # not the harness's table
])
def test_sql_that_flink_rejects_is_refused_naming_file_and_statement(fst_testbed, tmp_path, body, flink_says):
    f = tmp_path / "mine.sql"
    f.write_text("CREATE TEMPORARY VIEW v AS SELECT * FROM events;\n" + body + "\n")
    job = Job.parse(f"sql:{f}")                           # what Python can tell passes
    with pytest.raises(JobError, match=rf"(?s)--job sql:.*mine.sql: Flink rejects .*mine.sql, statement 2: .*{flink_says}"):
        job.validate(fst_testbed, WindowSpec())


def test_a_matrix_whose_job_flink_rejects_stops_before_any_cell(fst_testbed, tmp_path):
    from testbed.experiment.options import Experiment, OptionError
    from testbed.experiment.session import Session
    f = tmp_path / "typo.sql"
    f.write_text("INSERT INTO results (`key`, ts) SELECT `key`, tss FROM events;\n")
    exp = Experiment(jobs=(Job.parse("passthrough"), Job.parse(f"sql:{f}")), taskmanagers=(1,),
                     placements=("single-cloud",), repetitions=1, duration=16, warmup=4)
    session = Session(exp, tmp_path / "results")
    with pytest.raises(OptionError, match=r"(?s)typo.sql: Flink rejects .*statement 1: .*tss"):
        session.run(fst_testbed, session.plan(fst_testbed.topology))
    assert not (session.path / "cells.csv").exists()      # not even the passthrough cell ran


@pytest.mark.extended
def test_the_plain_reference_of_the_overhead_benchmark(fst_testbed):
    """``bench overhead``'s other side: passthrough on plain containers of this machine's engine,
    driven and measured as a Swarm cell is; nothing of it left behind."""
    from testbed.core import run as runmod
    from testbed.experiment.overhead import plain_cell
    from testbed.stack.plain import PlainStack
    client = docker.from_env()
    labels = runmod.labels(f"overhead-test-{fst_testbed.run_id}", runmod.owner_token())
    with PlainStack(client, fst_testbed.images, labels) as stack:
        assert len(stack.rest("/taskmanagers")["taskmanagers"]) == 1
        row = plain_cell(stack, rate=200, duration=10, warmup=3)
    assert row["accounting"] == "events" and row["lost"] == 0 and row["duplicated"] == 0, row
    # (lateness is measured, not promised: a CI run beside other tests' cells read 0.3 %)
    assert row["counted"] == 2000 and 0 < row["latency_p50_ms"] < math.inf and 0 <= row["driver_late_fraction"] < 0.05
    selector = {"label": f"io.flink-swarm-testbed.run={labels['io.flink-swarm-testbed.run']}"}
    assert client.containers.list(all=True, filters=selector) == []
    assert client.networks.list(filters=selector) == []
