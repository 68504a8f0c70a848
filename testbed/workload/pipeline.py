"""Running a job on the cluster: the harness's SQL tables, SQL submission and validation, JAR upload,
cancellation, and the source's record counter. Which job runs is ``jobs.Job``.

The seed's job was a Beam pipeline with sliding windows of 5 minutes every minute; the built-in
jobs are Flink SQL, so the taskmanagers stay pure JVM. SQL statements are submitted with
``flink run`` of a small SQL runner (``workload/java/SqlRunner.java``, compiled into the Flink
image), in a one-shot container of the Flink image on the jobmanager node, to the cluster's
jobmanager; a JAR is uploaded through the REST API as the web UI does; the job is cancelled through
the REST API when the cell ends. (Flink's own SQL client cannot run here: it needs the SQL gateway
jar, which the PyPI distribution lacks.)
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass

from ..core.run import GiveUp, step, wait_for
from . import sql
from ..stack import services
from ..stack.flink import FlinkCluster
from ..provision.testbed import Testbed

log = logging.getLogger(__name__)

RUNNER = "/opt/flink/runner/sql-runner.jar"


MAX_INTERVAL_MS = 100 * 86_400_000 - 1   # what DAY TO SECOND(3) holds: 99 days 23:59:59.999


@dataclass(frozen=True)
class WindowSpec:
    """A sliding (HOP) window: its size, its slide and the watermark's bounded out-of-orderness.
    The defaults are the CLI's (10 s sliding by 2 s); the seed's is ``SEED_WINDOW``, 5 min every 1 min."""

    size_s: float = 10.0
    slide_s: float = 2.0
    watermark_delay_s: float = 1.0

    def __post_init__(self):
        for name, what, low in (("size_s", "window size", 1), ("slide_s", "window slide", 1),
                                ("watermark_delay_s", "watermark delay", 0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or round(v * 1000) < low \
                    or abs(round(v * 1000) - v * 1000) > 1e-6:
                raise ValueError(f"{what} ({name}) must be {'> 0' if low else '>= 0'} and whole milliseconds, got {v!r}")
            if round(v * 1000) > MAX_INTERVAL_MS:
                raise ValueError(f"{what} ({name}) must be below 100 days, got {v!r} s")
        if self.size_ms % self.slide_ms:
            raise ValueError(f"window size ({self.size_s:g}s) must be a multiple of the slide ({self.slide_s:g}s)")

    @property
    def size_ms(self) -> int:
        return round(self.size_s * 1000)

    @property
    def slide_ms(self) -> int:
        return round(self.slide_s * 1000)

    @property
    def watermark_delay_ms(self) -> int:
        return round(self.watermark_delay_s * 1000)

    @property
    def windows_per_event(self) -> int:
        return self.size_ms // self.slide_ms

    def describe(self) -> str:
        return (f"windows of {self.size_s:g}s sliding by {self.slide_s:g}s, "
                f"watermark delay {self.watermark_delay_s:g}s")


SEED_WINDOW = WindowSpec(300, 60, 1)    # the seed's: "sliding windows of 5 minutes, starting every minute"


def interval(seconds: float) -> str:
    """A Flink SQL interval literal for any whole number of milliseconds up to 99 days.

    ``INTERVAL 'N' SECOND`` has a leading precision of 2 (at most 99 s: Flink refuses 300 with
    "exceeds precision of SECOND(2) field"), and so has every single-unit interval; the
    DAY TO SECOND form with millisecond fraction spells any size exactly."""
    ms = round(seconds * 1000)
    if not 0 <= ms <= MAX_INTERVAL_MS:
        raise ValueError(f"an interval must be between 0 and 100 days, got {seconds!r} s")
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"INTERVAL '{days} {hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}' DAY TO SECOND(3)"


# the Kafka clients of the harness's SQL tables: what the testbed sets over the connector's defaults
# (Tansu answers a fetch no sooner than half its fetch.max.wait.ms: docs/pipeline.md, "The broker"), and what a
# cell may not change (the harness's own addressing)
SOURCE_DEFAULTS = {"fetch.max.wait.ms": "100"}
SINK_DEFAULTS: dict[str, str] = {}
CLIENT_FIXED = ("bootstrap.servers", "group.id")
_CLIENT_KEY = re.compile(r"[A-Za-z0-9._-]+")


def client_properties(defaults: dict[str, str], cell: dict[str, str] | tuple = ()) -> dict[str, str]:
    """A table's Kafka client settings: the harness's defaults with a cell's over them. A key the
    harness sets itself, or one that is not a client setting's name, raises ValueError naming it."""
    cell = dict(cell)
    fixed = sorted(set(cell) & set(CLIENT_FIXED))
    if fixed:
        raise ValueError(f"the harness sets {', '.join(fixed)} itself")
    bad = sorted(k for k in cell if not _CLIENT_KEY.fullmatch(k))
    if bad:
        raise ValueError(f"not a client setting's name: {', '.join(map(repr, bad))}")
    return {**defaults, **cell}


def _with(props: dict[str, str]) -> str:
    return "".join(f",\n  'properties.{k}' = '{str(v).replace(chr(39), chr(39) * 2)}'" for k, v in sorted(props.items()))


def tables(events: str, results: str, bootstrap: str, window: WindowSpec, parallelism: int,
           name: str = "seed-sliding-windows", settings: dict[str, str] | None = None,
           source_properties: dict[str, str] | tuple = (), sink_properties: dict[str, str] | tuple = ()) -> str:
    """The harness's part of every SQL job: settings, the ``events`` source and the ``results`` sink
    (the contract of docs/your-own-job.md). No source idle-timeout: every partition carries events (and the final
    flush event), and with one, a partition whose first records come later than another's (across
    a slow link) was declared idle at start-up, the other drove the watermark alone, and the late
    partition's first events were dropped as late data. Columns a job does not write are null, and
    the results reader treats a null as absent. ``source_properties`` and ``sink_properties``: the
    Kafka clients' settings over ``SOURCE_DEFAULTS`` and ``SINK_DEFAULTS``."""
    source = client_properties(SOURCE_DEFAULTS, source_properties)
    sink = client_properties(SINK_DEFAULTS, sink_properties)
    kafka = f"'connector' = 'kafka', 'properties.bootstrap.servers' = '{bootstrap}'"
    extra = "".join(f"SET '{k}' = '{v}';\n" for k, v in (settings or {}).items())
    return f"""
{extra}SET 'pipeline.name' = '{name}';
SET 'parallelism.default' = '{parallelism}';
SET 'table.local-time-zone' = 'UTC';
SET 'table.dml-sync' = 'false';
CREATE TABLE events (
  `key` STRING,
  `value` DOUBLE,
  ts BIGINT,
  ets AS TO_TIMESTAMP_LTZ(ts, 3),
  WATERMARK FOR ets AS ets - {interval(window.watermark_delay_s)}
) WITH ({kafka}, 'topic' = '{events}', 'format' = 'json',
  'scan.startup.mode' = 'earliest-offset', 'properties.group.id' = 'fst-flink'{_with(source)});
CREATE TABLE results (
  `key` STRING,
  window_start TIMESTAMP(3),
  window_end TIMESTAMP(3),
  cnt BIGINT,
  `value` DOUBLE,
  ts BIGINT
) WITH ({kafka}, 'topic' = '{results}', 'format' = 'json',
  'json.timestamp-format.standard' = 'ISO-8601', 'sink.delivery-guarantee' = 'at-least-once'{_with(sink)});
"""


def _why(exceptions: dict) -> str:
    """The root of a failed job's exception: its first line, every "Caused by", and where."""
    entries = (exceptions.get("exceptionHistory") or {}).get("entries") or []
    if not entries:
        return str(exceptions)[:3000]
    e = entries[0]
    lines = e.get("stacktrace", "").splitlines()
    causes = [ln.strip() for ln in lines if ln.startswith("Caused by")]
    where = e.get("taskName") or e.get("location") or e.get("endpoint") or ""
    return "\n".join([lines[0] if lines else e.get("exceptionName", "?"), *causes[-4:]]
                     + ([f"at {where}"] if where else []))[:3000]


def flink_client_env() -> dict:
    """The environment of a one-shot Flink client container: where the jobmanager is."""
    props = "\n".join(["jobmanager.rpc.address: jobmanager", "rest.address: jobmanager",
                       "rest.port: 8081", "execution.target: remote"])
    return {"FLINK_PROPERTIES": props}


def validate(tb: Testbed, statements: str, skip: int = 0, timeout: float = 120) -> None:
    """Plan the statements with Flink's own planner, in a one-shot container of the Flink image on
    the jobmanager node (nothing runs, nothing connects). Raises ValueError with Flink's message and
    the statement's number, counting from after the first ``skip`` statements (the harness's)."""
    jm = tb.node(tb.topology.jobmanager.hostname)
    script = ('printf "%s" "$JOB_SQL" > /tmp/job.sql && exec java -cp "$(printf \'%s:\' lib/*.jar)'
              f'{RUNNER}" SqlRunner --validate /tmp/job.sql')
    out = services.run_once(jm, tb.images["flink"], ["bash", "-c", script], network_mode="none",
                            environment={"JOB_SQL": sql.runner_script(statements)}, labels=tb.labels(), timeout=timeout,
                            what="SQL validation", ok_codes=(0, 3))
    m = re.search(r"^INVALID statement (\d+): (.*)", out, re.M | re.S)
    # (the runner numbers the statements as sql.statements does; the harness's come first)
    if m:
        said = list(dict.fromkeys(ln.strip() for ln in m.group(2).strip().splitlines()))   # causes repeat
        raise ValueError(f"statement {int(m.group(1)) - skip}: " + "\n".join(said)[:2000])
    if "VALID" not in out:
        raise RuntimeError(f"SQL validation printed no verdict:\n{out[-3000:]}")


def submit_command(statements: str, parallelism: int) -> tuple[list[str], dict]:
    """The command and environment of a one-shot Flink container that submits SQL statements with
    the runner (``flink run``) to the jobmanager and prints the job's id."""
    script = ('printf "%s" "$JOB_SQL" > /tmp/job.sql && exec bin/flink run -d '
              f"-p {parallelism} -c SqlRunner {RUNNER} /tmp/job.sql")
    return ["bash", "-c", script], {"JOB_SQL": sql.runner_script(statements), **flink_client_env()}


SUBMIT = ("rest", "flink-run")


def submit(cluster: FlinkCluster, statements: str, timeout: float = 120, via: str = "rest") -> str:
    """Start the statements' job; returns its id once it is RUNNING with every task running.
    ``rest`` (the default): with the SQL runner already uploaded to the jobmanager (``runner_jar``), so
    that they are planned in its JVM, warm after the first cell; ``flink-run``: from a new client
    container on the jobmanager's node (``flink run``), a JVM started and warmed for every job."""
    with step(log, f"submit the SQL job (parallelism {cluster.parallelism}, {via})"):
        if via == "rest":
            job_id = _run_jar(cluster, runner_jar(cluster), "SqlRunner", ["--script", sql.runner_script(statements)],
                              {}, timeout, "the SQL runner")
        else:
            tb: Testbed = cluster.testbed
            command, env = submit_command(statements, cluster.parallelism)
            out = services.run_once(tb.node(tb.topology.jobmanager.hostname), tb.images["flink"], command,
                                    network=tb.network, environment=env, labels=tb.labels(), timeout=timeout,
                                    what="flink run")
            m = re.search(r"Job ID:\s*([0-9a-f]{32})", out)
            if not m:
                raise RuntimeError(f"flink run did not print a job id:\n{out[-4000:]}")
            job_id = m.group(1)
        return wait_running(cluster, job_id, timeout)


_RUNNERS: dict[str, str] = {}       # jobmanager REST URL -> the SQL runner's jar id uploaded there
_RUNNER_BYTES: dict[str, bytes] = {}    # Flink image -> the runner jar it holds


def runner_jar(cluster: FlinkCluster) -> str:
    """The SQL runner's jar id on the cluster's jobmanager, uploaded once per jobmanager: a jobmanager
    started again (another configuration, a fault) has lost its uploads, and is given it again. The
    jar comes out of the Flink image, as the jobmanager's node holds it."""
    import requests
    jar_id = _RUNNERS.get(cluster.rest_url)
    if jar_id and any(f["id"] == jar_id for f in cluster.rest("/jars").get("files", [])):
        return jar_id
    tb = cluster.testbed
    image = tb.images["flink"]
    if image not in _RUNNER_BYTES:
        _RUNNER_BYTES[image] = _file_of_image(tb.node(tb.topology.jobmanager.hostname).client, image, RUNNER,
                                              tb.labels())
    r = requests.post(cluster.rest_url + "/jars/upload", timeout=60,
                      files={"jarfile": ("sql-runner.jar", _RUNNER_BYTES[image], "application/x-java-archive")})
    if r.status_code != 200:
        raise RuntimeError(f"uploading the SQL runner to {cluster.rest_url}: HTTP {r.status_code}: {r.text[:2000]}")
    _RUNNERS[cluster.rest_url] = jar_id = r.json()["filename"].rsplit("/", 1)[-1]
    return jar_id


def _file_of_image(client, image: str, path: str, labels: dict) -> bytes:
    """One file of an image, read from a container created (never started) from it and removed
    (labelled with the run, so that a killed run's is cleaned up with the rest)."""
    import io
    import tarfile
    c = client.containers.create(image, ["true"], labels=labels)
    try:
        stream, _ = c.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            return tar.extractfile(tar.getmembers()[0]).read()
    finally:
        c.remove(force=True)


def _run_jar(cluster: FlinkCluster, jar_id: str, entry_class: str, args: list[str], settings: dict[str, str],
             timeout: float, what: str) -> str:
    """POST /jars/:id/run; the job id, or the root causes of a main() that threw."""
    import requests
    r = requests.post(f"{cluster.rest_url}/jars/{jar_id}/run", timeout=timeout, json={
        "entryClass": entry_class, "programArgsList": args, "parallelism": cluster.parallelism,
        "flinkConfiguration": settings or {}})
    if r.status_code != 200:
        errors = (r.json().get("errors") if r.headers.get("content-type", "").startswith("application/json")
                  else None) or [r.text]
        raise RuntimeError(f"running {entry_class} from {what}: HTTP {r.status_code}: "
                           + _root_causes("\n".join(map(str, errors))))
    return r.json()["jobid"]


def submit_jar(cluster: FlinkCluster, path: str, entry_class: str, args: list[str], timeout: float = 180,
               settings: dict[str, str] | None = None) -> str:
    """Upload a JAR through the REST API (``/jars/upload``, as the web UI does), run it
    (``/jars/:id/run``) with the cluster's parallelism, delete the upload; returns the job id once it
    is RUNNING with every task running. A main() that throws raises with Flink's message."""
    import requests     # the docker SDK's own dependency; multipart uploads without hand-made bodies

    name = path.rsplit("/", 1)[-1]
    with step(log, f"upload {name} and run {entry_class} (parallelism {cluster.parallelism})"):
        with open(path, "rb") as f:
            r = requests.post(cluster.rest_url + "/jars/upload", timeout=timeout,
                              files={"jarfile": (name, f, "application/x-java-archive")})
        if r.status_code != 200:
            raise RuntimeError(f"uploading {path} to {cluster.rest_url}: HTTP {r.status_code}: {r.text[:2000]}")
        jar_id = r.json()["filename"].rsplit("/", 1)[-1]
        try:
            job_id = _run_jar(cluster, jar_id, entry_class, args, settings or {}, timeout, name)
        finally:
            requests.delete(f"{cluster.rest_url}/jars/{jar_id}", timeout=30)
        return wait_running(cluster, job_id, timeout)


def _root_causes(text: str) -> str:
    lines = text.splitlines()
    causes = [ln.strip() for ln in lines if ln.strip().startswith("Caused by")]
    return "\n".join([lines[0] if lines else "", *causes[-4:]])[:3000]


def wait_running(cluster: FlinkCluster, job_id: str, timeout: float) -> str:
    def running() -> bool:
        job = cluster.rest(f"/jobs/{job_id}")
        if job["state"] in ("FAILED", "CANCELED", "FINISHED"):
            raise GiveUp(f"job {job_id} is {job['state']}: " + _why(cluster.rest(f"/jobs/{job_id}/exceptions")))
        return job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"])

    wait_for(running, timeout, f"job {job_id} RUNNING with all tasks running", interval=0.2)
    return job_id


def recovery_settings(checkpoint_interval_s: float, mode: str = "at-least-once") -> dict[str, str]:
    """A job's configuration to survive faults: checkpoints every interval (0: none) in the
    jobmanager's memory (readable after any taskmanager is gone), and restarts without end, 2 s apart."""
    if not checkpoint_interval_s:
        return {}
    return {"execution.checkpointing.interval": f"{round(checkpoint_interval_s * 1000)} ms",
            "execution.checkpointing.mode": mode.upper().replace("-", "_"),
            "state.checkpoint-storage": "jobmanager",
            "restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "2147483647",
            "restart-strategy.fixed-delay.delay": "2 s"}


def job_status(cluster: FlinkCluster, job_id: str) -> tuple[str, int | None]:
    """The job's state and how often it restarted (``numRestarts``)."""
    state, restarts, _running, _total = job_sample(cluster, job_id)
    return state, restarts


def job_sample(cluster: FlinkCluster, job_id: str) -> tuple[str, int | None, int, int]:
    """The job's state, how often it restarted (``numRestarts``), and how many of its tasks are
    RUNNING of how many: a job is RUNNING as soon as it is scheduled again, while its tasks may still
    wait for a slot, deploy or initialise."""
    job = cluster.rest(f"/jobs/{job_id}", timeout=5)
    state = job["state"]
    vertices = job.get("vertices") or []
    running = sum(int((v.get("tasks") or {}).get("RUNNING", 0)) for v in vertices)
    total = sum(int(v.get("parallelism", 0)) for v in vertices)
    try:
        got = cluster.rest(f"/jobs/{job_id}/metrics?get=numRestarts", timeout=5)
        restarts = int(float(got[0]["value"])) if got else None
    except (OSError, ValueError, KeyError):
        restarts = None
    return state, restarts, running, total


def check_running(cluster: FlinkCluster, job_id: str) -> None:
    """Raise with Flink's root causes if the job is no longer running."""
    state = cluster.rest(f"/jobs/{job_id}")["state"]
    if state != "RUNNING":
        raise RuntimeError(f"job {job_id} is {state}: " + _why(cluster.rest(f"/jobs/{job_id}/exceptions")))


def cancel(cluster: FlinkCluster, job_id: str, timeout: float = 60, wait: bool = True) -> None:
    """Cancel a job; with ``wait``, until it has ended. Without, Flink's cancellation (2-3 s: its
    Kafka clients closed, its slots freed) goes on while the caller does other things, and
    ``flink.wait_jobs_ended`` waits for it where it matters."""
    if cluster.rest(f"/jobs/{job_id}")["state"] in ("CANCELED", "FAILED", "FINISHED"):
        return      # (Flink refuses to cancel a job that has ended: 409)
    if not wait:
        cluster.rest(f"/jobs/{job_id}", method="PATCH")
        log.info(f"cancel job {job_id} (it ends while the next steps run)")
        return
    with step(log, f"cancel job {job_id}"):
        cluster.rest(f"/jobs/{job_id}", method="PATCH")
        wait_for(lambda: cluster.rest(f"/jobs/{job_id}")["state"] in ("CANCELED", "FAILED", "FINISHED"),
                 timeout, f"job {job_id} cancelled", interval=0.2)


class SourceCounter:
    """Records the job's Kafka source has read so far (sum over its subtasks), from the REST API,
    with the time they were counted.

    Flink's REST API answers metric queries from a store that the jobmanager refreshes
    *asynchronously*: a query at most every ``metrics.fetcher.update-interval`` starts a fetch from
    the taskmanagers and is answered from the previous one. Read once per second, every value was
    a second old, and the consumer lag (acknowledged - read) showed one second of events at every
    rate. ``sample`` therefore asks twice: the first query starts a fetch, the second, ``settle``
    seconds later, reads its result, timed at the first."""

    def __init__(self, cluster: FlinkCluster, job_id: str):
        self.cluster, self.job_id = cluster, job_id
        self._query: str | None = None
        self._base = self._last = 0

    def _find(self) -> str | None:
        job = self.cluster.rest(f"/jobs/{self.job_id}")
        src = next((v for v in job["vertices"] if "source" in v["name"].lower()), job["vertices"][0])
        base = f"/jobs/{self.job_id}/vertices/{src['id']}/subtasks/metrics"
        ids = [m["id"] for m in self.cluster.rest(base)]
        wanted = [i for i in ids if i.endswith(".numRecordsIn") and "source" in i.lower()] or \
            [i for i in ids if i == "numRecordsOut"]
        return f"{base}?get={wanted[0]}&agg=sum" if wanted else None

    def read(self) -> int | None:
        """The records read so far, kept growing across restarts: a restarted job's counters start from
        0 again, so what was counted before is added (the records it reads again from its last
        checkpoint are then counted twice: the lag right after a restart reads a little low)."""
        self._query = self._query or self._find()
        if not self._query:
            return None
        vals = self.cluster.rest(self._query)
        if not vals:
            return None
        now = int(float(vals[0]["sum"]))
        if now < self._last:
            self._base += self._last
        self._last = now
        return self._base + now

    def sample(self, settle: float = 0.25) -> tuple[float, int | None]:
        self.read()
        t = time.time()
        time.sleep(settle)
        return t, self.read()



# a gauge every taskmanager reports that changes whenever it is read: the JVM's CPU time (ns)
CLOCK_METRIC = "Status.JVM.CPU.Time"


def taskmanager_clocks(cluster: FlinkCluster) -> dict[str, float]:
    """Each registered taskmanager's JVM CPU time as the REST API's metric store holds it now, by
    taskmanager id. The store keeps a taskmanager's last fetched values while fetches from it fail
    (it is cut off, or too slow to answer), so a clock that did not move between two readings a
    second apart marks every reading from that taskmanager, the source's record counts included, as
    stale for that second (``measure.metrics.stale_readings``). Call after a metric query has started a
    fetch (``SourceCounter.sample``)."""
    out: dict[str, float] = {}
    for tm in cluster.rest("/taskmanagers", timeout=5)["taskmanagers"]:
        got = cluster.rest(f"/taskmanagers/{tm['id']}/metrics?get={CLOCK_METRIC}", timeout=5)
        if got:
            out[tm["id"]] = float(got[0]["value"])
    return out


def checkpoint_counts(cluster: FlinkCluster, job_id: str) -> tuple[int, int]:
    """The job's completed and failed checkpoints so far (``/jobs/:id/checkpoints``). The jobmanager
    keeps these itself, so they do not go stale when a taskmanager is cut off the way the metric
    store's readings do; the REST API caches them for ``web.refresh-interval`` (3 s)."""
    counts = cluster.rest(f"/jobs/{job_id}/checkpoints", timeout=5)["counts"]
    return int(counts["completed"]), int(counts["failed"])



# where a job's events or results can be dropped, by the suffix of the operator metric that counts it
PATH_COUNTERS = {"late_records_dropped": ".numLateRecordsDropped",    # a window operator's late input
                 "sink_records_sent": ".numRecordsSend",               # a (Kafka) sink writer's sends ...
                 "sink_send_errors": ".numRecordsSendErrors"}          # ... and its failed ones


def path_counters(cluster: FlinkCluster, job_id: str, settle: float = 0.25) -> dict:
    """Flink's own counts along the path, summed over operators and subtasks: records its window
    operators dropped as late, results its sink writers sent and failed to send. NaN where the job
    has no such operator (or the REST API does not answer). They count since the job's last
    (re)start: a restarted task's counters start from 0. Asked twice, ``settle`` s apart (the
    REST API answers from the previous fetch, see ``SourceCounter``)."""
    out = {k: float("nan") for k in PATH_COUNTERS}
    try:
        queries = []
        for v in cluster.rest(f"/jobs/{job_id}", timeout=10)["vertices"]:
            base = f"/jobs/{job_id}/vertices/{v['id']}/subtasks/metrics"
            ids = [m["id"] for m in cluster.rest(base, timeout=10)]
            wanted = [i for i in ids if any(i.endswith(s) for s in PATH_COUNTERS.values())]
            if wanted:
                queries.append(f"{base}?get={','.join(wanted)}&agg=sum")
        for q in queries:
            cluster.rest(q, timeout=10)
        time.sleep(settle)
        for q in queries:
            for m in cluster.rest(q, timeout=10):
                key = next(k for k, s in PATH_COUNTERS.items() if m["id"].endswith(s))
                now = int(float(m["sum"]))
                out[key] = now if out[key] != out[key] else out[key] + now
    except Exception as e:  # noqa: BLE001 - the counters explain a loss; their absence is said, not fatal
        log.warning(f"Flink's path counters of job {job_id} could not be read: {e}")
    return out
