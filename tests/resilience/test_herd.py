"""Test 6: a herd of 50 clients on one device that restarts. The reconnect backoff's jitter
spreads their reconnections, and every client resyncs to a model that matches."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from typing import Any

from katcp_inspect import InspectingClientAsync
from katcp_inspect.inspecting_client import SYNCED
from katcp_inspect.testing import SimulatedDevice, demo_sensors
from katcp_inspect.testing.harness.model_check import model_differences

CLIENTS = 50
DOWN = 1.0  # seconds the device is away


def spread(values: list[float]) -> str:
    return (f"min {min(values):.3f} / median {statistics.median(values):.3f} / "
            f"max {max(values):.3f} s")


async def test_herd_reconnects_spread_and_all_resync(io_loop: Any, figures: Any) -> None:
    device = SimulatedDevice(sensors=demo_sensors(12))
    await device.start("127.0.0.1", 0)
    port = device.port
    loop = asyncio.get_running_loop()
    synced_at: dict[int, list[float]] = {i: [] for i in range(CLIENTS)}
    clients = []
    def recorder(i: int) -> Callable[[Any, Any], None]:
        def record(state: Any, changes: Any) -> None:
            if state == SYNCED:
                synced_at[i].append(loop.time())
        return record

    for i in range(CLIENTS):
        # The default reconnect backoff: first retry within 0.1 s, randomicity 0.9.
        client = InspectingClientAsync("127.0.0.1", port, auto_sampling="event")
        client.set_state_callback(recorder(i))
        clients.append(client)
    try:
        await asyncio.gather(*(c.connect() for c in clients))
        await asyncio.wait_for(asyncio.gather(*(c.until_synced() for c in clients)), 30)
        await device.stop()
        await asyncio.wait_for(asyncio.gather(*(c.until_not_synced() for c in clients)), 10)
        await asyncio.sleep(DOWN)
        restarted = loop.time()
        await device.start("127.0.0.1", port)
        await asyncio.wait_for(asyncio.gather(*(c.until_synced() for c in clients)), 30)
        reconnect = [c.katcp_client.last_connect_time - restarted  # type: ignore[operator]
                     for c in clients]
        resync = [synced_at[i][-1] - restarted for i in range(CLIENTS)]
        attempts = [c.katcp_client.stats.connect_failures for c in clients]
        for client in clients:
            assert model_differences(client, device) == []
        figures(f"herd of {CLIENTS} clients, device away {DOWN:g} s: reconnect after restart "
                f"{spread(reconnect)}; synced {spread(resync)}; failed attempts per client "
                f"while away: min {min(attempts)} / max {max(attempts)}")
        assert all(t >= 0 for t in reconnect)
        # The jitter spreads the herd: not all at once.
        assert max(reconnect) - min(reconnect) > 0.1
        assert len({round(t, 2) for t in reconnect}) > CLIENTS // 3
    finally:
        await asyncio.gather(*(c.stop() for c in clients))
        await device.stop()
