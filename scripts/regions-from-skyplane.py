#!/usr/bin/env python3
"""Build testbed/topologies/regions.csv, the RTT and throughput between cloud regions that a topology's
``region`` fields fill its links from, out of Skyplane's published profiles (Apache-2.0):

    git clone https://github.com/skyplane-project/skyplane && cd skyplane
    git show 2e3b2c01735054a8053d6a939d69fe43a652d2d0:profiles/latency.csv > latency.csv
    git show 2e3b2c01735054a8053d6a939d69fe43a652d2d0:profiles/throughput.csv > throughput.csv
    scripts/regions-from-skyplane.py latency.csv throughput.csv > testbed/topologies/regions.csv

Skyplane measured them between VMs in AWS, Azure and GCP regions: ``latency.csv`` (committed
2022-04-16) from ping runs between pairs of VMs, each row one run's min/avg/max RTT;
``throughput.csv`` (2022-01-29) from iperf3 with 64 parallel connections for 5 s. Only rows with both
ends on the premium network tier are kept. Per unordered pair of regions the table gives the median,
over the runs of both directions, of each run's *minimum* RTT (a mean of RTTs is wrecked by
outliers), and the median of the throughputs received. 64 connections together reach far more than
one TCP flow does: the throughput is the links' capacity, not what one Kafka client gets.
"""

import csv
import statistics
import sys


def pairs(path: str, value: str, scale: float = 1.0) -> dict:
    out: dict = {}
    with open(path) as f:
        for r in csv.DictReader(f):
            if r["src_tier"] != "PREMIUM" or r["dst_tier"] != "PREMIUM" or not r.get(value):
                continue
            if r["src_region"] == r["dst_region"]:
                continue
            key = tuple(sorted((r["src_region"], r["dst_region"])))
            out.setdefault(key, []).append(float(r[value]) * scale)
    return out


def main() -> int:
    rtt = pairs(sys.argv[1], "min_rtt")
    gbit = pairs(sys.argv[2], "throughput_received", 1e-9)
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["a", "b", "rtt_ms", "rtt_runs", "throughput_gbit", "throughput_runs"])
    for key in sorted(set(rtt) | set(gbit)):
        r, g = rtt.get(key, []), gbit.get(key, [])
        w.writerow([*key, f"{statistics.median(r):.2f}" if r else "", len(r),
                    f"{statistics.median(g):.2f}" if g else "", len(g)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
