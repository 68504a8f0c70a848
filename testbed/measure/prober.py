"""The RTT across each link while a cell's load runs: a ping every 100 ms from a node of each cloud
to a node of the other, so that a row says what delay its traffic met, not only what the idle
fidelity check measured before.

    prober = Prober(tb, seconds=70).start()     # with the load
    ...
    samples = prober.stop()                     # {link: [(t, rtt ms), ...]}, and what was lost
    row.update(loaded_rtt(samples, links, t_from, t_to))

Probes go the way the cell's packets go (through the emulated WAN's queues, or the real WAN), so a
queue the load fills shows in them. They are ICMP, 84 bytes ten times a second each way: nothing
that loads a link. Pure functions summarise; ``Prober`` runs the containers (the driver image, in
each node's network namespace, as the fidelity check does).
"""

from __future__ import annotations

import logging
import re

import numpy as np

from ..model.topology import Link
from ..provision.testbed import Testbed
from ..stack.calibrate import representatives

log = logging.getLogger(__name__)

INTERVAL_S = 0.1
_REPLY = re.compile(r"^\[(\d+\.\d+)\].*icmp_seq=(\d+).*time=([\d.]+) ms", re.MULTILINE)
_SENT = re.compile(r"(\d+) packets transmitted")
NAN = float("nan")


def parse_ping(text: str) -> tuple[list[tuple[float, float]], int]:
    """``ping -D`` output: the replies as (receive time, RTT ms) and the probes sent."""
    replies = [(float(t), float(ms)) for t, _seq, ms in _REPLY.findall(text)]
    sent = _SENT.search(text)
    return replies, int(sent.group(1)) if sent else len(replies)


def rtt_band(link: Link) -> tuple[float, float]:
    """The band a link's RTT may take under load and still be the link's: the fidelity check's
    tolerance (10 %, at least 1 ms) around its RTT, widened by its jitter both ways."""
    tol = max(0.1 * link.rtt_ms, 1.0)
    return max(0.0, link.rtt_ms - tol - 2 * link.jitter_ms), link.rtt_ms + tol + 2 * link.jitter_ms


def loaded_rtt(samples: dict[str, dict], links: list[Link], t_from: float, t_to: float) -> dict:
    """The row's columns from ``Prober.stop``'s samples in [t_from, t_to] (the measured part of the
    load): per link ``wan_rtt_loaded`` (JSON: p50, p99, max, probes, lost, band), and, for the link with
    the highest median, ``wan_rtt_loaded_p50_ms`` / ``_p99_ms`` and ``wan_rtt_loaded_link``."""
    per: dict[str, dict] = {}
    for ln in links:
        got = samples.get(ln.name)
        if got is None:
            continue
        rtts = np.array([ms for t, ms in got["replies"] if t_from <= t <= t_to])
        lo, hi = rtt_band(ln)
        per[ln.name] = {"p50": round(float(np.median(rtts)), 2) if len(rtts) else NAN,
                        "p99": round(float(np.percentile(rtts, 99)), 2) if len(rtts) else NAN,
                        "max": round(float(rtts.max()), 2) if len(rtts) else NAN,
                        "probes": int(len(rtts)), "sent": got["sent"], "received": len(got["replies"]),
                        "band": [round(lo, 2), round(hi, 2)], "target": ln.rtt_ms}
    worst = max(per, key=lambda k: per[k]["p50"] if per[k]["p50"] == per[k]["p50"] else -1, default=None)
    return {"wan_rtt_loaded": per,
            "wan_rtt_loaded_link": worst or "",
            "wan_rtt_loaded_p50_ms": per[worst]["p50"] if worst else NAN,
            "wan_rtt_loaded_p99_ms": per[worst]["p99"] if worst else NAN}


def rtt_per_second(samples: dict[str, dict], secs: np.ndarray, t0: float) -> dict[str, list[float]]:
    """The time series' columns: per link (``wan_rtt_ms:<link>``) the median RTT of the probes that
    came back in each second since ``t0`` (NaN where none did)."""
    out = {}
    for name, got in samples.items():
        by_s: dict[int, list[float]] = {}
        for t, ms in got["replies"]:
            by_s.setdefault(int(np.floor(t - t0)), []).append(ms)
        out[f"wan_rtt_ms:{name}"] = [float(np.median(by_s[int(s)])) if int(s) in by_s else NAN for s in secs]
    return out


class Prober:
    """One ping container per direction of each link, for ``seconds`` at most (stopped earlier by
    ``stop``); labelled with the run, so that ``testbed clean`` removes one a killed run left."""

    def __init__(self, tb: Testbed, links: list[Link], seconds: float):
        self.tb, self.links, self.seconds = tb, [ln for ln in links], seconds
        self.containers: list[tuple[str, object]] = []      # (link name, container)

    def start(self) -> "Prober":
        reps = representatives(self.tb)
        for ln in self.links:
            a, b = ln.clouds
            if a not in reps or b not in reps:
                continue
            for src, dst in ((reps[a], reps[b]), (reps[b], reps[a])):
                try:
                    c = src.client.containers.run(
                        self.tb.images["driver"],
                        ["-n", "-D", "-i", str(INTERVAL_S), "-W", "2", "-w", str(int(self.seconds) + 30), dst.address],
                        entrypoint=["ping"], network_mode="host", detach=True,
                        labels=self.tb.labels(component="prober"))
                    self.containers.append((ln.name, c))
                except Exception as e:  # noqa: BLE001 - the row then says the link was not probed
                    log.warning(f"could not start the RTT prober {src.hostname} -> {dst.hostname}: {e}")
        return self

    def stop(self) -> dict[str, dict]:
        """Stop the probes; per link, both directions' replies and probes sent."""
        out: dict[str, dict] = {}
        for name, c in self.containers:
            try:
                try:
                    c.kill(signal="SIGINT")     # ping prints its summary on SIGINT
                except Exception:  # noqa: BLE001 - it ended at its deadline: its output is there
                    pass
                c.wait(timeout=10)
                replies, sent = parse_ping(c.logs().decode(errors="replace"))
                got = out.setdefault(name, {"replies": [], "sent": 0})
                got["replies"] = sorted(got["replies"] + replies)
                got["sent"] += sent
            except Exception as e:  # noqa: BLE001
                log.warning(f"could not read the RTT prober of {name}: {e}")
            finally:
                try:
                    c.remove(force=True)
                except Exception:  # noqa: BLE001 - removed by label at teardown
                    pass
        self.containers = []
        return out
