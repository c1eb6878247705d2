"""A device that stays away is warned about once per outage, then summarised while it lasts."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from katcp_inspect import DeviceClient, ExponentialRandomBackoff
from katcp_inspect.stats import OnceLogger

from .support import scripted_server, wait_until


def connect_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and r.getMessage().startswith("Failed to connect")]


async def test_a_persisting_outage_is_summarised_and_each_outage_warned(
        io_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    async with scripted_server() as server:
        server.stop_listening()
        client = DeviceClient("127.0.0.1", server.port,
                              reconnect_backoff=ExponentialRandomBackoff(0.01, 0.02, 2.0, 0.5))
        client._problems._clock = lambda: now[0]  # the summary period passes at our command
        client.start()
        await wait_until(lambda: client.stats.connect_failures >= 4, what="failed attempts")
        assert len(connect_warnings(caplog)) == 1  # the outage is warned about once...

        now[0] += OnceLogger.PERIOD
        failures = client.stats.connect_failures
        await wait_until(lambda: client.stats.connect_failures > failures, what="an attempt")
        warnings = connect_warnings(caplog)
        assert len(warnings) == 2  # ...and still visible a period later
        assert "more like this since the warning 60 s ago" in warnings[1]
        assert f"127.0.0.1:{server.port}" in warnings[1]

        server.listen_now()
        await client.until_connected(timeout=5)
        (await server.next_connection()).close()
        server.stop_listening()
        await wait_until(lambda: len(connect_warnings(caplog)) == 3, what="the next outage")
        assert "further occurrences are logged at DEBUG" in connect_warnings(caplog)[2]
        await client.close()


def test_a_forgotten_kind_warns_again_as_new(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.once")
    once = OnceLogger(logging.getLogger("test.once"))
    once.log("connect", "failed %d", 1)
    once.log("connect", "failed %d", 2)
    once.forget("connect")
    once.log("connect", "failed %d", 3)
    assert [(r.levelno, r.getMessage().split(" (")[0]) for r in caplog.records] == [
        (logging.WARNING, "failed 1"), (logging.DEBUG, "failed 2"),
        (logging.WARNING, "failed 3")]
