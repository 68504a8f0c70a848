"""One page per results folder: ``report/index.html``, self-contained (figures embedded as data
URIs, no script, no network), so that it opens from disk or as an e-mail attachment.

In order: the answer first (what was measured, the cells the testbed itself limited, failures; the
headline figures; the summary table), then the question (the command and the matrix's parameters),
the set-up once (one placement's figure, with what the others change), the network as calibrated,
the other figures, recovery under faults, failures with their logs, and provenance (versions,
commit, host, times)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pandas as pd

FIGURES = [("latency_vs_taskmanagers", "Window latency vs taskmanagers"),
           ("sustainable_throughput", "Sustainable throughput vs taskmanagers"),
           ("latency_cdf", "Latency distributions"), ("recovery_time", "Recovery time by scenario and placement")]
STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;
border:1px solid #eee;margin:.3em 0}.bad{color:#b00}code,pre{background:#f6f6f6;padding:.1em .3em}
pre{padding:.6em;overflow-x:auto;font-size:.8em}figure{margin:1em 0}figcaption{font-size:.9em;color:#555}"""


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(frame: pd.DataFrame, columns: list[str] | None = None, max_rows: int = 200) -> str:
    if frame is None or len(frame) == 0:
        return "<p>none</p>"
    frame = frame[[c for c in (columns or list(frame.columns)) if c in frame.columns]].head(max_rows)

    def cell(v) -> str:
        if isinstance(v, float):
            return "–" if v != v else (f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}")
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in frame.itertuples(index=False))
    return f"<table><tr>{head}</tr>{rows}</table>"


def _text(cells: pd.DataFrame, column: str) -> pd.Series:
    """A column as text, '' where empty or absent (a CSV column read back without a value is NaN)."""
    if column not in cells:
        return pd.Series("", index=cells.index)
    v = cells[column]
    return v.astype(object).where(v.notna(), "").astype(str)


def write(folder: Path, cells: pd.DataFrame, summary: pd.DataFrame, recovery: pd.DataFrame) -> Path:
    """Write ``<folder>/report/index.html`` from the folder's files and the report's tables."""
    out = folder / "report"
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
    session = (manifest.get("sessions") or [{}])[-1]
    parts = [f"<h1>Results {html.escape(folder.name)}</h1>"]
    errors, search = _text(cells, "error") != "", _text(cells, "search") == "True"
    from .report import saturated
    limited = saturated(cells)
    matrix = cells[~errors & ~search]
    said = [f"{len(matrix)} cell(s) measured", f"{int(search.sum())} search trial(s)" if search.any() else "",
            f"{int(errors.sum())} failed" if errors.any() else "no failures"]
    lim = cells[limited & ~errors]
    limit_text = ("; the testbed itself was the limit in " + ", ".join(
        f"<code>{html.escape(str(r.get('cell_key')))}</code> ({html.escape(str(r['testbed_limited']))})"
        for _, r in lim.iterrows()) + ": those cells measured the testbed, and the means leave them out"
                  if len(lim) else "; no cell was limited by the testbed")
    parts.append("<h2>The answer</h2>")
    parts.append(f"<p>{html.escape(', '.join(x for x in said if x))}{limit_text}.</p>")
    for name, caption in FIGURES[:2]:
        if (out / f"{name}.png").exists():
            parts.append(_img(out / f"{name}.png", caption))
    parts.append("<h3>Summary</h3>" + _table(summary))

    parts.append("<h2>The question</h2>")
    if session.get("command"):
        parts.append(f"<pre>{html.escape(' '.join(map(str, session['command'])))}</pre>")
    opts = session.get("options") or {}
    keys = ["taskmanagers", "placements", "rates", "repetitions", "duration", "warmup", "window", "slide", "jobs",
            "scenario", "cpu_scale", "keys", "payload_bytes", "links"]
    parts.append(_table(pd.DataFrame([{k: opts[k] for k in keys if k in opts}])) if opts else "<p>no manifest</p>")

    parts.append("<h2>The set-up</h2>")
    figures = sorted((out / "topology").glob("*.png"))
    if figures:
        parts.append(_img(figures[0], f"placement {figures[0].stem}: each node's VM size, and the cores it was given"))
        if "taskmanager_nodes" in cells and len(figures) > 1:
            where = cells.dropna(subset=["taskmanager_nodes"]).drop_duplicates(["taskmanagers", "placement"])
            parts.append("<p>What the placements change: where the taskmanagers ran.</p>"
                         + _table(where, ["taskmanagers", "placement", "taskmanager_nodes", "taskmanager_clouds"]))
            parts.append("<details><summary>every placement's figure</summary>"
                         + "".join(_img(p, f"placement {p.stem}") for p in figures[1:]) + "</details>")
    cal = folder / "calibration.csv"
    parts.append("<h2>The network, as measured before the cells</h2>")
    parts.append(_table(pd.read_csv(cal), ["kind", "src", "dst", "target", "measured", "tolerance", "ok", "note"])
                 if cal.exists() else "<p>no calibration</p>")

    parts.append("<h2>More figures</h2>")
    for name, caption in FIGURES[2:]:
        if (out / f"{name}.png").exists():
            parts.append(_img(out / f"{name}.png", caption))
    if recovery is not None and len(recovery):
        parts.append("<h2>Under faults</h2>" + _table(recovery))

    parts.append("<h2>Failures</h2>")
    failed = cells[errors]
    if len(failed):
        logs = sorted((folder / "logs").glob("*.txt")) if (folder / "logs").exists() else []
        items = []
        for _, r in failed.iterrows():
            mine = [p for p in logs if p.name.startswith(str(r.get("cell_key") or r["cell"])) or str(r["cell"]) in p.name]
            links = " ".join(f'<a href="../logs/{html.escape(p.name)}">{html.escape(p.name)}</a>' for p in mine)
            items.append(f"<li><code>{html.escape(str(r.get('cell_key', r['cell'])))}</code>: "
                         f'<span class="bad">{html.escape(str(r["error"])[:300])}</span> {links}</li>')
        parts.append("<ul>" + "".join(items) + "</ul>")
    else:
        parts.append("<p>none</p>")

    parts.append("<h2>Provenance</h2>")
    prov = {"git": manifest.get("git"), "versions": {k: v for k, v in (manifest.get("versions") or {}).items()
                                                     if k != "packages"},
            "topology": {k: v for k, v in (manifest.get("topology") or {}).items() if k != "text"},
            "testbed": manifest.get("testbed"), "host": manifest.get("host"),
            "started": manifest.get("started"), "ended": manifest.get("ended")}
    parts.append(f"<pre>{html.escape(json.dumps(prov, indent=2, default=str))}</pre>")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(folder.name)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")
    path = out / "index.html"
    path.write_text(page)
    return path
