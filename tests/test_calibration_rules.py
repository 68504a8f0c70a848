"""The fidelity check's rules, without an engine."""

from __future__ import annotations

import pytest

from testbed.model.topology import Link
from testbed.stack import calibrate


def test_the_tolerance_rule():
    link = lambda rtt, jitter=0.0: Link(("a", "b"), rtt_ms=rtt, jitter_ms=jitter)  # noqa: E731
    assert calibrate._rtt_tolerance(link(20), 40) == 2.0 and calibrate._rtt_tolerance(link(5), 40) == 1.0  # ±10 % or ±1 ms
    assert calibrate._rtt_tolerance(link(20, 10), 40) == pytest.approx(4.84, abs=0.01)  # the median's sampling error
    rows = [{"kind": "rtt", "src": "a", "dst": "b", "measured": 23.1, "unit": "ms", "target": 20.0,
             "tolerance": 2.0, "ok": False},
            {"kind": "rtt", "src": "b", "dst": "a", "measured": 20.4, "unit": "ms", "target": 20.0,
             "tolerance": 2.0, "ok": True}]
    with pytest.raises(calibrate.CalibrationError) as e:
        calibrate.check(rows)
    assert "rtt             a -> b: measured 23.10 ms, target 20.0 ± 2.00" in str(e.value)
    assert "b -> a" not in str(e.value)
    calibrate.check(rows[1:])
