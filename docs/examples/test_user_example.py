"""A user's tests: control software checked against katcp-inspect's simulated device.

Run with pytest and pytest-tornasync installed; the ``simulated_device`` fixture comes from the
plugin named in ``pytest_plugins`` (or put that line in your root ``conftest.py``).
"""

from __future__ import annotations

import pytest

from katcp_inspect import DeviceClient, RequestTimeoutError
from katcp_inspect.testing import FailReply, RequestContext, SimulatedDevice

pytest_plugins = ["katcp_inspect.testing.pytest_plugin"]


# --- the code under test (normally imported from your own package) ---------------------------

async def start_observing(client: DeviceClient, *, timeout: float = 5.0) -> float:
    """Put the device into observing mode; return its CPU temperature when it got there."""
    await client.request("set-mode", "observing", timeout=timeout)
    _, informs = await client.request("sensor-value", "cpu.temperature", timeout=timeout)
    return float(informs[0].arguments[4])


# --- the tests -------------------------------------------------------------------------------

def add_set_mode(device: SimulatedDevice) -> None:
    """Teach the simulated device the request that our software uses."""

    @device.request("set-mode", help="Set the operating mode.", timeout_hint=1.0)
    async def set_mode(ctx: RequestContext, mode: bytes) -> None:
        text = mode.decode()
        if text not in device.get_sensor("device.mode").params:
            raise FailReply(f"no such mode: {text}")
        device.set_value("device.mode", text)


async def test_start_observing(simulated_device: SimulatedDevice) -> None:
    add_set_mode(simulated_device)
    simulated_device.set_value("cpu.temperature", 35.5)
    client = DeviceClient("127.0.0.1", simulated_device.port)
    client.start()
    try:
        await client.until_connected(timeout=5)
        assert await start_observing(client) == 35.5
        assert simulated_device.get_sensor("device.mode").value == "observing"
    finally:
        await client.close()


async def test_start_observing_on_a_slow_device(simulated_device: SimulatedDevice) -> None:
    add_set_mode(simulated_device)
    simulated_device.set_delay("set-mode", 1.0)  # a fault switch: answer slowly
    client = DeviceClient("127.0.0.1", simulated_device.port)
    client.start()
    try:
        await client.until_connected(timeout=5)
        with pytest.raises(RequestTimeoutError):
            await start_observing(client, timeout=0.1)
    finally:
        await client.close()
