"""python -m testbed up|status|down|clean|preflight|calibrate|report|images — the testbed for interactive work.

Emulated clouds by default; real VMs with ``--cloud real --inventory FILE`` (``up --dry-run`` prints
what a real run would execute, per host and in order, without executing it)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import images as img
from .providers.engine import EngineError, host_client
from .inventory import load as load_inventory
from .providers.emulated import EmulatedProvider
from .providers.real import RealProvider
from .providers.ssh import SshError
from .core.run import default_progress, owner_alive
from .provision.testbed import Testbed, clean, list_runs
from .topology import SEED_TOPOLOGY, TopologyError, load

DEFAULT_TOPOLOGY = SEED_TOPOLOGY


def _inventory(args):
    if args.cloud != "real":
        if getattr(args, "inventory", None):
            raise SystemExit("--inventory is for --cloud real")
        return None
    if not args.inventory:
        raise SystemExit("--cloud real needs --inventory FILE (see examples/inventory.yaml)")
    return load_inventory(args.inventory)


def _pick_run(run: str | None, inventory=None) -> str:
    if run:
        return run
    runs = RealProvider(inventory, default_progress).runs() if inventory else list_runs(host_client())
    if len(runs) == 1:
        return next(iter(runs))
    if not runs:
        raise SystemExit("no testbed is running (start one with: python -m testbed up)")
    raise SystemExit("several runs are up; choose one with --run: " + ", ".join(sorted(runs)))


def cmd_up(args) -> int:
    inventory = _inventory(args)
    if args.dry_run:
        if inventory is None:
            raise SystemExit("--dry-run shows a real run's commands: use it with --cloud real --inventory FILE")
        print(Testbed.dry_run(inventory))
        return 0
    if inventory is not None:
        tb = Testbed.up_real(inventory, owner="cli")
    else:
        tb = Testbed.up(load(args.topology), owner="cli")
    tb.close()
    print(f"run {tb.run_id} is up: {len(tb.machines)} nodes; "
          f"`python -m testbed status --run {tb.run_id}` shows it, `python -m testbed down` removes it")
    return 0


def cmd_status(args) -> int:
    inventory = _inventory(args)
    if inventory is not None:
        runs = [args.run] if args.run else sorted(RealProvider(inventory, default_progress).runs())
        statuses = [Testbed.attach(r, inventory=inventory).status() for r in runs]
    else:
        client = host_client()
        runs = [args.run] if args.run else sorted(list_runs(client))
        statuses = [Testbed.attach(r, client=client).status() for r in runs]
    if args.json:
        json.dump(statuses, sys.stdout, indent=2)
        print()
        return 0
    if not statuses:
        print("no testbed is running")
    for s in statuses:
        print(f"run {s['run_id']}  topology {s['topology']}  ({s['provider']}; network "
              f"{s['network']['name']}, driver {s['network']['driver']})")
        swarm_by_host = {n["hostname"]: n for n in s["swarm"]} if isinstance(s["swarm"], list) else {}
        print(f"  {'HOSTNAME':26} {'CLOUD':8} {'ROLE':11} {'ADDRESS':16} {'SWARM':8} LABELS")
        for n in s["nodes"]:
            sw = swarm_by_host.get(n["hostname"], {})
            labels = ",".join(f"{k}={v}" for k, v in sorted(sw.get("labels", {}).items()))
            print(f"  {n['hostname']:26} {n['cloud']:8} {n['role']:11} {n['address']:16} "
                  f"{sw.get('state', '-'):8} {labels}")
        if isinstance(s["swarm"], dict):
            print(f"  swarm: {s['swarm']['error']}")
        for d in s["wan"]["links"]:
            print(f"  WAN {d['src']} -> {d['dst']}: delay {d['delay_ms']:g} ms, jitter {d['jitter_ms']:g} ms, "
                  f"loss {d['loss_pct']:g} %, bandwidth {d['bandwidth_mbit'] or 'unlimited'} Mbit/s "
                  f"({s['wan']['backend']})")
    return 0


def cmd_down(args) -> int:
    inventory = _inventory(args)
    run = _pick_run(args.run, inventory)
    t0 = time.monotonic()
    if inventory is not None:
        removed = RealProvider(inventory, default_progress).destroy(run)
    else:
        removed = EmulatedProvider(host_client(), default_progress).destroy(run)
    if not removed:
        raise LookupError(f"nothing of run {run!r} is on the {'hosts' if inventory else 'engine'}")
    print(f"run {run} removed in {time.monotonic() - t0:.1f}s ({len(removed)} containers, networks and volumes)")
    return 0


def cmd_clean(args) -> int:
    inventory = _inventory(args)
    if inventory is not None:
        keep = (lambda owner: False) if args.all else owner_alive
        removed = RealProvider(inventory, default_progress).destroy(None, keep=keep)
    else:
        removed = clean(everything=args.all)
    print("\n".join(removed) if removed else "nothing to clean")
    return 0


def cmd_calibrate(args) -> int:
    from .stack.calibrate import calibrate, table
    tb = Testbed.attach(_pick_run(args.run))
    rows = calibrate(tb, default_progress)
    if args.json:
        json.dump({"run_id": tb.run_id, "backend": tb.wan.backend if tb.wan else None, "measurements": rows},
                  sys.stdout, indent=2)
        print()
    else:
        print(f"run {tb.run_id}, WAN backend: {tb.wan.backend if tb.wan else 'none (one cloud)'}")
        print(table(rows))
    return 0 if all(r["ok"] for r in rows) else 1


def cmd_preflight(args) -> int:
    from .provision import preflight
    inventory = load_inventory(args.inventory)
    report = preflight.run(inventory, default_progress)
    if args.json:
        json.dump({"hosts": report.hosts, "ports": report.matrix, "problems": report.problems,
                   "warnings": report.warnings}, sys.stdout, indent=2)
        print()
    else:
        print(report.text())
    return 0 if report.ok else 1


def cmd_report(args) -> int:
    from .results.report import report
    written = report(args.folder)
    print("\n".join(str(p) for p in written))
    return 0


def cmd_images(args) -> int:
    client = host_client()
    tags = img.build_all(client, img.ALL_RECIPES, default_progress)
    print(img.build.manifest(client, tags))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m testbed", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="provision a topology and leave it running")
    up.add_argument("--topology", default=str(DEFAULT_TOPOLOGY), help="topology YAML (default: the seed)")
    up.add_argument("--dry-run", action="store_true",
                    help="with --cloud real: print the commands per host, in order, and execute nothing")
    up.set_defaults(fn=cmd_up)
    pf = sub.add_parser("preflight", help="check real hosts (SSH, engine, kernel, clocks, port matrix); changes nothing")
    pf.add_argument("--inventory", required=True, help="hosts YAML (see examples/inventory.yaml)")
    pf.add_argument("--json", action="store_true", help="machine-readable output")
    pf.set_defaults(fn=cmd_preflight)
    st = sub.add_parser("status", help="nodes, clouds, roles, addresses and swarm state")
    st.add_argument("--run", help="run id (default: every run)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(fn=cmd_status)
    dn = sub.add_parser("down", help="remove a run")
    dn.add_argument("--run", help="run id (default: the only run)")
    dn.set_defaults(fn=cmd_down)
    cl = sub.add_parser("clean", help="remove what killed runs left behind (found by label)")
    cl.add_argument("--all", action="store_true", help="also remove runs started with `up`")
    cl.set_defaults(fn=cmd_clean)
    ca = sub.add_parser("calibrate", help="measure RTT, throughput and loss between nodes against the targets")
    ca.add_argument("--run", help="run id (default: the only run)")
    ca.add_argument("--json", action="store_true", help="machine-readable output")
    ca.set_defaults(fn=cmd_calibrate)
    rp = sub.add_parser("report", help="draw the figures and summary tables of a results folder")
    rp.add_argument("folder", help="results/<session id>")
    rp.set_defaults(fn=cmd_report)
    im = sub.add_parser("images", help="build the offline images (cached) and print them")
    im.set_defaults(fn=cmd_images)
    for sp in (up, st, dn, cl):
        sp.add_argument("--cloud", choices=("emulated", "real"), default="emulated",
                        help="emulated clouds on this machine (default) or real VMs from --inventory")
        sp.add_argument("--inventory", help="hosts YAML for --cloud real (see examples/inventory.yaml)")
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (TopologyError, EngineError, LookupError, FileNotFoundError, SshError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
