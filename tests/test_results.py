"""Result tables: appended row by row, columns may grow, CSV and parquet agree."""

from __future__ import annotations

import pandas as pd

from testbed.results.store import ResultsDir


def test_rows_append_and_columns_grow(tmp_path):
    r = ResultsDir("run-1", tmp_path)
    r.append("cells", {"a": 1, "b": "x"})
    r.append("cells", {"a": 2, "b": "y"})
    r.append("cells", {"a": 3, "b": "z", "error": "boom"})   # a new column
    r.append("cells", {"b": "w", "a": 4})                    # columns in another order
    csv = pd.read_csv(tmp_path / "run-1" / "cells.csv")
    assert csv["a"].tolist() == [1, 2, 3, 4] and csv["b"].tolist() == ["x", "y", "z", "w"]
    assert csv["error"].isna().tolist() == [True, True, False, True]
    pq = pd.read_parquet(tmp_path / "run-1" / "cells.parquet")
    pd.testing.assert_frame_equal(pq, csv)


def test_identifiers_stay_text_whatever_they_look_like(tmp_path):
    from testbed.results.store import read_table
    r = ResultsDir("run-2", tmp_path)
    for cell in ("01384710", "12e45678", "abcdef01"):
        r.append("cells", {"cell": cell, "run_id": "20261126-1200-0001", "lost": 0})
    assert read_table(tmp_path / "run-2" / "cells.csv")["cell"].tolist() == ["01384710", "12e45678", "abcdef01"]
    assert pd.read_parquet(tmp_path / "run-2" / "cells.parquet")["cell"].tolist() == ["01384710", "12e45678",
                                                                                      "abcdef01"]
