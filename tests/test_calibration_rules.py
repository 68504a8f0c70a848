"""The fidelity check's rules, without an engine."""

from __future__ import annotations

import pytest

from testbed.stack import calibrate


def test_the_tolerance_rule():
    assert calibrate._rtt_tolerance(20) == 2.0 and calibrate._rtt_tolerance(5) == 1.0    # ±10 % or ±1 ms
    rows = [{"kind": "rtt", "src": "a", "dst": "b", "measured": 23.1, "unit": "ms", "target": 20.0,
             "tolerance": 2.0, "ok": False},
            {"kind": "rtt", "src": "b", "dst": "a", "measured": 20.4, "unit": "ms", "target": 20.0,
             "tolerance": 2.0, "ok": True}]
    with pytest.raises(calibrate.CalibrationError) as e:
        calibrate.check(rows)
    assert "rtt             a -> b: measured 23.10 ms, target 20.0 ± 2.00" in str(e.value)
    assert "b -> a" not in str(e.value)
    calibrate.check(rows[1:])
