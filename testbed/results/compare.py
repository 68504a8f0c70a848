"""``python -m testbed compare A B``: two results folders, cell by cell, with the significance of
each difference (docs/results.md, "Comparing runs").

The unit is the repetition: a cell's repetitions in A against the same cell's in B. For each metric
(p50 and p99 latency, achieved and sustainable throughput):

- the difference of the means, A − B, with a bootstrap interval (each side's repetitions resampled
  with replacement);
- Welch's t-test on the repetitions, its p adjusted by Holm's method over every comparison of the
  run (so that many cells and metrics do not make a difference out of noise);
- for latencies, a Mann-Whitney U test over the window latencies of all repetitions, labelled as
  such: the windows of one cell are not independent, so its p is optimistic, and it never decides
  the verdict on its own;
- the minimum detectable difference at these repetitions (a two-sided test at the confidence asked,
  with 80 % power), so that "no difference detected" is never read as "equal".

Cells are paired by their key without the repetition; a cell whose link values (a link axis) are
the only thing its key differs in is paired too, and its links are then a setting that differs.
Cells measured under different settings (the window, the duration, the CPU limits, the links, the
job's file...) are refused unless the settings are allowed by name.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .report import matrix_cells, saturated
from .store import read_table

# what a cell was measured with, besides its key: cells to be compared must agree on each
SETTINGS = ("duration", "warmup", "warmup_fraction", "slots", "keys", "payload_bytes", "event_bytes",
            "driver_processes", "driver_nodes", "cpu_scale", "cpu_limits", "cpu_jobmanager", "cpu_taskmanager",
            "cpu_broker", "cpu_driver", "checkpoint_interval_s", "checkpoint_mode", "spare_slots", "job_sha256",
            "job_args", "scenario_sha256", "window_s", "slide_s", "watermark_delay_s", "submit", "provider",
            "wan_links", "flink_version", "broker", "host_cpus")


@dataclass(frozen=True)
class Metric:
    column: str
    name: str
    unit: str
    windows: bool = False       # latency: also a test over the window latencies


METRICS = (Metric("latency_p50_ms", "p50 latency", "ms", True), Metric("latency_p99_ms", "p99 latency", "ms", True),
           Metric("achieved_rate", "achieved throughput", "ev/s"),
           Metric("sustainable_rate", "sustainable throughput", "ev/s"))
POWER = 0.8
RESAMPLES = 9999


class NotComparable(ValueError):
    """Two folders whose cells were measured under different settings (each named)."""


def group_key(cell_key: str) -> str:
    """'tm2-multi-cloud-r500-rep3-link:azure-google:rtt_ms=200' -> 'tm2-multi-cloud-r500-link:...'"""
    return re.sub(r"(-r[0-9.e+]+)-rep\d+", r"\1", str(cell_key), count=1)


def search_key(cell_key: str) -> str:
    """A search's key without its repetition and its first rate ('tm2-multi-cloud-search-of...')."""
    return re.sub(r"-r[0-9.e+]+-rep\d+", "", str(cell_key), count=1)


def _without_links(key: str) -> str:
    return re.sub(r"-link:.*?(?=-search$|$)", "", key)


def _folder(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, Path]:
    path = Path(path)
    if not (path / "cells.csv").exists():
        raise FileNotFoundError(f"{path / 'cells.csv'} does not exist: is {path} a results folder of the experiments?")
    cells = read_table(path / "cells.csv")
    cells = cells[matrix_cells(cells) & ~saturated(cells)].copy()
    cells["group"] = cells["cell_key"].map(group_key)
    sust = path / "sustainable.csv"
    searches = read_table(sust) if sust.exists() else pd.DataFrame(columns=["cell_key", "sustainable_rate", "group"])
    if len(searches):
        searches = searches[searches["error"].fillna("").astype(str) == ""] if "error" in searches else searches
        searches = searches.assign(group=searches["cell_key"].map(search_key))
    return cells, searches, path


def pairs(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, str]]:
    """(A's group, B's group) of the cells measured in both: the same key, or the same key but for
    its link values where each side has one such group."""
    ga, gb = list(dict.fromkeys(a["group"])), list(dict.fromkeys(b["group"]))
    out = [(g, g) for g in ga if g in gb]
    left = [g for g in ga if g not in gb]
    right = [g for g in gb if g not in ga]
    for g in left:
        same = [h for h in right if _without_links(h) == _without_links(g)]
        mine = [h for h in left if _without_links(h) == _without_links(g)]
        if len(same) == 1 and len(mine) == 1:
            out.append((g, same[0]))
    return out


def _text(column: str, v) -> str:
    if column == "wan_links" and isinstance(v, str) and v.startswith("["):
        try:
            return "; ".join(f"{d['src']}>{d['dst']} {d['delay_ms']:g} ms, {d.get('loss_pct') or 0:g} % loss, "
                             f"{d.get('bandwidth_mbit') or 0:g} Mbit/s" for d in json.loads(v))
        except (ValueError, KeyError, TypeError):
            return v
    if v is None or isinstance(v, float) and math.isnan(v):
        return "(none)"
    return f"{v:g}" if isinstance(v, float) else str(v)


def differing_settings(a: pd.DataFrame, b: pd.DataFrame, matched: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """setting -> (A's values, B's values) where the paired cells differ."""
    out: dict[str, tuple[str, str]] = {}
    for col in SETTINGS:
        if col not in a or col not in b:
            continue
        for ga, gb in matched:
            va = sorted({_text(col, v) for v in a.loc[a["group"] == ga, col]})
            vb = sorted({_text(col, v) for v in b.loc[b["group"] == gb, col]})
            if va != vb:
                out[col] = (", ".join(va), ", ".join(vb))
                break
    return out


def _values(frame: pd.DataFrame, group: str, column: str) -> np.ndarray:
    if column not in frame:
        return np.array([])
    x = pd.to_numeric(frame.loc[frame["group"] == group, column], errors="coerce").to_numpy(dtype=float)
    return x[np.isfinite(x)]


def _windows(folder: Path, cells: pd.DataFrame, group: str) -> np.ndarray:
    out = []
    for cell in cells.loc[cells["group"] == group, "cell"].astype(str):
        p = folder / "latency" / f"{cell}.parquet"
        if p.exists():
            lat = pd.read_parquet(p)
            out.append(lat.loc[lat["in_stats"].astype(bool), "latency_ms"].to_numpy(dtype=float))
    return np.concatenate(out) if out else np.array([])


def _welch(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """(p, standard error of the difference, degrees of freedom)."""
    from scipy import stats
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0:
        return (1.0 if x.mean() == y.mean() else 0.0), 0.0, float(x.size + y.size - 2)
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    return float(stats.ttest_ind(x, y, equal_var=False).pvalue), se, df


def _bootstrap(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats
    if x.std() == 0 and y.std() == 0:
        d = float(x.mean() - y.mean())
        return d, d
    res = stats.bootstrap((x, y), lambda u, v, axis=-1: u.mean(axis=axis) - v.mean(axis=axis), paired=False,
                          confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                          rng=np.random.default_rng(0))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment of ``p`` (nan stays nan)."""
    order = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    out, running = [math.nan] * len(p), 0.0
    for rank, (v, i) in enumerate(order):
        running = max(running, min(1.0, v * (len(order) - rank)))
        out[i] = running
    return out


def compare(a: str | Path, b: str | Path, allow: set[str] = frozenset(), confidence: float = 0.95) -> pd.DataFrame:
    """One row per cell and metric of A against B (module docstring); NotComparable naming every
    setting that differs and is not in ``allow``, or when no cell was measured in both."""
    from scipy import stats
    ca, sa, pa = _folder(a)
    cb, sb, pb = _folder(b)
    matched = pairs(ca, cb)
    if not matched:
        raise NotComparable(f"no cell of {pa} was measured in {pb} (cells: {', '.join(dict.fromkeys(ca['group']))}; "
                            f"and: {', '.join(dict.fromkeys(cb['group']))})")
    differ = differing_settings(ca, cb, matched)
    refused = {k: v for k, v in differ.items() if k not in allow}
    if refused:
        raise NotComparable(f"{pa.name} and {pb.name} were measured under different settings: " + "; ".join(
            f"{k} ({v[0]} against {v[1]})" for k, v in refused.items())
            + f". Give --allow-different {','.join(refused)} to compare them anyway")
    alpha = 1 - confidence
    rows, values, windows_p = [], [], {}
    sustainable = METRICS[-1]
    # a search is one per taskmanagers and placement (and axes), whatever the rates of the matrix
    searched = [(ga, gb, sustainable) for ga, gb in pairs(sa, sb)] if len(sa) and len(sb) else []
    for ga, gb, m in [(ga, gb, m) for ga, gb in matched for m in METRICS[:-1]] + searched:
        src_a, src_b = (sa, sb) if m is sustainable else (ca, cb)
        x, y = _values(src_a, ga, m.column), _values(src_b, gb, m.column)
        row = {"cell": ga if ga == gb else f"{ga} | {gb}", "metric": m.name, "unit": m.unit,
               "n_a": x.size, "n_b": y.size, "mean_a": x.mean() if x.size else math.nan,
               "mean_b": y.mean() if y.size else math.nan, "difference": math.nan, "ci_low": math.nan,
               "ci_high": math.nan, "p_welch": math.nan, "p_holm": math.nan, "mdd": math.nan,
               "windows_mw_p": math.nan, "verdict": ""}
        if x.size and y.size:
            row["difference"] = row["mean_a"] - row["mean_b"]
        if x.size >= 2 and y.size >= 2:
            p, se, df = _welch(x, y)
            row["p_welch"] = p
            row["ci_low"], row["ci_high"] = _bootstrap(x, y, confidence)
            row["mdd"] = (se, df)       # (in units once the number of tests is known)
        else:
            row["verdict"] = (f"not comparable: n = {x.size} and {y.size} (at least 2 repetitions on each "
                              "side)")
        if m.windows:
            if (ga, gb) not in windows_p:        # one test of the distribution per cell, on both latency rows
                wa, wb = _windows(pa, ca, ga), _windows(pb, cb, gb)
                windows_p[ga, gb] = (float(stats.mannwhitneyu(wa, wb, alternative="two-sided").pvalue)
                                     if wa.size and wb.size else math.nan)
            row["windows_mw_p"] = windows_p[ga, gb]
        rows.append(row)
        values.append((x.tolist(), y.tolist()))
    tests = sum(1 for r in rows if not math.isnan(r["p_welch"]))
    for row, adjusted in zip(rows, _holm([r["p_welch"] for r in rows])):
        row["p_holm"] = adjusted
        if isinstance(row["mdd"], tuple):
            # at the strictest level Holm's method may hold a test to (alpha / tests): never too small
            se, df = row["mdd"]
            level = alpha / max(tests, 1)
            row["mdd"] = (stats.t.ppf(1 - level / 2, df) + stats.t.ppf(POWER, df)) * se if se else 0.0
        if row["verdict"]:
            continue
        d, unit = row["difference"], row["unit"]
        excludes_zero = row["ci_low"] > 0 or row["ci_high"] < 0
        if adjusted < alpha and excludes_zero:
            rel = f" ({abs(d) / row['mean_b']:.0%})" if row["mean_b"] else ""
            row["verdict"] = f"A {'lower' if d < 0 else 'higher'} by {abs(d):,.4g} {unit}{rel}"
        else:
            row["verdict"] = (f"no difference detected at this n (n = {row['n_a']} and {row['n_b']}; a difference "
                              f"under {row['mdd']:,.3g} {unit} would likely go unseen)")
    table = pd.DataFrame(rows)
    # each row's repetitions, A's and B's, for the figures
    table.attrs.update(a=str(pa), b=str(pb), confidence=confidence, values=values, allowed=sorted(allow & set(differ)),
                       differ={k: v for k, v in differ.items() if k in allow})
    return table


METHODS = ("Unit: the repetition. Difference: mean of A − mean of B. Interval: percentile bootstrap of that "
           "difference ({resamples} resamples of each side's repetitions). p (Welch): Welch's t-test on the "
           "repetitions; p (Holm): adjusted over the {tests} tests of this comparison, and it decides the verdict "
           "with the interval. MDD: the difference a two-sided test finds with 80 % power at the strictest level "
           "Holm's method may apply (1 − confidence, divided by the number of tests). p (windows, Mann-Whitney): "
           "whether the window latencies of all repetitions come from one distribution (the same test on both "
           "latency rows); windows of one cell are not independent, so it is optimistic and never decides the "
           "verdict.")


def write(table: pd.DataFrame, out: str | Path, a: str | Path, b: str | Path) -> list[Path]:
    """compare.csv and compare.html (self-contained: its figures are inside) in ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "compare.csv", index=False)
    figures = []
    reps = table.attrs["values"]
    for metric in dict.fromkeys(table["metric"]):
        m = next(x for x in METRICS if x.name == metric)
        rows = table[table["metric"] == metric]
        fig, ax = plt.subplots(figsize=(7, 0.6 + 0.45 * len(rows)))
        for i, index in enumerate(rows.index):
            for side, (v, colour, dy) in enumerate(zip(reps[index], ("tab:blue", "tab:orange"), (-0.12, 0.12))):
                ax.plot(v, [i + dy] * len(v), "o", color=colour, alpha=0.7, label=("A", "B")[side] if i == 0 else None)
                if v:
                    ax.plot([np.mean(v)], [i + dy], "|", color=colour, markersize=16)
        ax.set_yticks(range(len(rows)), [c if len(c) < 48 else c[:45] + "..." for c in rows["cell"]], fontsize=7)
        ax.set_xlabel(f"{metric} ({m.unit}); each dot a repetition, each bar a mean")
        ax.legend(fontsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        figures.append((metric, base64.b64encode(buf.getvalue()).decode()))
    shown = table.copy()
    for c in ("mean_a", "mean_b", "difference", "ci_low", "ci_high", "mdd"):
        shown[c] = shown[c].map(lambda v: "" if v != v else f"{v:,.4g}")
    for c in ("p_welch", "p_holm", "windows_mw_p"):
        shown[c] = shown[c].map(lambda v: "" if v != v else f"{v:.3g}")
    shown = shown.rename(columns={"p_welch": "p (Welch)", "p_holm": "p (Holm)", "windows_mw_p":
                                  "p (windows, Mann-Whitney)", "mdd": "MDD"})
    allowed = table.attrs.get("differ") or {}
    html = ["<!doctype html><html><head><meta charset='utf-8'><title>compare</title><style>body{font-family:sans-serif;"
            "max-width:70em;margin:2em auto}table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;"
            "padding:0.2em 0.4em}</style></head><body>",
            f"<h1>{Path(a).name} (A) against {Path(b).name} (B)</h1>",
            f"<p>A: <code>{a}</code><br>B: <code>{b}</code><br>Confidence {table.attrs.get('confidence', 0.95):g}.</p>",
            "<p>" + METHODS.format(resamples=RESAMPLES, tests=int(table['p_welch'].notna().sum())) + "</p>"]
    if allowed:
        html.append("<p>Settings that differ (allowed): " + "; ".join(f"{k}: {v[0]} against {v[1]}"
                                                                      for k, v in allowed.items()) + "</p>")
    html.append(shown.to_html(index=False, escape=True))
    for metric, png in figures:
        html.append(f"<h2>{metric}</h2><img alt='{metric}' src='data:image/png;base64,{png}'>")
    html.append("</body></html>")
    (out / "compare.html").write_text("\n".join(html))
    return [out / "compare.csv", out / "compare.html"]


def print_table(table: pd.DataFrame, a: str | Path, b: str | Path) -> None:
    """The comparison on the terminal (plain text when piped)."""
    from rich.console import Console
    from rich.table import Table
    t = Table(title=f"{Path(a).name} (A) against {Path(b).name} (B)", show_lines=False)
    for c in ("cell", "metric", "n", "A", "B", "A − B [interval]", "p (Holm)", "verdict"):
        t.add_column(c, overflow="fold")
    for r in table.itertuples():
        interval = "" if r.ci_low != r.ci_low else f" [{r.ci_low:,.4g}, {r.ci_high:,.4g}]"
        t.add_row(r.cell, r.metric, f"{r.n_a}/{r.n_b}", f"{r.mean_a:,.4g}", f"{r.mean_b:,.4g}",
                  ("" if r.difference != r.difference else f"{r.difference:,.4g}") + interval,
                  "" if r.p_holm != r.p_holm else f"{r.p_holm:.3g}", r.verdict)
    Console(width=200).print(t)
    for k, v in (table.attrs.get("differ") or {}).items():
        print(f"  setting that differs (allowed): {k}: {v[0]} against {v[1]}")
