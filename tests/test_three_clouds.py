"""Three clouds, the broker in one of them: taskmanagers in the two clouds without
the broker, RTT 20/60/80 ms. Whatever is lost must be attributed (Flink's late drops, its sink's
sends, the results topic against what the collector read), never left unexplained, and never the
testbed's own collector's doing."""

from __future__ import annotations

import pytest

from testbed.experiment.cell import CellSpec, run_cell
from testbed.workload.pipeline import WindowSpec
from tests.conftest import own_testbed

# a topology of its own next to the seed's: not while the seed's network is measured
pytestmark = [pytest.mark.engine, pytest.mark.extended, pytest.mark.exclusive("lifecycle")]


USER_BROKER = "fst-test-broker:local"
START = """#!/bin/sh
# a user's broker image: configured by its environment, as Apache Kafka's image is
exec /usr/local/bin/tansu broker --listener-url tcp://0.0.0.0:9092 --advertised-listener-url "$ADVERTISED" \\
    --storage-engine memory://tansu/
"""


@pytest.fixture(scope="module")
def three(fst_locks, tmp_path_factory):
    """The three-cloud topology, whose broker is an image built here and named in the topology
    (``broker: {image: ...}``), not one of the testbed's own."""
    from testbed import images as img
    from testbed.providers.engine import host_client

    client = host_client()
    ctx = tmp_path_factory.mktemp("user-broker")
    (ctx / "start.sh").write_text(START)
    base = img.build_all(client, img.APP_RECIPES)["broker"]
    (ctx / "Dockerfile").write_text(f"FROM {base}\nCOPY start.sh /start.sh\nENTRYPOINT [\"/bin/sh\", \"/start.sh\"]\n")
    client.images.build(path=str(ctx), tag=USER_BROKER, rm=True)
    try:
        with own_testbed(fst_locks, "three-clouds") as tb:
            yield tb
    finally:
        client.images.remove(USER_BROKER, force=True)


def test_taskmanagers_in_the_two_clouds_without_the_broker_lose_nothing_unexplained(three):
    row = run_cell(three, CellSpec(taskmanagers=2, placement="multi-cloud", rate=1000, duration=30, warmup=5,
                                   window=WindowSpec(4, 1, 1)))
    said = {k: row.get(k) for k in ("lost", "duplicated", "missing_windows", "late_records_dropped", "sink_records_sent",
                                    "result_records_read", "results_unread", "restarts", "loss_cause", "latency_p50_ms")}
    print(said)
    assert sorted(row["taskmanager_clouds"].split(",")) == ["east", "west"] and row["broker_node"] == "north-manager"
    assert row["broker"] == USER_BROKER and row["events_acked"] == row["events_sent"]   # the user's image carried it
    assert row["results_unread"] == 0, said                   # the collector read the results topic to its end
    assert row["sink_records_sent"] == row["result_records_read"] > 0, said   # every result sent was read
    assert row["late_records_dropped"] >= 0 and row["restarts"] == 0, said
    if row["lost"] == 0:
        assert row["loss_cause"] == "none", said
    else:                                                     # attributed, with the cause named in the row
        assert not row["loss_cause"].startswith("not explained"), said
