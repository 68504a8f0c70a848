"""The testbed's own overhead, as Nexmark measures its monitoring's with q0: the ``passthrough`` job
on the emulated Swarm with no WAN on its path (one taskmanager in the broker's cloud), against the
same job, rate and driver on plain containers on this machine's engine (``stack/plain.py``: one
jobmanager, one taskmanager, the broker; no nodes, no overlay, no router). The ratio of their p50
latencies is what the testbed's emulation adds to every number it reports.

    res = compare(tb, rate=1000, duration=30, warmup=10, repetitions=3)   # python -m testbed bench overhead

Pairs are measured alternately (Swarm, plain, Swarm, plain, ...) so that a noisy machine's drift falls
on both sides; the result names every cell, its p50 and p99, and the ratio of the medians.
"""

from __future__ import annotations

import logging
import statistics
import time

from ..core import run as runmod
from ..core.run import step, wait_for
from ..measure import metrics as measure
from ..provision.testbed import Testbed
from ..stack.plain import PlainStack
from ..stack import driver_cli, flink
from ..workload import load, pipeline, schedule
from ..workload.jobs import Job
from ..workload.load import CONTROL, LoadSpec
from ..workload.pipeline import WindowSpec
from ..workload.record import Collected, TaskReport, parse
from .cell import CellSpec, run_cell

log = logging.getLogger(__name__)

PASSTHROUGH = Job.parse("passthrough")


def plain_cell(stack: PlainStack, rate: float, duration: float, warmup: float, keys: int = 16,
               payload_bytes: int = 0, window: WindowSpec = WindowSpec(), job: Job = PASSTHROUGH) -> dict:
    """One cell of ``job`` on the plain stack, driven and measured as a Swarm cell is: the same driver
    commands (one task, its collector), the same schedule, the same metrics (no Flink source samples:
    no processed rate or lag)."""
    window = job.window(window)
    spec = LoadSpec(rate=rate, duration=duration, window=window, nodes=("plain",), keys=keys,
                    payload_bytes=payload_bytes, warmup_s=warmup, output=job.output)
    cell = runmod.new_run_id()[-4:] + f"{int(time.time() * 1000) % 100000:05d}"
    events, results, bootstrap = f"events-{cell}", f"results-{cell}", stack.broker.bootstrap
    driver_image = stack.images["driver"]
    stack.run_once(driver_image, driver_cli.admin(bootstrap, [f"events-{cell}:{stack.parallelism}",
                                                              f"results-{cell}:{stack.parallelism}"]), what="topics")
    job_id = None
    made = []
    try:
        command, env = pipeline.submit_command(job.sql(events, results, bootstrap, window, stack.parallelism),
                                               stack.parallelism)
        out = stack.run_once(stack.images["flink"], command, environment=env, what="flink run")
        job_id = pipeline.wait_running(stack, out.split("Job ID:")[-1].strip()[:32], 120)
        collector = stack.start(driver_image, driver_cli.collect(bootstrap, events, results, spec.drain_s, CONTROL,
                                                                 f"{CONTROL}/results.json"), what="collect")
        made.append(collector)
        producer = stack.start(driver_image, driver_cli.produce(
            bootstrap, events, rate, duration, processes=spec.processes_per_task, keys=keys,
            payload_bytes=payload_bytes, control=CONTROL, out=f"{CONTROL}/driver.json"), what="produce")
        made.append(producer)
        wait_for(lambda: load.has_file(producer, "ready.json"), 120, "the plain driver connected", interval=0.25,
                 detail=lambda: producer.logs(tail=30).decode(errors="replace"))
        t0 = round(time.time() + 1.0, 3)
        load.put_file(producer, "start.json", {"t0": t0})
        sch = spec.schedule
        with step(log, f"drive {rate:,.0f} events/s for {duration:g}s on the plain stack"):
            code = producer.wait(timeout=duration + 180)["StatusCode"]
            if code != 0:
                raise RuntimeError(f"plain driver exited {code}:\n" + producer.logs(tail=40).decode(errors="replace"))
            report = parse(TaskReport, load.get_file(producer, "driver.json"), "the plain driver (driver.json)")
        expected = schedule.expected_counts(t0, sch, keys, window.size_ms, window.slide_ms)
        flush = schedule.flush_time_ms(t0, sch, window.size_s, window.slide_s, window.watermark_delay_s)
        load.put_file(collector, "flush.json", load.flush_control(spec, flush, len(expected)))
        code = collector.wait(timeout=spec.drain_s + 120)["StatusCode"]
        if code != 0:
            raise RuntimeError(f"plain collector exited {code}:\n" + collector.logs(tail=40).decode(errors="replace"))
        collected = parse(Collected, load.get_file(collector, "results.json"), "the plain collector (results.json)")
        raw = load.merge(spec, [report], collected, expected)
        pipeline.check_running(stack, job_id)
        row = {"where": "plain", "rate": rate, "duration": duration, "warmup": warmup, **job.record(),
               **measure.cell_metrics(raw, warmup, [])}
    finally:
        for c in made:
            c.remove(force=True)
        if job_id:
            pipeline.cancel(stack, job_id)
        stack.run_once(driver_image, driver_cli.admin(bootstrap, delete=[events, results]), what="topics")
    return row


def compare(tb: Testbed, rate: float = 1000, duration: float = 30, warmup: float = 10, repetitions: int = 3,
            keys: int = 16, client=None) -> dict:
    """``repetitions`` pairs of passthrough cells, Swarm (no WAN: one taskmanager in the broker's
    cloud, no CPU limits) then plain; the ratio of their median p50 latencies (Swarm / plain)."""
    from ..providers.engine import host_client

    cloud = tb.topology.node(tb.topology.broker_node).cloud
    spec = CellSpec(taskmanagers=1, placement=f"single-cloud:{cloud}", rate=rate, duration=duration, warmup=warmup,
                    keys=keys, job=PASSTHROUGH)
    client = client or host_client()
    labels = runmod.labels(f"overhead-{tb.run_id}", runmod.owner_token())
    rows = []
    with PlainStack(client, tb.images, labels) as stack:
        for rep in range(1, repetitions + 1):
            log.info(f"overhead: pair {rep} of {repetitions}")
            swarm = run_cell(tb, spec)
            rows.append({"where": "swarm", "repetition": rep, **{k: swarm[k] for k in _KEEP if k in swarm}})
            flink.wait_jobs_ended(tb)       # its job's end would load the host under the plain cell
            plain = plain_cell(stack, rate, duration, warmup, keys)
            rows.append({"repetition": rep, **{k: plain[k] for k in ("where", *_KEEP) if k in plain}})
    p50 = {w: statistics.median(r["latency_p50_ms"] for r in rows if r["where"] == w) for w in ("swarm", "plain")}
    p99 = {w: statistics.median(r["latency_p99_ms"] for r in rows if r["where"] == w) for w in ("swarm", "plain")}
    return {"job": "passthrough", "rate": rate, "duration_s": duration, "warmup_s": warmup, "repetitions": repetitions,
            "swarm_placement": spec.placement, "swarm_p50_ms": p50["swarm"], "plain_p50_ms": p50["plain"],
            "ratio_p50": round(p50["swarm"] / p50["plain"], 3) if p50["plain"] else None,
            "swarm_p99_ms": p99["swarm"], "plain_p99_ms": p99["plain"],
            "ratio_p99": round(p99["swarm"] / p99["plain"], 3) if p99["plain"] else None,
            "run_id": tb.run_id, "cells": rows}


_KEEP = ("cell", "job", "latency_p50_ms", "latency_p99_ms", "latency_mean_ms", "latency_samples", "lost", "duplicated",
         "accounting", "driver_late_fraction", "achieved_rate", "taskmanager_nodes")
