"""The one SQL splitter (testbed/workload/sql.py), which the harness and the SQL runner both rely on:
comments wherever users put them, ';' inside literals, statement sets, and statements it cannot
classify refused by number, line and text before anything starts."""

from __future__ import annotations

import pytest

from testbed.workload import sql
from testbed.workload.jobs import Job, JobError
from testbed.workload.pipeline import WindowSpec, tables

COMMENTED = """\
-- a header, then a block comment
/* it spans
   two lines; with a ';' in it */
SET 'pipeline.name' = 'it''s mine';  -- at the end of a line
-- between statements
CREATE TEMPORARY VIEW v AS SELECT `key`, ts FROM events WHERE `key` <> 'a;b' -- inside
  AND `key` <> '--x' /* inside, too */ AND `key` <> '/*y*/';
INSERT INTO results (`key`, ts) SELECT `key` AS `semi;colon`, ts FROM v /*+ OPTIONS('a'='b') */;
-- a trailing comment; with a semicolon
"""


def test_comments_are_removed_and_literals_kept():
    got = sql.statements(COMMENTED)
    assert [(s.number, s.line, s.kind) for s in got] == [(1, 4, "set"), (2, 6, "ddl"), (3, 8, "dml")]
    assert got[0].setting == ("pipeline.name", "it's mine")
    assert got[1].text.startswith("CREATE TEMPORARY VIEW v AS SELECT")
    assert "'a;b'" in got[1].text and "'--x'" in got[1].text and "'/*y*/'" in got[1].text
    assert "inside" not in got[1].text and "--" not in got[1].text.replace("'--x'", "")
    assert "`semi;colon`" in got[2].text
    assert got[2].text.endswith("/*+ OPTIONS('a'='b') */")          # a hint is Flink's syntax, not a comment
    assert sql.strip_comments(COMMENTED).count("\n") == COMMENTED.count("\n")   # lines keep their numbers


def test_an_insert_after_a_comment_is_dml():
    """A validator that classified the raw text took this INSERT for DDL and executed it."""
    got = sql.statements("-- tumbling windows\nINSERT INTO results SELECT * FROM events;")
    assert [(s.kind, s.line, s.text) for s in got] == [("dml", 2, "INSERT INTO results SELECT * FROM events")]


def test_kinds():
    for text, kind in (("SET 'a' = 'b'", "set"), ("set 'a'='b'", "set"), ("SET a = b", "other"),
                       ("CREATE TABLE t (a INT)", "table"), ("create temporary table t (a int)", "table"),
                       ("CREATE CATALOG c WITH ()", "table"), ("CREATE VIEW v AS SELECT 1", "ddl"),
                       ("CREATE TEMPORARY SYSTEM FUNCTION f AS 'x'", "ddl"),
                       ("INSERT INTO results SELECT 1", "dml"), ("insert overwrite results select 1", "dml"),
                       ("EXECUTE INSERT INTO results SELECT 1", "dml"), ("DROP TABLE t", "drop"),
                       ("USE CATALOG c", "drop"), ("SELECT * FROM events", "other"), ("SHOW TABLES", "other"),
                       ("EXPLAIN INSERT INTO results SELECT 1", "other")):
        assert sql.kind_of(text) == kind, text


def test_a_statement_set_is_one_statement():
    text = ("EXECUTE STATEMENT SET\nBEGIN\nINSERT INTO results SELECT 1;\n-- two\n"
            "INSERT INTO results SELECT 2;\nEND;\nSET 'a' = 'b';")
    got = sql.statements(text)
    assert [s.kind for s in got] == ["dml", "set"]
    assert got[0].text.count("INSERT INTO results") == 2 and got[0].text.endswith("END")
    with pytest.raises(sql.SqlError, match="line 1: EXECUTE STATEMENT SET BEGIN without END"):
        sql.statements("EXECUTE STATEMENT SET BEGIN INSERT INTO results SELECT 1;")


@pytest.mark.parametrize("text, match", [
    ("SELECT 'no end", "line 1: unterminated string literal"),
    ("SELECT 1;\nSELECT `no end", "line 2: unterminated quoted identifier"),
    ("SELECT 1 /* no end", "line 1: unterminated /\\* comment"),
])
def test_unterminated_text_is_named_by_line(text, match):
    with pytest.raises(sql.SqlError, match=match):
        sql.statements(text)


def test_the_runner_reads_records_not_sql():
    script = sql.runner_script(COMMENTED)
    records = [r.split(sql.UNIT) for r in script.split(sql.RECORD)]
    assert records[0] == ["set", "pipeline.name", "it's mine"]
    assert [r[0] for r in records] == ["set", "ddl", "dml"] and all(len(r) == 2 for r in records[1:])
    # the harness's own part splits as the runner's numbering expects: its tables come first
    assert [s.kind for s in sql.statements(tables("e", "r", "b:1", WindowSpec(), 1))] == ["set"] * 4 + ["table"] * 2


def test_a_job_file_with_comments_everywhere_is_accepted(tmp_path):
    f = tmp_path / "mine.sql"
    f.write_text(COMMENTED + "-- {not_a_variable} in a comment is no template\n")
    job = Job.parse(f"sql:{f}")
    assert [s.kind for s in sql.statements(job.statements({}))] == ["set", "ddl", "dml"]
    assert "a header" not in job.sql("e", "r", "b:1", WindowSpec(), 1)


@pytest.mark.parametrize("body, match", [
    ("SELECT * FROM events;\nINSERT INTO results SELECT 1;",
     r"statement 1 \(line 1\): not a statement a job may hold .*: SELECT \* FROM events"),
    ("-- one\n-- two\nSHOW TABLES;\nINSERT INTO results SELECT 1;", r"statement 1 \(line 3\): .*SHOW TABLES"),
    ("INSERT INTO results SELECT 1;\nDROP VIEW v;", r"statement 2 \(line 2\): DROP VIEW v \.\.\.: not allowed"),
    ("EXECUTE STATEMENT SET BEGIN INSERT INTO results SELECT 1; INSERT INTO other SELECT 2; END;",
     r"statement 1 \(line 1\): inserts into 'other'"),
    ("INSERT INTO results SELECT 'open;", r"line 1: unterminated string literal"),
])
def test_what_a_job_may_not_hold_is_refused_by_number_line_and_text(tmp_path, body, match):
    f = tmp_path / "bad.sql"
    f.write_text(body)
    with pytest.raises(JobError, match=match) as e:
        Job.parse(f"sql:{f}")
    assert "bad.sql" in str(e.value)


def test_an_insert_phrase_inside_a_literal_is_no_insert(tmp_path):
    f = tmp_path / "mine.sql"
    f.write_text("INSERT INTO results SELECT 'insert into foo' AS `key`, ts FROM events;")
    assert Job.parse(f"sql:{f}").kind == "sql"
    assert [s.text.count("INSERT") for s in sql.statements("EXECUTE STATEMENT SET BEGIN INSERT INTO results "
                                                            "SELECT 1;; INSERT INTO results SELECT 2; END;")] == [2]
