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
