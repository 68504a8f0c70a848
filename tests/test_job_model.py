"""The job axis without an engine: what --job accepts and rejects (naming the file, class or
variable), the results contract's parser, and the accounting each kind of output allows."""

from __future__ import annotations

import dataclasses
import json
import math
import zipfile
from pathlib import Path

import pytest

from testbed.experiment.cell import CellSpec
from testbed.experiment.options import Experiment, OptionError, values, TESTBED, EXPERIMENT
from testbed.experiment.session import cell_ok
from testbed.measure.metrics import cell_metrics, measured_latency
from testbed.workload import driver, schedule
from testbed.workload.jobs import Job, JobError
from testbed.workload.sql import statements
from testbed.workload.load import LoadSpec
from testbed.workload.pipeline import WindowSpec
from testbed.workload.record import Record
from tests.test_load import _merge, _report

HERE = Path(__file__).resolve().parent


def _jar(path: Path, classes: list[str], main: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n" + (f"Main-Class: {main}\n" if main else ""))
        for c in classes:
            z.writestr(c.replace(".", "/") + ".class", b"\xca\xfe\xba\xbe")
    return path


def test_builtin_jobs_and_their_sql():
    for name in ("hop-window", "tumble-window", "passthrough"):
        job = Job.parse(name)
        assert job.kind == "builtin" and job.label == name
        text = job.sql("ev-1", "res-1", "broker:9092", WindowSpec(4, 2, 1), 2)
        assert "CREATE TABLE events" in text and "CREATE TABLE results" in text and "'topic' = 'ev-1'" in text
        assert [s for s in statements(text) if s.kind == "dml" and s.text.startswith("INSERT INTO results")]
    assert "HOP(TABLE events" in Job.parse("hop-window").sql("e", "r", "b", WindowSpec(4, 2, 1), 1)
    assert "TUMBLE(TABLE events" in Job.parse("tumble-window").sql("e", "r", "b", WindowSpec(4, 2, 1), 1)
    assert Job.parse("tumble-window").window(WindowSpec(4, 2, 1)) == WindowSpec(4, 4, 1)
    assert Job.parse("passthrough").counts_events and not Job.parse("hop-window").counts_events


def test_sql_file_is_templated_and_checked(tmp_path):
    job = Job.parse(f"sql:{HERE / 'jobs' / 'tumble.sql'}")
    assert job.kind == "sql" and job.label == "sql-tumble" and len(job.sha256) == 64
    text = job.sql("e", "r", "b:1", WindowSpec(3, 3, 0.5), 1)
    assert "TUMBLE(TABLE events, DESCRIPTOR(ets), INTERVAL '0 00:00:03.000' DAY TO SECOND(3))" in text
    for body, match in (
        ("INSERT INTO other SELECT * FROM events;", r"inserts into 'other'; the harness's sink table is `results`"),
        ("CREATE TABLE mine (a INT) WITH ('connector' = 'datagen');\nINSERT INTO results SELECT * FROM mine;",
         r"statement 1 \(line 1\): CREATE TABLE mine .*may not define tables"),
        ("-- INSERT INTO results SELECT * FROM events;\nCREATE VIEW v AS SELECT 1;", "no INSERT INTO results statement"),
        ("INSERT INTO results SELECT `key`, {windw} FROM events;", r"unknown template variable\(s\) \{windw\}"),
    ):
        f = tmp_path / "bad.sql"
        f.write_text(body)
        with pytest.raises(JobError, match=match) as e:
            Job.parse(f"sql:{f}")
        assert "bad.sql" in str(e.value)
    with pytest.raises(JobError, match="no such file '.*missing.sql'"):
        Job.parse(f"sql:{tmp_path / 'missing.sql'}")


def test_jar_is_checked_before_anything_starts(tmp_path):
    jar = _jar(tmp_path / "job.jar", ["org.example.Main", "org.example.Other"], main="org.example.Main")
    job = Job.parse(f"jar:{jar}", args="{bootstrap} {events} --size {window_ms}")
    assert job.entry_class == "org.example.Main" and job.label == "jar-job"
    vals = {"bootstrap": "broker:9092", "events": "ev", "window_ms": 2000}
    assert job.program_args({**{k: "" for k in ("results",)}, **vals}) == ["broker:9092", "ev", "--size", "2000"]
    assert Job.parse(f"jar:{jar}:org.example.Other").entry_class == "org.example.Other"
    with pytest.raises(JobError, match=r"class 'org.example.Nope' is not in .*job.jar"):
        Job.parse(f"jar:{jar}:org.example.Nope")
    with pytest.raises(JobError, match=r"unknown template variable\(s\) \{topic\}"):
        Job.parse(f"jar:{jar}", args="--in {topic}")
    (tmp_path / "text.jar").write_text("not a zip")
    with pytest.raises(JobError, match=r"text.jar is not a JAR"):
        Job.parse(f"jar:{tmp_path / 'text.jar'}")
    with pytest.raises(JobError, match="names no Main-Class"):
        Job.parse(f"jar:{_jar(tmp_path / 'nomain.jar', ['a.B'])}")
    with pytest.raises(JobError, match="no such file"):
        Job.parse(f"jar:{tmp_path / 'gone.jar'}")
    with pytest.raises(JobError, match="expected one of hop-window"):
        Job.parse("hop")


def _options(**kw) -> dict:
    o = {opt.dest: opt.kwargs.get("default") for opt in TESTBED + EXPERIMENT}
    o.update(search_start=1000.0, search_max=32000.0, search_refine=2, lag_slope=0.05, max_p99=10_000.0,
             repetitions=1, duration=20.0, warmup=4.0, window=2.0, slide=1.0, watermark_delay=0.5, keys=4,
             payload_bytes=0, driver_processes=0, warmup_fraction=1.0)
    o.update(kw)
    return o


def test_the_job_is_an_axis_of_the_matrix(tmp_path, seed_topology=None):
    from testbed.model.topology import load
    topo = load("seed")
    exp = Experiment.from_options(_options(jobs="hop-window,passthrough", taskmanagers="1", placements="single-cloud"))
    cells, _ = exp.cells(topo)
    assert [c.key for c in cells] == ["tm1-single-cloud-r1000-rep1", "tm1-single-cloud-r1000-rep1-passthrough"]
    assert cells[1].params()["job"] == "passthrough" and cells[1].output == "events" and cells[0].output == "windows"
    with pytest.raises(OptionError, match="--job-args is for jar: jobs"):
        Experiment.from_options(_options(job_args="{bootstrap}"))
    with pytest.raises(OptionError, match=r"bad experiment option: --job sql:.*no such file"):
        Experiment.from_options(_options(jobs=f"sql:{tmp_path / 'x.sql'}"))
    assert values  # the option table is shared with the CLI


def _raw(output: str, window_rows=(), event_rows=(), rate=100.0, duration=4.0, keys=4):
    t0 = 1_764_165_600.0
    w = WindowSpec(1, 1, 0)
    spec = LoadSpec(rate=rate, duration=duration, window=w, nodes=("a",), keys=keys, processes=1, output=output)
    expected = schedule.expected_counts(t0, spec.schedule, keys, w.size_ms, w.slide_ms)
    collected = {"results": list(window_rows), "event_results": list(event_rows), "other_count": 0}
    return _merge(spec, [_report(0, 1, 1, t0, rate, duration)], collected, expected), t0, spec


def _with(raw: Record, **collected) -> Record:
    """The record with other collected results."""
    return dataclasses.replace(raw, collected=dataclasses.replace(raw.collected, **collected))


def test_per_event_results_are_timed_from_their_event_and_counted_per_key_and_time():
    raw, t0, spec = _raw("events")
    sch = spec.schedule
    events = [[f"k{j % 4}", sch.time_ms(t0, j), sch.time_ms(t0, j) + 40] for j in range(sch.total)]
    raw = _with(raw, event_results=events)
    m = cell_metrics(raw, 1.0, [])
    assert m["accounting"] == "events" and m["latency_from"] == "ts"
    assert m["lost"] == 0 and m["duplicated"] == 0 and m["counted"] == m["expected_counted"] == 400
    assert m["latency_p50_ms"] == 40 and m["latency_samples"] == 300      # the events after the 1 s warm-up
    raw = _with(raw, event_results=events[5:] + events[5:7])          # 5 missing, 2 repeated
    m = cell_metrics(raw, 1.0, [])
    assert (m["lost"], m["duplicated"]) == (5 - 2, 0) or (m["lost"], m["duplicated"]) == (5, 2)
    assert m["lost"] == 5 and m["duplicated"] == 2
    assert cell_ok(m) is False
    raw = _with(raw, event_results=events + [["k9", events[0][1], 0], ["k1", 1, 0]])    # a key and a time never sent
    m = cell_metrics(raw, 1.0, [])
    assert m["lost"] == 0 and m["duplicated"] == 2
    lat = measured_latency(raw, 1.0)
    assert set(lat["latency_from"]) == {"ts"} and len(lat) == len(raw.collected.event_results)


def test_results_without_counts_are_not_accounted_never_a_silent_zero():
    raw, t0, spec = _raw("any")
    t0_ms = int(t0 * 1000)
    raw = _with(raw, results=[["k0", None, t0_ms + 2000, None, None, t0_ms + 2600]])   # windowed, no start, no count
    m = cell_metrics(raw, 1.0, [])
    assert m["accounting"] == "not applicable" and math.isnan(m["lost"]) and math.isnan(m["duplicated"])
    assert m["latency_from"] == "window_end" and m["latency_p50_ms"] == 600
    assert cell_ok(m)
    raw = _with(raw, results=[], event_results=[["k1", t0_ms + 1500, t0_ms + 1510]])    # per-event output of an unknown job
    m = cell_metrics(raw, 1.0, [])
    assert m["accounting"] == "not applicable" and m["latency_from"] == "ts" and m["result_records"] == 1


def test_the_results_contract_parser():
    parse = driver.parse_result
    assert parse(json.dumps({"key": "k1", "window_start": "2026-11-26T10:00:00", "window_end": "2026-11-26T10:00:02",
                             "cnt": 5, "ts": 3, "value": None}).encode(), 9) == \
        ("window", ["k1", 1_795_687_200_000, 1_795_687_202_000, 5, 3, 9])
    assert parse(b'{"key":"k1","window_start":10,"window_end":20,"cnt":2}', 9) == ("window", ["k1", 10, 20, 2, None, 9])
    assert parse(b'{"key":"k2","window_end":20}', 9) == ("window", ["k2", None, 20, None, None, 9])
    assert parse(b'{"key":"k2","ts":17,"window_end":null,"cnt":null}', 9) == ("event", ["k2", 17, 9])
    assert parse(b'{"key":"__flush__","ts":17}', 9) is None
    assert parse(b'{"hello":1}', 9)[0] == "other"
    assert parse(b'[1,2]', 9)[0] == "other"


def test_cell_key_and_minimum_duration_follow_the_job():
    tumble = Job.parse("tumble-window")
    assert CellSpec(job=tumble, window=WindowSpec(4, 1, 1), duration=20, warmup=5).key.endswith("-tumble-window")
    with pytest.raises(ValueError, match="at least 10s"):      # warm-up 5 + the tumbling window's slide 4 + 1
        CellSpec(job=tumble, window=WindowSpec(4, 1, 1), duration=9, warmup=5)
    assert CellSpec().key == "tm2-multi-cloud-r1000-rep1"     # the default job keeps the keys of earlier runs


def test_the_sql_jobs_kafka_clients_take_a_cells_settings_over_the_harnesss(tmp_path):
    from testbed.model.topology import load
    from testbed.workload import pipeline
    text = pipeline.tables("e", "r", "b:9092", WindowSpec(), 2, source_properties=(("receive.buffer.bytes", "-1"),),
                           sink_properties={"client.id": "it's"})
    source, sink = text.split("CREATE TABLE results")
    assert "'properties.receive.buffer.bytes' = '-1'" in source and "'properties.fetch.max.wait.ms' = '100'" in source
    assert "'properties.client.id' = 'it''s'" in sink and "receive.buffer" not in sink      # quoted as SQL quotes
    assert len(statements(text)) == len(statements(pipeline.tables("e", "r", "b", WindowSpec(), 1)))
    # through the options: recorded in every cell, the harness's own keys and JAR jobs refused, naming them
    exp = Experiment.from_options(_options(taskmanagers="1", placements="single-cloud",
                                           source_properties="receive.buffer.bytes=-1,fetch.max.wait.ms=500"))
    params = exp.cells(load("seed"))[0][0].params()
    assert json.loads(params["source_properties"]) == {"receive.buffer.bytes": "-1", "fetch.max.wait.ms": "500"}
    assert json.loads(params["sink_properties"]) == {}
    with pytest.raises(OptionError) as e:
        Experiment.from_options(_options(source_properties="group.id=mine", sink_properties="linger.ms"))
    assert "--source-properties: the harness sets group.id itself" in str(e.value)
    assert "--sink-properties: 'linger.ms' is not key=value" in str(e.value)
    jar = _jar(tmp_path / "job.jar", ["org.example.Main"], main="org.example.Main")
    with pytest.raises(OptionError,
                       match=r"--sink-properties: for SQL jobs only: jar:.*job.jar builds its own Kafka clients"):
        Experiment.from_options(_options(taskmanagers="1", placements="single-cloud", jobs=f"jar:{jar}",
                                         sink_properties="linger.ms=5")).cells(load("seed"))


def test_a_tumbling_job_s_row_says_the_windows_it_has_not_the_slide_it_ignores():
    from testbed.workload.pipeline import WindowSpec
    tumble = CellSpec(window=WindowSpec(10, 2), job=Job.parse("tumble-window")).params()
    hop = CellSpec(window=WindowSpec(10, 2)).params()
    assert (tumble["window_s"], tumble["slide_s"]) == (10, 10) and (hop["window_s"], hop["slide_s"]) == (10, 2)
