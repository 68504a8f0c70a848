"""A topology whose clouds name their regions, provisioned and calibrated: its link takes the RTT
published for those regions (model/regions.py), and the emulation meets it."""

from __future__ import annotations

import pytest

from testbed.stack import calibrate
from tests.conftest import own_testbed

# a topology of its own next to the seed's: not while the seed's network is measured
pytestmark = [pytest.mark.engine, pytest.mark.extended, pytest.mark.exclusive("lifecycle")]


@pytest.fixture(scope="module")
def regions(fst_locks):
    with own_testbed(fst_locks, "two-regions") as tb:
        with fst_locks.load("ex"):      # it measures the network: no other engine test meanwhile
            rows = calibrate.calibrate(tb)
        yield tb, rows


def test_a_topology_with_regions_fills_in_its_link_and_passes_calibration(regions):
    tb, rows = regions
    (link,) = tb.topology.links
    assert link.rtt_ms == 4.82 and link.bandwidth_mbit == 100 and "Skyplane" in link.source
    inter = [r for r in rows if r["kind"] == "rtt" and r["src_cloud"] != r["dst_cloud"]]
    assert inter and all(r["target"] == 4.82 for r in inter)
    calibrate.check(rows)       # raises naming every miss
