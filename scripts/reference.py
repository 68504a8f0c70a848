#!/usr/bin/env python3
"""Write the reference pages that come from the code, so that none is copied by hand:

- docs/reference/options.md: the experiment options (testbed/experiment/options.py), which
  ``pytest experiments/`` and ``python -m testbed run`` share;
- docs/reference/cli.md: every ``python -m testbed`` command, from its parser (testbed/cli.py);
- docs/reference/columns.md: every column of ``cells.csv`` and ``sustainable.csv`` with its type, unit
  and meaning (testbed/results/columns.py).

    scripts/with-env python scripts/reference.py           # rewrite the pages
    scripts/with-env python scripts/reference.py --check   # exit 1 if a page is not what the code says

The fast lane runs the check (tests/test_docs.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = ROOT / "docs" / "reference"
WIDTH = "100"       # argparse wraps help to the terminal's width: one width, whatever the terminal


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;").replace(">", "&gt;")


def options_page() -> str:
    from testbed.experiment.options import EXPERIMENT, TESTBED
    out = ["# Experiment options", "",
           "The options of `pytest experiments/` and of `python -m testbed run`: both take the same ones, "
           "record every one of them in the results folder's `manifest.json`, and refuse a bad value before "
           "anything starts, naming each bad option.", "",
           "Generated from `testbed/experiment/options.py` by `scripts/reference.py`; do not edit.", ""]
    for title, group in (("Testbed", TESTBED), ("Experiment", EXPERIMENT)):
        out += [f"## {title}", "", "| option | default | meaning |", "|---|---|---|"]
        for opt in group:
            kw = opt.kwargs
            names = ", ".join(f"`{n}`" for n in opt.names)
            if kw.get("metavar"):
                names += f" `{kw['metavar']}`"
            default = kw.get("default")
            default = "" if default in (None, "", False) or kw.get("action") == "store_true" else f"`{default}`"
            meaning = kw.get("help", "")
            if kw.get("choices"):
                meaning += f" (one of: {', '.join(map(str, kw['choices']))})"
            out.append(f"| {names} | {_cell(default)} | {_cell(meaning)} |")
        out.append("")
    return "\n".join(out)


def cli_page() -> str:
    from testbed import cli
    p = cli.parser()
    (sub,) = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]    # noqa: SLF001
    out = ["# Command line", "",
           "`python -m testbed <command>`, or `scripts/with-env python -m testbed <command>` on a machine "
           "not set up yet. Generated from `testbed/cli.py` by `scripts/reference.py`; do not edit.", "",
           "```text", p.format_help().rstrip(), "```", ""]
    for name, sp in sub.choices.items():
        out += [f"## {name}", "", "```text", sp.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def _columns_table(cols) -> list[str]:
    out = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    for c in cols:
        when = f" *Only in {c.when}.*" if c.when else ""
        out.append(f"| `{_cell(c.name).replace('&lt;', '<').replace('&gt;', '>')}` | {c.type} | {c.unit} "
                   f"| {_cell(c.meaning)}{_cell(when)} |")
    return out


def columns_page() -> str:
    from testbed.results import columns
    doc = columns.__doc__.split("\n\n")
    out = ["# Columns of the results", "",
           "Every column of a results folder's `cells.csv` (one row per cell; `cells.parquet` holds the same "
           "rows with their types) and of `sustainable.csv` (one row per sustainable-throughput search). "
           "Generated from `testbed/results/columns.py` by `scripts/reference.py`; do not edit.", "",
           *[" ".join(p.split()) for p in doc[2:4]], ""]
    groups: dict[str, list] = {}
    for c in columns.COLUMNS:
        groups.setdefault(c.group, []).append(c)
    out += ["## cells.csv", "", "Grouped by what they are about, in the order the row has them within each group.", ""]
    for group, cols in groups.items():
        out += [f"### {group}", "", *_columns_table(cols), ""]
    out += ["A failed cell's row (`error` not empty) holds only: "
            + ", ".join(f"`{n}`" for n in columns.FAILED_ROW) + "; its other fields are empty.", "",
            "## sustainable.csv", "", *_columns_table(columns.SUSTAINABLE), ""]
    return "\n".join(out)


def pages() -> dict[Path, str]:
    os.environ["COLUMNS"] = WIDTH
    return {PAGES / "options.md": options_page(), PAGES / "cli.md": cli_page(), PAGES / "columns.md": columns_page()}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in pages().items():
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        print("not what the code says (rewrite with scripts/reference.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main(sys.argv[1:]))
