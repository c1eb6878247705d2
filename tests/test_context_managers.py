"""``async with`` on DeviceClient and InspectingClientAsync, as on aiokatcp's clients."""

from __future__ import annotations

from typing import Any

from katcp_inspect import ConnectionState, DeviceClient, InspectingClientAsync
from katcp_inspect.testing import SimulatedDevice


async def test_device_client_starts_on_enter_and_closes_on_exit(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    try:
        async with DeviceClient("127.0.0.1", device.port) as client:
            assert client.state is not ConnectionState.CLOSED  # started, maybe not yet connected
            await client.until_connected(timeout=5)
            reply, _ = await client.request("watchdog")
            assert reply.reply_ok()
        assert client.state is ConnectionState.CLOSED
    finally:
        await device.stop()


async def test_inspecting_client_connects_on_enter_and_stops_on_exit(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    try:
        async with InspectingClientAsync("127.0.0.1", device.port) as client:
            await client.until_synced(timeout=10)
            assert "cpu.temperature" in client.sensors
        assert not client.connected
        assert client.katcp_client.state is ConnectionState.CLOSED
    finally:
        await device.stop()
