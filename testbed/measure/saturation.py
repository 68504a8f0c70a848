"""Whether the testbed itself was the limit of a cell: every part of the measuring path reports its
own saturation, and ``testbed_limited`` names the parts that saturated. Pure functions, no I/O.

A cell whose row names a part here measured that part, not the system under test: the report
draws it hollow and leaves it out of means (unless asked), and the summary counts such cells.

- ``driver``:    more than 0.1 % of the events went out over 100 ms late (``driver_fell_behind``);
- ``broker``:    acknowledgements fell behind: at some second after warm-up the events sent and not
                 yet acknowledged were more than ``BACKLOG_LIMIT_S`` of the offered rate, or one
                 produce request waited more than ``ACK_LIMIT_MS`` for its answer, or the broker (or
                 its node, under one CPU budget per node) used at least ``CPU_NEAR`` of its CPU;
- ``collector``: it stayed behind the results topic's end for ``BEHIND_LIMIT_S`` or more (the
                 collector, or the broker's answers to it), or it left results unread;
- ``wan``:       the emulated WAN dropped packets it was not told to drop (its queues overflowed), or
                 a link's RTT under the load (measure/prober.py) left the link's band;
- ``host``:      the machine that runs the emulated clouds had no CPU to spare: busy and stolen by its
                 hypervisor together at least ``HOST_BUSY_LIMIT`` of the load.

Fidelity that slipped without anything saturating is a note (``testbed_notes``), kept apart from
the verdict and not left out of means: the WAN's holder releasing more than ``LATE_LIMIT`` of the
packets later than the link's tolerance (the calibration's: 10 % of the RTT, at least 1 ms, as one
direction's share), a hypervisor stealing at least ``STEAL_LIMIT`` of the host's CPU time, and
Flink's metric readings that went stale (``readings``: the jobmanager kept a taskmanager's old
values, so the source's counts there are not readings of that time).
"""

from __future__ import annotations

import math

import numpy as np

from ..workload.record import Params, Record

BACKLOG_LIMIT_S = 1.0
ACK_LIMIT_MS = 2000.0
CPU_NEAR = 0.9
BEHIND_LIMIT_S = 2.0
LATE_LIMIT = 0.01
HOST_BUSY_LIMIT = 0.95
STEAL_LIMIT = 0.05
NAN = float("nan")


def _rate_at(params: Params, t: float) -> float:
    warm_s, warm = params.warmup_s, params.warmup_rate
    return warm if warm and t < warm_s else params.rate


def broker(raw: Record, warmup_s: float, cpu_used: float, cpu_limit: float, node: tuple | None = None) -> dict:
    """The broker's acknowledgements after warm-up: their backlog (events sent and not yet
    acknowledged, in seconds of the offered rate, largest at the end of a second), the produce
    requests' round-trip time as librdkafka measured it each second (median p50, largest p99 and
    max, ms), and its CPU against its limit, or with ``node`` = (cores used, budget) its node's
    against the node's CPU budget (shared with the driver there)."""
    prm = raw.params
    lo, hi = int(math.ceil(warmup_s)), int(math.floor(prm.duration))
    queued = np.zeros(max(hi, 0) + 1)
    stats = []
    for p in raw.producers:
        q = p.queued_per_s
        for s in range(min(len(q), len(queued))):
            queued[s] += q[s]
        stats += [r for r in p.ack_stats if warmup_s <= r[0] <= prm.duration]
    backlog = max((queued[s] / _rate_at(prm, s) for s in range(lo, min(hi, len(queued)))), default=NAN) \
        if any(p.queued_per_s for p in raw.producers) else NAN
    out = {"broker_backlog_max_s": round(float(backlog), 3) if backlog == backlog else NAN,
           "broker_ack_p50_ms": float(np.median([r[1] for r in stats])) if stats else NAN,
           "broker_ack_p99_ms": float(max(r[2] for r in stats)) if stats else NAN,
           "broker_ack_max_ms": float(max(r[3] for r in stats)) if stats else NAN,
           "broker_cpu_of_limit": round(cpu_used / cpu_limit, 3) if cpu_limit and cpu_used == cpu_used else NAN}
    out["broker_node_cpu_of_budget"] = round(node[0] / node[1], 3) if node and node[1] and node[0] == node[0] else NAN
    why = []
    if out["broker_backlog_max_s"] > BACKLOG_LIMIT_S:
        why.append(f"its acknowledgements fell {out['broker_backlog_max_s']:.1f} s of events behind")
    if out["broker_ack_max_ms"] > ACK_LIMIT_MS:
        why.append(f"a produce request waited {out['broker_ack_max_ms'] / 1000:.1f} s for its answer")
    if out["broker_cpu_of_limit"] >= CPU_NEAR:
        why.append(f"it used {out['broker_cpu_of_limit']:.0%} of its {cpu_limit:g}-core limit")
    if out["broker_node_cpu_of_budget"] >= CPU_NEAR:
        why.append(f"its node (the broker with the driver and the collector there) used "
                   f"{out['broker_node_cpu_of_budget']:.0%} of its {node[1]:g}-core budget")
    out["_why"] = why
    return out


def collector(raw: Record) -> dict:
    """Whether the collector kept up with the results topic: the longest time it stayed behind the
    topic's end (checked once a second) and the most results it was behind by. Also, for reading
    only, how long results took from the job's sink (the record's timestamp, set by the job's
    producer) to the collector: that includes the sink's own buffering and its link to the broker,
    which are the system's, so it is no verdict on the collector."""
    c = raw.collected
    d = c.delivery_ms
    out = {"collector_behind_max_s": _f(c.behind_max_s),
           "collector_behind_max_records": _f(c.behind_max_records),
           "collector_delivery_p50_ms": _f(d.p50 if d else None), "collector_delivery_p99_ms": _f(d.p99 if d else None),
           "collector_delivery_max_ms": _f(d.max if d else None)}
    why = []
    if out["collector_behind_max_s"] >= BEHIND_LIMIT_S:
        why.append(f"it stayed behind the results topic's end for {out['collector_behind_max_s']:.0f} s "
                   f"(up to {out['collector_behind_max_records']:.0f} results)")
    unread = c.unread_offsets
    if unread:
        why.append(f"it left {unread} results unread")
    out["_why"] = why
    return out


def host(before: tuple | None, after: tuple | None) -> dict:
    """The host's CPU over the load from two ``/proc/stat`` readings (``host_cpu_times``): the busy
    share of all its CPUs and the share stolen by its hypervisor. Saturated when the two together
    left it no CPU to spare (``HOST_BUSY_LIMIT``); steal alone is a note (it jitters timers)."""
    if not before or not after:
        return {"host_cpu_busy": NAN, "host_cpu_steal": NAN, "_why": [], "_notes": []}
    d = [b - a for a, b in zip(before, after)]
    total = sum(d[:8])        # user nice system idle iowait irq softirq steal (guest is inside user)
    if total <= 0:
        return {"host_cpu_busy": NAN, "host_cpu_steal": NAN, "_why": [], "_notes": []}
    idle = d[3] + d[4]
    out = {"host_cpu_busy": round((total - idle) / total, 3), "host_cpu_steal": round(d[7] / total, 3)}
    why, notes = [], []
    if out["host_cpu_busy"] + out["host_cpu_steal"] >= HOST_BUSY_LIMIT:
        why.append(f"the host's CPUs were {out['host_cpu_busy']:.0%} busy and {out['host_cpu_steal']:.0%} stolen "
                   "by its hypervisor: no CPU to spare")
    elif out["host_cpu_steal"] >= STEAL_LIMIT:
        notes.append(f"the host's hypervisor stole {out['host_cpu_steal']:.0%} of its CPU time")
    out["_why"], out["_notes"] = why, notes
    return out


def host_cpu_times(text: str) -> tuple[int, ...]:
    """The aggregate ``cpu`` line of ``/proc/stat``, as integers."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            return tuple(int(v) for v in line.split()[1:])
    raise ValueError("no aggregate cpu line in /proc/stat")


def wan(before: dict | None, after: dict | None, loaded: dict | None = None) -> dict:
    """The emulated WAN over the load, from two ``Wan.counters()`` readings: packets its queues
    dropped (the configured loss is not among them) and the share its holder released late; and
    with ``loaded`` (``prober.loaded_rtt``'s per-link summary) each link whose median RTT under the
    load left its band (``prober.rtt_band``): the cell's packets met a delay the link does not have."""
    out = _wan_counters(before, after)
    for name, r in sorted((loaded or {}).items()):
        lo, hi = r["band"]
        if r["p50"] == r["p50"] and not lo <= r["p50"] <= hi:
            out["_why"].append(f"the RTT on {name} under the load was {r['p50']:.1f} ms (median of "
                               f"{r['probes']} probes), outside its band {lo:g}-{hi:g} ms")
    return out


def _wan_counters(before: dict | None, after: dict | None) -> dict:
    if not before or not after:
        return {"wan_queue_drops": NAN, "wan_late_fraction": NAN, "wan_stamped_fraction": NAN, "_why": [], "_notes": []}
    drops = after["drops"] - before["drops"] if after.get("drops") is not None and before.get("drops") is not None else NAN
    held = after.get("held", 0) - before.get("held", 0)
    late = (after.get("late", 0) - before.get("late", 0)) / held if held > 0 else (0.0 if "held" in after else NAN)
    stamped = (after.get("stamped", 0) - before.get("stamped", 0)) / held if held > 0 and "stamped" in after else NAN
    out = {"wan_queue_drops": drops, "wan_late_fraction": round(late, 4) if late == late else NAN,
           "wan_stamped_fraction": round(stamped, 4) if stamped == stamped else NAN}
    why, notes = [], []
    if drops == drops and drops > 0:
        why.append(f"its queues dropped {drops:g} packets beyond the configured loss")
    if late == late and late > LATE_LIMIT:
        notes.append(f"the WAN's holder released {late:.1%} of the packets later than the link's tolerance")
    out["_why"], out["_notes"] = why, notes
    return out


def readings(metrics_stale: str) -> dict:
    """Flink's metric readings as a part of the path: a note when some were stale (``metrics_stale``,
    from ``metrics.stale_readings``). Not a saturation: the latencies and the accounting come from
    the results, which do not pass through Flink's metric store."""
    notes = [f"Flink's metric readings stale: {metrics_stale}"] if metrics_stale and metrics_stale != "not measured" else []
    return {"_why": [], "_notes": notes}


def limited(row: dict, parts: dict[str, dict]) -> dict:
    """``testbed_limited``: the parts that saturated, comma-separated ('' if none), and
    ``testbed_limited_why``: what each did. ``parts``: part -> its report (with ``_why``); the
    driver's own verdict comes from the row."""
    why = {}
    if row.get("driver_fell_behind") is True or row.get("driver_fell_behind") == "True":
        why["driver"] = [f"{row.get('driver_late_fraction', NAN):.1%} of the events went out over 100 ms late"]
    for name, rep in parts.items():
        if rep.get("_why"):
            why[name] = rep["_why"]
    return {"testbed_limited": ",".join(why),
            "testbed_limited_why": "; ".join(f"{n}: {', '.join(w)}" for n, w in why.items()),
            "testbed_notes": "; ".join(n for rep in parts.values() for n in rep.get("_notes", []))}


def columns(parts: dict[str, dict]) -> dict:
    """The reports' columns for the row (without their reasons)."""
    return {k: v for rep in parts.values() for k, v in rep.items() if not k.startswith("_")}


def _f(v) -> float:
    return NAN if v is None else float(v)
