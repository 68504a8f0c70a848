"""The topology figure: every node of the topology drawn inside its cloud, what ran where from a
cell's row, the links' measured values from a calibration table, and a report that draws one figure
per placement and names figures by cell key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from testbed.model.topology import load
from testbed.results import report
from testbed.results import topology_figure as tf

ROOT = Path(__file__).resolve().parent.parent
SEED = load(ROOT / "testbed" / "topologies" / "seed.yaml")
THREE = load(ROOT / "tests" / "topologies" / "three-clouds.yaml")


def _inside(inner: tf.Box, outer: tf.Box) -> bool:
    return outer.x <= inner.x and inner.x + inner.w <= outer.x + outer.w and \
        outer.y <= inner.y and inner.y + inner.h <= outer.y + outer.h


def _apart(a: tf.Box, b: tf.Box) -> bool:
    return a.x + a.w <= b.x or b.x + b.w <= a.x or a.y + a.h <= b.y or b.y + b.h <= a.y


def test_every_node_is_drawn_inside_its_cloud_and_nothing_overlaps():
    for topology in (SEED, THREE):
        clouds, nodes = tf.layout(topology)
        assert set(nodes) == {n.hostname for n in topology.nodes} and set(clouds) == set(topology.clouds)
        for n in topology.nodes:
            assert _inside(nodes[n.hostname], clouds[n.cloud]), n.hostname
        boxes = list(clouds.values())
        assert all(_apart(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
        hosts = list(nodes.values())
        assert all(_apart(a, b) for i, a in enumerate(hosts) for b in hosts[i + 1:])


def test_what_ran_where_and_the_measured_links():
    runs = tf.runs_of(SEED, {"taskmanager_nodes": "azure-swarm-worker-1,google-cloud-worker-1",
                             "broker_node": "azure-swarm-manager", "driver_nodes": "azure-swarm-manager"})
    assert runs == {"azure-flink-jobmanager": ["JM"], "azure-swarm-worker-1": ["TM"], "google-cloud-worker-1": ["TM"],
                    "azure-swarm-manager": ["broker", "driver"]}
    cal = pd.DataFrame([{"kind": "rtt", "src_cloud": "azure", "dst_cloud": "google", "measured": 20.4},
                        {"kind": "rtt", "src_cloud": "google", "dst_cloud": "azure", "measured": 20.8},
                        {"kind": "rtt", "src_cloud": "azure", "dst_cloud": "azure", "measured": 0.1},
                        {"kind": "tcp_throughput", "src_cloud": "azure", "dst_cloud": "google", "measured": 96.0},
                        {"kind": "tcp_throughput", "src_cloud": "google", "dst_cloud": "azure", "measured": 94.0}])
    got = tf.measured_links(cal)
    assert list(got) == [("azure", "google")] and got[("azure", "google")]["rtt_ms"] == 20.6
    assert got[("azure", "google")]["mbit"] == 95.0
    assert tf._link_label(SEED.links[0], got[("azure", "google")]) == "RTT 20 ms (measured 20.6)\n100 Mbit/s (95)"


def test_the_report_draws_each_placement_and_names_figures_by_cell_key(tmp_path):
    rows = []
    for i, (placement, tms) in enumerate([("single-cloud", "azure-swarm-worker-1,azure-swarm-worker-2"),
                                          ("multi-cloud", "azure-swarm-worker-1,google-cloud-worker-1")]):
        for rep in (1, 2):
            rows.append({"cell": f"c{i}{rep}", "cell_key": f"tm2-{placement}-r200-rep{rep}", "taskmanagers": 2,
                         "placement": placement, "rate": 200.0, "repetition": rep, "warmup": 2.0, "duration": 10.0,
                         "latency_p50_ms": 1200.0, "latency_p95_ms": 1300.0, "latency_p99_ms": 1400.0,
                         "achieved_rate": 200.0, "processed_rate": 200.0, "lost": 0, "duplicated": 0,
                         "driver_fell_behind": False, "error": "", "taskmanager_nodes": tms,
                         "broker_node": "azure-swarm-manager", "driver_nodes": "azure-swarm-manager"})
    rows.append({**rows[-1], "cell": "trial", "search": True})      # a search's trial: the same key
    pd.DataFrame(rows).to_csv(tmp_path / "cells.csv", index=False)
    (tmp_path / "timeseries").mkdir()
    for r in rows:
        pd.DataFrame({"t_s": np.arange(10.0), "offered_rate": 200.0, "achieved_rate": 200.0, "processed_rate": 200.0,
                      "lag": 5.0}).to_parquet(tmp_path / "timeseries" / f"{r['cell']}.parquet")
    (tmp_path / "manifest.json").write_text(json.dumps({"topology": {"source": "seed.yaml", "text": SEED.text}}))
    written = {str(p.relative_to(tmp_path / "report")) for p in report.report(tmp_path)}
    assert {"topology/tm2-single-cloud.png", "topology/tm2-multi-cloud.pdf"} <= written
    assert {f"timeseries/tm2-{p}-r200-rep{r}.png" for p in ("single-cloud", "multi-cloud") for r in (1, 2)} <= written
    assert "timeseries/tm2-multi-cloud-r200-rep2-search.png" in written


def test_one_self_contained_page_that_a_real_browser_renders(tmp_path):
    import base64
    import io
    import re
    import shutil
    import subprocess

    from PIL import Image

    test_the_report_draws_each_placement_and_names_figures_by_cell_key(tmp_path)
    page = (tmp_path / "report" / "index.html").read_text()
    headings = re.findall(r"<h2>([^<]+)</h2>", page)
    assert headings[:2] == ["The answer", "The question"], headings      # the results before the set-up
    for heading in ("The set-up", "The network, as measured before the cells", "Failures", "Provenance"):
        assert heading in headings, heading
    assert "<h3>Summary</h3>" in page and page.index("<h3>Summary</h3>") < page.index("<h2>The question")
    assert re.findall(r'<img alt="([^"]+)"', page)[0] == "Window latency vs taskmanagers"

    srcs = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(srcs) >= 3 and all(s.startswith("data:image/png;base64,") for s in srcs)   # nothing to fetch
    for s in srcs:                                   # every image is a whole PNG
        Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))).verify()
    assert "<script" not in page and "http://" not in page and "https://" not in page
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium (scripts/with-env installs Debian's)")
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--dump-dom",
                          (tmp_path / "report" / "index.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and "The set-up" in dom.stdout and dom.stdout.count("<img") == len(srcs), dom.stderr[-2000:]
    # the first screen (1280 x 900) shows the latency figure: where the browser laid it out
    probe = tmp_path / "report" / "probe.html"
    probe.write_text(page.replace("</body>", "<script>const r = document.querySelector('img').getBoundingClientRect();"
                                  "document.body.setAttribute('data-top', Math.round(r.top));</script></body>"))
    dom = subprocess.run([browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                          "--dump-dom", probe.as_uri()], capture_output=True, text=True, timeout=120)
    top = re.search(r'data-top="(\d+)"', dom.stdout)
    assert top and int(top.group(1)) < 450, (top, dom.stderr[-2000:])
