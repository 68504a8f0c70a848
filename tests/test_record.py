"""The driver's record as typed documents (testbed/workload/record.py): what the driver writes is
read as it came, and a document that is not what it writes is refused, naming the document and the
field. No engine."""

from __future__ import annotations

import ast
import copy
import dataclasses
from pathlib import Path

import pytest

from testbed.workload import driver
from testbed.workload.record import Collected, Producer, ProduceSummary, RecordError, Spread, TaskReport, parse
from tests.test_load import _report


def test_a_task_report_is_read_as_the_driver_wrote_it():
    doc = _report(1, 2, 2, 1_764_165_600.5, 100.0, 2.0)
    rep = parse(TaskReport, doc, "driver task driver-1")
    assert (rep.t0, rep.task, rep.tasks) == (1_764_165_600.5, 1, 2)
    assert [(p.slice, p.slices, p.sent) for p in rep.processes] == [(1, 4, 50), (3, 4, 50)]
    assert rep.processes[0].acked_per_s is doc["processes"][0]["acked_per_s"]     # kept, not copied
    assert rep.processes[0].queued_per_s == [] and rep.processes[0].ack_stats == []   # not measured
    doc["processes"][0]["max_lag_ms"] = 3                  # a number kept as it came: an int stays an int
    assert type(parse(TaskReport, doc, "t").processes[0].max_lag_ms) is int


@pytest.mark.parametrize("change, message", [
    (lambda d: d["processes"][0].pop("acked"), r"processes\[0\]\.acked is missing"),
    (lambda d: d["processes"][1].update(sent="50"), r"processes\[1\]\.sent is '50' \(str\), not an int"),
    (lambda d: d["processes"][0].update(sent=True), r"processes\[0\]\.sent is True \(bool\), not an int"),
    (lambda d: d.update(t0=None), r"t0 is None \(NoneType\), not a number"),
    (lambda d: d.update(processes={}), r"processes is \{\} \(dict\), not a list"),
    (lambda d: d["processes"][0]["acked_per_s"].append(1.5), r"processes\[0\]\.acked_per_s\[2\] is 1\.5 \(float\)"),
])
def test_a_malformed_task_report_is_refused_naming_the_task_and_the_field(change, message):
    doc = _report(0, 1, 2, 1_764_165_600.0, 100.0, 2.0)
    change(doc)
    with pytest.raises(RecordError, match=rf"^driver task driver-0 \(driver\.json\): {message}"):
        parse(TaskReport, doc, "driver task driver-0 (driver.json)")


def test_a_malformed_collector_document_is_refused_naming_the_field():
    ok = {"results": [["k0", 0, 1000, 5, None, 1500]], "event_results": [["k0", 10, 40]],
          "delivery_ms": {"n": 0, "p50": None, "p99": None, "max": None}}
    got = parse(Collected, ok, "the collector")
    assert got.delivery_ms == Spread(0, None, None, None) and got.unread_offsets is None and got.other_count == 0
    for doc, message in (({}, r"results is missing"),
                         ({"results": [["k0", 0, 1000, 5, 1500]]}, r"results\[0\] is \[.*\] \(list\), not a list of 6"),
                         ({**ok, "event_results": [["k0", 10, 40], "k1"]}, r"event_results\[1\] is 'k1' \(str\)"),
                         ({**ok, "delivery_ms": {"n": 3, "p50": "2", "p99": 1, "max": 1}},
                          r"delivery_ms\.p50 is '2' \(str\), not a number"),
                         ([], r"the document is \[\] \(list\), not an object")):
        with pytest.raises(RecordError, match=rf"^the collector: {message}"):
            parse(Collected, doc, "the collector")


def test_every_field_the_types_read_is_one_the_driver_writes():
    """The driver's documents are dict literals in driver.py; a field renamed there and not here
    (or the other way round) would be refused in every cell."""
    tree = ast.parse(Path(driver.__file__).read_text())
    written = {k.value for node in ast.walk(tree) if isinstance(node, ast.Dict)
               for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    for cls in (Producer, TaskReport, Collected, Spread, ProduceSummary):
        assert {f.name for f in dataclasses.fields(cls)} <= written, cls.__name__


def test_a_document_is_not_changed_by_reading_it():
    doc = _report(0, 1, 1, 1_764_165_600.0, 100.0, 2.0)
    before = copy.deepcopy(doc)
    parse(TaskReport, doc, "t")
    assert doc == before


def test_the_produce_summary_the_benchmarks_read():
    line = {"t0": 1_764_165_600.0, "sent": 1000, "acked": 998, "behind": 0, "max_lag_ms": 4.5, "cpu_s": 0.8,
            "elapsed_s": 10.2, "errors": [], "processes": 1, "ack_stats": [[1.0, 1.2, 3.5, 4.0, 0.5, 12]],
            "acked_per_s": [100] * 10, "queued_per_s": [0] * 10}
    s = parse(ProduceSummary, line, "the bench's driver")
    assert (s.sent, s.acked, s.elapsed_s, s.ack_stats[0][5]) == (1000, 998, 10.2, 12)
    with pytest.raises(RecordError, match=r"^the bench's driver: ack_stats\[0\]\[1\] is None \(NoneType\), not a number$"):
        parse(ProduceSummary, {**line, "ack_stats": [[1.0, None, 3.5, 4.0, 0.5, 12]]}, "the bench's driver")
