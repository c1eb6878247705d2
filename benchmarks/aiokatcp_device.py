"""A device built on aiokatcp's ``DeviceServer`` (KATCP 5.1, flags ``MIB``): the third-party
device the sync-ways metric (f) is measured against, as users' devices are built.

It has ``sensors`` float sensors named as :func:`wire.sensor_names`, sensor *j* holding
:func:`wire.generation_value` ``(0, j)`` with status nominal. :func:`serve` runs it in a
process of its own, for :mod:`processes` to start with ``spawn``.
"""

from __future__ import annotations

import asyncio
from multiprocessing.connection import Connection

import aiokatcp
import wire
from flood_device import serve_until_told


class BenchDevice(aiokatcp.DeviceServer):
    VERSION = "benchmark-aiokatcp-device-1.0"
    BUILD_STATE = "benchmark-aiokatcp-device-1.0"

    def __init__(self, sensors: int) -> None:
        super().__init__("127.0.0.1", 0)
        for j, name in enumerate(wire.sensor_names(sensors)):
            sensor = aiokatcp.Sensor(float, name, "Benchmark float sensor", "V")
            sensor.set_value(wire.generation_value(0, j), timestamp=wire.BASE_TIMESTAMP)
            self.sensors.add(sensor)


def serve(specs: list[tuple[int, int]], control: Connection) -> None:
    """Run one device per ``(sensors, _)`` in ``specs`` (the second item, a flood size, is
    what :mod:`flood_device` takes; unused here); send their ports on ``control`` and run
    until ``control`` is closed or receives anything."""
    asyncio.run(_serve(specs, control))


async def _serve(specs: list[tuple[int, int]], control: Connection) -> None:
    devices = [BenchDevice(sensors) for sensors, _ in specs]
    for device in devices:
        await device.start()
    await serve_until_told([device.sockets[0].getsockname()[1] for device in devices], control)
    for device in devices:
        await device.stop()
