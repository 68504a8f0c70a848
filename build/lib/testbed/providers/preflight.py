"""Preflight of real hosts, before anything is changed on any of them.

For every host of an inventory: SSH login, the hostname it reports, the Docker engine (through the
same ``ssh://`` path the stack uses: version, Swarm state), kernel features (netem, IPVS), its
addresses (is the inventory's address its own, or NATed?), and its clock offset from the harness.
Then a **port matrix**: on every host a short-lived listener (python3, no root) binds the seed's
ports; from every other host a probe connects (TCP) or sends a datagram it expects echoed (UDP).
The result is a table per host pair, and a summary of what fails where.

    python -m testbed preflight --inventory hosts.yaml
"""

from __future__ import annotations

import logging
import json
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ..model.inventory import Host, Inventory
from .ssh import Session, SshError, docker_client
from ..core.run import step

log = logging.getLogger(__name__)

MIN_API = (1, 40)          # Docker 19.03: data-path-addr, default-addr-pool, dnsrr
MAX_CLOCK_OFFSET_S = 1.0   # beyond this, event times from different hosts are not comparable


@dataclass(frozen=True)
class Port:
    number: int
    proto: str
    what: str
    needed: bool = True     # a failure of a port not needed by this run is a warning only

    @property
    def name(self) -> str:
        return f"{self.number}/{self.proto}"


def ports(driver: str, broker_port: int = 9092) -> list[Port]:
    """The seed's ports (Swarm, Weave, Flink) and the broker's."""
    weave = driver == "weave"
    return [Port(2377, "tcp", "swarm management"), Port(7946, "tcp", "swarm gossip"),
            Port(7946, "udp", "swarm gossip"), Port(4789, "udp", "overlay VXLAN"),
            Port(6783, "tcp", "weave control", weave), Port(6784, "udp", "weave data", weave),
            *[Port(p, "tcp", w) for p, w in ((6121, "flink taskmanager data"), (6122, "flink taskmanager rpc"),
                                            (6123, "flink jobmanager rpc"), (6124, "flink blob server"),
                                            (6125, "flink query server"))],
            Port(8081, "tcp", "flink REST / web UI"), Port(broker_port, "tcp", "kafka broker")]


FACTS = r"""
echo "hostname=$(hostname)"
echo "kernel=$(uname -r)"
echo "python3=$(command -v python3 || true)"
mods=/lib/modules/$(uname -r)
has() { [ -d /sys/module/$1 ] || modprobe -n -q $1 2>/dev/null || grep -qs "/$1.ko" $mods/modules.builtin; }
if has sch_netem; then echo netem=yes; else echo netem=no; fi
if [ -e /proc/net/ip_vs ] || has ip_vs; then echo ipvs=yes; else echo ipvs=no; fi
echo "addresses=$(ip -o -4 addr show scope global 2>/dev/null | awk '{print $4}' | cut -d/ -f1 | tr '\n' ' ')"
dev=$(ip -o -4 route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if($i=="dev") print $(i+1); exit}')
[ -n "$dev" ] && echo "default_address=$(ip -o -4 addr show dev "$dev" scope global | awk '{print $4}' | cut -d/ -f1 | head -1)"
true
"""

LISTENER = r"""
import json, os, socket, sys, threading, time
ports, until = json.loads(sys.argv[1]), time.time() + float(sys.argv[2])
state = {}
def tcp(s):
    s.listen(64); s.settimeout(0.5)
    while time.time() < until:
        try: s.accept()[0].close()
        except OSError: pass
def udp(s):
    s.settimeout(0.5)
    while time.time() < until:
        try: d, a = s.recvfrom(512); s.sendto(d, a)
        except OSError: pass
for p, proto in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    try:
        if proto == "tcp": s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", p))
    except OSError as e:
        state[f"{p}/{proto}"] = "in use" if e.errno == 98 else str(e); s.close(); continue
    threading.Thread(target=tcp if proto == "tcp" else udp, args=(s,), daemon=True).start()
    state[f"{p}/{proto}"] = "listening"
print(json.dumps({"pid": os.getpid(), "ports": state}), flush=True)
while time.time() < until: time.sleep(0.2)
"""

PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def probe(t):
    addr, p, proto = t
    if proto == "tcp":
        s = socket.socket(); s.settimeout(3)
        try: s.connect((addr, p)); return "ok"
        except socket.timeout: return "timeout"
        except ConnectionRefusedError: return "refused"
        except OSError as e: return e.strerror or str(e)
        finally: s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
    try:
        for _ in range(3):
            s.sendto(b"fst-preflight", (addr, p))
            try:
                if s.recvfrom(512)[0] == b"fst-preflight": return "ok"
            except socket.timeout: pass
            except ConnectionRefusedError: return "refused"
        return "no echo"
    finally: s.close()
targets = [tuple(t) for t in json.loads(sys.argv[1])]
with ThreadPoolExecutor(32) as pool:
    print(json.dumps(list(pool.map(probe, targets))))
"""


class PreflightError(RuntimeError):
    def __init__(self, report: "Report"):
        self.report = report
        super().__init__("preflight failed:\n" + report.summary())


@dataclass
class Report:
    hosts: list[dict] = field(default_factory=list)      # one dict of facts per host
    matrix: list[dict] = field(default_factory=list)     # src, dst, port, proto, needed, result
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    port_names: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def host_table(self) -> str:
        cols = ("hostname", "address", "private_address", "engine", "swarm", "kernel", "netem", "ipvs",
                "clock_offset_ms", "clock_uncertainty_ms")
        rows = [[str(h.get(c, "-") if h.get(c) is not None else "-") for c in cols] for h in self.hosts]
        w = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
        out = ["  ".join(c.ljust(w[i]) for i, c in enumerate(cols))]
        out += ["  ".join(v.ljust(w[i]) for i, v in enumerate(r)) for r in rows]
        return "\n".join(out)

    def port_table(self) -> str:
        """One row per host pair (src -> dst), one column per port."""
        pairs: dict[tuple[str, str], dict[str, str]] = {}
        for r in self.matrix:
            pairs.setdefault((r["src"], r["dst"]), {})[r["port"]] = "ok" if r["result"] == "ok" else (
                "FAIL" if r["needed"] else "fail*")
        if not pairs:
            return "(no port matrix)"
        sw = max(len(s) for s, _ in pairs)
        dw = max(len(d) for _, d in pairs)
        head = f"{'src':<{sw}}  {'dst':<{dw}}  " + " ".join(f"{p:>9}" for p in self.port_names)
        lines = [head]
        for (s, d), res in pairs.items():
            lines.append(f"{s:<{sw}}  {d:<{dw}}  " + " ".join(f"{res.get(p, '-'):>9}" for p in self.port_names))
        if any(not r["needed"] and r["result"] != "ok" for r in self.matrix):
            lines.append("fail* = closed, but not needed by this run's network driver")
        return "\n".join(lines)

    def summary(self) -> str:
        out = []
        if self.problems:
            out.append(f"{len(self.problems)} problem(s):")
            out += [f"  - {p}" for p in self.problems]
        if self.warnings:
            out.append(f"{len(self.warnings)} warning(s):")
            out += [f"  - {w}" for w in self.warnings]
        return "\n".join(out) or "all checks passed"

    def text(self) -> str:
        return "\n\n".join(["hosts:\n" + self.host_table(), "port matrix (src -> dst):\n" + self.port_table(),
                            self.summary()])


def _facts(host: Host, session: Session) -> dict:
    out = session.check(FACTS, "reading host facts", sudo=False)
    facts = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    facts["addresses"] = facts.get("addresses", "").split()
    return facts


def _clock_offset(session: Session, tries: int = 3) -> tuple[float, float]:
    """(remote clock - harness clock, uncertainty) in seconds: the sample with the shortest round trip."""
    best = None
    for _ in range(tries):
        t0 = time.time()
        out = session.check("date +%s.%N", "reading the clock", sudo=False)
        t1 = time.time()
        remote = float(out.strip())
        sample = (remote - (t0 + t1) / 2, (t1 - t0) / 2)
        if best is None or sample[1] < best[1]:
            best = sample
    return best


def check_host(host: Host, session: Session) -> tuple[dict, list[str], list[str]]:
    """Facts of one host, and what is wrong (problems) or worth knowing (warnings)."""
    problems, warnings = [], []
    d: dict = {"hostname": host.hostname, "address": host.address, "cloud": host.cloud, "role": host.role}
    facts = _facts(host, session)
    if facts.get("hostname") != host.hostname:
        problems.append(f"{host.hostname}: the VM calls itself {facts.get('hostname')!r}; Swarm places services by "
                        f"hostname, so rename the VM or set hostname: {facts.get('hostname')} in the inventory")
    d["kernel"] = facts.get("kernel")
    d["netem"] = facts.get("netem")
    d["ipvs"] = facts.get("ipvs")
    if facts.get("ipvs") != "yes":
        warnings.append(f"{host.hostname}: no IPVS in the kernel; fine, the stack's services use dnsrr endpoints")
    d["python3"] = bool(facts.get("python3"))
    if not d["python3"]:
        problems.append(f"{host.hostname}: no python3 (the port matrix's listener and probe need it)")
    local = facts["addresses"]
    if host.private_address:
        d["private_address"] = host.private_address
        if host.private_address not in local:
            problems.append(f"{host.hostname}: private_address {host.private_address} is not on any of its "
                            f"interfaces ({' '.join(local) or 'none found'})")
    elif host.address in local:
        d["private_address"] = host.address
    else:
        d["private_address"] = facts.get("default_address") or (local[0] if local else None)
        warnings.append(f"{host.hostname}: {host.address} is not on its interfaces (NAT); Swarm will listen on "
                        f"{d['private_address']} and advertise {host.address}")
    offset, unc = _clock_offset(session)
    d["clock_offset_ms"] = round(offset * 1000, 1)
    d["clock_uncertainty_ms"] = round(unc * 1000, 1)
    try:
        client = docker_client(host.ssh)
        try:
            v = client.version()
            info = client.info()
        finally:
            client.close()
        d["engine"] = v.get("Version")
        d["api"] = v.get("ApiVersion")
        d["swarm"] = info.get("Swarm", {}).get("LocalNodeState")
        if tuple(int(x) for x in str(v.get("ApiVersion", "0.0")).split(".")[:2]) < MIN_API:
            problems.append(f"{host.hostname}: Docker API {v.get('ApiVersion')} is too old; "
                            f"{MIN_API[0]}.{MIN_API[1]} (Docker 19.03) or newer is needed")
        if d["swarm"] not in ("inactive", None):
            problems.append(f"{host.hostname}: already part of a swarm ({d['swarm']}); a killed run's is removed by "
                            "`python -m testbed down --cloud real --inventory FILE`, anything else with "
                            "`docker swarm leave --force` on the host")
    except SshError:
        raise
    except Exception as e:  # noqa: BLE001 - reported, with the host's name
        problems.append(f"{host.hostname}: its Docker engine does not answer over ssh://{host.ssh.where} "
                        f"(is {host.ssh.user} root or in the docker group?): {e}")
    return d, problems, warnings


def port_matrix(inv: Inventory, sessions: dict[str, Session], plist: list[Port],
                listen_s: float = 60) -> list[dict]:
    hosts = list(inv.hosts)
    spec = json.dumps([[p.number, p.proto] for p in plist])
    listeners: dict[str, tuple[int, dict]] = {}
    lock = threading.Lock()
    channels = []

    def listen(h: Host) -> None:
        s = sessions[h.hostname]
        chan = s.channel()
        chan.exec_command(f"python3 -c {shlex.quote(LISTENER)} {shlex.quote(spec)} {listen_s:g}")
        chan.shutdown_write()
        f = chan.makefile("r")
        line = f.readline()
        if not line:
            err = chan.makefile_stderr("r").read()
            raise SshError(f"{h.hostname}: the port listener did not start: {err[-800:]}")
        res = json.loads(line)
        with lock:
            listeners[h.hostname] = (res["pid"], res["ports"])
            channels.append(chan)

    try:
        with ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(listen, hosts))
        rows: list[dict] = []

        def probe(src: Host) -> None:
            targets, meta = [], []
            for dst in hosts:
                if dst is src:
                    continue
                for p in plist:
                    targets.append([dst.address, p.number, p.proto])
                    meta.append((dst, p))
            out = sessions[src.hostname].check(f"python3 -c {shlex.quote(PROBE)} {shlex.quote(json.dumps(targets))}",
                                               "the port probe", sudo=False, timeout=120)
            results = json.loads(out.strip().splitlines()[-1])
            with lock:
                for (dst, p), r in zip(meta, results):
                    state = listeners[dst.hostname][1].get(p.name, "?")
                    rows.append({"src": src.hostname, "dst": dst.hostname, "port": p.name, "what": p.what,
                                 "needed": p.needed, "listener": state,
                                 "result": r if state == "listening" or r == "ok" else f"{r} ({state} on {dst.hostname})"})

        with ThreadPoolExecutor(len(hosts)) as pool:
            list(pool.map(probe, hosts))
    finally:
        for h in hosts:
            if h.hostname in listeners:
                sessions[h.hostname].run(f"kill {listeners[h.hostname][0]} 2>/dev/null", sudo=False, timeout=20)
        for chan in channels:
            chan.close()
    order = {h.hostname: i for i, h in enumerate(hosts)}
    pnames = [p.name for p in plist]
    return sorted(rows, key=lambda r: (order[r["src"]], order[r["dst"]], pnames.index(r["port"])))


def run(inv: Inventory, broker_port: int = 9092) -> Report:
    """Every check; never raises for what it finds (see ``Report.problems``), only for hosts it
    cannot reach (SshError names them all)."""
    report = Report()
    plist = ports(inv.topology.network.driver, broker_port)
    report.port_names = [p.name for p in plist]
    sessions = {h.hostname: Session(h.ssh) for h in inv.hosts}
    try:
        with step(log, f"preflight: SSH, engine, kernel and clock on {len(inv.hosts)} hosts"):
            unreachable: list[str] = []

            def one(h: Host):
                try:
                    return check_host(h, sessions[h.hostname])
                except SshError as e:
                    unreachable.append(str(e))
                    return None

            with ThreadPoolExecutor(len(inv.hosts)) as pool:
                results = list(pool.map(one, inv.hosts))
            if unreachable:
                raise SshError("preflight: cannot reach every host:\n  " + "\n  ".join(unreachable))
            for d, probs, warns in results:
                report.hosts.append(d)
                report.problems += probs
                report.warnings += warns
        offsets = [h["clock_offset_ms"] for h in report.hosts]
        if max(offsets) - min(offsets) > MAX_CLOCK_OFFSET_S * 1000:
            report.problems.append(f"clocks differ by {max(offsets) - min(offsets):.0f} ms between hosts "
                                   f"(more than {MAX_CLOCK_OFFSET_S:g} s): run NTP/chrony on them")
        if not all(h["python3"] for h in report.hosts):
            return report   # the port matrix needs python3 on every host; the problem is reported
        with step(log, f"preflight: port matrix, {len(plist)} ports between {len(inv.hosts)} hosts"):
            report.matrix = port_matrix(inv, sessions, plist)
        for r in report.matrix:
            if r["result"] != "ok":
                msg = f"{r['port']} ({r['what']}) from {r['src']} to {r['dst']}: {r['result']}"
                (report.problems if r["needed"] else report.warnings).append(
                    msg if r["needed"] else msg + " (not needed with this network driver)")
    finally:
        for s in sessions.values():
            s.close()
    return report
