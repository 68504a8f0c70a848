"""The report on data with known statistics, checked against numpy and scipy; the sustainable
throughput search on scripted trials."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from testbed.measure import metrics as measure
from testbed.results import report
from testbed.experiment.cell import CellSpec
from testbed.experiment.search import Criteria, find


def test_mean_ci_matches_scipy():
    x = [1210.0, 1290.0, 1250.0, 1330.0]
    m, half, n = report.mean_ci(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert n == 4 and m == pytest.approx(np.mean(x)) and half == pytest.approx((hi - lo) / 2)
    assert np.isnan(report.mean_ci([5.0])[1]) and report.mean_ci([5.0])[0] == 5.0
    m, half, n = report.mean_ci([5.0, 7.0])      # two repetitions: a mean, and no interval at all
    assert (m, n) == (6.0, 2) and np.isnan(half)
    assert np.isnan(report.log_mean_ci([1000.0, 1200.0])[1])


def test_latency_percentiles_match_numpy():
    rng = np.random.default_rng(7)
    lat = rng.gamma(4.0, 300.0, size=5000)
    st = measure.latency_stats(lat)
    for p in (50, 95, 99):
        assert st[f"latency_p{p}_ms"] == pytest.approx(np.percentile(lat, p))
    assert st["latency_max_ms"] == lat.max()


def _cells(rng) -> pd.DataFrame:
    rows = []
    for tm in (1, 2):
        for placement, base in (("single-cloud", 1200.0), ("multi-cloud", 1300.0)):
            for rep in (1, 2, 3):
                p50 = base + 50 * tm + rng.normal(0, 20)
                rows.append({"cell": f"c{tm}{placement[0]}{rep}", "taskmanagers": tm, "placement": placement,
                             "rate": 1000.0, "repetition": rep, "warmup": 2.0, "latency_p50_ms": p50,
                             "latency_p95_ms": p50 + 150, "latency_p99_ms": p50 + 200, "achieved_rate": 1000.0,
                             "processed_rate": 999.0, "lost": 0, "duplicated": 0, "driver_fell_behind": False,
                             "error": ""})
    rows.append({**rows[0], "cell": "failed", "latency_p50_ms": np.nan, "error": "RuntimeError: boom"})
    return pd.DataFrame(rows)


def _write_folder(folder, cells: pd.DataFrame, rng) -> None:
    """A results folder for ``cells``: cells.csv and every cell's latency samples and time series."""
    cells.to_csv(folder / "cells.csv", index=False)
    (folder / "latency").mkdir()
    (folder / "timeseries").mkdir()
    for c in cells["cell"]:
        pd.DataFrame({"window_end_s": np.arange(10.0), "latency_ms": rng.normal(1250, 40, 10),
                      "in_stats": True}).to_parquet(folder / "latency" / f"{c}.parquet")
        pd.DataFrame({"t_s": np.arange(10.0), "offered_rate": 1000.0, "achieved_rate": 1000.0,
                      "processed_rate": 990.0, "lag": 50.0}).to_parquet(folder / "timeseries" / f"{c}.parquet")


def test_summary_and_figures_from_known_data(tmp_path):
    rng = np.random.default_rng(1)
    cells = _cells(rng)
    _write_folder(tmp_path, cells, rng)
    pd.DataFrame([{"taskmanagers": 1, "placement": "single-cloud", "repetition": 1, "sustainable_rate": 4000,
                   "limited_by": "system"},
                  {"taskmanagers": 2, "placement": "single-cloud", "repetition": 1, "sustainable_rate": 5000,
                   "limited_by": "driver"}]).to_csv(tmp_path / "sustainable.csv", index=False)
    written = report.report(tmp_path)
    summ = pd.read_csv(tmp_path / "report" / "summary.csv")
    assert len(summ) == 4 and (summ["repetitions"] == 3).all()   # the failed cell is not averaged
    ok = cells[cells["error"] == ""]
    for _, r in summ.iterrows():
        g = ok[(ok.taskmanagers == r.taskmanagers) & (ok.placement == r.placement)]["latency_p50_ms"]
        lg = np.log(g)
        lo, hi = stats.t.interval(0.95, len(g) - 1, loc=lg.mean(), scale=stats.sem(lg))
        assert r["p50_ms"] == pytest.approx(stats.gmean(g))
        assert (r["p50_ci95_lo_ms"], r["p50_ci95_hi_ms"]) == pytest.approx((np.exp(lo), np.exp(hi)))
        assert r["saturated"] == 0 and r["testbed_limited"] != r["testbed_limited"]    # NaN: none
    names = {p.name for p in written}
    for fig in ("latency_vs_taskmanagers", "latency_cdf", "sustainable_throughput"):
        assert {f"{fig}.pdf", f"{fig}.png"} <= names
    assert len(list((tmp_path / "report" / "timeseries").glob("*.png"))) == len(cells)
    assert "| taskmanagers |" in (tmp_path / "report" / "summary.md").read_text()
    assert all(p.stat().st_size > 1000 for p in written if p.suffix in (".png", ".pdf"))


def test_a_latency_interval_stays_above_zero_however_the_repetitions_spread():
    m, lo, hi, n = report.log_mean_ci([1200.0, 11_700.0, 20_300.0])     # the spread of a broker-bound cell
    assert n == 3 and 0 < lo < m < hi
    assert report.mean_ci([1200.0, 11_700.0, 20_300.0])[1] > report.mean_ci([1200.0, 11_700.0, 20_300.0])[0]
    m, lo, hi, _ = report.log_mean_ci([-5.0, 10.0, 20.0])     # a latency <= 0: the arithmetic interval
    assert m == pytest.approx(25 / 3) and lo < 0


def test_saturated_cells_are_counted_drawn_hollow_and_left_out_of_the_means(tmp_path):
    rng = np.random.default_rng(3)
    cells = _cells(rng)
    cells["testbed_limited"] = ""
    one = (cells.taskmanagers == 2) & (cells.placement == "multi-cloud") & (cells.repetition == 3)
    cells.loc[one, ["latency_p50_ms", "testbed_limited"]] = [26_000.0, "broker"]
    _write_folder(tmp_path, cells, rng)
    report.report(tmp_path)
    summ = pd.read_csv(tmp_path / "report" / "summary.csv")
    r = summ[(summ.taskmanagers == 2) & (summ.placement == "multi-cloud")].iloc[0]
    kept = cells[(cells.taskmanagers == 2) & (cells.placement == "multi-cloud") & ~one]["latency_p50_ms"]
    assert (r["saturated"], r["testbed_limited"], r["repetitions"]) == (1, "broker", 2)
    assert r["p50_ms"] == pytest.approx(stats.gmean(kept))
    assert (summ[summ.index != r.name]["saturated"] == 0).all()
    with_it = report.summary(pd.read_csv(tmp_path / "cells.csv"), include_saturated=True)
    r2 = with_it[(with_it.taskmanagers == 2) & (with_it.placement == "multi-cloud")].iloc[0]
    assert r2["repetitions"] == 3 and r2["p50_ms"] > 2 * r["p50_ms"]


def test_report_names_a_folder_without_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="cells.csv does not exist"):
        report.report(tmp_path)


def test_lag_slope_flat_and_growing():
    t = np.arange(30.0)
    flat = pd.DataFrame({"t_s": t, "lag": 100 + np.sin(t) * 10})
    growing = pd.DataFrame({"t_s": t, "lag": 300.0 * t})
    assert abs(measure.lag_slope(flat, 5, 30)) < 5
    assert measure.lag_slope(growing, 5, 30) == pytest.approx(300.0)


def _scripted(capacity: float, driver_max: float):
    """A system that keeps up to `capacity` ev/s, driven by a driver good for `driver_max`."""
    def run(spec: CellSpec) -> dict:
        behind = spec.rate > driver_max
        slope = max(0.0, spec.rate - capacity)
        return {"offered_rate": spec.rate, "lag_slope": slope, "latency_p99_ms": 1500.0 + slope,
                "lost": 0, "driver_fell_behind": behind, "cell": f"r{spec.rate:g}"}
    return run


def test_search_finds_the_system_limit():
    res = find(_scripted(capacity=6000, driver_max=50_000), CellSpec(taskmanagers=2), start=1000,
               max_rate=100_000, refine=3, criteria=Criteria())
    assert res["limited_by"] == "system"
    assert 4000 <= res["sustainable_rate"] <= 6000 + 0.05 * 8000 and res["first_unsustainable_rate"] <= 8000
    assert [t["rate"] for t in json.loads(res["rates_tried"])][:4] == [1000, 2000, 4000, 8000]


def test_search_never_mistakes_the_driver_for_the_system():
    res = find(_scripted(capacity=50_000, driver_max=3000), CellSpec(taskmanagers=2), start=1000,
               max_rate=100_000, criteria=Criteria())
    # at 4000 ev/s the driver falls behind: the search narrows below it (3000 kept up, 3500 the
    # driver could not offer) and says the limit is the driver's
    assert res["limited_by"] == "driver" and res["sustainable_rate"] == 3000 and res["first_unsustainable_rate"] is None
    tried = json.loads(res["rates_tried"])
    assert [t["rate"] for t in tried] == [1000, 2000, 4000, 3000, 3500]
    assert tried[-1]["why"] == "the driver fell behind its schedule"


def test_below_a_rate_the_driver_cannot_offer_the_search_still_finds_the_system_limit():
    res = find(_scripted(capacity=6000, driver_max=7500), CellSpec(taskmanagers=2), start=1000,
               max_rate=100_000, refine=3, criteria=Criteria())
    assert res["limited_by"] == "system" and res["sustainable_rate"] == 6000 and res["first_unsustainable_rate"] == 6500
    assert [t["rate"] for t in json.loads(res["rates_tried"])] == [1000, 2000, 4000, 8000, 6000, 7000, 6500]


def test_a_failed_trial_stops_the_search_and_is_not_a_limit():
    good = _scripted(capacity=50_000, driver_max=50_000)

    def crashes_at_4000(spec: CellSpec) -> dict:
        if spec.rate >= 4000:
            return {"offered_rate": spec.rate, "lag_slope": float("nan"), "latency_p99_ms": float("nan"),
                    "lost": 0, "driver_fell_behind": False, "cell": None, "error": "RuntimeError: the driver failed"}
        return good(spec)
    res = find(crashes_at_4000, CellSpec(taskmanagers=2), start=1000, max_rate=100_000, criteria=Criteria())
    assert res["limited_by"] == "error" and res["sustainable_rate"] == 2000 and res["first_unsustainable_rate"] is None
    assert json.loads(res["rates_tried"])[-1]["why"] == "the trial failed: RuntimeError: the driver failed"


def test_a_folder_of_search_trials_only_is_drawn(tmp_path):
    """A run of only sustainable-throughput searches: no matrix cell, so no latency CDF, but the
    trials' time series and the search figure (this failed with a zero-column figure)."""
    rng = np.random.default_rng(2)
    cells = _cells(rng).assign(search=True)
    _write_folder(tmp_path, cells, rng)
    pd.DataFrame([{"taskmanagers": 1, "placement": "single-cloud", "repetition": 1, "sustainable_rate": 4000,
                   "limited_by": "system"}]).to_csv(tmp_path / "sustainable.csv", index=False)
    names = {p.name for p in report.report(tmp_path)}
    assert "sustainable_throughput.png" in names and "latency_cdf.png" not in names


def test_recovery_summary_and_figure_per_scenario_and_placement(tmp_path):
    rng = np.random.default_rng(2)
    base = _cells(rng).iloc[:2].to_dict("records")[0]
    rows = []
    for sc, placement, rec, t, rep in [("", "single-cloud", np.nan, np.nan, 1),
                                       ("examples/kill.yaml", "single-cloud", True, 8.0, 1),
                                       ("examples/kill.yaml", "single-cloud", True, 10.0, 2),
                                       ("examples/kill.yaml", "multi-cloud", True, 12.0, 1),
                                       ("examples/cut.yaml", "multi-cloud", False, np.nan, 1)]:
        rows.append({**base, "cell": f"{placement}{sc[9:13]}{rep}", "placement": placement, "repetition": rep,
                     "scenario": sc, "recovered": rec, "recovery_time_s": t, "restarts": 1 if sc else 0,
                     "lost": 0, "duplicated": 400 if sc else 0, "peak_latency_ms": 9000.0, "duration": 45.0,
                     "fault_at_s": 12.0 if sc else np.nan, "loss_cause": "none"})
    cells = pd.DataFrame(rows)
    _write_folder(tmp_path, cells, rng)
    written = {p.name for p in report.report(tmp_path)}
    rec = pd.read_csv(tmp_path / "report" / "recovery.csv")
    assert list(rec["scenario"]) == ["cut", "kill", "kill"] and list(rec["placement"]) == [
        "multi-cloud", "multi-cloud", "single-cloud"]                       # the fault-free cell is not in it
    kill_single = rec[(rec["scenario"] == "kill") & (rec["placement"] == "single-cloud")].iloc[0]
    assert kill_single["cells"] == 2 and kill_single["recovered"] == 2 and kill_single["recovery_time_s"] == 9.0
    assert kill_single["duplicated"] == 800 and kill_single["peak_latency_s"] == 9.0
    cut = rec[rec["scenario"] == "cut"].iloc[0]
    assert cut["recovered"] == 0 and np.isnan(cut["recovery_time_s"])
    assert {"recovery.md", "recovery_time.png", "recovery_time.pdf"} <= written


def test_minutes_of_a_long_cell(tmp_path):
    cells = pd.DataFrame([{"cell": "soak", "cell_key": "tm3-multi-cloud-r1000-rep1", "duration": 180.0},
                          {"cell": "short", "cell_key": "tm1-single-cloud-r1000-rep1", "duration": 60.0}])
    t = np.arange(181.0)
    series = pd.concat([pd.DataFrame({"cell": c, "t_s": t, "offered_rate": 1000.0,
                                      "achieved_rate": np.where(t < 120, 1000.0, 900.0),
                                      "broker_cpu_cores": np.where(t < 60, 0.05, 0.1)}) for c in ("soak", "short")])
    samples = pd.DataFrame({"cell": "soak", "window_end_s": np.arange(2.0, 180.0, 2.0),
                            "latency_ms": np.where(np.arange(2.0, 180.0, 2.0) < 60, 1000.0, 1500.0), "in_stats": True})
    m = report.minutes(cells, series, samples)
    assert m["cell_key"].unique().tolist() == ["tm3-multi-cloud-r1000-rep1"]   # only cells of two minutes or more
    assert m["minute"].tolist() == [1, 2, 3]
    assert m["acked_fraction"].tolist() == pytest.approx([1.0, 1.0, 0.9])
    assert m["p50_ms"].tolist() == [1000.0, 1500.0, 1500.0]
    assert m["broker_cpu_cores"].tolist() == pytest.approx([0.05, 0.1, 0.1])
