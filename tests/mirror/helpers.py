"""Helpers of the Redis mirror's tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from katcp_inspect import InspectingClientAsync, Reading, Sensor
from katcp_inspect.mirror import FleetView, RedisMirror
from katcp_inspect.mirror.schema import decode_reading, text
from katcp_inspect.testing import SimulatedDevice

from ..test_inspecting_client import make_client


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 5.0,
                     what: str = "the condition") -> Any:
    """Poll an asynchronous check (a Redis read) until it returns something true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def model_of(client: InspectingClientAsync) -> tuple[dict[str, Any], dict[str, Reading]]:
    """The client's in-process model (sensor → type, units, description, params) and
    readings, as the mirror must show them."""
    sensors: dict[str, Any] = {}
    readings: dict[str, Reading] = {}
    for name in client.sensors:
        sensor: Sensor = client.future_get_sensor(name).result()
        sensors[name] = (sensor.sensor_type, sensor.units, sensor.description,
                         tuple(sensor.params))
        readings[name] = sensor.read()
    return sensors, readings


async def raw_generations(view: FleetView, name: str) -> tuple[int, set[int], set[str],
                                                                 set[str]]:
    """In one transaction: the state's generation, the generations the readings carry, the
    sensors of the model and those of the readings."""
    keys = view.keys
    pipe = view.redis.pipeline(transaction=True)
    for part in ("state", "sensors", "readings"):
        pipe.hgetall(keys.device(name, part))
    state, sensors, readings = await pipe.execute()
    generation = int(state.get(b"generation", b"0"))
    carried = {decode_reading(v, lambda raw: raw).generation for v in readings.values()}
    return (generation, carried, {text(k) for k in sensors}, {text(k) for k in readings})


@contextlib.asynccontextmanager
async def mirrored(url: str, device: SimulatedDevice, name: str = "dev", **options: Any
                   ) -> AsyncIterator[tuple[InspectingClientAsync, RedisMirror]]:
    """A client of ``device``, mirrored by a one-process RedisMirror as ``name``."""
    client = make_client(device.port, auto_sampling="event")
    options = {"lease": 1.0, "fair": False, **options}
    mirror = RedisMirror(url, [name], worker_id="test-worker", **options)
    mirror.add(name, client)
    await mirror.start()
    await client.connect()
    try:
        yield client, mirror
    finally:
        await client.stop()
        await mirror.stop()
