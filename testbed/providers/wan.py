"""The emulated WAN between clouds, applied on the router that joins the clouds' LANs.

Every packet from one cloud to another is forwarded by the router (``fst-<run>-wan``), so shaping
there delays inter-cloud traffic, Swarm's VXLAN included, and leaves intra-cloud traffic alone.
For the link A->B the router's interface on B's LAN gets an htb class for packets from A's subnet
(bandwidth), and the delay, jitter and loss come from one of two backends, detected per kernel:

- ``netem``   (every common distro kernel, cloud VMs): a netem qdisc under that class;
- ``nfqueue`` (kernels without sch_netem): iptables sends A->B forwarded packets to an NFQUEUE
  where ``wan-delay.py`` (in the router image) holds and releases them. Forwarded packets no longer
  belong to a local socket, so TCP is not throttled by the holding (see the script).

A link's delay is given as RTT and split evenly over the two directions; jitter and loss apply per
direction. Links can be changed during a run with ``set_link``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace

from ..core.run import step
from ..model.topology import MTU, Link

log = logging.getLogger(__name__)

BACKENDS = ("netem", "nfqueue")
HOLDER_STALE_S = 3      # a running holder rewrites its stats file every second
NO_LIMIT_MBIT = 10_000
LINKS_STATE = "/run/fst-wan-links.json"


@dataclass(frozen=True)
class Direction:
    src: str
    dst: str
    delay_ms: float
    jitter_ms: float
    loss_pct: float
    bandwidth_mbit: float | None
    buffer_ms: float | None = None      # as given (None: the default, Link.queue_packets)
    queue_packets: int = 100_000        # the bottleneck queue in front of the bandwidth cap

    def netem_limit(self) -> int:
        """netem under the htb class holds the packets still in their delay as well as the queue."""
        mbit = self.bandwidth_mbit or NO_LIMIT_MBIT
        return self.queue_packets + math.ceil(mbit * 1e6 / 8 * (self.delay_ms + self.jitter_ms) / 1000 / MTU)


def directions(links: tuple[Link, ...] | list[Link]) -> list[Direction]:
    out = []
    for ln in links:
        for a, b in (ln.clouds, ln.clouds[::-1]):
            out.append(Direction(a, b, ln.rtt_ms / 2, ln.jitter_ms, ln.loss_pct, ln.bandwidth_mbit,
                                 ln.buffer_ms, ln.queue_packets()))
    return out


def ids(clouds: list[str], d: Direction) -> tuple[int, int]:
    """The htb class minor and the NFQUEUE number of a direction, unique per (src, dst) pair."""
    i, j = clouds.index(d.src), clouds.index(d.dst)
    return 10 + i * len(clouds) + j, i * len(clouds) + j


def shaping(d: Direction, iface: str, minor: int, src_subnet: str, backend: str, new: bool) -> list[str]:
    """The tc commands that shape direction ``d`` on the router interface into ``d.dst``: an htb class
    for the bandwidth, under it netem (delay, jitter, loss) or a plain fifo (the NFQUEUE holder does the
    delay), and, the first time, the u32 filter that sends packets from ``src_subnet`` to the class."""
    rate = d.bandwidth_mbit or NO_LIMIT_MBIT
    # burst: at least 10 ms at the rate, so htb's timer granularity does not cap throughput
    burst = max(32_000, int(rate * 1e6 / 8 * 0.01))
    script = [f"tc class replace dev {iface} parent 1: classid 1:{minor} htb rate {rate}mbit "
              f"ceil {rate}mbit burst {burst} cburst {burst}"]
    if backend == "netem":
        netem = f"delay {d.delay_ms}ms"
        if d.jitter_ms:
            netem += f" {d.jitter_ms}ms"
        if d.loss_pct:
            netem += f" loss {d.loss_pct}%"
        script.append(f"tc qdisc replace dev {iface} parent 1:{minor} handle {minor}: netem {netem} "
                      f"limit {d.netem_limit()}")
    else:
        script.append(f"tc qdisc replace dev {iface} parent 1:{minor} handle {minor}: pfifo limit {d.queue_packets}")
    if new:
        script.append(f"tc filter add dev {iface} parent 1: protocol ip prio 1 u32 match ip src {src_subnet} "
                      f"flowid 1:{minor}")
    return script


class WanBroken(RuntimeError):
    """The emulation lost a link (``Wan.check``): whatever crossed it failed, or was measured wrong."""


class Wan:
    def __init__(self, router, subnets: dict[str, str], interfaces: dict[str, str],
                 backend: str | None = None):
        """``router``: its container; ``subnets``/``interfaces``: cloud -> subnet / router interface."""
        self.router, self.subnets, self.interfaces = router, subnets, interfaces
        self.backend = backend or self.detect()
        self.links: dict[tuple[str, str], Direction] = {}
        self._lossy = False      # a direction had loss configured since the last counters()

    def sh(self, script: str) -> str:
        code, out = self.router.exec_run(["sh", "-ec", script])
        text = out.decode(errors="replace")
        if code != 0:
            raise RuntimeError(f"on the WAN router: {script.strip()[:300]}\nfailed (exit {code}): {text.strip()[-1500:]}")
        return text

    def detect(self) -> str:
        code, _ = self.router.exec_run(["sh", "-c", "tc qdisc add dev lo root netem delay 1ms && "
                                        "tc qdisc del dev lo root"])
        return "netem" if code == 0 else "nfqueue"

    def apply(self, links) -> None:
        dirs = directions(links)
        if not dirs:
            return
        with step(log, f"emulate the WAN on {len(links)} cloud link(s) ({self.backend})"):
            for iface in set(self.interfaces.values()):
                self.sh(f"tc qdisc replace dev {iface} root handle 1: htb default 1 r2q 1000\n"
                        f"tc class replace dev {iface} parent 1: classid 1:1 htb rate {NO_LIMIT_MBIT}mbit")
            for d in dirs:
                self.set_direction(d)

    def _ids(self, d: Direction) -> tuple[int, int]:
        return ids(sorted(self.subnets), d)

    def set_direction(self, d: Direction) -> None:
        minor, queue = self._ids(d)
        script = shaping(d, self.interfaces[d.dst], minor, self.subnets[d.src], self.backend,
                         new=(d.src, d.dst) not in self.links)
        if self.backend != "netem":
            self._holder(d, queue)
        self.sh("\n".join(script))
        self.links[(d.src, d.dst)] = d
        self._lossy = self._lossy or bool(d.loss_pct)
        # on the router, so that another process attached to the run knows the links as they are
        state = json.dumps([vars(x) for x in self.links.values()])
        self.sh(f"printf '%s' '{state}' > {LINKS_STATE}.new && mv {LINKS_STATE}.new {LINKS_STATE}")

    def saved_links(self) -> dict[tuple[str, str], Direction]:
        """The links as last set on the router (by any process), or {} if none were."""
        code, out = self.router.exec_run(["cat", LINKS_STATE])
        if code != 0:
            return {}
        return {(d["src"], d["dst"]): Direction(**d) for d in json.loads(out)}

    def _holder(self, d: Direction, queue: int) -> None:
        """Configure (or start) the userspace holder of queue ``queue``, then route A->B to it.
        It must be bound to its queue before packets go there: unheld packets would be dropped."""
        cfg = json.dumps({"delay_ms": d.delay_ms, "jitter_ms": d.jitter_ms, "loss_pct": d.loss_pct})
        conf, logfile = f"/run/wan-{queue}.json", f"/run/wan-{queue}.log"
        running = self.router.exec_run(["pgrep", "-f", f"^python3 /usr/local/bin/wan-delay.py {queue} "]).exit_code == 0
        # a running holder logs a line when it has loaded the new file: the change is in effect on return
        self.sh(f"n=$(wc -l < {logfile} 2>/dev/null || echo 0); printf '%s' '{cfg}' > {conf}.new && mv {conf}.new {conf}; "
                + ("" if not running else
                   f"for i in $(seq 100); do if [ $(wc -l < {logfile}) -gt $n ]; then "
                   f"tail -1 {logfile} | grep -q 'keeping the old config' && {{ tail -3 {logfile}; exit 1; }}; exit 0; fi; "
                   f"sleep 0.05; done; "
                   f"echo 'the NFQUEUE holder of queue {queue} did not load its new config:'; tail -5 {logfile}; exit 1"))
        if not running:     # (a dead holder's log and stats must not pass for the new one's)
            self.sh(f"rm -f {logfile} /run/wan-{queue}.stats")
            # (not exec'd: its shell outlives it and writes how it ended, a signal as 128 + its number)
            self.router.exec_run(["sh", "-c", f"python3 /usr/local/bin/wan-delay.py {queue} {conf} >>{logfile} 2>&1; "
                                  f"echo \"wan-delay queue {queue}: exited with status $?\" >>{logfile}"], detach=True)
            self.sh(f"for i in $(seq 100); do grep -q ': bound;' {logfile} 2>/dev/null && break; sleep 0.05; done; "
                    f"grep -q ': bound;' {logfile} || {{ echo 'the NFQUEUE holder did not start:'; cat {logfile}; exit 1; }}")
        rule = f"FORWARD -s {self.subnets[d.src]} -d {self.subnets[d.dst]} -j NFQUEUE --queue-num {queue}"
        self.sh(f"iptables -t mangle -C {rule} 2>/dev/null || iptables -t mangle -A {rule}")

    def health(self) -> list[str]:
        """What is wrong with the emulation now, one line per direction ([] when nothing is). With the
        NFQUEUE backend a direction whose holder exited (its shell writes how, as the log's last line),
        or stopped writing its stats each second, drops every packet (the queue has no bypass, so that
        a lost holder can never pass packets undelayed): a partition nobody asked for."""
        if self.backend != "nfqueue":
            return []
        problems = []
        for (src, dst), d in sorted(self.links.items()):
            _minor, queue = self._ids(d)
            code, out = self.router.exec_run(["sh", "-c",
                f"pgrep -f '^python3 /usr/local/bin/wan-delay.py {queue} ' >/dev/null && echo running || echo gone; "
                f"echo $(( $(date +%s) - $(stat -c %Y /run/wan-{queue}.stats 2>/dev/null || echo 0) )); "
                f"tail -5 /run/wan-{queue}.log 2>/dev/null"])
            state, age, *log_tail = out.decode(errors="replace").splitlines() or ["gone", "0"]
            exited = bool(log_tail) and "exited with status" in log_tail[-1]
            stale = not age.strip().isdigit() or int(age) > HOLDER_STALE_S
            if exited or stale:
                how = ("has exited" if exited or state != "running" else f"wrote no stats for {age.strip()} s")
                problems.append(f"the WAN link {src} -> {dst}: its NFQUEUE holder (queue {queue}) {how}, so that "
                                f"direction drops every packet; its log ends: {' | '.join(log_tail) or '(empty)'}")
        return problems

    def check(self, cause: BaseException | None = None) -> None:
        """Raise WanBroken, naming each direction, when ``health`` finds anything wrong (with the
        error it explains, ``cause``, quoted)."""
        problems = self.health()
        if problems:
            because = f"\n(what failed with it: {str(cause)[:1500]})" if cause else ""
            raise WanBroken("the emulated WAN is broken: " + "; ".join(problems) + because)

    def counters(self) -> dict:
        """Cumulative counters of the emulation, read before and after a cell (measure/saturation.py):
        ``drops``, packets its queues dropped beyond the configured loss (None where the two cannot be
        told apart: netem with loss configured since the last reading, a partition's included), and with the NFQUEUE holder ``held`` / ``late``,
        packets it held, those it released later than the link's tolerance, and those it timed from the
        kernel's receive timestamp (wan-delay.py)."""
        out = self.sh("tc -s qdisc show; echo '#nfq'; cat /proc/net/netfilter/nfnetlink_queue 2>/dev/null || true; "
                      "echo '#stats'; cat /run/wan-*.stats 2>/dev/null || true")
        lossy = self._lossy or any(d.loss_pct for d in self.links.values())   # a partition is 100 % loss
        self._lossy = False
        return parse_counters(out, self.backend, lossy)

    def set_link(self, a: str, b: str, **changes) -> None:
        """Change a link during a run (both directions): rtt_ms, jitter_ms, loss_pct, bandwidth_mbit,
        buffer_ms (its queue follows, as ``Link.queue_packets`` says)."""
        for src, dst in ((a, b), (b, a)):
            d = self.links[(src, dst)]
            link = Link((src, dst), rtt_ms=changes.get("rtt_ms", 2 * d.delay_ms),
                        **{k: changes.get(k, getattr(d, k)) for k in ("jitter_ms", "loss_pct", "bandwidth_mbit",
                                                                      "buffer_ms")})
            self.set_direction(directions([link])[0])

    def use(self, links) -> bool:
        """Set every link to ``links`` (the topology's, or a link axis's value) where it differs; True
        if anything changed."""
        changed = False
        for d in directions(links):
            if self.links.get((d.src, d.dst)) != d:
                self.set_direction(d)
                changed = True
        return changed


def parse_counters(text: str, backend: str, loss_configured: bool) -> dict:
    """``Wan.counters`` from the router's ``tc -s qdisc show``, ``/proc/net/netfilter/nfnetlink_queue``
    and the holders' stats files (each ``{"held": n, "late": m}``)."""
    tc, _, rest = text.partition("#nfq")
    nfq, _, stats = rest.partition("#stats")
    drops, kind = 0, None
    for line in tc.splitlines():
        words = line.split()
        if words[:1] == ["qdisc"]:
            kind = words[1]
        elif "dropped" in line and kind in ("pfifo", "netem"):
            drops += int(line.split("dropped")[1].split(",")[0].strip())
    out: dict = {"drops": None if backend == "netem" and loss_configured else drops}
    if backend == "nfqueue":
        for line in nfq.strip().splitlines():   # queue portid waiting copy_mode range queue_dropped user_dropped ...
            f = line.split()
            if len(f) >= 7 and out["drops"] is not None:
                out["drops"] += int(f[5]) + int(f[6])
        held = late = stamped = 0
        text, at, dec = stats.strip(), 0, json.JSONDecoder()
        while at < len(text):           # the files' objects, one after another
            c, at = dec.raw_decode(text, at)
            held, late, stamped = held + c.get("held", 0), late + c.get("late", 0), stamped + c.get("stamped", 0)
            while at < len(text) and text[at].isspace():
                at += 1
        out.update(held=held, late=late, stamped=stamped)
    return out
