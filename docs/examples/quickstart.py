"""Quick start: start a simulated KATCP device, connect to it and show what it offers."""

import asyncio

from katcp_inspect import DeviceClient
from katcp_inspect.testing import SimulatedDevice


async def main() -> None:
    device = SimulatedDevice.with_demo_sensors()
    await device.start("127.0.0.1", 0)
    client = DeviceClient("127.0.0.1", device.port)
    client.start()
    try:
        await client.until_connected(timeout=10)
        print(f"Connected to {client.address}: KATCP {client.protocol_flags}")
        _, requests = await client.request("help")
        print(f"\n{len(requests)} requests:")
        for inform in requests:
            print(f"  ?{inform.format_argument(0):<24} {inform.format_argument(1)[:50]}")
        _, values = await client.request("sensor-value")
        print(f"\n{len(values)} sensors:")
        for inform in values:
            name, status, value = (inform.format_argument(i) for i in (2, 3, 4))
            print(f"  {name:<32} {status:<8} {value}")
    finally:
        await client.close()
        await device.stop()


if __name__ == "__main__":
    asyncio.run(main())
