"""compare: a real run's folder against copies of it, one unchanged, one slower across the WAN, one
measured with another window (tests/recorded/: 3 repetitions each of 2 taskmanagers in one cloud
and over two)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from testbed import cli
from testbed.results import compare

RECORDED = Path(__file__).resolve().parent / "recorded" / "20261203-131731-ff5c"
MULTI = "tm2-multi-cloud-r500-link:azure-google:rtt_ms=200"
SINGLE = "tm2-single-cloud-r500-link:azure-google:rtt_ms=200"


def _copy(tmp_path: Path, name: str, change=None) -> Path:
    folder = tmp_path / name
    shutil.copytree(RECORDED, folder)
    if change:
        cells = pd.read_csv(folder / "cells.csv")
        change(cells)
        cells.to_csv(folder / "cells.csv", index=False)
    return folder


def _slower(cells: pd.DataFrame) -> None:
    """Multi-cloud cells 300 ms slower at every percentile (each repetition keeps its own noise)."""
    multi = cells["placement"] == "multi-cloud"
    for c in ("latency_p50_ms", "latency_p99_ms"):
        cells.loc[multi, c] += 300


def _verdicts(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    return {(r.cell, r.metric): r.verdict for r in table.itertuples()}


def test_the_same_measurements_show_no_difference_and_how_large_one_could_hide(tmp_path):
    table = compare.compare(RECORDED, _copy(tmp_path, "b"))
    assert len(table) == 6 and set(table["n_a"]) == set(table["n_b"]) == {3}
    assert all(v.startswith("no difference detected at this n (n = 3 and 3; a difference under ") for v in table["verdict"])
    assert (table["difference"] == 0).all() and (table["mdd"] > 0).all() and (table["p_holm"] == 1).all()
    # window latencies, the same on both sides: the test over them finds nothing either
    assert (table.loc[table["metric"].str.contains("latency"), "windows_mw_p"] > 0.9).all()


def test_a_slower_cell_is_found_with_its_interval_and_the_others_are_not(tmp_path):
    table = compare.compare(RECORDED, _copy(tmp_path, "b", _slower))
    v = _verdicts(table)
    assert v[(MULTI, "p50 latency")].startswith("A lower by 300 ms"), v
    row = table[(table["cell"] == MULTI) & (table["metric"] == "p50 latency")].iloc[0]
    assert row["ci_low"] < -300 < row["ci_high"] < 0 and row["p_holm"] < 0.05 and row["p_welch"] < row["p_holm"]
    assert all(v[(SINGLE, m)].startswith("no difference detected") for m in ("p50 latency", "p99 latency"))
    assert v[(MULTI, "achieved throughput")].startswith("no difference detected")


def test_cells_measured_with_another_window_are_refused_naming_window_s_unless_allowed(tmp_path, capsys):
    def window(cells):
        cells["window_s"] = 8.0
    b = _copy(tmp_path, "b", window)
    with pytest.raises(compare.NotComparable, match=r"window_s \(4 against 8\).*--allow-different window_s"):
        compare.compare(RECORDED, b)
    assert cli.main(["compare", str(RECORDED), str(b), "--out", str(tmp_path / "out")]) == 2
    assert "window_s (4 against 8)" in capsys.readouterr().err and not (tmp_path / "out").exists()
    table = compare.compare(RECORDED, b, allow={"window_s"})
    assert table.attrs["differ"] == {"window_s": ("4", "8")}


def test_a_link_axis_value_is_paired_with_the_topology_s_link_as_a_setting_that_differs(tmp_path):
    def no_axis(cells):
        cells["cell_key"] = cells["cell_key"].str.replace("-link:azure-google:rtt_ms=200", "", regex=False)
        cells["wan_links"] = cells["wan_links"].str.replace('"delay_ms": 100.0', '"delay_ms": 10.0', regex=False)
    b = _copy(tmp_path, "b", no_axis)
    with pytest.raises(compare.NotComparable, match=r"wan_links \(azure>google 100 ms.* against azure>google 10 ms"):
        compare.compare(RECORDED, b)
    table = compare.compare(RECORDED, b, allow={"wan_links"})
    assert set(table["cell"]) == {f"{MULTI} | tm2-multi-cloud-r500", f"{SINGLE} | tm2-single-cloud-r500"}


def test_the_cli_prints_the_table_and_writes_a_csv_and_a_self_contained_page(tmp_path, capsys):
    b = _copy(tmp_path, "b", _slower)
    assert cli.main(["compare", str(RECORDED), str(b), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "A lower by 300 ms" in out and "no difference detected" in out
    written = pd.read_csv(tmp_path / "out" / "compare.csv")
    assert list(written.columns[:5]) == ["cell", "metric", "unit", "n_a", "n_b"] and len(written) == 6
    html = (tmp_path / "out" / "compare.html").read_text()
    assert html.count("<img") == 3 and "src='data:image/png;base64," in html and "http" not in html.split("<body>")[1]
    assert "Mann-Whitney" in html and "not independent" in html and "Holm" in html


def test_holm_adjusts_in_steps_and_keeps_the_order():
    assert compare._holm([0.01, 0.04, 0.03, float("nan")])[:3] == pytest.approx([0.03, 0.06, 0.06])


def test_one_repetition_is_not_comparable_rather_than_a_verdict(tmp_path):
    b = _copy(tmp_path, "b")
    cells = pd.read_csv(b / "cells.csv")
    cells[cells["repetition"] == 1].to_csv(b / "cells.csv", index=False)
    table = compare.compare(RECORDED, b)
    assert all(v.startswith("not comparable: n = 3 and 1") for v in table["verdict"]), table["verdict"]


def test_sustainable_throughput_is_compared_per_search_whatever_the_matrix_s_rates(tmp_path):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b")
    for folder, rates in ((a, (4000, 4100, 3900)), (b, (2000, 2100, 1900))):
        pd.DataFrame({"cell_key": [f"tm2-multi-cloud-r1000-rep{i}" for i in (1, 2, 3)], "sustainable_rate": rates,
                      "limited_by": "system", "error": ""}).to_csv(folder / "sustainable.csv", index=False)
    table = compare.compare(a, b)
    row = table[table["metric"] == "sustainable throughput"].iloc[0]
    assert row["cell"] == "tm2-multi-cloud" and (row["n_a"], row["n_b"]) == (3, 3)
    assert row["verdict"].startswith("A higher by 2,000 ev/s"), row["verdict"]
