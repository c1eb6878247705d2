"""Tutorial, part 1: connect, wait for the sync, read a sensor, send a request."""

import asyncio
from typing import Optional

from katcp_inspect import InspectingClientAsync
from katcp_inspect.testing import SimulatedDevice


async def main(host: str = "127.0.0.1", port: Optional[int] = None) -> None:
    device = None
    if port is None:  # no device given: simulate one
        device = SimulatedDevice.with_demo_sensors()
        await device.start(host, 0)
        port = device.port

    # Sample every sensor on each change, so that the cache holds live values.
    client = InspectingClientAsync(host, port, auto_sampling="event")
    try:
        await client.connect()
        await client.until_synced(timeout=10)
        print(f"Synced: {len(client.requests)} requests, {len(client.sensors)} sensors")

        temperature = await client.future_get_sensor("cpu.temperature")
        _, status, value = temperature.read()
        print(f"{temperature.name} = {value} {temperature.units} ({status.name.lower()})")

        print("Unknown names give None:", await client.future_get_sensor("no.such.sensor"))

        reply, informs = await client.simple_request("sensor-value", "device.mode")
        print("?sensor-value device.mode ->", reply)
        for inform in informs:
            print("   ", inform)
    finally:
        await client.stop()
        if device is not None:
            await device.stop()


if __name__ == "__main__":
    asyncio.run(main())
