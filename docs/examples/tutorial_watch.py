"""Tutorial, part 2: watch a sensor, choose its strategy, follow the sync state, and see all
three survive the device restarting."""

import asyncio
from typing import Any, Optional

from katcp_inspect import InspectingClientAsync, InspectingClientStateType, Reading, Sensor
from katcp_inspect.testing import SimulatedDevice


class Printer:
    """A sensor observer: anything with ``update(sensor, reading)``."""

    def __init__(self) -> None:
        self.updates = 0

    def update(self, sensor: Sensor, reading: Reading) -> None:
        self.updates += 1
        print(f"  {sensor.name}: {reading.value} ({reading.status.name.lower()})")


def show_state(state: InspectingClientStateType, model_changes: Optional[Any]) -> None:
    print("state", state, "(model changed)" if model_changes else "")


async def main() -> None:
    device = SimulatedDevice.with_demo_sensors(rate=20)
    await device.start("127.0.0.1", 0)
    client = InspectingClientAsync("127.0.0.1", device.port)
    client.set_state_callback(show_state)
    try:
        await client.connect()
        await client.until_synced(timeout=10)

        uptime = await client.future_get_sensor("device.uptime")
        printer = Printer()
        uptime.attach(printer)
        # Remembered by the client and applied again after every reconnect.
        await uptime.set_strategy("period", 0.1)
        while printer.updates < 3:
            await asyncio.sleep(0.05)

        print("The device restarts...")
        await device.stop()
        await client.until_not_synced(timeout=10)
        print(f"  (the cached reading is now {uptime.status().name.lower()})")
        await device.start()
        await client.until_synced(timeout=10)
        seen = printer.updates
        while printer.updates < seen + 3:
            await asyncio.sleep(0.05)
    finally:
        await client.stop()
        await device.stop()


if __name__ == "__main__":
    asyncio.run(main())
