"""What went wrong is counted, and logged without flooding."""

from __future__ import annotations

import logging

import pytest

from katcp_inspect.stats import ClientStats, OnceLogger


def test_first_of_each_kind_is_a_warning_then_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.once")
    once = OnceLogger(logging.getLogger("test.once"))
    for _ in range(3):
        once.log("bad-line", "bad line %s", 1)
    once.log("other", "other %s", 2)
    levels = [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert levels == [(logging.WARNING, "bad line 1"), (logging.DEBUG, "bad line 1"),
                      (logging.DEBUG, "bad line 1"), (logging.WARNING, "other 2")]


def test_counters_start_at_zero() -> None:
    stats = ClientStats()
    assert stats.bad_lines == stats.connections == stats.request_timeouts == 0
