"""The columns of ``cells.csv``, declared once: every column of a cell's row with its type, unit and
meaning, in the order the row has them. ``docs/reference/columns.md`` is generated from this module,
and a test checks that a recorded ``cells.csv`` has no column that is not declared here.

    column("latency_p99_ms").unit             # 'ms'
    column("link_azure-google_rtt_ms").name   # 'link_<a>-<b>_<field>' (a templated column)
    undeclared(frame.columns)                 # [] when every column is declared

``when`` says which rows have a column: ``""`` every row. A failed cell's row (``error`` not empty)
holds only the columns in ``FAILED_ROW`` (its run id, its parameters, when it started and ended, the
error and the path of its logs); its other fields are empty. Columns only some cells have are
declared after the others: a link axis's values (``link_<a>-<b>_<field>``, a templated name) and
the recovery columns of cells with a fault scenario. ``sustainable.csv``, the sustainable-throughput
search's table, is a table of its own (``SUSTAINABLE``).

Times are wall-clock unless a column says otherwise. ``t0`` is the load's start: the instant, fixed
by the harness, at which event 0 is due; "s after t0" is seconds since it. The *measured part* of the
load is [t0 + warmup, t0 + duration]. A number that could not be measured is empty (NaN), never 0.
Every definition follows the code that computes it (``experiment/cell.py``, ``measure/*.py``,
``workload/driver.py``) and docs/results.md's *Definitions*.

Standard library only: this module describes the row; it does not build it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str       # the column's name; with <...> placeholders when ``pattern``
    type: str       # "str", "int", "float", "bool", "json" (a JSON text), "timestamp" (ISO 8601 text)
    unit: str       # "" when none, else e.g. "ms", "s", "events/s", "cores", "bytes", "fraction"
    meaning: str    # how it is computed, from what, and what an empty value means
    group: str      # what it is about: identity, settings, placement, provenance, load, accounting, ...
    when: str = ""  # "" = in every row; else which rows have it
    pattern: bool = False   # a templated name: one column per value of its placeholders


FAULT = "fault cells only (a --scenario)"
LINK_AXIS = "cells of a link axis (--links): one column per link and field the axis sets"

COLUMNS: tuple[Column, ...] = (
    # -- identity ------------------------------------------------------------------------------------
    Column("run_id", "str", "",
           "The id of the testbed the cell ran on (Testbed.run_id, e.g. 20261203-131659-e52c: the label on "
           "its containers). Not the session's id, which names the results folder; a session run on an "
           "existing testbed (--testbed-run) carries that testbed's id.",
           "identity"),
    Column("cell", "str", "",
           "A random 8-hex-digit id of this run of the cell: it names latency/<cell>.parquet, "
           "timeseries/<cell>.parquet and the cell's topics (events-<cell>, results-<cell>). Not in a failed "
           "cell's row.",
           "identity"),
    Column("cell_key", "str", "",
           "The cell's name in the matrix, what --resume matches on: tm<taskmanagers>-<placement>-r<rate>-"
           "rep<repetition>, then -<job_label> unless the job is hop-window, -<scenario name>, -<axis value> "
           "for each client-settings or link axis, and -search for a search trial.",
           "identity"),
    # -- settings (CellSpec.params) --------------------------------------------------------------------
    Column("taskmanagers", "int", "",
           "Flink taskmanagers in the cell, one per chosen node; the job's parallelism is taskmanagers x "
           "slots (= the topics' partitions).",
           "settings"),
    Column("placement", "str", "",
           "The placement policy as given: single-cloud (the cloud with most workers), single-cloud:<cloud>, "
           "multi-cloud (round-robin over clouds) or nodes:<host>+<host>+...; the nodes it chose are in "
           "taskmanager_nodes.",
           "settings"),
    Column("rate", "float", "events/s",
           "The offered rate of the open-loop schedule after the warm-up: event j is due at t0 + j/rate "
           "(during a warm-up at warmup_fraction < 1, at t0 + j/(warmup_fraction x rate)).",
           "settings"),
    Column("duration", "float", "s",
           "The length of the load (the schedule), warm-up included; the driver sends events from t0 to "
           "t0 + duration.",
           "settings"),
    Column("warmup", "float", "s",
           "The first seconds of the load that no statistic covers: windows ending in it are not in the "
           "latency statistics, and rates, lag slope, staleness and checkpoints are measured after it.",
           "settings"),
    Column("warmup_fraction", "float", "fraction",
           "The offered rate during the warm-up as a fraction of rate (1: one rate throughout).",
           "settings"),
    Column("slots", "int", "",
           "Task slots per taskmanager the job uses (its parallelism per taskmanager).",
           "settings"),
    Column("keys", "int", "",
           "Distinct event keys: event j has key k<j mod keys>.",
           "settings"),
    Column("payload_bytes", "int", "bytes",
           "Each event's JSON value padded to this size; 0: unpadded (its actual size is event_bytes).",
           "settings"),
    Column("driver_processes", "int", "",
           "Producer processes per driver task the cell ran with (with --driver-processes 0, one per "
           "100,000 events/s of the task's slice, at least one). In a failed cell's row, the option as "
           "given (0: that automatic choice).",
           "settings"),
    Column("repetition", "int", "",
           "The repetition of otherwise identical cells, from 1.",
           "settings"),
    Column("search", "bool", "",
           "True for a trial of the sustainable-throughput search (its result is a row of "
           "sustainable.csv); such rows are not averaged into the matrix's figures.",
           "settings"),
    Column("broker_node", "str", "",
           "The node the broker ran on (the topology's broker node, by default the Swarm manager). In a "
           "failed cell's row, the option as given: empty for the topology's default.",
           "settings"),
    Column("cpu_scale", "float", "",
           "The CPU scale the cell ran with (--cpu-scale, auto resolved): each emulated node's CPU budget is "
           "its topology CPUs x this; 0: no scaling (the nodes' own CPUs).",
           "settings"),
    Column("cpu_limits", "str", "",
           "Per-role CPU limits given with --cpu-limits, as role=cores,... (roles taskmanager, jobmanager, "
           "broker, driver; 0: none); '' when not given. The limits in effect are cpu_<role>.",
           "settings"),
    Column("checkpoint_interval_s", "float", "s",
           "Flink's checkpoint interval; 0: no checkpoints and no restarts (the default without a "
           "scenario; with one, 5 s unless given).",
           "settings"),
    Column("checkpoint_mode", "str", "",
           "Flink's checkpointing mode: at-least-once or exactly-once (in effect only with checkpoints).",
           "settings"),
    Column("spare_slots", "int", "",
           "Task slots per taskmanager beyond slots: room for a restarted job without a lost taskmanager.",
           "settings"),
    Column("producer_properties", "json", "",
           "The librdkafka settings the driver's producers ran with: the driver's defaults with "
           "--producer-properties over them (JSON object, sorted keys).",
           "settings"),
    Column("source_properties", "json", "",
           "The Kafka client settings of a SQL job's source: the harness's defaults with "
           "--source-properties over them (JSON object); the text 'set by the job' for a JAR, which builds "
           "its own clients.",
           "settings"),
    Column("sink_properties", "json", "",
           "The Kafka client settings of a SQL job's sink, as source_properties: JSON object, or 'set by "
           "the job' for a JAR.",
           "settings"),
    Column("links", "str", "",
           "The cell's value of a link axis (--links), as '<a>-<b>:<field>=<value>' joined by ';' (e.g. "
           "azure-google:rtt_ms=200); '' without one (the topology's links). Each value is also a column "
           "link_<a>-<b>_<field>.",
           "settings"),
    Column("submit", "str", "",
           "How a SQL job was started: rest (the SQL runner uploaded once, each job run through the REST "
           "API) or flink-run (a flink run client container per cell).",
           "settings"),
    Column("axis_values", "str", "",
           "The cell's values of the client-settings and link axes, space-separated (producer:k=v,..., "
           "source:..., sink:..., link:...): what the report tells its series apart by; '' without such "
           "axes.",
           "settings"),
    Column("job", "str", "",
           "The job as given to --job: hop-window (default), tumble-window, passthrough, sql:FILE or "
           "jar:FILE[:CLASS].",
           "settings"),
    Column("job_label", "str", "",
           "The job's short name in cell keys and figures: the built-in's name, or sql-/jar- and the "
           "file's stem.",
           "settings"),
    Column("job_sha256", "str", "",
           "SHA-256 of the job's SQL or JAR file ('' for a built-in job).",
           "settings"),
    Column("job_class", "str", "",
           "A JAR's entry class as given ('' : the JAR manifest's Main-Class, or not a JAR).",
           "settings"),
    Column("job_args", "str", "",
           "A JAR's program arguments as given (--job-args, a template before its {variables} are "
           "filled in); '' otherwise.",
           "settings"),
    Column("scenario", "str", "",
           "The fault scenario file as given (--scenario); '' for a cell without faults.",
           "settings"),
    Column("scenario_sha256", "str", "",
           "SHA-256 of the scenario file's text; '' without a scenario.",
           "settings"),
    Column("checkpoint_storage", "str", "",
           "Where checkpoints are kept: jobmanager (its memory, readable after any taskmanager is gone) "
           "with checkpoints; '' without.",
           "settings"),
    Column("restart_strategy", "str", "",
           "Flink's restart strategy: 'fixed-delay 2 s' (unbounded attempts, 2 s apart) with checkpoints, "
           "else 'none' (a failing job fails the cell).",
           "settings"),
    Column("window_s", "float", "s",
           "The window size given to the job (--window); every event belongs to window_s / slide_s windows.",
           "settings"),
    Column("slide_s", "float", "s",
           "The slide of the job's windows: --slide, or for tumble-window its size (a tumbling window slides "
           "by its size, and is accounted that way).",
           "settings"),
    Column("watermark_delay_s", "float", "s",
           "The watermark delay (--watermark-delay): a window can fire only once the watermark, the "
           "largest event time seen minus this, passes its end; it is part of every window latency.",
           "settings"),
    # -- placement -----------------------------------------------------------------------------------
    Column("driver_nodes", "str", "",
           "The nodes the driver tasks ran on, one per task, comma-separated (default: the broker's node). "
           "The results collector runs on the first.",
           "placement"),
    Column("driver_tasks", "int", "",
           "Driver tasks (Swarm services), one per entry of driver_nodes; task i of n sends events j = i mod n "
           "of the one schedule.",
           "placement"),
    Column("event_bytes", "int", "bytes",
           "The size of one event's JSON value as the driver encodes it (key k0, a 13-digit ts, payload_bytes "
           "padding); the key and Kafka's record overhead are not included.",
           "load"),
    Column("source_window_cap_ev_s", "float", "events/s",
           "The most events/s one source consumer can read across the longest link between the broker's "
           "cloud and a taskmanager's: receive.buffer.bytes / RTT / record bytes (measure/window.py). NaN "
           "when no taskmanager is in another cloud than the broker, the buffer autotunes (-1) or the job "
           "is a JAR.",
           "load"),
    Column("cpu_jobmanager", "float", "cores",
           "The jobmanager service's own CPU limit: its node's CPUs x cpu_scale where each service is "
           "limited on its own (cpu_model 'per service'), or --cpu-limits; 0: no limit of its own (under "
           "node budgets the node's budget applies).",
           "resources"),
    Column("cpu_taskmanager", "float", "cores",
           "Each taskmanager's own CPU limit, as cpu_jobmanager; 0: none of its own.",
           "resources"),
    Column("cpu_broker", "float", "cores",
           "The broker's own CPU limit, as cpu_jobmanager; 0: none of its own.",
           "resources"),
    Column("cpu_driver", "float", "cores",
           "Each driver task's own CPU limit, as cpu_jobmanager; 0: none of its own.",
           "resources"),
    Column("taskmanager_nodes", "str", "",
           "The nodes the placement chose for the taskmanagers, comma-separated, one per taskmanager.",
           "placement"),
    Column("taskmanager_clouds", "str", "",
           "The cloud of each taskmanager node, comma-separated, in the order of taskmanager_nodes.",
           "placement"),
    # -- provenance ----------------------------------------------------------------------------------
    Column("provider", "str", "",
           "Where the testbed ran: emulated (Docker-in-Docker nodes on this machine) or real (inventory "
           "hosts over SSH).",
           "provenance"),
    Column("wan_backend", "str", "",
           "How the emulated WAN delays packets: netem or nfqueue (a userspace holder); none without an "
           "emulated WAN (real hosts).",
           "provenance"),
    Column("wan_links", "json", "",
           "The emulated WAN's directions as set when the cell started: a JSON list of {src, dst, delay_ms "
           "(one way: half the link's RTT), jitter_ms, loss_pct, bandwidth_mbit, buffer_ms, "
           "queue_packets}; [] without an emulated WAN. Changes a scenario makes during the load are not in "
           "it.",
           "provenance"),
    Column("wan_check", "str", "",
           "The verdict of the network's fidelity check for the links as set: passed, flagged: <the misses> "
           "(--wan-check flag), off, no links, or not run.",
           "provenance"),
    Column("cpu_model", "str", "",
           "How CPU was limited, in words: 'node budget: ...' (one budget per node, shared by everything on "
           "it, with how much slower CPU-bound phases run than on the topology's VMs), 'per service: ...', "
           "'none' or 'the VMs' own'.",
           "resources"),
    Column("node_cpu_budgets", "json", "cores",
           "Each emulated node's CPU budget, {node: cores} (its topology CPUs x cpu_scale); {} without "
           "budgets.",
           "resources"),
    Column("link_sources", "str", "",
           "Where link values the topology file did not give came from (published region-to-region "
           "measurements, model/regions.py), as '<link>: <source>' joined by '; '; '' when all are the "
           "file's.",
           "provenance"),
    Column("started", "timestamp", "",
           "When the cell started (UTC, seconds): after its placement was chosen and the CPU budgets set, "
           "before Flink was (re)deployed. In a failed cell's row, when the session began the cell.",
           "provenance"),
    Column("heartbeat", "str", "",
           "Flink's heartbeat settings: 'interval 1000 ms, timeout 8000 ms' in fault cells (a lost "
           "taskmanager noticed within seconds), else 'default (10 s, 50 s)'.",
           "flink"),
    Column("metric_fetch_timeout", "str", "",
           "Flink's web.timeout, which bounds how long one metric fetch waits for a taskmanager (and so how "
           "long the metric store's readings can freeze): 10 s in fault cells, else 'default (10 min)'.",
           "flink"),
    Column("flink_ui", "str", "",
           "The URL of Flink's REST API and web UI as the harness reached it during the cell.",
           "provenance"),
    Column("flink_version", "str", "",
           "Flink's version as its REST API reports it (/config).",
           "provenance"),
    Column("registered_taskmanagers", "int", "",
           "Taskmanagers registered with the jobmanager once Flink was deployed for the cell, before the "
           "load (the harness waits for exactly taskmanagers of them).",
           "flink"),
    Column("broker", "str", "",
           "The Kafka-protocol broker: its name or image (default tansu 0.6.0).",
           "provenance"),
    Column("job_id", "str", "",
           "Flink's id of the cell's job.",
           "provenance"),
    Column("submit_s", "float", "s",
           "Wall time from starting the job's submission until Flink returned its id with every task "
           "running.",
           "outcome"),
    # -- load: the driver -----------------------------------------------------------------------------
    Column("offered_rate", "float", "events/s",
           "The schedule's rate after the warm-up (= rate).",
           "load"),
    Column("achieved_rate", "float", "events/s",
           "Events the broker acknowledged per second over the whole seconds after the warm-up, "
           "[ceil(warmup), floor(duration)) s after t0 (the whole load if that is empty), from each "
           "producer's per-second acknowledgements (sent - still queued - failed).",
           "load"),
    Column("processed_rate", "float", "events/s",
           "Growth per second of the job's source record counter (the source vertex's numRecordsIn summed "
           "over subtasks, from the REST API about once a second, kept growing across restarts) between the "
           "first and the last sample in the measured part; NaN with fewer than two samples.",
           "load"),
    Column("source_counter_unchanged_max_s", "float", "s",
           "The longest stretch in the measured part over which the source counter read one value, from "
           "the first sample with it to the last: 0 when every sample moved; long means the source read "
           "nothing or Flink's readings froze (metrics_stale tells which). NaN with fewer than two samples.",
           "flink"),
    Column("events_sent", "int", "events",
           "Events the driver tasks sent, warm-up included; always the schedule's total (the cell fails "
           "otherwise).",
           "load"),
    Column("events_acked", "int", "events",
           "Events the broker acknowledged: sent - still in librdkafka's queue at the end - failed.",
           "load"),
    Column("driver_behind_events", "int", "events",
           "Events sent more than 100 ms after their due time (an event counts as late when the burst that "
           "carried it ended over 100 ms after its due time: an upper bound).",
           "load"),
    Column("driver_late_fraction", "float", "fraction",
           "driver_behind_events / events_sent; NaN when nothing was sent.",
           "load"),
    Column("driver_max_lag_ms", "float", "ms",
           "The largest delay of a send burst: the burst's end minus the due time of its first event, the "
           "largest over bursts and processes (the driver's clock against t0).",
           "load"),
    Column("driver_fell_behind", "bool", "",
           "True when driver_late_fraction > 0.001 (over 0.1 % of the events late by more than 100 ms): "
           "the rate was not really offered, and the testbed (its driver) was the limit.",
           "load"),
    Column("producer_errors", "int", "events",
           "Events librdkafka reported as failed to deliver.",
           "load"),
    Column("events_unacknowledged", "int", "events",
           "Events still in librdkafka's queue, unacknowledged by the broker, when the driver's flush "
           "timeout ran out after the load.",
           "load"),
    # -- accounting --------------------------------------------------------------------------------
    Column("accounting", "str", "",
           "How the job's output was accounted against the schedule: windows (per key and window, from "
           "results with cnt), events (per key and event time, one result per event: passthrough), or not "
           "applicable (lost and duplicated are then NaN).",
           "accounting"),
    Column("expected_windows", "int", "windows",
           "(key, window) pairs the schedule put at least one event in, warm-up and last windows included; "
           "NaN unless accounting is windows.",
           "accounting"),
    Column("received_windows", "int", "windows",
           "Expected (key, window) pairs with at least one result; NaN unless accounting is windows.",
           "accounting"),
    Column("result_records", "int", "records",
           "Result records the collector parsed as windowed or per-event results (the harness's flush "
           "results not included).",
           "accounting"),
    Column("missing_windows", "int", "windows",
           "Expected (key, window) pairs no result reported; NaN unless accounting is windows.",
           "accounting"),
    Column("repeated_windows", "int", "windows",
           "(key, window) pairs reported by more than one result record; NaN unless accounting is windows.",
           "accounting"),
    Column("unexpected_windows", "int", "windows",
           "Reported (key, window) pairs the schedule put no event in; NaN unless accounting is windows.",
           "accounting"),
    Column("counted", "int", "event-window counts",
           "windows: the sum of the first result's cnt over the expected (key, window)s; events: the "
           "per-event results received; NaN when not applicable.",
           "accounting"),
    Column("expected_counted", "int", "event-window counts",
           "windows: the event-window memberships the schedule implies (each event is in window_s / "
           "slide_s windows); events: the schedule's events; NaN when not applicable.",
           "accounting"),
    Column("lost", "int", "event-window counts",
           "Per expected (key, window), the expected count minus the first result's cnt where short, "
           "summed (events: per (key, event time)). NaN when not applicable, or when the collector left "
           "results unread (the testbed's loss, not the system's).",
           "accounting"),
    Column("duplicated", "int", "event-window counts",
           "Counts reported in excess: a first result's cnt above the expected count, every repeated "
           "result's cnt again, and the counts of unexpected windows (events: results beyond one per "
           "scheduled event). NaN when not applicable.",
           "accounting"),
    Column("unreadable_results", "int", "records",
           "Result records with neither window_end nor ts (not measurable by the output contract).",
           "accounting"),
    Column("latency_from", "str", "",
           "What latency is measured from: window_end (windowed results), ts (per-event results: the "
           "event's time) or none (no result to time).",
           "latency"),
    Column("result_records_read", "int", "records",
           "Records the collector read from the results topic, the harness's flush results and unreadable "
           "ones included; NaN if the collector did not report it.",
           "accounting"),
    Column("results_unread", "int", "records",
           "Offsets of the results topic the collector had not reached when it stopped (0: it read the "
           "topic to its end); NaN if not reported.",
           "accounting"),
    # -- latency -----------------------------------------------------------------------------------
    Column("latency_samples", "int", "results",
           "Results in the latency statistics: each window's first result whose window ends after the "
           "warm-up and at least one watermark delay before the last scheduled event (later windows are "
           "closed by the flush event); per-event results: every result whose event came after the warm-up.",
           "latency"),
    Column("latency_negative", "int", "results",
           "Samples with a negative latency (a result before its window's end), counted, not dropped.",
           "latency"),
    Column("latency_mean_ms", "float", "ms",
           "Mean latency over latency_samples. A window's latency is the arrival of its first result at the "
           "collector (its clock when its poll returned the record) minus the window's end in event time, "
           "as the job wrote it (events' ts are their due times, t0 on the harness's clock plus the "
           "schedule's offset: one clock on emulated clouds, two hosts' offset in it on real ones); a "
           "per-event result's, arrival minus its ts. NaN without samples.",
           "latency"),
    Column("latency_p50_ms", "float", "ms",
           "Median latency over latency_samples (numpy's linear interpolation); NaN without samples.",
           "latency"),
    Column("latency_p95_ms", "float", "ms",
           "95th percentile of the latency over latency_samples; NaN without samples.",
           "latency"),
    Column("latency_p99_ms", "float", "ms",
           "99th percentile of the latency over latency_samples (the sustainable-throughput search's "
           "bound); NaN without samples.",
           "latency"),
    Column("latency_max_ms", "float", "ms",
           "The largest latency among latency_samples; NaN without samples.",
           "latency"),
    # -- Flink's own readings ------------------------------------------------------------------------
    Column("metrics_stale_max_s", "float", "s",
           "The longest stretch in the measured part over which some taskmanager's JVM CPU time "
           "(Status.JVM.CPU.Time, read about once a second from the REST API's metric store) kept one "
           "value: the store kept that taskmanager's old readings. 0 when every reading moved; NaN when "
           "not measured.",
           "flink"),
    Column("metrics_stale", "str", "",
           "The stale stretches of at least 3 s, as '<taskmanager on node> <from>-<to> s' (s after t0) "
           "joined by '; '; '' when none, 'not measured' without readings.",
           "flink"),
    Column("checkpoints_completed", "int", "checkpoints",
           "Checkpoints completed during the measured part (the jobmanager's own counts, "
           "/jobs/:id/checkpoints, sampled about every 2 s); NaN without checkpointing.",
           "flink"),
    Column("checkpoints_failed", "int", "checkpoints",
           "Checkpoints failed during the measured part, as checkpoints_completed; NaN without "
           "checkpointing.",
           "flink"),
    Column("checkpoint_gap_max_s", "float", "s",
           "The longest time in the measured part without a newly completed checkpoint: the largest gap "
           "between the first sample, each sample that saw the count grow, and the last sample (the REST "
           "API caches the counts for 3 s); NaN without checkpointing.",
           "flink"),
    Column("late_records_dropped", "int", "records",
           "Records the job's window operators dropped as late (numLateRecordsDropped summed over operators "
           "and subtasks, read after the load; with two-phase SQL aggregation, partial aggregates rather "
           "than events). Counts since the job's last (re)start; NaN where the job has no such operator.",
           "flink"),
    Column("sink_records_sent", "int", "records",
           "Results the job's Kafka sink writers sent (numRecordsSend summed, read after the load, since "
           "the job's last restart); NaN where the job has no such sink.",
           "flink"),
    Column("sink_send_errors", "int", "records",
           "Results the job's Kafka sink writers failed to send (numRecordsSendErrors summed, as "
           "sink_records_sent); NaN where the job has no such sink.",
           "flink"),
    Column("restarts", "int", "",
           "How often the job restarted (Flink's numRestarts): read once after the load; in fault cells the "
           "largest value sampled during the load. Empty if it could not be read.",
           "flink"),
    # -- the WAN under the load ----------------------------------------------------------------------
    Column("wan_rtt_loaded", "json", "ms",
           "Per link, the RTT of ICMP probes (every 100 ms, each way, between a node of each cloud) during "
           "the load: {link: {p50, p99, max (ms, of the replies received in the measured part), probes "
           "(those replies), sent, received (all probing), band [low, high] (ms), target (the link's RTT)}}; "
           "{} without links.",
           "wan"),
    Column("wan_rtt_loaded_link", "str", "",
           "The link with the highest median RTT under the load; '' without probed links.",
           "wan"),
    Column("wan_rtt_loaded_p50_ms", "float", "ms",
           "The median probe RTT in the measured part across wan_rtt_loaded_link; NaN without probes.",
           "wan"),
    Column("wan_rtt_loaded_p99_ms", "float", "ms",
           "The 99th-percentile probe RTT in the measured part across wan_rtt_loaded_link; NaN without "
           "probes.",
           "wan"),
    # -- resources used during the load ----------------------------------------------------------------
    Column("driver_cpu_cores", "float", "cores",
           "CPU the driver's producer processes used (user + system over each process's life, summed) "
           "divided by duration; the collector is not included.",
           "resources"),
    Column("taskmanager_cpu_cores", "float", "cores",
           "The busiest taskmanager's CPU during the load: its containers' CPU time from when t0 is fixed "
           "(shortly before it, at most 2 s) to t0 + duration, per second of that interval (warm-up "
           "included).",
           "resources"),
    Column("taskmanager_cpu_cores_all", "json", "cores",
           "Every taskmanager's CPU during the load, {node: cores}, as taskmanager_cpu_cores.",
           "resources"),
    Column("jobmanager_cpu_cores", "float", "cores",
           "The jobmanager's CPU during the load, as taskmanager_cpu_cores.",
           "resources"),
    Column("broker_cpu_cores", "float", "cores",
           "The broker's CPU during the load, as taskmanager_cpu_cores.",
           "resources"),
    Column("node_cpu_used", "json", "cores",
           "Each emulated node's CPU during the load, its containers and engine included, {node: cores} (the "
           "node containers' CPU time over the load's interval); '' where not measured (real hosts).",
           "resources"),
    # -- the testbed's own limits (measure/saturation.py) ----------------------------------------------
    Column("broker_backlog_max_s", "float", "s",
           "The largest acknowledgement backlog after the warm-up: events sent and not yet acknowledged at "
           "the end of a whole second, summed over producers, in seconds of that second's offered rate. "
           "Over 1 s: the broker was the limit. NaN if not reported.",
           "testbed limits"),
    Column("broker_ack_p50_ms", "float", "ms",
           "The median, over the seconds after the warm-up, of the per-second median round-trip time of the "
           "broker's answers to the producers (librdkafka's statistics, the broker with the highest p99 "
           "that second); NaN without statistics.",
           "testbed limits"),
    Column("broker_ack_p99_ms", "float", "ms",
           "The largest per-second p99 of that round-trip time after the warm-up (librdkafka's histogram "
           "estimate: it can exceed broker_ack_max_ms slightly).",
           "testbed limits"),
    Column("broker_ack_max_ms", "float", "ms",
           "The largest per-second maximum of that round-trip time after the warm-up. Over 2000 ms: the "
           "broker was the limit.",
           "testbed limits"),
    Column("broker_cpu_of_limit", "float", "fraction",
           "broker_cpu_cores / cpu_broker; NaN when the broker has no limit of its own. 0.9 or more: the "
           "broker was the limit.",
           "testbed limits"),
    Column("broker_node_cpu_of_budget", "float", "fraction",
           "The broker's node's cores used (node_cpu_used) / its CPU budget, under node budgets only (NaN "
           "otherwise); the driver and the collector share that node by default. 0.9 or more: the broker "
           "was the limit.",
           "testbed limits"),
    Column("collector_behind_max_s", "float", "s",
           "The longest time the collector stayed behind the results topic's end offsets (checked once a "
           "second, from the first check that found it behind to the last still behind). 2 s or more: the "
           "collector was the limit.",
           "testbed limits"),
    Column("collector_behind_max_records", "int", "records",
           "The most results the collector was behind the topic's end at one check.",
           "testbed limits"),
    Column("collector_delivery_p50_ms", "float", "ms",
           "Median of each result's arrival at the collector minus its Kafka record timestamp (set by the "
           "job's sink producer), nearest rank, over every result; includes the sink's batching and its "
           "link to the broker (the system's), so for reading only. NaN without results.",
           "testbed limits"),
    Column("collector_delivery_p99_ms", "float", "ms",
           "99th percentile (nearest rank) of that delivery time; NaN without results.",
           "testbed limits"),
    Column("collector_delivery_max_ms", "float", "ms",
           "The largest delivery time; NaN without results.",
           "testbed limits"),
    Column("wan_queue_drops", "int", "packets",
           "Packets the emulated WAN's queues dropped during the load beyond the configured loss (its qdiscs "
           "and, with nfqueue, the NFQUEUE's); more than 0: the WAN was the limit. NaN without an emulated "
           "WAN, or on netem where loss was configured (a partition's included).",
           "testbed limits"),
    Column("wan_late_fraction", "float", "fraction",
           "nfqueue only: packets the holder released later than the link's tolerance / packets it held, "
           "during the load (over 0.01: a note); NaN on netem or without an emulated WAN.",
           "testbed limits"),
    Column("wan_stamped_fraction", "float", "fraction",
           "nfqueue only: packets the holder timed from the kernel's receive timestamp (not from when it "
           "read them) / packets it held, during the load; NaN on netem or without an emulated WAN.",
           "testbed limits"),
    Column("host_cpu_busy", "float", "fraction",
           "The emulating host's CPU busy share (all CPUs, non-idle and non-iowait, /proc/stat) during the "
           "load; emulated provider only, else NaN. Busy + steal of 0.95 or more: the host was the limit.",
           "testbed limits"),
    Column("host_cpu_steal", "float", "fraction",
           "The share of the host's CPU time its hypervisor stole during the load (/proc/stat); 0.05 or more "
           "a note; emulated provider only, else NaN.",
           "testbed limits"),
    Column("testbed_limited", "str", "",
           "The parts of the measuring path that saturated, comma-separated, of driver, broker, collector, "
           "wan (queue drops, or a link's median loaded RTT outside its band) and host; '' if none. Such a "
           "cell measured the testbed: the report leaves it out of means.",
           "testbed limits"),
    Column("testbed_limited_why", "str", "",
           "What each saturated part did, '<part>: <reasons>' joined by '; '; '' if none.",
           "testbed limits"),
    Column("testbed_notes", "str", "",
           "Fidelity that slipped without saturating (the WAN holder's late releases, the hypervisor's "
           "steal, Flink's stale metric readings), joined by '; '; '' if none. Not a verdict: the cell stays "
           "in means.",
           "testbed limits"),
    # -- throughput ----------------------------------------------------------------------------------
    Column("lag_slope", "float", "events/s per s",
           "Slope of a least-squares line through the per-second consumer lag (events acknowledged - events "
           "the source had read) from warmup to duration s after t0: ~0 when the job keeps up, its shortfall "
           "in events/s when not (the search's criterion). NaN with fewer than 3 lag samples.",
           "throughput search"),
    Column("source_behind_at_end", "float", "events",
           "The consumer lag at the load's last second (the last per-second lag at or before duration - 1 "
           "s): events acknowledged that the job's source had not read; NaN where not read.",
           "throughput search"),
    Column("loss_cause", "str", "",
           "What explains lost, in words: 'none' (lost 0), 'not applicable' (no accounting), 'behind: ...' "
           "(the source had not read them when the load ended: a throughput result, not a failure), the "
           "path's non-zero counters, or 'not explained by the counters: ...'.",
           "accounting"),
    # -- outcome and host ------------------------------------------------------------------------------
    Column("ended", "timestamp", "",
           "When the cell ended (UTC, seconds), after its job, driver and topics were removed; in a failed "
           "cell's row, when the failure was recorded.",
           "outcome"),
    Column("cell_wall_s", "float", "s",
           "The cell's wall time, from choosing its placement to its clean-up (Flink (re)deployed, broker, "
           "topics, job submitted, driver, load, results collected, the job cancelled and the drivers removed); the links' "
           "calibration before it is not included.",
           "outcome"),
    Column("fixed_cost_s", "float", "s",
           "What the cell cost besides its load: cell_wall_s - duration.",
           "outcome"),
    Column("cell_phases", "json", "s",
           "Where cell_wall_s went, seconds per phase, each from the end of the one before: prepare (Flink "
           "checked or deployed, the broker and topics, the prober and the driver services created), submit "
           "(the job until every task runs; the drivers start meanwhile), drivers (the rest of their start), "
           "start (t0's margin and the start readings), load, collect (the last windows), measure, cleanup.",
           "outcome", when="cells measured since the phases were recorded (not the older recorded runs, not "
           "a failed cell's row)"),
    Column("host", "str", "",
           "The harness host's name (socket.gethostname).",
           "host"),
    Column("host_cpus", "int", "CPUs",
           "The harness host's logical CPUs (os.cpu_count).",
           "host"),
    Column("python", "str", "",
           "The harness's Python version.",
           "host"),
    Column("kernel", "str", "",
           "The harness host's kernel release.",
           "host"),
    Column("docker_engine", "str", "",
           "The Docker engine's version: the host's engine that runs the emulated nodes, or on real hosts "
           "the Swarm manager's.",
           "host"),
    Column("topology", "str", "",
           "The topology's name (e.g. seed).",
           "provenance"),
    Column("topology_sha256", "str", "",
           "SHA-256 of the topology file.",
           "provenance"),
    Column("error", "str", "",
           "'' for a cell that ran; for a failed cell '<exception type>: <message>' (at most 1000 "
           "characters, Flink's root causes included for a failed job).",
           "outcome"),
    Column("logs", "str", "",
           "'' for a cell that ran; for a failed cell the path of logs/<cell_key>-<started>.txt (the error "
           "with the tasks and logs of the services involved).",
           "outcome"),
    # -- a link axis -----------------------------------------------------------------------------------
    Column("link_<a>-<b>_<field>", "float", "the field's: ms, %, Mbit/s",
           "The value the cell's link axis gave <field> (rtt_ms, jitter_ms, loss_pct, bandwidth_mbit or "
           "buffer_ms) of the link between clouds <a> and <b>, e.g. link_azure-google_rtt_ms; the row's "
           "links says the same as text. Placed in the row before job.",
           "settings", when=LINK_AXIS, pattern=True),
    # -- recovery (fault cells, measure/recovery.py) ---------------------------------------------------
    Column("job_state_at_end", "str", "",
           "Flink's state of the job right after the load (RUNNING, RESTARTING, ...); a job FAILED, "
           "CANCELED or FINISHED fails the cell instead.",
           "recovery", when=FAULT),
    Column("fault_at_s", "float", "s",
           "When the fault happened, s after t0: the first action of the scenario carried out without error "
           "(heal and start-node excepted). NaN if none was; the other recovery columns are then empty.",
           "recovery", when=FAULT),
    Column("heal_at_s", "float", "s",
           "The last undo of a fault, s after t0 (a 'for' running out, heal, start-node); NaN if none.",
           "recovery", when=FAULT),
    Column("flink_noticed_s", "float", "s",
           "s after the fault of the first job-state sample (about one a second) after it whose state is "
           "not RUNNING or whose numRestarts grew; NaN if Flink never noticed.",
           "recovery", when=FAULT),
    Column("running_again_s", "float", "s",
           "s after the fault of the first RUNNING sample after Flink noticed (the job scheduled again: its "
           "tasks may still wait for slots); NaN if never.",
           "recovery", when=FAULT),
    Column("tasks_running_again_s", "float", "s",
           "s after the fault of the first sample at or after running again with every task of the job "
           "RUNNING; NaN if never.",
           "recovery", when=FAULT),
    Column("processing_again_s", "float", "s",
           "s after the fault of the first second, at or after running again, in which the source read more "
           "than a tenth of rate (the per-second processed rate); NaN if never before the load ended.",
           "recovery", when=FAULT),
    Column("pre_fault_p99_ms", "float", "ms",
           "p99 latency of the windows after the warm-up whose result arrived before the fault; NaN when "
           "none had (then there is no band and no recovery time).",
           "recovery", when=FAULT),
    Column("latency_band_ms", "float", "ms",
           "The latency band to recover into: max(1.5 x pre_fault_p99_ms, pre_fault_p99_ms + 500 ms).",
           "recovery", when=FAULT),
    Column("band_from", "str", "",
           "Which windows the band came from, in words ('<n> windows that arrived between the end of the "
           "warm-up and the fault'), or why there is none.",
           "recovery", when=FAULT),
    Column("lag_band", "float", "events",
           "The lag band: the largest consumer lag from the end of the warm-up to the fault (seconds with "
           "stale readings left out) + 0.5 s x rate.",
           "recovery", when=FAULT),
    Column("peak_latency_ms", "float", "ms",
           "The largest latency of the measured windows whose result arrived at or after the fault.",
           "recovery", when=FAULT),
    Column("windows_late", "int", "windows",
           "Measured windows whose result arrived at or after the fault with a latency above the band.",
           "recovery", when=FAULT),
    Column("recovery_time_s", "float", "s",
           "T - fault, s. Of the measured windows whose result arrived at or after the fault, by window end, "
           "T is the end of the first one after the last out of the latency band (the fault itself if none "
           "was out of band), and without a restart also no earlier than the lag's return into lag_band; "
           "NaN if the last window measured is still out of band.",
           "recovery", when=FAULT),
    Column("recovered", "bool", "",
           "True when a recovery time was found within the load (a cell that did not recover is a result, "
           "not a failure).",
           "recovery", when=FAULT),
    Column("recovery_by", "str", "",
           "What decided recovery: 'latency and lag', 'latency' (after a restart the lag's level is not "
           "comparable), or latency alone for a reason given (no lag samples after the fault, or Flink's "
           "readings stale after it); '' when there was no band.",
           "recovery", when=FAULT),
    Column("missing_windows_after_fault", "int", "windows",
           "Expected (key, window)s ending at or after the fault that no result reported (0 when no fault "
           "happened).",
           "recovery", when=FAULT),
    Column("scenario_events", "json", "",
           "What the scenario did when: a JSON list of {t_s (s after t0), at_s (as scheduled), action, what "
           "(do or undo), describe, and detail or error}.",
           "recovery", when=FAULT),
)

# the columns a failed cell's row holds (Session.record): its run id, CellSpec.params(), when it
# started and ended, the error and its logs' path
FAILED_ROW: tuple[str, ...] = (
    "run_id", "cell_key", "taskmanagers", "placement", "rate", "duration", "warmup", "warmup_fraction", "slots",
    "keys", "payload_bytes", "driver_processes", "repetition", "search", "broker_node", "cpu_scale", "cpu_limits",
    "checkpoint_interval_s", "checkpoint_mode", "spare_slots", "producer_properties", "source_properties",
    "sink_properties", "links", "submit", "axis_values", "link_<a>-<b>_<field>", "job", "job_label", "job_sha256",
    "job_class", "job_args", "scenario", "scenario_sha256", "checkpoint_storage", "restart_strategy", "window_s",
    "slide_s", "watermark_delay_s", "started", "ended", "error", "logs")

# sustainable.csv: one row per search (Session.search, search.find's result)
SUSTAINABLE: tuple[Column, ...] = (
    Column("cell_key", "str", "",
           "The key of the matrix cell the search started from (its taskmanagers, placement and repetition).",
           "identity"),
    Column("run_id", "str", "", "The id of the testbed the search ran on, as in cells.csv.", "identity"),
    Column("taskmanagers", "int", "", "The searched cell's taskmanagers.", "settings"),
    Column("placement", "str", "", "The searched cell's placement policy.", "settings"),
    Column("repetition", "int", "", "The searched cell's repetition.", "settings"),
    Column("sustainable_rate", "float", "events/s",
           "The highest rate tried that the system kept up with (lag slope below --lag-slope x rate, p99 "
           "below --max-p99, nothing lost; a trial the testbed limited that still kept up counts); 0 if none.",
           "throughput search"),
    Column("first_unsustainable_rate", "float", "events/s",
           "The lowest rate tried at which the system itself did not keep up; empty when none did (the "
           "search stopped at --search-max, on the testbed's limit or on an error).",
           "throughput search"),
    Column("limited_by", "str", "",
           "What ended the search: system, max_rate (--search-max reached), error (a trial failed), or the "
           "testbed's parts that saturated (e.g. driver, broker,collector): sustainable_rate is then a lower "
           "bound for the system.",
           "throughput search"),
    Column("rates_tried", "json", "",
           "Every trial in order: a JSON list of {rate, kept_up, why, driver_fell_behind, testbed_limited, "
           "lag_slope, p99_ms, cell (the trial's cell id in cells.csv)}.",
           "throughput search"),
    Column("error", "str", "", "Always '' (a failed trial's error is in its cells.csv row).", "outcome"),
    Column("ended", "timestamp", "", "When the search ended (UTC, seconds).", "outcome"),
)

_PLACEHOLDER = re.compile(r"<[^<>]+>")


def _regex(name: str) -> re.Pattern:
    """A templated name as a regex: each <...> matches a run of characters other than '_' (a cloud
    name may hold '-'), except one that ends the name, which takes the rest (a field such as rtt_ms)."""
    parts, at = [], 0
    for m in _PLACEHOLDER.finditer(name):
        parts.append(re.escape(name[at:m.start()]))
        parts.append(".+" if m.end() == len(name) else "[^_]+")
        at = m.end()
    parts.append(re.escape(name[at:]))
    return re.compile("".join(parts))


_EXACT = {c.name: c for c in COLUMNS if not c.pattern}
_PATTERNS = [(_regex(c.name), c) for c in COLUMNS if c.pattern]


def column(name: str) -> Column | None:
    """The declaration a concrete column name matches: its own, or a templated one's; None if none."""
    if name in _EXACT:
        return _EXACT[name]
    return next((c for rx, c in _PATTERNS if rx.fullmatch(name)), None)


def undeclared(names) -> list[str]:
    """The names no declaration matches, in their order."""
    return [n for n in names if column(str(n)) is None]
