"""Link settings and client settings as axes of the matrix, and the RTT under load: their parsing,
their cells and keys, and the rules that judge them. No engine (tests/test_wan_load.py drives one)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from testbed.experiment.options import EXPERIMENT, TESTBED, Experiment, OptionError
from testbed.measure import saturation
from testbed.measure.prober import loaded_rtt, parse_ping, rtt_band, rtt_per_second
from testbed.model.topology import Link, links_with, load


def _options(**kw) -> dict:
    o = {opt.dest: opt.kwargs.get("default") for opt in TESTBED + EXPERIMENT}
    o.update(repetitions=1, duration=20.0, warmup=4.0, window=2.0, slide=1.0, watermark_delay=0.5,
             taskmanagers="1", placements="single-cloud")
    o.update(kw)
    return o


def test_a_link_axis_groups_the_matrix_by_its_values_and_names_them_in_keys_and_rows():
    exp = Experiment.from_options(_options(links="google-azure:rtt_ms=40,10", rates="100,200"))
    cells, _ = exp.cells(load("seed"))
    # the values in the order given, outermost: the WAN is set once per group
    assert [(c.links, c.rate) for c in cells] == [
        ((("azure", "google", "rtt_ms", 40.0),), 100), ((("azure", "google", "rtt_ms", 40.0),), 200),
        ((("azure", "google", "rtt_ms", 10.0),), 100), ((("azure", "google", "rtt_ms", 10.0),), 200)]
    assert cells[0].key == "tm1-single-cloud-r100-rep1-link:azure-google:rtt_ms=40"
    assert len({c.key for c in cells}) == 4
    p = cells[2].params()
    assert p["links"] == "azure-google:rtt_ms=10" and p["link_azure-google_rtt_ms"] == 10.0
    # the value replaces the topology's field and keeps the others
    (seed_link,) = load("seed").links
    (got,) = links_with(load("seed").links, cells[2].links)
    assert got.rtt_ms == 10 and got.bandwidth_mbit == seed_link.bandwidth_mbit


def test_two_link_axes_give_every_combination():
    exp = Experiment.from_options(_options(links="azure-google:rtt_ms=10,20;azure-google:buffer_ms=5,1200"))
    cells, _ = exp.cells(load("seed"))
    assert [c.links_text for c in cells] == [
        "azure-google:rtt_ms=10;azure-google:buffer_ms=5", "azure-google:rtt_ms=10;azure-google:buffer_ms=1200",
        "azure-google:rtt_ms=20;azure-google:buffer_ms=5", "azure-google:rtt_ms=20;azure-google:buffer_ms=1200"]


def test_bad_link_axes_are_named_all_at_once():
    with pytest.raises(OptionError) as e:
        Experiment.from_options(_options(links="azure-google:rtt=10;azure-google:loss_pct=200;x:rtt_ms=a"))
    text = str(e.value)
    assert "3 bad experiment options" in text
    assert "'azure-google:rtt=10' is not LINK:FIELD=V,V... with FIELD one of rtt_ms, jitter_ms" in text
    assert "'azure-google:loss_pct=200': loss_pct must be in [0, 100]" in text and "'x:rtt_ms=a'" in text
    with pytest.raises(OptionError, match=r"--links: no link 'azure-aws' in topology 'seed'; its links: azure-google"):
        Experiment.from_options(_options(links="azure-aws:rtt_ms=10")).cells(load("seed"))
    with pytest.raises(OptionError, match=r"--links: the links of real clouds are what they are"):
        Experiment.from_options(_options(links="azure-google:rtt_ms=10", cloud="real"))


def test_client_settings_alternatives_are_an_axis_with_the_defaults_first():
    exp = Experiment.from_options(_options(source_properties="|receive.buffer.bytes=-1",
                                           producer_properties="linger.ms=5|linger.ms=20"))
    cells, _ = exp.cells(load("seed"))
    assert len(cells) == 4
    assert [c.key for c in cells[:2]] == [
        "tm1-single-cloud-r1000-rep1-producer:linger.ms=5",
        "tm1-single-cloud-r1000-rep1-producer:linger.ms=5-source:receive.buffer.bytes=-1"]
    assert json.loads(cells[1].params()["source_properties"]) == {"fetch.max.wait.ms": "100",
                                                                 "receive.buffer.bytes": "-1"}
    assert json.loads(cells[3].params()["producer_properties"])["linger.ms"] == "20"
    with pytest.raises(OptionError, match="--source-properties: an alternative is given twice"):
        Experiment.from_options(_options(source_properties="a=1|a=1"))
    with pytest.raises(OptionError, match=r"--producer-properties: may not set"):
        Experiment.from_options(_options(producer_properties="linger.ms=5|bootstrap.servers=x"))
    # a search per group of the axes, not one for all of them
    exp = Experiment.from_options(_options(source_properties="|receive.buffer.bytes=-1", sustainable=True))
    assert len(exp.searches(exp.cells(load("seed"))[0])) == 2


PING = """PING 10.0.2.3 (10.0.2.3) 56(84) bytes of data.
[1700000000.100000] 64 bytes from 10.0.2.3: icmp_seq=1 ttl=63 time=20.4 ms
[1700000000.200000] 64 bytes from 10.0.2.3: icmp_seq=2 ttl=63 time=21.0 ms
[1700000001.300000] 64 bytes from 10.0.2.3: icmp_seq=4 ttl=63 time=48.0 ms

--- 10.0.2.3 ping statistics ---
4 packets transmitted, 3 received, 25% packet loss, time 301ms
"""


def test_ping_output_gives_replies_with_their_times_and_the_probes_sent():
    replies, sent = parse_ping(PING)
    assert replies == [(1700000000.1, 20.4), (1700000000.2, 21.0), (1700000001.3, 48.0)] and sent == 4


def test_the_loaded_rtt_is_summarised_over_the_measured_part_and_judged_against_the_links_band():
    link = Link(("azure", "google"), rtt_ms=20)
    assert rtt_band(link) == (18.0, 22.0)
    assert rtt_band(Link(("a", "b"), rtt_ms=5, jitter_ms=1)) == (2.0, 8.0)
    replies, sent = parse_ping(PING)
    samples = {"azure-google": {"replies": replies, "sent": sent}}
    row = loaded_rtt(samples, [link], 1700000000.0, 1700000000.5)      # the 48 ms reply is outside it
    assert row["wan_rtt_loaded_p50_ms"] == pytest.approx(20.7) and row["wan_rtt_loaded_link"] == "azure-google"
    assert row["wan_rtt_loaded"]["azure-google"]["probes"] == 2
    part = saturation.wan({}, {}, row["wan_rtt_loaded"])
    assert part["_why"] == []
    row = loaded_rtt(samples, [link], 1700000001.0, 1700000002.0)
    part = saturation.wan({}, {}, row["wan_rtt_loaded"])
    assert part["_why"] == ["the RTT on azure-google under the load was 48.0 ms (median of 1 probes), "
                            "outside its band 18-22 ms"]
    assert saturation.limited({}, {"wan": part})["testbed_limited"] == "wan"
    # per second since t0, NaN where no probe came back
    series = rtt_per_second(samples, np.array([0, 1, 2]), 1700000000.0)
    assert series["wan_rtt_ms:azure-google"][:2] == [pytest.approx(20.7), 48.0]
    assert np.isnan(series["wan_rtt_ms:azure-google"][2])
    # no probes: nothing judged, the columns say so
    empty = loaded_rtt({}, [link], 0, 1)
    assert empty["wan_rtt_loaded"] == {} and np.isnan(empty["wan_rtt_loaded_p50_ms"])


def test_a_link_sweep_puts_each_rtts_throughput_beside_the_receive_buffers_limit(tmp_path):
    from testbed.measure.window import consumer_cap, record_bytes, receive_buffer
    from testbed.results.report import link_sweep, plot_link_sweep
    assert record_bytes(100, 2) == 112 and receive_buffer({}) == 65536 and np.isnan(receive_buffer({"receive.buffer.bytes": "-1"}))
    assert consumer_cap(65536, 20, 112) == pytest.approx(29_257, abs=1) and consumer_cap(65536, 0, 112) == np.inf
    import pandas as pd
    rows = []
    for rtt in (40, 80):
        for settings, cap, got in (("", consumer_cap(65536, rtt, 112), consumer_cap(65536, rtt, 112) * 0.9),
                                   ("source:receive.buffer.bytes=-1", np.nan, 20_000)):
            rows.append({"cell": f"c{rtt}{settings[:3]}", "error": "", "search": False, "placement": "single-cloud:google",
                         "taskmanagers": 1, "rate": 20_000, "link_azure-google_rtt_ms": rtt,
                         "axis_values": f"{settings} link:azure-google:rtt_ms={rtt}".strip(),
                         "processed_rate": got, "source_window_cap_ev_s": cap, "testbed_limited": ""})
    sweep = link_sweep(pd.DataFrame(rows))
    fixed = sweep[sweep["settings"] == "defaults"]
    assert list(fixed["rtt_ms"]) == [40, 80] and list(fixed["measured_over_predicted"]) == [0.9, 0.9]
    tuned = sweep[sweep["settings"] == "source:receive.buffer.bytes=-1"]
    assert tuned["predicted_cap"].isna().all() and list(tuned["processed_rate"]) == [20_000, 20_000]
    assert [p.name for p in plot_link_sweep(sweep, tmp_path)] == ["throughput_vs_rtt.pdf", "throughput_vs_rtt.png"]
    assert link_sweep(pd.DataFrame(rows[:2])).empty      # one RTT is no sweep


def test_a_topology_with_regions_takes_its_links_from_the_published_table():
    from pathlib import Path
    from testbed.model.topology import TopologyError, parse
    t = load(str(Path(__file__).resolve().parent.parent / "examples" / "seed-regions.yaml"))
    (link,) = t.links
    assert link.rtt_ms == 4.82 and link.bandwidth_mbit == 100          # the file's bandwidth is kept
    assert "azure:westeurope - gcp:europe-west4-a: RTT 4.82 ms" in link.source and "Skyplane" in link.source
    text = """
clouds:
  aws: {region: eu-west-1, nodes: [{hostname: m, role: manager}, {hostname: j, role: jobmanager}]}
  azure: {region: westeurope, nodes: [{hostname: w, role: worker}]}
  google: {region: moon-base1, nodes: [{hostname: x, role: worker}]}
  edge: {region: lab, nodes: [{hostname: y, role: worker}]}
links:
  - {clouds: [aws, azure]}
  - {clouds: [aws, google], rtt_ms: 30}
"""
    with pytest.raises(TopologyError) as e:
        parse(text)
    problems = dict(e.value.problems)
    assert "no published measurements for region 'gcp:moon-base1'" in problems["clouds.google.region"]
    assert "europe-west4" in problems["clouds.google.region"]
    assert "name the region with its provider, e.g. azure:lab" in problems["clouds.edge.region"]
    (aws_azure,) = parse(text.replace("moon-base1", "europe-west4").replace("region: lab", "region: aws:eu-west-2")).links[:1]
    assert 10 < aws_azure.rtt_ms < 40 and aws_azure.bandwidth_mbit > 1000     # both filled, 64 connections' figure


def test_windows_a_job_had_not_computed_because_it_fell_behind_are_a_result_not_a_loss():
    import pandas as pd
    from testbed.experiment.session import cell_problems
    from testbed.measure.metrics import loss_attribution, source_behind_at_end
    series = pd.DataFrame({"t_s": [0.0, 1, 2, 3], "lag": [0.0, 10_000, 20_000, 99_999]})
    assert source_behind_at_end(series, 3) == 20_000       # the load's last second, not the drain after it
    row = {"lost": 90_000, "duplicated": 0, "window_s": 10.0, "slide_s": 2.0, "source_behind_at_end": 20_000,
           "results_unread": 0}
    row.update(loss_attribution(row))
    assert row["loss_cause"].startswith("behind: the job's source was 20,000 events behind")
    assert cell_problems(row) == []
    # more missing than the backlog can hold, or no backlog: a loss, named as one
    for behind in (10_000, 0):
        r = {**row, "source_behind_at_end": behind, "loss_cause": ""}
        r.update(loss_attribution(r))
        assert r["loss_cause"].startswith("not explained") and cell_problems(r) == ["lost 90000"]
