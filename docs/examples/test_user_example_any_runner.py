"""A device for one test, with any async test runner: ``async with`` starts it on 127.0.0.1
and a free port, and stops it however the test ends.

Mark the test as your runner wants it: pytest-asyncio in strict mode needs
``@pytest.mark.asyncio``; pytest-tornasync and pytest-asyncio's auto mode need no mark.
"""

from __future__ import annotations

from katcp_inspect import DeviceClient
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor


async def test_a_device_of_my_own() -> None:
    sensor = SimulatedSensor("float", "psu.voltage", "PSU output voltage.", "V", [11.5, 12.5],
                             value=12.0)
    async with SimulatedDevice(sensors=[sensor]) as device:
        client = DeviceClient("127.0.0.1", device.port)
        client.start()
        try:
            await client.until_connected(timeout=5)
            _, informs = await client.request("sensor-value", "psu.voltage", timeout=5)
            assert float(informs[0].arguments[4]) == 12.0
        finally:
            await client.close()
    assert not device.running
