"""Figures and summary tables from a results folder, fit for a thesis.

    python -m testbed report results/<session-id>

reads ``cells.csv`` (one row per cell and repetition), ``latency/<cell>.parquet`` (every window
latency of a cell), ``timeseries/<cell>.parquet`` (per-second rates and lag of a cell) and
``sustainable.csv`` (if the sustainable-throughput search ran), and writes into ``report/``:

- ``latency_vs_taskmanagers``  p50/p95/p99 window latency vs taskmanager count, one line per
  placement, geometric mean over repetitions with 95 % confidence intervals (Student t on the
  logarithms, so an interval stays above zero), one panel per rate; a cell the testbed saturated
  (``testbed_limited``) is a hollow marker of its own and left out of the means unless asked;
- ``sustainable_throughput``   the highest sustainable rate vs taskmanager count, per placement;
- ``latency_cdf``              latency CDFs, one curve per (taskmanagers, placement), per rate;
- ``timeseries/<cell key>``    offered and achieved rate, consumer lag and window latency over time;
- ``topology/tm<N>-<placement>``  the set-up of each placement: clouds, nodes, what ran where, the
  links with their targets and what the fidelity check measured;
- ``index.html``               all of it on one self-contained page (``results/page.py``);
- ``summary.csv`` / ``summary.md``  one line per (taskmanagers, placement, job, the other axes' values, rate);
- ``minutes.csv`` / ``minutes.md``  cells of two minutes or more, per minute of the load: the share
  of offered events acknowledged, window latency p50/p99, the broker's CPU (a soak's drift);
- ``recovery.csv`` / ``recovery.md`` / ``recovery_time``  cells with a scenario: per (scenario,
  placement, taskmanagers, rate) the recovery time (mean over repetitions), how many recovered,
  restarts, lost, duplicated, peak latency and what explains a loss; the figure draws the recovery
  time per placement, one bar group per scenario, a cell that did not recover as a hatched bar to
  the end of its load;
- ``link_sweep.csv`` / ``link_sweep.md`` / ``throughput_vs_rtt``  with a link axis on rtt_ms
  (``--links A-B:rtt_ms=...``): per RTT the events/s the source read, beside the limit a fixed receive
  buffer sets (buffer / RTT / bytes per record, ``measure/window.py``) and their ratio.

Every figure is written as PDF (vector, for the thesis) and PNG (for a quick look).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..measure.metrics import stale_seconds
from .store import read_table

PERCENTILES = (50, 95, 99)
GROUP = ["taskmanagers", "placement", "job", "axis_values", "rate"]


def _with_job(cells: pd.DataFrame) -> pd.DataFrame:
    """Folders from before the job axis measured the built-in hop-window job; from before the link and
    client-settings axes, none of their values."""
    label = cells["job_label"] if "job_label" in cells else pd.Series(np.nan, index=cells.index)
    axes = cells["axis_values"] if "axis_values" in cells else pd.Series(np.nan, index=cells.index)
    return cells.assign(job=label.astype(object).where(label.notna(), "hop-window"),
                        axis_values=axes.astype(object).where(axes.notna(), ""))


def _series_label(placement: str, job: str, jobs: int, axes: str = "") -> str:
    return (placement if jobs == 1 else f"{job}, {placement}") + (f", {axes}" if axes else "")


MIN_N = 3      # fewer repetitions than this: a mean, and no interval at all (two points say nothing of the spread)


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, int]:
    """Mean and half-width of its two-sided Student-t confidence interval (nan for n < ``MIN_N``)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                   dtype=float)
    n = x.size
    if n == 0:
        return math.nan, math.nan, 0
    if n < MIN_N:
        return float(x.mean()), math.nan, n
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
    return float(x.mean()), float(half), n


def log_mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float, int]:
    """Geometric mean and its two-sided confidence interval (Student t on the logarithms): a latency's
    interval then stays above zero, as latency does. With a value <= 0, the arithmetic ``mean_ci``."""
    x = np.asarray([v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
                   dtype=float)
    if x.size and (x <= 0).any():
        m, half, n = mean_ci(x, confidence)
        return m, m - half, m + half, n
    m, half, n = mean_ci(np.log(x), confidence)
    return (math.exp(m), math.exp(m - half), math.exp(m + half), n) if n else (math.nan, math.nan, math.nan, 0)


def saturated(cells: pd.DataFrame) -> pd.Series:
    """Cells whose row says a part of the testbed was the limit (measure/saturation.py)."""
    if "testbed_limited" not in cells:
        return pd.Series(False, index=cells.index)
    v = cells["testbed_limited"]
    return v.notna() & (v.astype(str).str.strip() != "") & (v.astype(str) != "nan")


def matrix_cells(cells: pd.DataFrame) -> pd.Series:
    """The matrix's finished cells: failed cells and the search's trials are not averaged."""
    errors = (cells["error"].astype(object).where(cells["error"].notna(), "") if "error" in cells
              else pd.Series("", index=cells.index))
    search = (cells["search"].astype(str) == "True" if "search" in cells
              else pd.Series(False, index=cells.index))
    return (errors == "") & ~search


def summary(cells: pd.DataFrame, include_saturated: bool = False) -> pd.DataFrame:
    """One row per (taskmanagers, placement, rate) of the matrix (not the search's trials):
    repetitions averaged, cells the testbed saturated (left out of the means unless
    ``include_saturated``) and what saturated, latency percentiles (geometric mean over repetitions and
    its 95 % interval), rates, accounting, whether the driver kept up."""
    ok = _with_job(cells[matrix_cells(cells)])
    ok = ok.assign(_saturated=saturated(ok))
    rows = []
    for key, g in ok.groupby(GROUP, sort=True):
        row = dict(zip(GROUP, key))
        row["saturated"] = int(g["_saturated"].sum())
        parts = sorted({p for v in g.loc[g["_saturated"], "testbed_limited"] for p in str(v).split(",") if p}) \
            if row["saturated"] else []
        row["testbed_limited"] = ",".join(parts)
        if not include_saturated:
            g = g[~g["_saturated"]]
        row["repetitions"] = len(g)
        for p in PERCENTILES:
            m, lo, hi, _ = log_mean_ci(g[f"latency_p{p}_ms"])
            row[f"p{p}_ms"], row[f"p{p}_ci95_lo_ms"], row[f"p{p}_ci95_hi_ms"] = m, lo, hi
        for col in ("achieved_rate", "processed_rate"):
            row[col] = float(g[col].mean()) if len(g) else math.nan
        # a job with nothing to account has NaN: the sum stays NaN, not a silent 0
        row["lost"] = float(pd.to_numeric(g["lost"], errors="coerce").sum(min_count=1))
        row["duplicated"] = float(pd.to_numeric(g["duplicated"], errors="coerce").sum(min_count=1))
        row["driver_fell_behind"] = bool(g["driver_fell_behind"].astype(bool).any()) if len(g) else False
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(frame: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            if math.isnan(v):
                return "–"
            return f"{v:.3f}" if abs(v) < 10 and v != round(v) else f"{v:,.0f}"
        return str(v)
    head = "| " + " | ".join(frame.columns) + " |\n|" + "|".join("---" for _ in frame.columns) + "|\n"
    return head + "".join("| " + " | ".join(fmt(v) for v in r) + " |\n" for r in frame.itertuples(index=False))


def _style():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 10,
                         "figure.dpi": 150, "savefig.bbox": "tight", "axes.grid": True, "grid.alpha": 0.3,
                         "pdf.fonttype": 42})
    return plt


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    for p in paths:
        fig.savefig(p)
    return paths


def plot_latency(summ: pd.DataFrame, out: Path, cells: pd.DataFrame | None = None,
                 include_saturated: bool = False) -> list[Path]:
    """Latency percentiles vs taskmanagers (means of the cells the testbed did not saturate); each
    saturated cell is drawn on its own as a hollow marker (in the means too with ``include_saturated``)."""
    plt = _style()
    rates = sorted(summ["rate"].unique())
    jobs = summ["job"].nunique()
    fig, axes = plt.subplots(1, len(rates), figsize=(5.2 * len(rates), 4.0), squeeze=False, sharey=True)
    markers = {50: "o", 95: "s", 99: "^"}
    sat = pd.DataFrame()
    if cells is not None and len(cells):
        matrix = _with_job(cells[matrix_cells(cells)])
        sat = matrix[saturated(matrix)]
    marked = False
    for ax, rate in zip(axes[0], rates):
        sub = summ[summ["rate"] == rate]
        for i, ((job, placement, axv), g) in enumerate(sub.groupby(["job", "placement", "axis_values"])):
            g = g.sort_values("taskmanagers")
            for p in PERCENTILES:
                y = g[f"p{p}_ms"] / 1000
                err = np.vstack([(g[f"p{p}_ms"] - g[f"p{p}_ci95_lo_ms"]).fillna(0), (g[f"p{p}_ci95_hi_ms"] - g[f"p{p}_ms"]).fillna(0)]) / 1000
                ax.errorbar(g["taskmanagers"] + (i - 0.5) * 0.06, y, yerr=err, marker=markers[p], capsize=3,
                            color=f"C{i}", linestyle=["-", "--", ":"][PERCENTILES.index(p)],
                            label=f"{_series_label(placement, job, jobs, axv)}, p{p}")
                if p == PERCENTILES[-1]:    # each point's n, once, beside its highest percentile
                    for x, yy, n in zip(g["taskmanagers"] + (i - 0.5) * 0.06, y, g["repetitions"]):
                        if yy == yy:
                            ax.annotate(f"n={n}", (x, yy), textcoords="offset points", xytext=(6, 0), ha="left",
                                        fontsize=7, color=f"C{i}")
                s = sat[(sat["rate"] == rate) & (sat["job"] == job) & (sat["placement"] == placement)
                        & (sat["axis_values"] == axv)] if len(sat) else sat
                if len(s):
                    ax.scatter(s["taskmanagers"] + (i - 0.5) * 0.06, s[f"latency_p{p}_ms"] / 1000, marker=markers[p],
                               s=70, facecolors="none", edgecolors=f"C{i}", linewidths=1.2, zorder=4,
                               label=None if marked else "hollow: a cell the testbed saturated"
                               + (" (in the means)" if include_saturated else " (not in the means)"))
                    marked = True
        ax.set_title(f"offered {rate:,.0f} events/s")
        ax.set_xlabel("taskmanagers")
        ax.set_xticks(sorted(sub["taskmanagers"].unique()))
    axes[0][0].set_ylabel("latency (s)")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("Latency: of windows from their end, of events from their time\n"
                 f"(geometric mean over n repetitions; 95 % CI, Student t on the logarithms, where n >= {MIN_N})",
                 y=1.08)
    paths = _save(fig, out, "latency_vs_taskmanagers")
    plt.close(fig)
    return paths


def plot_sustainable(sust: pd.DataFrame, out: Path) -> list[Path]:
    plt = _style()
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for i, (placement, g) in enumerate(sust.groupby("placement")):
        agg = [(tm, *mean_ci(gg["sustainable_rate"])) for tm, gg in g.groupby("taskmanagers")]
        tms, means, halves, ns = zip(*agg)
        ax.errorbar(tms, np.asarray(means) / 1000, yerr=np.nan_to_num(np.asarray(halves)) / 1000, marker="o",
                    capsize=3, color=f"C{i}", label=placement)
        for x, y, n in zip(tms, means, ns):
            ax.annotate(f"n={n}", (x, y / 1000), textcoords="offset points", xytext=(6, 4), fontsize=7, color=f"C{i}")
        # the search ended before the system failed: the rate is a lower bound of its limit
        testbed = ~g["limited_by"].isin(["system", "max_rate", "error"])
        for why, marker, said in (("testbed", "x", "testbed-limited"), ("max_rate", "^", "search maximum reached"),
                                  ("error", "s", "a trial failed")):
            limited = g[testbed] if why == "testbed" else g[g["limited_by"] == why]
            if len(limited):
                ax.scatter(limited["taskmanagers"], limited["sustainable_rate"] / 1000, marker=marker, s=80,
                           facecolors="none" if marker == "s" else None, color=f"C{i}",
                           label=f"{placement}: {said} (lower bound)")
    ax.set_xlabel("taskmanagers")
    ax.set_ylabel("sustainable throughput (thousand events/s)")
    ax.set_xticks(sorted(sust["taskmanagers"].unique()))
    ax.set_ylim(0, max(1.0, sust["sustainable_rate"].max() / 1000 * 1.2))
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.18), frameon=False)
    ax.set_title("Highest sustainable input rate")
    paths = _save(fig, out, "sustainable_throughput")
    plt.close(fig)
    return paths


def link_sweep(cells: pd.DataFrame) -> pd.DataFrame:
    """Throughput against a link axis's RTT (``--links A-B:rtt_ms=...``): per RTT and series (placement,
    taskmanagers, rate, the other axes' values) the source's processed rate (mean over repetitions),
    the fixed receive buffer's limit (``source_window_cap_ev_s``: buffer / RTT / bytes per record;
    NaN where the buffer autotunes) and their ratio. Empty without such an axis."""
    cols = [c for c in cells if c.startswith("link_") and c.endswith("_rtt_ms")]
    m = _with_job(cells[matrix_cells(cells)]) if cols else pd.DataFrame()
    if not cols or m[cols[0]].nunique() < 2:
        return pd.DataFrame()
    col = cols[0]
    m = m.assign(settings=m["axis_values"].map(lambda v: " ".join(p for p in str(v).split() if not p.startswith("link:"))
                                               or "defaults"), _saturated=saturated(m))
    rows = []
    for (placement, tm, settings, rate, rtt), g in m.groupby(["placement", "taskmanagers", "settings", "rate", col]):
        cap = pd.to_numeric(g.get("source_window_cap_ev_s"), errors="coerce").mean() if "source_window_cap_ev_s" in g \
            else math.nan
        processed = float(g["processed_rate"].mean())
        rows.append({"link": col[len("link_"):-len("_rtt_ms")], "rtt_ms": rtt, "placement": placement, "taskmanagers": tm,
                     "settings": settings, "offered_rate": rate, "processed_rate": round(processed, 1),
                     "predicted_cap": round(cap, 1) if cap == cap else math.nan,
                     "measured_over_predicted": round(processed / cap, 3) if cap == cap and cap < rate else math.nan,
                     "repetitions": len(g), "testbed_limited": ",".join(sorted(
                         {p for v in g.loc[g["_saturated"], "testbed_limited"] for p in str(v).split(",") if p}))})
    return pd.DataFrame(rows)


def plot_link_sweep(sweep: pd.DataFrame, out: Path) -> list[Path]:
    plt = _style()
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for i, ((placement, tm, settings, rate), g) in enumerate(sweep.groupby(["placement", "taskmanagers", "settings",
                                                                             "offered_rate"])):
        g = g.sort_values("rtt_ms")
        label = f"{tm} TM {placement}, {settings}, offered {rate:,.0f}/s"
        ax.plot(g["rtt_ms"], g["processed_rate"] / 1000, marker="o", color=f"C{i}", label=f"{label}: measured")
        hollow = g[g["testbed_limited"] != ""]
        if len(hollow):
            ax.scatter(hollow["rtt_ms"], hollow["processed_rate"] / 1000, s=120, facecolors="none",
                       edgecolors="k", label="ringed: the testbed was a limit there")
        pred = g[g["predicted_cap"].notna()]
        if len(pred):
            ax.plot(pred["rtt_ms"], np.minimum(pred["predicted_cap"], rate) / 1000, linestyle="--", color=f"C{i}",
                    label=f"{label}: buffer / RTT / record")
        ax.axhline(rate / 1000, color=f"C{i}", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"RTT of {sweep['link'].iloc[0]} (ms)")
    ax.set_ylabel("events/s the source read (thousands)")
    ax.set_ylim(0, None)
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.15), frameon=False, fontsize=7)
    ax.set_title("Throughput across the link against its RTT\n(dotted: offered; dashed: the receive buffer's limit)")
    paths = _save(fig, out, "throughput_vs_rtt")
    plt.close(fig)
    return paths


def plot_cdf(cells: pd.DataFrame, samples: pd.DataFrame, out: Path, include_saturated: bool = False) -> list[Path]:
    """Latency CDFs per (taskmanagers, placement, job); the windows of cells the testbed saturated are a
    dotted curve of their own (in the solid one too with ``include_saturated``)."""
    plt = _style()
    with_job = _with_job(cells)
    merged = samples.merge(with_job.assign(_saturated=saturated(with_job))[["cell", "_saturated", *GROUP]], on="cell")
    rates = sorted(merged["rate"].unique())
    jobs = merged["job"].nunique()
    fig, axes = plt.subplots(1, len(rates), figsize=(5.2 * len(rates), 4.0), squeeze=False, sharey=True)
    for ax, rate in zip(axes[0], rates):
        sub = merged[merged["rate"] == rate]
        for i, ((tm, placement, job, axv), g) in enumerate(sub.groupby(["taskmanagers", "placement", "job",
                                                                         "axis_values"])):
            label = f"{tm} TM, {_series_label(placement, job, jobs, axv)}"
            for part, style, said in ((g if include_saturated else g[~g["_saturated"]], "-", ""),
                                      (g[g["_saturated"]], ":", " (testbed saturated)")):
                if not len(part):
                    continue
                x = np.sort(part["latency_ms"].to_numpy()) / 1000
                ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", color=f"C{i}", linestyle=style,
                        label=label + said)
        ax.set_title(f"offered {rate:,.0f} events/s")
        ax.set_xlabel("latency (s)")
    axes[0][0].set_ylabel("fraction of results")
    axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    fig.suptitle("Latency CDF (all repetitions)")
    paths = _save(fig, out, "latency_cdf")
    plt.close(fig)
    return paths


def figure_names(cells: pd.DataFrame) -> dict[str, str]:
    """cell id -> the name of its figures: its key (``tm3-multi-cloud-r1000-rep1``), ``-search`` for a
    search's trial, and the cell id appended where a key still repeats (a cell that failed, then ran
    again in a resumed session)."""
    if "cell" not in cells:
        return {}
    keys = cells["cell_key"] if "cell_key" in cells else pd.Series([None] * len(cells), index=cells.index)
    search = cells["search"].astype(str).str.lower().eq("true") if "search" in cells else pd.Series(False, index=cells.index)
    names = [(str(k) if isinstance(k, str) and k else str(c)) for c, k in zip(cells["cell"], keys)]
    names = [n + "-search" if s and not n.endswith("-search") else n for n, s in zip(names, search)]
    seen = pd.Series(names).value_counts()
    return {str(c): n if seen[n] == 1 else f"{n}-{c}" for c, n in zip(cells["cell"], names)}


def plot_timeseries(cells: pd.DataFrame, series: pd.DataFrame, samples: pd.DataFrame, out: Path) -> list[Path]:
    plt = _style()
    paths = []
    names = figure_names(cells)
    for cell, g in series.groupby("cell"):
        meta = cells[cells["cell"] == cell]
        if meta.empty:
            continue
        m = meta.iloc[0]
        g = g.sort_values("t_s")
        if "duration" in m and pd.notna(m["duration"]):   # the second after the load is not a rate
            g = g[g["t_s"] < float(m["duration"])]
        fig, axes = plt.subplots(3, 1, figsize=(7.0, 7.0), sharex=True)
        axes[0].plot(g["t_s"], g["achieved_rate"], label="achieved (broker acks)", color="C1")
        if "processed_rate" in g:   # not drawn where Flink's metric readings were stale
            stale = stale_seconds(g)
            axes[0].plot(g["t_s"], g["processed_rate"].where(~stale), color="C2", alpha=0.8,
                         label="processed (Flink source)" + ("; gaps: its readings stale" if stale.any() else ""))
        axes[0].plot(g["t_s"], g["offered_rate"], label="offered", color="k", linestyle="--", zorder=3)
        axes[0].set_ylabel("events/s")
        axes[0].set_ylim(0, 1.25 * max(float(g[["offered_rate", "achieved_rate"]].max().max()), 1.0))
        axes[0].legend(frameon=False, fontsize=9, loc="lower right")
        axes[1].plot(g["t_s"], g["lag"], color="C3")
        axes[1].set_ylabel("consumer lag (events)")
        axes[1].set_ylim(bottom=min(0.0, float(g["lag"].min()) if g["lag"].notna().any() else 0.0))
        lat = samples[samples["cell"] == cell] if len(samples) else samples
        if len(lat):   # the warm-up's windows and the measured ones; not those closed by the final flush
            lat = lat[lat["in_stats"] | (lat["window_end_s"] < m["warmup"])]
            axes[2].plot(lat["window_end_s"], lat["latency_ms"] / 1000, ".", color="C4", markersize=3)
        axes[2].set_ylabel("latency (s)")
        axes[2].set_xlabel("time since the first event (s): window end, or event time")
        for ax in axes:
            ax.axvspan(0, m["warmup"], color="grey", alpha=0.12, lw=0)
        said = _faults(axes, m, g)
        job = m["job_label"] if "job_label" in m and isinstance(m["job_label"], str) else "hop-window"
        limited = m["testbed_limited"] if "testbed_limited" in m and isinstance(m["testbed_limited"], str) else ""
        fig.suptitle(f"{names.get(str(cell), cell)} (cell {cell}): {m['taskmanagers']} TM, {m['placement']}, job {job}\n"
                     f"offered {m['rate']:,.0f} events/s (grey: warm-up{said})"
                     + (f"\nTESTBED SATURATED ({limited}): this cell measured the testbed" if limited else ""),
                     color="firebrick" if limited else "black")
        paths += _save(fig, out / "timeseries", names.get(str(cell), str(cell)))
        plt.close(fig)
    return paths


def _num(m, key: str) -> float:
    v = m[key] if key in m else math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _faults(axes, m, g: pd.DataFrame) -> str:
    """A scenario cell: the fault to its heal shaded red, seconds the job was not RUNNING shaded
    orange, the recovery marked; returns the legend's words for the title."""
    fault, heal, rec = _num(m, "fault_at_s"), _num(m, "heal_at_s"), _num(m, "recovery_time_s")
    if math.isnan(fault):
        return ""
    end = heal if not math.isnan(heal) and heal > fault else fault + 0.5
    for ax in axes:
        ax.axvspan(fault, end, color="red", alpha=0.15, lw=0)
        if not math.isnan(rec):
            ax.axvline(fault + rec, color="green", linestyle="--", lw=1.2)
    if "job_state" in g:
        down = g[(g["job_state"].astype(str) != "RUNNING") & (g["job_state"].astype(str) != "")]["t_s"]
        for t in down:
            axes[0].axvspan(t, t + 1, color="orange", alpha=0.25, lw=0)
    return ("; red: fault" + (" to heal" if end != fault + 0.5 else "") + ", orange: job not running"
            + (f", green: recovered after {rec:.1f}s" if not math.isnan(rec) else ", not recovered"))


RECOVERY_KEYS = ["scenario", "placement", "taskmanagers", "rate"]


def recovery_summary(cells: pd.DataFrame) -> pd.DataFrame:
    """One line per (scenario, placement, taskmanagers, rate) of the cells that ran a scenario."""
    if "scenario" not in cells or "recovered" not in cells:
        return pd.DataFrame()
    faulty = cells[cells["scenario"].fillna("").astype(str) != ""].copy()
    if "error" in faulty:
        faulty = faulty[faulty["error"].isna() | (faulty["error"].astype(str) == "")]
    if faulty.empty:
        return pd.DataFrame()
    faulty["scenario"] = faulty["scenario"].map(lambda s: Path(str(s)).stem)
    rows = []
    for key, g in faulty.groupby(RECOVERY_KEYS, sort=True):
        rec = g["recovered"].astype(str).str.lower().isin(("true", "1"))
        mean, half, n = mean_ci(g.loc[rec, "recovery_time_s"])
        causes = sorted({str(c) for c in g.get("loss_cause", pd.Series(dtype=object)).dropna()} - {"none", "nan"})
        rows.append({**dict(zip(RECOVERY_KEYS, key)), "cells": len(g), "recovered": int(rec.sum()),
                     "recovery_time_s": mean, "recovery_time_ci95": half,
                     "restarts": float(pd.to_numeric(g["restarts"], errors="coerce").mean()),
                     "lost": float(pd.to_numeric(g["lost"], errors="coerce").sum()),
                     "duplicated": float(pd.to_numeric(g["duplicated"], errors="coerce").sum()),
                     "peak_latency_s": float(pd.to_numeric(g["peak_latency_ms"], errors="coerce").max()) / 1000,
                     "duration": float(pd.to_numeric(g["duration"], errors="coerce").max()),
                     "fault_at_s": float(pd.to_numeric(g["fault_at_s"], errors="coerce").mean()),
                     "loss_cause": "; ".join(causes)})
    return pd.DataFrame(rows)


def plot_recovery(rec: pd.DataFrame, out: Path) -> list[Path]:
    plt = _style()
    scenarios = list(dict.fromkeys(rec["scenario"]))
    series = list(dict.fromkeys(zip(rec["placement"], rec["taskmanagers"])))
    width = 0.8 / max(len(series), 1)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.8 * len(scenarios) + 2), 3.6))
    for i, (placement, tms) in enumerate(series):
        for j, sc in enumerate(scenarios):
            g = rec[(rec["scenario"] == sc) & (rec["placement"] == placement) & (rec["taskmanagers"] == tms)]
            if g.empty:
                continue
            r = g.iloc[0]
            x = j + (i - (len(series) - 1) / 2) * width
            if r["recovered"]:
                ax.bar(x, r["recovery_time_s"], width, color=f"C{i}",
                       yerr=None if math.isnan(r["recovery_time_ci95"]) else r["recovery_time_ci95"], capsize=3)
            if r["recovered"] < r["cells"]:     # not recovered within the load: up to its end
                ax.bar(x, r["duration"] - r["fault_at_s"], width, color="none", edgecolor=f"C{i}", hatch="//")
            ax.annotate(f"n={r['cells']:.0f}, {r['restarts']:.0f} restart(s)\nlost {r['lost']:.0f}", (x, 0), textcoords="offset points",
                        xytext=(0, 3), ha="center", fontsize=7, rotation=90, va="bottom")
    handles = [plt.Rectangle((0, 0), 1, 1, color=f"C{i}") for i in range(len(series))]
    ax.legend(handles, [f"{p}, {t} TM" for p, t in series], frameon=False, fontsize=9)
    ax.set_xticks(range(len(scenarios)), scenarios)
    ax.set_ylabel("recovery time (s)")
    ax.set_title("time from the fault until latency (and lag) were back in band\nhatched: not recovered "
                 "within the load", fontsize=10)
    paths = _save(fig, out, "recovery_time")
    plt.close(fig)
    return paths


def _json(text, default):
    """A row's JSON field; ``default`` when it is empty or not JSON (NaN read back from CSV)."""
    try:
        return json.loads(text) if isinstance(text, str) and text else default
    except ValueError:
        return default


def plot_topologies(folder: Path, cells: pd.DataFrame, out: Path) -> list[Path]:
    """``topology/tm<N>-<placement>``: the set-up of each placement of the matrix, from the manifest's
    topology, what ran where (the cells' rows) and the links as calibrated."""

    import dataclasses

    from ..model.topology import TopologyError, links_with, parse
    from . import topology_figure as tf

    manifest = folder / "manifest.json"
    if not manifest.exists() or "taskmanager_nodes" not in cells:
        return []
    try:
        topo = json.loads(manifest.read_text())["topology"]
        topology = parse(topo["text"], topo.get("source", "manifest"))
    except (KeyError, ValueError, TopologyError):
        return []
    cal = folder / "calibration.csv"
    calibration = pd.read_csv(cal, keep_default_na=False) if cal.exists() else None
    paths: list[Path] = []
    seen = set()
    for _, r in cells.iterrows():
        key = (r["taskmanagers"], r["placement"], r["taskmanager_nodes"])
        if not isinstance(r["taskmanager_nodes"], str) or key in seen:
            continue
        seen.add(key)
        name = f"tm{r['taskmanagers']}-{r['placement']}"
        budgets, links = _json(r.get("node_cpu_budgets"), {}), _json(r.get("wan_links"), [])
        # the links as the cell had them (a link axis changes them) and as calibrated for that value
        changes = tuple((d["src"], d["dst"], f, v) for d in links
                        for f, v in (("rtt_ms", 2 * d["delay_ms"]), ("bandwidth_mbit", d.get("bandwidth_mbit"))))
        cell_topology = dataclasses.replace(topology, links=links_with(topology.links, changes))
        value = r.get("links") if isinstance(r.get("links"), str) else ""
        measured = {} if calibration is None else tf.measured_links(
            calibration[calibration["links"].astype(str) == value] if "links" in calibration else calibration)
        paths += tf.draw(cell_topology, out / "topology", name, runs=tf.runs_of(topology, r.to_dict()),
                         measured=measured, budgets=budgets,
                         title=f"{topology.name}: {r['taskmanagers']} taskmanager(s), placement {r['placement']}"
                               + (f", links {value}" if value else ""))
    return paths


def minutes(cells: pd.DataFrame, series: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """Per cell of at least two minutes and per minute of its load: the share of the offered events the
    broker acknowledged, the measured windows' latency p50/p99 (by window end) and the broker's CPU. A
    soak's drift shows here: a testbed that degrades with time, or a system that does."""
    rows = []
    names = figure_names(cells)
    for cell, g in series.groupby("cell") if len(series) else ():
        meta = cells[cells["cell"] == cell]
        if meta.empty or "duration" not in meta or not float(meta.iloc[0]["duration"]) >= 120:
            continue
        m = meta.iloc[0]
        lat = samples[(samples["cell"] == cell) & samples["in_stats"]] if len(samples) else samples
        for minute in range(int(float(m["duration"]) // 60)):
            lo, hi = 60 * minute, 60 * (minute + 1)
            s = g[(g["t_s"] >= lo) & (g["t_s"] < hi)]
            w = lat[(lat["window_end_s"] >= lo) & (lat["window_end_s"] < hi)]["latency_ms"] if len(lat) else []
            offered = float(s["offered_rate"].sum())
            rows.append({"cell_key": names.get(str(cell), str(cell)), "minute": minute + 1,
                         "acked_fraction": float(s["achieved_rate"].sum()) / offered if offered else math.nan,
                         "p50_ms": float(np.percentile(w, 50)) if len(w) else math.nan,
                         "p99_ms": float(np.percentile(w, 99)) if len(w) else math.nan,
                         "broker_cpu_cores": float(s["broker_cpu_cores"].mean()) if "broker_cpu_cores" in s else math.nan})
    return pd.DataFrame(rows)


def _per_cell(folder: Path) -> pd.DataFrame:
    """Concatenate ``<folder>/<cell>.parquet`` files, with a ``cell`` column."""
    frames = [pd.read_parquet(p).assign(cell=p.stem) for p in sorted(folder.glob("*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def report(folder: str | Path, include_saturated: bool = False) -> list[Path]:
    """Write every figure and table of a results folder; returns the files written. Cells the
    testbed saturated are left out of the means unless ``include_saturated``."""
    folder = Path(folder)
    cells_path = folder / "cells.csv"
    if not cells_path.exists():
        raise FileNotFoundError(f"{cells_path} does not exist: is {folder} a results folder of the experiments?")
    cells = read_table(cells_path)
    out = folder / "report"
    out.mkdir(exist_ok=True)
    written: list[Path] = []
    summ = summary(cells, include_saturated)
    summ.to_csv(out / "summary.csv", index=False)
    (out / "summary.md").write_text(_markdown(summ))
    written += [out / "summary.csv", out / "summary.md"]
    if len(summ):
        written += plot_latency(summ, out, cells, include_saturated)
    lat = _per_cell(folder / "latency")
    matrix = cells[matrix_cells(cells)]
    if len(lat) and len(matrix):        # (a folder may hold only a search's trials)
        written += plot_cdf(matrix, lat[lat["in_stats"]], out, include_saturated)
    ts = _per_cell(folder / "timeseries")
    if len(ts):
        written += plot_timeseries(cells, ts, lat, out)
        mins = minutes(cells, ts, lat)
        if len(mins):
            mins.to_csv(out / "minutes.csv", index=False)
            (out / "minutes.md").write_text(_markdown(mins))
            written += [out / "minutes.csv", out / "minutes.md"]
    sweep = link_sweep(cells)
    if len(sweep):
        sweep.to_csv(out / "link_sweep.csv", index=False)
        (out / "link_sweep.md").write_text(_markdown(sweep))
        written += [out / "link_sweep.csv", out / "link_sweep.md"] + plot_link_sweep(sweep, out)
    rec = recovery_summary(cells)
    if len(rec):
        rec.to_csv(out / "recovery.csv", index=False)
        (out / "recovery.md").write_text(_markdown(rec))
        written += [out / "recovery.csv", out / "recovery.md"] + plot_recovery(rec, out)
    written += plot_topologies(folder, cells, out)
    sust = folder / "sustainable.csv"
    if sust.exists():
        written += plot_sustainable(pd.read_csv(sust), out)
    from . import page
    written.append(page.write(folder, cells, summ, rec))      # last: it embeds the figures above
    return written


def markdown_page(folder: str | Path, page: str | Path, title: str = "", include_saturated: bool = False) -> list[Path]:
    """A measurements page from a results folder's ``cells.csv`` and ``manifest.json`` alone, so that a
    page in the docs is regenerated from the small files kept beside it, never typed by hand: its
    date, commit, machine and command (from the manifest), the summary table, the link sweep where
    the matrix had a link axis, and the latency figure (``<page>-latency.png`` beside the page).
    Returns the files written."""
    folder, page = Path(folder), Path(page)
    cells = read_table(folder / "cells.csv")
    manifest = json.loads((folder / "manifest.json").read_text())
    session = (manifest.get("sessions") or [{}])[0]
    git, host = manifest.get("git") or {}, manifest.get("host") or {}
    command = " ".join(map(str, session.get("command") or [])) or "(not recorded)"
    memory = host.get("memory_bytes")
    lines = [f"# {title or 'Results ' + folder.name}", "",
             f"Measured {str(manifest.get('started', '?'))[:10]} at commit `{str(git.get('commit', '?'))[:7]}`"
             + (" (with uncommitted changes)" if git.get("dirty") else "")
             + f" on {host.get('cpus', '?')} cores" + (f", {memory / 2**30:.0f} GiB" if memory else "")
             + f", kernel {host.get('kernel', '?')}, from the results folder `{folder.name}` "
             f"({len(cells)} row(s)). The command:", "", "```sh", command, "```", "",
             f"Regenerate this page with `python -m testbed report {folder.as_posix()} --markdown {page.as_posix()}"
             + (f" --title '{title}'" if title else "") + "` (generated; do not edit).", ""]
    summ = summary(cells, include_saturated)
    keep = [c for c in summ.columns if not c.endswith(("_lo_ms", "_hi_ms"))]
    lines += ["## Summary", "", "Latency percentiles are geometric means over the repetitions; "
              "`saturated` counts the cells the testbed itself limited (left out of the means).", "",
              _markdown(summ[keep]).rstrip(), ""]
    sweep = link_sweep(cells)
    if len(sweep):
        lines += ["## Throughput against the link", "", _markdown(sweep).rstrip(), ""]
    written = [page]
    if len(summ):
        figures = plot_latency(summ, page.parent / "_figures", cells, include_saturated)
        png = page.with_name(f"{page.stem}-latency.png")
        next(p for p in figures if p.suffix == ".png").replace(png)
        for p in figures:
            p.unlink(missing_ok=True)
        (page.parent / "_figures").rmdir()
        lines += ["## Latency", "", f"![Latency vs taskmanagers]({png.name})", ""]
        written.append(png)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("\n".join(lines))
    return written
