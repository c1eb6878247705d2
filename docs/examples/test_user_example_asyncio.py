"""The same tests under pytest-asyncio (strict or auto mode).

The ``asyncio_simulated_device`` fixture comes from the plugin named in ``pytest_plugins`` (or
put that line in your root ``conftest.py``); strict mode runs only the tests marked
``asyncio``, which ``pytestmark`` does for the whole module.
"""

from __future__ import annotations

import pytest

from katcp_inspect import DeviceClient
from katcp_inspect.testing import SimulatedDevice

pytest_plugins = ["katcp_inspect.testing.pytest_plugin"]
pytestmark = pytest.mark.asyncio


async def test_read_a_sensor(asyncio_simulated_device: SimulatedDevice) -> None:
    asyncio_simulated_device.set_value("cpu.temperature", 35.5)
    client = DeviceClient("127.0.0.1", asyncio_simulated_device.port)
    client.start()
    try:
        await client.until_connected(timeout=5)
        _, informs = await client.request("sensor-value", "cpu.temperature", timeout=5)
        assert float(informs[0].arguments[4]) == 35.5
    finally:
        await client.close()
