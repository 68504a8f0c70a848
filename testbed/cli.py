"""python -m testbed up|status|down|clean|run|preflight|calibrate|report|bench|images — the testbed without pytest.

Emulated clouds by default; real VMs with ``--cloud real --inventory FILE`` (``up --dry-run`` prints
what a real run's up and down would execute, per host and in order, without executing it).
``run`` measures an experiment matrix with the same options and the same results folder as
``pytest experiments/``."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from . import images as img
from .core.run import configure_logging, owner_token
from .experiment.options import EXPERIMENT, TESTBED, Experiment, OptionError, add_to, values
from .model.inventory import load as load_inventory
from .providers import for_cloud
from .providers.base import Provider
from .providers.engine import EngineError, host_client
from .providers.ssh import SshError
from .provision import teardown
from .provision.testbed import Testbed, clean
from .model.topology import TopologyError, load

log = logging.getLogger("testbed.cli")


def _sigterm(signum, frame):  # noqa: ARG001
    raise KeyboardInterrupt("SIGTERM")


def _provider(args, check_keys: bool = True) -> Provider:
    inventory = getattr(args, "inventory", None) or None
    if args.cloud == "real" and inventory:
        inventory = load_inventory(inventory, check_keys=check_keys)
    try:
        return for_cloud(args.cloud, inventory)
    except ValueError as e:     # the cloud and the inventory do not go together
        raise SystemExit(str(e)) from None


def _pick_run(run: str | None, provider: Provider) -> str:
    if run:
        return run
    runs = provider.runs()
    if len(runs) == 1:
        return next(iter(runs))
    if not runs:
        raise SystemExit("no testbed is running (start one with: python -m testbed up)")
    raise SystemExit("several runs are up; choose one with --run: " + ", ".join(sorted(runs)))


def cmd_up(args) -> int:
    if args.dry_run:
        if args.cloud != "real":
            raise SystemExit("--dry-run shows a real run's commands: use it with --cloud real --inventory FILE")
        print(Testbed.dry_run(_provider(args, check_keys=False)))
        return 0
    provider = _provider(args)
    tb = Testbed.up(provider, None if provider.topology else load(args.topology), owner="cli")
    tb.close()
    print(f"run {tb.run_id} is up: {len(tb.machines)} nodes; "
          f"`python -m testbed status --run {tb.run_id}` shows it, `python -m testbed down` removes it")
    return 0


def cmd_status(args) -> int:
    provider = _provider(args)
    runs = [args.run] if args.run else sorted(provider.runs())

    def collect() -> list[dict]:
        statuses = []
        for r in runs:
            tb = Testbed.attach(provider, r)
            try:
                s = tb.status()
                s["flink_ui"] = _flink_ui(tb)
                s["wan"]["measured"] = _measured(tb)
                if args.figure:
                    s["figure"] = [str(p) for p in _status_figure(tb, s, args.figure)]
                statuses.append(s)
            finally:
                tb.close()
        return statuses

    if args.json:
        json.dump(collect(), sys.stdout, indent=2)
        print()
        return 0
    from rich.console import Console
    from rich.live import Live

    # piped (a log, a test): wide enough that no row wraps, and plain text (rich emits no control codes)
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if not args.watch:
        console.print(status_view(collect()))
        return 0
    with Live(status_view(collect()), console=console, refresh_per_second=1, screen=False) as live:
        try:
            while True:
                time.sleep(args.watch)
                live.update(status_view(collect()))
        except KeyboardInterrupt:
            pass
    return 0


def _flink_ui(tb: Testbed) -> dict:
    """The Flink web UI's address and whether it answers (a jobmanager may not be deployed yet)."""
    from .stack import flink

    cluster = flink.FlinkCluster(tb, None, 1)
    try:
        overview = cluster.rest("/overview", timeout=3)
        return {"url": cluster.rest_url, "answers": True, "taskmanagers": overview.get("taskmanagers"),
                "jobs_running": overview.get("jobs-running")}
    except Exception as e:  # noqa: BLE001 - not deployed, or not answering: both are a status
        return {"url": cluster.rest_url, "answers": False, "why": f"{type(e).__name__}: {e}"[:200]}


def _measured(tb: Testbed) -> dict:
    """What the run's last fidelity check read per link (kept on its Swarm by the calibration):
    ``{"at": time, "links": [{"clouds", "rtt_ms", "mbit", "ok"}]}``, or {} if none ran."""
    import pandas as pd

    from .results.topology_figure import measured_links
    from .stack.calibrate import last

    try:
        rows = last(tb)
    except Exception as e:  # noqa: BLE001 - status reports what it can
        return {"error": f"{type(e).__name__}: {e}"}
    if not rows:
        return {}
    def number(x):      # NaN (a measurement that read nothing) is null in JSON
        return None if x is None or x != x else x

    links = [{"clouds": [a, b], **{k: number(x) for k, x in v.items()},
              "ok": all(r["ok"] for r in rows if {r["src_cloud"], r["dst_cloud"]} == {a, b})}
             for (a, b), v in measured_links(pd.DataFrame(rows)).items()]
    return {"at": rows[0].get("measured_at"), "links": links}


def _status_figure(tb: Testbed, s: dict, path: str) -> list:
    """The run's topology with what runs on each node now, as FILE (.png; a .pdf next to it)."""
    from pathlib import Path

    from .results import topology_figure as tf

    short = {"jobmanager": "JM", "taskmanager": "TM", "broker": "broker"}
    runs: dict[str, list[str]] = {}
    for t in s["tasks"] if isinstance(s.get("tasks"), list) else []:
        if t["state"] == "running":
            what = short.get(t["service"], "driver" if t["service"].startswith("driver") else t["service"])
            if what not in runs.setdefault(t["node"], []):
                runs[t["node"]].append(what)
    out = Path(path)
    measured = {tuple(m["clouds"]): m for m in s["wan"].get("measured", {}).get("links", [])}
    return tf.draw(tb.topology, out.parent if str(out.parent) else Path("."), out.stem, runs=runs,
                   measured=measured, title=f"run {tb.run_id}: {tb.topology.name}, what runs where now"
                   + ("" if measured else " (no network measurement yet)"))


def status_view(statuses: list[dict]):
    """The status of each run as rich renderables: per cloud, its nodes with role, address, Swarm
    state and the tasks running there; the Flink web UI and whether it answers; the WAN links."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not statuses:
        return Text("no testbed is running")
    parts = []
    for s in statuses:
        parts.append(Text(f"run {s['run_id']}  topology {s['topology']}  ({s['provider']}; network "
                          f"{s['network']['name']}, driver {s['network']['driver']})", style="bold"))
        swarm_by_host = {n["hostname"]: n for n in s["swarm"]} if isinstance(s["swarm"], list) else {}
        tasks = s.get("tasks") if isinstance(s.get("tasks"), list) else []
        for cloud, hosts in s["clouds"].items():
            t = Table(title=f"cloud {cloud}", title_justify="left", expand=False)
            for col in ("node", "role", "address", "swarm", "running here", "labels"):
                t.add_column(col)
            for n in (n for n in s["nodes"] if n["hostname"] in hosts):
                sw = swarm_by_host.get(n["hostname"], {})
                here = [f"{x['service']} {x['state']}" + (f" ({x['container']})" if x["container"] else "")
                        for x in tasks if x["node"] == n["hostname"]]
                labels = ",".join(f"{k}={v}" for k, v in sorted(sw.get("labels", {}).items()))
                t.add_row(n["hostname"], n["role"], n["address"], sw.get("state", "-"), "\n".join(here) or "-", labels)
            parts.append(t)
        if isinstance(s["swarm"], dict):
            parts.append(Text(f"swarm: {s['swarm']['error']}", style="red"))
        if isinstance(s.get("tasks"), dict):
            parts.append(Text(f"tasks: {s['tasks']['error']}", style="red"))
        ui = s.get("flink_ui") or {}
        if ui:
            parts.append(Text(f"Flink web UI {ui['url']}: " + (
                f"answers ({ui.get('taskmanagers')} taskmanager(s), {ui.get('jobs_running')} job(s) running)"
                if ui["answers"] else f"does not answer ({ui.get('why', '')})")))
        if s["wan"]["links"]:
            got = s["wan"].get("measured") or {}
            by_pair = {frozenset(m["clouds"]): m for m in got.get("links", [])}
            when = (f"; measured {got['at']}" if got.get("at") else
                    f"; measurement unreadable: {got['error']}" if got.get("error") else "; not measured yet")
            w = Table(title=f"WAN ({s['wan']['backend']}{when})", title_justify="left")
            for col in ("link", "delay (one way)", "jitter", "loss", "bandwidth", "measured RTT", "measured TCP", "in band"):
                w.add_column(col)
            for d in s["wan"]["links"]:
                m = by_pair.get(frozenset((d["src"], d["dst"])), {})
                w.add_row(f"{d['src']} -> {d['dst']}", f"{d['delay_ms']:g} ms", f"{d['jitter_ms']:g} ms",
                          f"{d['loss_pct']:g} %", f"{d['bandwidth_mbit'] or 'unlimited'} Mbit/s",
                          f"{m['rtt_ms']:.1f} ms" if m.get("rtt_ms") is not None else "-",
                          f"{m['mbit']:.0f} Mbit/s" if m.get("mbit") is not None else "-",
                          ("yes" if m["ok"] else "NO") if m else "-")
            parts.append(w)
        for f in s.get("figure", []):
            parts.append(Text(f"figure: {f}"))
    return Group(*parts)


def cmd_down(args) -> int:
    provider = _provider(args)
    run = _pick_run(args.run, provider)
    t0 = time.monotonic()
    removed = teardown.destroy(provider, run)
    if not removed:
        raise LookupError(f"nothing of run {run!r} is on the {'engine' if provider.disposable else 'hosts'}")
    print(f"run {run} removed in {time.monotonic() - t0:.1f}s ({len(removed)} containers, networks and volumes)")
    return 0


def cmd_clean(args) -> int:
    removed = clean(_provider(args), everything=args.all)
    print("\n".join(removed) if removed else "nothing to clean")
    return 0


def cmd_run(args) -> int:
    """An experiment matrix, as ``pytest experiments/`` runs it: checked first, then provisioned (or
    attached), calibrated, measured cell by cell, reported and torn down."""
    from .experiment import file
    args.experiment = args.experiment_file or args.experiment
    record = {"experiment_file": file.apply(args, args.experiment, args.argv[1:])} if args.experiment else None
    return _run(args, record, ["python", "-m", "testbed", *args.argv])


def cmd_rerun(args) -> int:
    """The experiment of a results folder again, into a new folder: its options from the manifest,
    after naming what differs now (image hashes, versions, topology, job files)."""
    from .experiment import rerun
    opts, differ = rerun.plan(args.folder, testbed_run=args.testbed_run)
    for d in differ:
        print(f"differs from {args.folder}: {d}", file=sys.stderr)
    if differ and not args.anyway:
        print(f"error: {len(differ)} difference(s) from the run being repeated; give --anyway to run it "
              "regardless (each is recorded in the manifest)", file=sys.stderr)
        return 2
    run_args = argparse.Namespace(**opts)
    run_args.keep_testbed = args.keep_testbed
    record = {"rerun_of": str(Path(args.folder).resolve()), "rerun_differences": differ}
    return _run(run_args, record, ["python", "-m", "testbed", *args.argv])


def cmd_compare(args) -> int:
    """Cell by cell: each further folder against the first, with each difference's uncertainty."""
    from .results import compare
    allowed = {s.strip() for s in args.allow_different.split(",") if s.strip()}
    if len(args.folders) < 2:
        raise SystemExit("compare needs two results folders or more: the first, and each to compare with it")
    if not 0 < args.confidence < 1:
        raise SystemExit(f"--confidence: must be between 0 and 1, e.g. 0.95; got {args.confidence:g}")
    first, *others = args.folders
    status = 0
    for other in others:
        try:
            table = compare.compare(first, other, allow=allowed, confidence=args.confidence)
        except (compare.NotComparable, FileNotFoundError) as e:
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        name = f"compare-{Path(first).name}-{Path(other).name}"
        out = (Path(args.out) / (name if len(others) > 1 else "")) if args.out else Path(other).parent / name
        written = compare.write(table, out, first, other)
        compare.print_table(table, first, other)
        print("written: " + ", ".join(str(w) for w in written))
    return status


def _run(args, record: dict | None, command: list[str]) -> int:
    from .experiment.session import Session, cell_problems, saturated_parts
    opts = values(lambda k: getattr(args, k, None))
    opts.update(record or {})       # where the options came from: an experiment file, or the run repeated
    # everything is checked before anything starts (no engine is asked until then)
    if args.cloud == "real" and not args.inventory:
        raise SystemExit("--cloud real needs --inventory FILE (see examples/inventory.yaml)")
    if args.inventory and "," in args.inventory:
        raise SystemExit("python -m testbed run takes one --inventory (several are for pytest -n, one per worker)")
    inventory = load_inventory(args.inventory, check_keys=not args.dry_run) if args.cloud == "real" else None
    if args.dry_run:
        if inventory is None:
            raise SystemExit("--dry-run shows a real run's commands: use it with --cloud real --inventory FILE")
        print(Testbed.dry_run(for_cloud("real", inventory)))
        return 0
    try:
        topology = inventory.topology if inventory else load(args.topology)
        session = Session(Experiment.from_options(opts), args.results, resume=args.resume, options=opts,
                          command=command)
        cells = session.plan(topology)
    except OptionError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    provider = for_cloud(args.cloud, inventory)
    log.info(f"session {session.id}: {len(cells)} cell(s)"
             + (f" and {len(session.experiment.searches(cells))} search(es)" if session.experiment.sustainable else "")
             + f"; results in {session.path}")
    # SIGTERM (a CI time-out, `kill`) tears down as Ctrl-C does
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _sigterm)
    if args.testbed_run:
        tb = Testbed.attach(provider, args.testbed_run)
    else:
        removed = clean(provider)
        if removed:
            log.info(f"removed {len(removed)} leftovers of killed runs")
        # a kept run outlives this process: owned like `up`'s, so that a later clean keeps it
        tb = Testbed.up(provider, topology, owner="cli" if args.keep_testbed else owner_token())
    rows = []
    try:
        try:
            session.calibrate(tb, args.wan_check)
            rows = session.run(tb, cells)
        finally:
            if args.testbed_run or args.keep_testbed:
                tb.close()
                if args.keep_testbed and not args.testbed_run:
                    log.info(f"run {tb.run_id} left running (--keep-testbed); remove it with "
                             f"`python -m testbed down --run {tb.run_id}`")
            else:
                tb.down()
    finally:
        session.finish()
    bad = {r["cell_key"]: cell_problems(r) for r in rows if cell_problems(r)}
    print(f"session {session.id}: {len(rows) - len(bad)} of {len(rows)} cell(s) add up; results in {session.path}")
    for key, problems in bad.items():
        print(f"  failed: {key}: {'; '.join(problems)}")
    limited = {r["cell_key"]: r.get("testbed_limited_why", "") for r in rows if saturated_parts(r)}
    if limited:
        print(f"  {len(limited)} of {len(rows)} cell(s) measured the testbed, not the system (left out of the means):")
    for key, why in limited.items():
        print(f"  saturated: {key}: {why}")
    return 1 if bad else 0


def cmd_calibrate(args) -> int:
    from .stack.calibrate import calibrate, table
    provider = _provider(args)
    tb = Testbed.attach(provider, _pick_run(args.run, provider))
    rows = calibrate(tb)
    if args.json:
        json.dump({"run_id": tb.run_id, "backend": tb.wan.backend if tb.wan else None, "measurements": rows},
                  sys.stdout, indent=2)
        print()
    else:
        print(f"run {tb.run_id}, WAN backend: {tb.wan.backend if tb.wan else 'none (one cloud)'}")
        print(table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


def cmd_preflight(args) -> int:
    from .providers import preflight
    inventory = load_inventory(args.inventory)
    report = preflight.run(inventory)
    if args.json:
        json.dump({"hosts": report.hosts, "ports": report.matrix, "problems": report.problems,
                   "warnings": report.warnings}, sys.stdout, indent=2)
        print()
    else:
        print(report.text())
    return 0 if report.ok else 1


def cmd_report(args) -> int:
    from .results.report import markdown_page, report
    if args.markdown:
        written = markdown_page(args.folder, args.markdown, title=args.title, include_saturated=args.include_saturated)
    else:
        written = report(args.folder, include_saturated=args.include_saturated)
    print("\n".join(str(p) for p in written))
    return 0


def cmd_bench(args) -> int:
    if args.what == "overhead":
        return _bench_overhead(args)
    if args.what == "cell":
        return _bench_cell(args)
    if args.what == "broker":
        return _bench_broker(args)
    from .workload import bench
    res = bench.driver(rate=args.rate or 100_000, duration=args.duration or 10, processes=args.processes,
                       partitions=args.partitions, keys=args.keys,
                       payload_bytes=100 if args.payload_bytes is None else args.payload_bytes,
                       broker_cpus=args.broker_cpus)
    if not _printed_json(args, res):
        print(f"driver ({res['driver']}), {res['processes']} process(es), {res['payload_bytes']}-byte events, "
              f"{res['partitions']} partitions:")
        for k in ("offered_rate", "events_per_s", "cpu_cores", "events_per_cpu_s", "late_fraction", "max_lag_ms",
                  "events_sent", "lost", "broker_cpu_cores"):
            print(f"  {k:18} {res[k]:,}" if isinstance(res[k], (int, float)) else f"  {k:18} {res[k]}")
    return 0 if res["lost"] == 0 and not res["errors"] else 1


def _printed_json(args, res: dict) -> bool:
    """With --json, print ``res`` machine-readable and say so."""
    if args.json:
        json.dump(res, sys.stdout, indent=2)
        print()
    return bool(args.json)


def _bench_broker(args) -> int:
    """The broker alone with a cell's producers and consumers, per minute (workload/bench.py)."""
    from .workload import bench
    from .workload.load import parse_properties
    res = bench.broker(rate=args.rate or 1000, duration=args.duration or 300, partitions=args.partitions,
                       consumers=args.consumers or args.partitions + 1,
                       payload_bytes=args.payload_bytes or 0, broker_cpus=args.broker_cpus,
                       producer_properties=dict(parse_properties(args.producer_properties)),
                       fetch_wait_ms=args.fetch_wait_ms)
    if not _printed_json(args, res):
        print(f"{res['broker']}: {res['rate']:,.0f} events/s into {res['partitions']} partitions, "
              f"{res['consumers']} consumers (fetch.wait.max.ms {res['fetch_wait_ms']}), producer "
              + ", ".join(f"{k}={v}" for k, v in res["producer_properties"].items()))
        cols = ("minute", "acked_per_s", "ack_rtt_p50_ms", "ack_rtt_p99_ms", "read_latency_p50_ms",
                "read_latency_p99_ms", "broker_cpu_cores")
        print("  ".join(f"{c:>19}" for c in cols))
        for r in res["minutes"]:
            print("  ".join(f"{'-' if r[c] is None else r[c]:>19}" for c in cols))
    return 0 if res["events_acked"] == res["events_sent"] else 1


def _bench_overhead(args) -> int:
    """The passthrough job on the emulated Swarm (no WAN) against plain containers (experiment/overhead.py)."""
    from .experiment.overhead import compare
    provider = for_cloud("emulated", None)
    tb = Testbed.attach(provider, args.testbed_run) if args.testbed_run else Testbed.up(provider, load(args.topology))
    try:
        res = compare(tb, rate=args.rate or 1000, duration=args.duration or 30, warmup=args.warmup,
                      repetitions=args.repetitions)
    finally:
        tb.close() if args.testbed_run else tb.down()
    if args.json:
        json.dump(res, sys.stdout, indent=2, default=str)
        print()
    else:
        print(f"passthrough at {res['rate']:,.0f} events/s, {res['repetitions']} pair(s), run {res['run_id']}:")
        for c in res["cells"]:
            print(f"  {c['where']:6} rep {c['repetition']}: p50 {c['latency_p50_ms']:8.1f} ms  "
                  f"p99 {c['latency_p99_ms']:8.1f} ms  lost {c['lost']}  cell {c.get('cell', '-')}")
        print(f"  ratio of median p50 (swarm / plain): {res['ratio_p50']}   p99: {res['ratio_p99']}")
    return 0 if all(c["lost"] == 0 and c["duplicated"] == 0 for c in res["cells"]) else 1


def _bench_cell(args) -> int:
    """A cell's fixed cost, its job started through REST against a flink run client (experiment/fixedcost.py)."""
    from .experiment.fixedcost import compare
    provider = for_cloud("emulated", None)
    tb = Testbed.attach(provider, args.testbed_run) if args.testbed_run else Testbed.up(provider, load(args.topology))
    try:
        res = compare(tb, repetitions=args.repetitions, duration=args.duration or 15, rate=args.rate or 1000)
    finally:
        tb.close() if args.testbed_run else tb.down()
    if not _printed_json(args, res):
        print(f"fixed cost per cell at {res['rate']:,.0f} events/s, {res['duration']:g} s of load, "
              f"{res['repetitions']} pair(s), run {res['run_id']}:")
        for c in res["cells"]:
            print(f"  {c['submit']:9} pair {c['repetition']}: fixed {c['fixed_cost_s']:6.1f} s, of it submitting "
                  f"{c['submit_s']:5.1f} s (wall {c['cell_wall_s']:.1f} s)  cell {c['cell']}")
            print("    phases: " + ", ".join(f"{k} {v:.1f}" for k, v in c["phases"].items()))
        for via, m in res["median"].items():
            print(f"  median {via:9}: fixed {m['fixed_cost_s']:.1f} s, submitting {m['submit_s']:.1f} s")
        print(f"  ratio of median fixed cost (rest / flink-run): {res['ratio_fixed_cost']}")
    return 0 if all(c["lost"] == 0 for c in res["cells"]) else 1


def cmd_images(args) -> int:
    client = host_client()
    tags = img.build_all(client, img.ALL_RECIPES)
    print(img.build.manifest(client, tags))
    return 0


def _cloud_options(sp) -> None:
    sp.add_argument("--cloud", choices=("emulated", "real"), default="emulated",
                    help="emulated clouds on this machine (default) or real VMs from --inventory")
    sp.add_argument("--inventory", help="hosts YAML for --cloud real (see examples/inventory.yaml)")


def parser() -> argparse.ArgumentParser:
    """The command line (docs/reference/cli.md is generated from it)."""
    p = argparse.ArgumentParser(prog="python -m testbed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="provision a topology and leave it running")
    up.add_argument("--topology", default="seed", help="topology YAML or a built-in name (default: seed)")
    up.add_argument("--dry-run", action="store_true",
                    help="with --cloud real: print the commands of up and down per host, in order, and execute nothing")
    up.set_defaults(fn=cmd_up)
    pf = sub.add_parser("preflight", help="check real hosts (SSH, engine, kernel, clocks, port matrix); changes nothing")
    pf.add_argument("--inventory", required=True, help="hosts YAML (see examples/inventory.yaml)")
    pf.add_argument("--json", action="store_true", help="machine-readable output")
    pf.set_defaults(fn=cmd_preflight)
    st = sub.add_parser("status", help="per cloud and node: role, address, swarm state and what runs there; the "
                        "Flink web UI; the WAN links")
    st.add_argument("--run", help="run id (default: every run)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.add_argument("--watch", type=float, nargs="?", const=2.0, default=0.0, metavar="SECONDS",
                    help="refresh in place every SECONDS (default 2) until Ctrl-C")
    st.add_argument("--figure", metavar="FILE", help="also draw the topology with what runs where now (FILE.png, "
                    "and a PDF next to it)")
    st.set_defaults(fn=cmd_status)
    dn = sub.add_parser("down", help="remove a run")
    dn.add_argument("--run", help="run id (default: the only run)")
    dn.set_defaults(fn=cmd_down)
    cl = sub.add_parser("clean", help="remove what killed runs left behind (found by label)")
    cl.add_argument("--all", action="store_true", help="also remove runs started with `up`")
    cl.set_defaults(fn=cmd_clean)
    # (no abbreviations: an option given on the command line must be seen to override the file's)
    rn = sub.add_parser("run", allow_abbrev=False, help="measure an experiment matrix (the options of pytest experiments/, or an "
                        "experiment file's fields)")
    rn.add_argument("experiment_file", nargs="?", metavar="EXPERIMENT.yaml", help="an experiment file (as "
                    "--experiment); options given here override its fields")
    add_to(rn.add_argument_group("testbed"), TESTBED)
    add_to(rn.add_argument_group("experiment"), EXPERIMENT)
    rn.set_defaults(fn=cmd_run)
    rr = sub.add_parser("rerun", help="measure a results folder's experiment again, into a new folder, after "
                        "naming what differs from it (images, versions, topology, job files)")
    rr.add_argument("folder", help="results/<session id>")
    rr.add_argument("--anyway", action="store_true", help="run even where images, versions or files differ "
                    "(the differences are recorded in the manifest)")
    rr.add_argument("--testbed-run", default=None, metavar="RUN_ID", help="use a testbed already up (python -m "
                    "testbed up); it is left running")
    rr.add_argument("--keep-testbed", action="store_true", help="leave the provisioned testbed running at the end")
    rr.set_defaults(fn=cmd_rerun)
    cp = sub.add_parser("compare", help="compare results folders cell by cell: p50, p99, achieved and sustainable "
                        "throughput, each difference with its interval, a test and a verdict")
    cp.add_argument("folders", nargs="+", metavar="FOLDER", help="results/<session id>; each further folder is "
                    "compared with the first")
    cp.add_argument("--allow-different", default="", metavar="SETTING,...", help="compare cells although these "
                    "settings differ (as named when compare refuses), e.g. wan_links")
    cp.add_argument("--confidence", type=float, default=0.95, help="of the intervals and the tests (default 0.95)")
    cp.add_argument("--out", default=None, help="folder for compare.csv and compare.html (default: "
                    "compare-<A>-<B>/ beside the folders)")
    cp.set_defaults(fn=cmd_compare)
    ca = sub.add_parser("calibrate", help="measure RTT, throughput and loss between nodes against the targets")
    ca.add_argument("--run", help="run id (default: the only run)")
    ca.add_argument("--json", action="store_true", help="machine-readable output")
    ca.set_defaults(fn=cmd_calibrate)
    rp = sub.add_parser("report", help="draw the figures and summary tables of a results folder")
    rp.add_argument("folder", help="results/<session id>")
    rp.add_argument("--include-saturated", action="store_true", help="average cells the testbed saturated "
                    "(testbed_limited) into the means too")
    rp.add_argument("--markdown", metavar="PAGE", help="instead, write a measurements page (PAGE.md, its figure "
                    "beside it) from the folder's cells.csv and manifest.json alone: date, commit, machine, command, "
                    "the summary")
    rp.add_argument("--title", default="", help="--markdown: the page's title")
    rp.set_defaults(fn=cmd_report)
    be = sub.add_parser("bench", help="benchmarks: `bench driver` measures the load driver alone against the broker; "
                        "`bench broker` the broker alone with a cell's producer and consumers, per minute; "
                        "`bench overhead` the passthrough job on the emulated Swarm against plain containers; "
                        "`bench cell` a cell's fixed cost with its job started through REST against flink run")
    be.add_argument("what", choices=("driver", "broker", "overhead", "cell"))
    be.add_argument("--rate", type=float, default=None, help="offered events/s (default: driver 100000, overhead 1000)")
    be.add_argument("--duration", type=float, default=None, help="seconds of load (default: driver 10, overhead 30)")
    be.add_argument("--warmup", type=float, default=10, help="overhead: seconds excluded from the statistics (default 10)")
    be.add_argument("--repetitions", type=int, default=3, help="overhead, cell: pairs of cells (default 3)")
    be.add_argument("--testbed-run", default=None, metavar="RUN_ID", help="overhead, cell: a testbed already up "
                    "(python -m testbed up); default: bring up --topology and remove it at the end")
    be.add_argument("--topology", default="seed", help="overhead, cell: the topology to bring up (default seed)")
    be.add_argument("--processes", type=int, default=1, help="driver processes (default 1)")
    be.add_argument("--payload-bytes", type=int, default=None, help="bytes per event (default: driver 100, "
                    "broker 0, a cell's unpadded event)")
    be.add_argument("--consumers", type=int, default=0, help="broker: consumers, one per partition and one that "
                    "reads all, as the results collector does (default partitions + 1)")
    be.add_argument("--producer-properties", default="", metavar="K=V,...",
                    help="broker: librdkafka settings over the driver's defaults, e.g. linger.ms=100")
    be.add_argument("--fetch-wait-ms", type=int, default=100, help="broker: the consumers' fetch.wait.max.ms "
                    "(default 100, as the testbed's SQL jobs set for their source; Kafka's own default is 500)")
    be.add_argument("--broker-cpus", type=float, default=0.0, help="limit the broker to this many cores (default 0: none)")
    be.add_argument("--partitions", type=int, default=4, help="partitions of the topic (default 4)")
    be.add_argument("--keys", type=int, default=16, help="distinct keys (default 16)")
    be.add_argument("--json", action="store_true", help="machine-readable output")
    be.set_defaults(fn=cmd_bench)
    im = sub.add_parser("images", help="build the offline images (cached) and print them")
    im.set_defaults(fn=cmd_images)
    for sp in (up, st, dn, cl, ca):
        _cloud_options(sp)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    args.argv = argv        # what the command line set explicitly: it overrides an experiment file
    configure_logging()
    try:
        return args.fn(args)
    except (TopologyError, EngineError, LookupError, FileNotFoundError, SshError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
