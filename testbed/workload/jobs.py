"""The job a cell measures: a built-in workload, the researcher's Flink SQL, or her own JAR.

    Job.parse("hop-window")                         # the seed's sliding-window count (default)
    Job.parse("passthrough")                        # read, touch, write: the zero-work baseline
    Job.parse("tumble-window")                      # tumbling window per key
    Job.parse("sql:queries/tumble.sql")             # statements against the ``events`` / ``results`` tables
    Job.parse("jar:target/job.jar:org.example.Main", args="{bootstrap} {events} {results} {window_ms}")

``parse`` checks what it can without an engine (the file exists, a JAR is a zip holding the class,
SQL inserts into ``results`` only, every ``{variable}`` is known) and raises ``JobError`` naming the
file, class or variable. SQL is then checked by Flink's own planner before the first cell
(``pipeline.validate``). The contract every job's output follows (docs/your-own-job.md):

- input: the ``events`` topic, JSON ``{"key": "k3", "value": 7.0, "ts": <event time, epoch ms>,
  "pad": "..."}`` (``pad`` only with ``--payload-bytes``), event j in partition j mod partitions;
- output: JSON records on the ``results`` topic, each with ``key`` and either ``window_end`` (a
  windowed result; latency is measured from it) or else ``ts`` (the event time of the event it derives
  from; latency from that). Window bounds are epoch ms or ISO-8601 UTC. A windowed record with
  ``window_start`` and ``cnt`` (events counted in that key's window) is accounted against the
  schedule; a job whose output has no counts gets accounting "not applicable", never a silent 0.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import pipeline, sql
from .pipeline import WindowSpec, interval

BUILTIN = {
    "hop-window": "sliding (HOP) window count per key: the seed's job",
    "tumble-window": "tumbling window count per key (window size = --window; --slide is not used)",
    "passthrough": "read each event, touch it, write it (Nexmark q0-like): the zero-work baseline",
}
DEFAULT = "hop-window"

# what a template ({name}) in SQL or JAR arguments may name, and what it stands for
VARIABLES = {
    "bootstrap": "the broker's bootstrap address, host:port",
    "events": "the cell's events topic",
    "results": "the cell's results topic",
    "group_id": "a consumer group id for the job's source",
    "parallelism": "the cluster's parallelism (taskmanagers x slots)",
    "window_ms": "window size, ms", "slide_ms": "window slide, ms", "watermark_delay_ms": "watermark delay, ms",
    "window": "window size as a Flink SQL interval literal", "slide": "window slide as a Flink SQL interval literal",
    "watermark_delay": "watermark delay as a Flink SQL interval literal",
}
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class JobError(ValueError):
    """A job that cannot run, found before anything starts."""


def template_names(text: str) -> list[str]:
    return _VAR.findall(text)


def render(text: str, values: dict[str, object], where: str) -> str:
    """``{name}`` -> its value; an unknown name raises JobError naming it and ``where`` it is."""
    unknown = sorted({n for n in template_names(text) if n not in VARIABLES})
    if unknown:
        raise JobError(f"{where}: unknown template variable(s) {', '.join('{' + n + '}' for n in unknown)}; "
                       f"known: {', '.join('{' + n + '}' for n in VARIABLES)}")
    return _VAR.sub(lambda m: str(values[m.group(1)]), text)


def template_values(*, bootstrap: str, events: str, results: str, parallelism: int, window: WindowSpec) -> dict:
    return {"bootstrap": bootstrap, "events": events, "results": results, "group_id": f"fst-{events}",
            "parallelism": parallelism, "window_ms": window.size_ms, "slide_ms": window.slide_ms,
            "watermark_delay_ms": window.watermark_delay_ms, "window": interval(window.size_s),
            "slide": interval(window.slide_s), "watermark_delay": interval(window.watermark_delay_s)}


@dataclass(frozen=True)
class Job:
    spec: str                       # as given: hop-window, sql:FILE, jar:FILE[:CLASS]
    kind: str                       # builtin | sql | jar
    path: str = ""                  # the SQL file or JAR
    entry_class: str = ""           # jar: the class whose main() runs (default: the manifest's Main-Class)
    args: str = ""                  # jar: program arguments, templated, split like a shell
    sha256: str = ""                # of the file
    text: str = ""                  # sql: the statements as read

    @classmethod
    def parse(cls, spec: str, args: str = "") -> "Job":
        spec = (spec or DEFAULT).strip()
        if spec in BUILTIN:
            if args:
                raise JobError(f"--job-args is for jar: jobs, not the built-in {spec!r}")
            return cls(spec, "builtin")
        kind, sep, rest = spec.partition(":")
        if not sep or kind not in ("sql", "jar") or not rest:
            raise JobError(f"--job {spec!r}: expected one of {', '.join(BUILTIN)}, sql:FILE or jar:FILE[:CLASS]")
        if kind == "sql":
            if args:
                raise JobError(f"--job-args is for jar: jobs, not {spec!r} (SQL takes {{variables}} in its text)")
            return cls._sql(spec, rest)
        return cls._jar(spec, rest, args)

    @classmethod
    def _file(cls, spec: str, path: str) -> tuple[Path, bytes]:
        p = Path(path).expanduser()
        if not p.is_file():
            raise JobError(f"--job {spec}: no such file {str(p)!r}")
        return p, p.read_bytes()

    @classmethod
    def _sql(cls, spec: str, path: str) -> "Job":
        p, data = cls._file(spec, path)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            raise JobError(f"--job {spec}: {p} is not UTF-8 text") from None
        try:
            code = sql.strip_comments(text)    # a {name} in a comment is no template
        except sql.SqlError as e:
            raise JobError(f"--job {spec}: SQL file {p}, {e}") from None
        render(code, template_values(bootstrap="b", events="e", results="r", parallelism=1,
                                     window=WindowSpec()), f"SQL file {p}")
        check_sql(code, str(p))
        return cls(spec, "sql", str(p.resolve()), sha256=hashlib.sha256(data).hexdigest(), text=text)

    @classmethod
    def _jar(cls, spec: str, rest: str, args: str) -> "Job":
        path, _, entry = rest.partition(":")
        p, data = cls._file(spec, path)
        if not zipfile.is_zipfile(p):
            raise JobError(f"--job {spec}: {p} is not a JAR (not a zip archive)")
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            manifest = z.read("META-INF/MANIFEST.MF").decode(errors="replace") \
                if "META-INF/MANIFEST.MF" in names else ""
        classes = sorted(n[:-6].replace("/", ".") for n in names if n.endswith(".class") and "$" not in n)
        if not classes:
            raise JobError(f"--job {spec}: {p} is not a JAR with classes (no .class entries)")
        if not entry:
            m = re.search(r"^Main-Class:\s*(\S+)", manifest, re.M)
            if not m:
                raise JobError(f"--job {spec}: {p} names no Main-Class in its manifest; give the class, "
                               f"jar:{path}:CLASS (classes: {', '.join(classes[:8])})")
            entry = m.group(1)
        if entry not in classes:
            raise JobError(f"--job {spec}: class {entry!r} is not in {p} (classes: {', '.join(classes[:8])}"
                           f"{' ...' if len(classes) > 8 else ''})")
        try:
            shlex.split(args)
        except ValueError as e:
            raise JobError(f"--job-args {args!r}: {e}") from None
        render(args, {n: "" for n in VARIABLES}, "--job-args")
        return cls(spec, "jar", str(p.resolve()), entry, args, hashlib.sha256(data).hexdigest())

    # -- what the cell needs -----------------------------------------------------------------------
    @property
    def label(self) -> str:
        """A short name for cell keys and figures: the built-in's, or sql-/jar- and the file's stem."""
        if self.kind == "builtin":
            return self.spec
        return f"{self.kind}-{re.sub(r'[^A-Za-z0-9]+', '-', Path(self.path).stem).strip('-').lower()}"

    @property
    def counts_events(self) -> bool:
        """One output record per input event (accounting by event count)."""
        return self.spec == "passthrough"

    @property
    def output(self) -> str:
        """What the job writes, as the driver's collector needs to know (``load.LoadSpec.output``)."""
        if self.kind != "builtin":
            return "any"
        return "events" if self.counts_events else "windows"

    def window(self, w: WindowSpec) -> WindowSpec:
        """The windows the job's results are accounted against: a tumbling window slides by its size."""
        return WindowSpec(w.size_s, w.size_s, w.watermark_delay_s) if self.spec == "tumble-window" else w

    def program_args(self, values: dict) -> list[str]:
        return [render(a, values, "--job-args") for a in shlex.split(self.args)]

    def statements(self, values: dict) -> str:
        """The SQL after the harness's tables (built-in or the user's, rendered)."""
        if self.kind == "sql":
            return render(sql.strip_comments(self.text), values, f"SQL file {self.path}")
        if self.kind != "builtin":
            raise ValueError(f"{self.spec} is not a SQL job")
        window = "HOP(TABLE events, DESCRIPTOR(ets), {slide}, {window})" if self.spec == "hop-window" else \
            "TUMBLE(TABLE events, DESCRIPTOR(ets), {window})"
        body = ("INSERT INTO results (`key`, `value`, ts)\nSELECT `key`, `value` + 1, ts FROM events;"
                if self.spec == "passthrough" else
                "INSERT INTO results\nSELECT `key`, window_start, window_end, COUNT(*), AVG(`value`), MAX(ts)\n"
                f"FROM TABLE({window})\nGROUP BY `key`, window_start, window_end;")
        return render(body, values, self.spec)

    def sql(self, events: str, results: str, bootstrap: str, window: WindowSpec, parallelism: int,
            settings: dict[str, str] | None = None, source_properties: tuple = (), sink_properties: tuple = ()) -> str:
        """The whole SQL text of a built-in or sql: job: settings, the harness's tables (with the
        cell's Kafka client settings), then the job's statements."""
        values = template_values(bootstrap=bootstrap, events=events, results=results, parallelism=parallelism,
                                 window=window)
        return pipeline.tables(events, results, bootstrap, window, parallelism, name=self.label, settings=settings,
                               source_properties=source_properties, sink_properties=sink_properties) \
            + self.statements(values) + "\n"

    def validate(self, tb, window: WindowSpec) -> None:
        """A sql: job planned by Flink itself (``pipeline.validate``) before any cell starts; JobError
        naming the file and the statement. Other jobs were checked by ``parse``."""
        if self.kind != "sql":
            return
        text = self.sql("events-check", "results-check", "broker:9092", window, 1)
        skip = len(sql.statements(pipeline.tables("e", "r", "b", window, 1)))
        try:
            pipeline.validate(tb, text, skip=skip)
        except ValueError as e:
            raise JobError(f"--job {self.spec}: Flink rejects {self.path}, {e}") from None

    def record(self) -> dict:
        """What a row and the manifest say about the job."""
        return {"job": self.spec, "job_label": self.label, "job_sha256": self.sha256, "job_class": self.entry_class,
                "job_args": self.args}


def check_sql(text: str, where: str) -> None:
    """What can be told without Flink: at least one INSERT, into ``results`` only; no tables of the
    user's own (views are fine); nothing the harness cannot classify. Flink's planner checks the
    rest (``pipeline.validate``)."""
    try:
        parsed = sql.statements(text)
    except sql.SqlError as e:
        raise JobError(f"SQL file {where}, {e}") from None
    inserts = 0
    for s in parsed:
        at = f"SQL file {where}, statement {s.number} (line {s.line})"
        if s.kind == "dml":
            # the statement's own INSERT, and a statement set's: not a phrase inside a literal
            for m in re.finditer(r"(?is)(?:^|^EXECUTE\s+|;\s*|\bBEGIN\s+)INSERT\s+(?:INTO|OVERWRITE)\s+([`\"\w.]+)",
                                 sql.blank_literals(s.text)):
                inserts += 1
                if m.group(1).strip('`"').lower() != "results":
                    raise JobError(f"{at}: inserts into {m.group(1)!r}; the harness's sink table is `results` "
                                   "(and its source `events`)")
        elif s.kind == "table":
            raise JobError(f"{at}: {s.head()} ...: a job may not define tables; read `events` and write `results` "
                           "(views are fine)")
        elif s.kind == "drop":
            raise JobError(f"{at}: {s.head()} ...: not allowed in a job")
        elif s.kind not in ("set", "ddl"):
            raise JobError(f"{at}: not a statement a job may hold (SET, CREATE VIEW or FUNCTION, INSERT INTO "
                           f"results, EXECUTE STATEMENT SET): {_short(s.text)}")
    if not inserts:
        raise JobError(f"SQL file {where}: no INSERT INTO results statement")


def _short(text: str, n: int = 120) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[:n] + " ..."
