"""Test 3: a flood of sensor updates. Per sensor the cache ends on the last value, observers
see values in order, nothing is lost where the strategy (``auto``) does not allow it, and
memory stays bounded. CI runs 100 000 (device) + 300 000 (raw) updates; ``scripts/flood.py``
runs the full million."""

from __future__ import annotations

from typing import Any

import pytest

from katcp_inspect.testing.harness.flood import run_flood

RSS_GROWTH_LIMIT_MIB = 32


@pytest.mark.parametrize(("mode", "rounds"), [("device", 100), ("raw", 300)])
async def test_flood(io_loop: Any, figures: Any, mode: str, rounds: int) -> None:
    result = await run_flood(sensors=1000, rounds=rounds, mode=mode)
    figures(result.summary())
    assert result.lost_auto == 0
    assert result.reordered == 0
    assert result.not_last == []
    assert result.diffs == []
    assert result.bad_updates == 0
    assert 0 < result.lossy_received <= result.lossy_sent or mode == "raw"
    assert result.rss_after - result.rss_before < RSS_GROWTH_LIMIT_MIB
    assert result.tasks_after <= result.tasks_before
