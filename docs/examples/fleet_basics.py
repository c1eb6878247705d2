"""A fleet: three simulated devices (KATCP 5.1, 5.0 and 4), synced together, one observer for
a sensor of every device, a wait on one of them, and the fleet's summary."""

import asyncio

from katcp_inspect.fleet import DeviceConfig, Fleet
from katcp_inspect.testing import SimulatedDevice


def show(device, sensor, reading):
    print(f"{device}: {sensor.name} = {reading.value} ({reading.status.name.lower()})")


async def main() -> None:
    devices = [SimulatedDevice.with_demo_sensors(rate=None, protocol=protocol)
               for protocol in ("5.1", "5.0", "4")]
    for device in devices:
        await device.start("127.0.0.1", 0)
    fleet = Fleet(
        {"m000": f"127.0.0.1:{devices[0].port}",
         "m001": f"127.0.0.1:{devices[1].port}",
         # A device with a rule of its own: it wins over the fleet's.
         "m002": DeviceConfig(f"127.0.0.1:{devices[2].port}",
                              sampling={r"^cpu\.": "period 0.5"})},
        sampling={r"^cpu\.": "event"},        # every device: patterns → strategies
        client_options={"sync_timeout": 10.0},
    )
    fleet.attach(show, sensor=r"^cpu\.temperature$")
    try:
        async with fleet:
            await fleet.until_synced(timeout=10)
            counts = fleet.summary()["counts"]
            print(f"{counts['synced']} of {len(fleet)} devices synced")
            for name in fleet.names:
                state = fleet.state(name)
                print(f"{name}: KATCP {state.protocol}, {state.sensors} sensors")
            devices[1].set_value("cpu.temperature", 51.5, status="warn")
            reading = await fleet.wait("m001", "cpu.temperature", 51.5, timeout=5)
            print(f"m001 reached {reading.value}")
    finally:
        for device in devices:
            await device.stop()


if __name__ == "__main__":
    asyncio.run(main())
