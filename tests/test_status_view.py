"""``testbed status`` as text, from a status document: per cloud its nodes and what runs there, the
Flink web UI, the WAN; no terminal control characters when the output is not a terminal."""

from __future__ import annotations

import io

from rich.console import Console

from testbed.cli import status_view

STATUS = {
    "run_id": "r1", "topology": "seed", "provider": "emulated", "network": {"name": "fst-r1", "driver": "overlay"},
    "clouds": {"azure": ["azure-swarm-manager", "azure-swarm-worker-1"], "google": ["google-cloud-worker-1"]},
    "nodes": [{"hostname": "azure-swarm-manager", "cloud": "azure", "role": "manager", "address": "10.0.0.2"},
              {"hostname": "azure-swarm-worker-1", "cloud": "azure", "role": "worker", "address": "10.0.0.3"},
              {"hostname": "google-cloud-worker-1", "cloud": "google", "role": "worker", "address": "10.1.0.2"}],
    "swarm": [{"hostname": h, "state": "ready", "labels": {}} for h in
              ("azure-swarm-manager", "azure-swarm-worker-1", "google-cloud-worker-1")],
    "tasks": [{"service": "taskmanager", "node": "google-cloud-worker-1", "state": "running", "desired": "running",
               "container": "0123456789ab", "since": "", "error": ""},
              {"service": "broker", "node": "azure-swarm-manager", "state": "running", "desired": "running",
               "container": "ba9876543210", "since": "", "error": ""}],
    "wan": {"backend": "nfqueue", "links": [{"src": "azure", "dst": "google", "delay_ms": 10.0, "jitter_ms": 0.0,
                                             "loss_pct": 0.0, "bandwidth_mbit": 100.0}],
            "measured": {"at": "2026-11-27T04:50:00+00:00",
                         "links": [{"clouds": ["azure", "google"], "rtt_ms": 20.43, "mbit": 96.2, "ok": True}]}},
    "flink_ui": {"url": "http://10.0.0.4:8081", "answers": True, "taskmanagers": 1, "jobs_running": 0},
}


def _text(statuses) -> str:
    out = io.StringIO()
    Console(file=out, width=160).print(status_view(statuses))     # not a terminal: as in CI logs
    return out.getvalue()


def test_each_cloud_lists_its_nodes_and_what_runs_there():
    text = _text([STATUS])
    assert "cloud azure" in text and "cloud google" in text
    google = text[text.index("cloud google"):]
    assert "google-cloud-worker-1" in google and "taskmanager running (0123456789ab)" in google
    azure = text[text.index("cloud azure"):text.index("cloud google")]
    assert "broker running (ba9876543210)" in azure and "taskmanager" not in azure
    assert "Flink web UI http://10.0.0.4:8081: answers (1 taskmanager(s), 0 job(s) running)" in text
    assert "azure -> google" in text and "100.0 Mbit/s" in text
    assert "\x1b" not in text                               # no control characters in a pipe
    wan = text[text.index("WAN (nfqueue; measured 2026-11-27T04:50:00+00:00)"):]
    assert "20.4 ms" in wan and "96 Mbit/s" in wan and "yes" in wan


def test_a_link_not_measured_yet_says_so():
    text = _text([{**STATUS, "wan": {**STATUS["wan"], "measured": {}}}])
    wan = text[text.index("WAN (nfqueue; not measured yet)"):]
    assert "20.4" not in wan and "100.0 Mbit/s" in wan


def test_what_cannot_be_read_is_said():
    bad = {**STATUS, "swarm": {"error": "manager unreachable"}, "tasks": {"error": "no services"},
           "flink_ui": {"url": "http://10.0.0.4:8081", "answers": False, "why": "ConnectionRefusedError"}}
    text = _text([bad])
    assert "swarm: manager unreachable" in text and "tasks: no services" in text
    assert "does not answer (ConnectionRefusedError)" in text
    assert _text([]).strip() == "no testbed is running"
