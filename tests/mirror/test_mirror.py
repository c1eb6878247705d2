"""The mirror: Redis holds each synced model whole, with its readings, under a generation."""

from __future__ import annotations

import asyncio
from typing import Any

from katcp_inspect import SensorStatus
from katcp_inspect.mirror import FleetView, Gap, Update
from katcp_inspect.sync_states import InspectingClientStateType
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor

from .helpers import eventually, mirrored, model_of, raw_generations
from .redis_server import RedisServer


async def expect_mirror(view: FleetView, name: str, expected: Any, generation: int) -> None:
    """Redis shows model ``expected`` (what the client had at a synced report) whole."""
    async def committed() -> Any:
        status = await view.status(name)
        return status is not None and status.generation >= generation
    await eventually(committed, what=f"generation {generation}")
    snapshot = await view.snapshot(name)
    assert snapshot is not None
    sensors, readings = expected
    assert {n: (m.type, m.units, m.description, m.params)
            for n, m in snapshot.sensors.items()} == sensors
    assert snapshot.readings == readings
    assert snapshot.status.state == "synced"
    state, carried, model, with_readings = await raw_generations(view, name)
    assert carried == {state} and model == with_readings == set(sensors)


async def test_mirror_equals_the_model_at_every_synced_report(
        io_loop: Any, redis_server: RedisServer) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    view = FleetView(redis_server.url)
    reports: list[Any] = []
    try:
        async with mirrored(redis_server.url, device) as (client, mirror):
            dev = mirror.mirror("dev")
            assert dev is not None

            def recorded(state: InspectingClientStateType, changes: Any) -> None:
                dev.state_changed(state, changes)
                if state.synced:
                    reports.append(model_of(client))
            client.set_state_callback(recorded)
            await client.until_synced(timeout=10)
            await expect_mirror(view, "dev", reports[-1], 1)

            # A new sensor, a changed one, a removed one, a changed value: each a sync.
            device.add_sensor(SimulatedSensor("integer", "new.counter", "New.", "", value=5))
            await eventually(lambda: _synced_after(client, reports, 2), what="second sync")
            await expect_mirror(view, "dev", reports[-1], 2)
            device.add_sensor(SimulatedSensor("string", "device.mode", "Now text.", "",
                                              value="free text"))
            device.remove_sensor("rx.band")
            await eventually(lambda: _model_has(client, "rx.band", False), what="removal")
            await client.until_synced(timeout=10)
            await expect_mirror(view, "dev", reports[-1], len(reports))

            # A restart of the device: a new sync, a new generation.
            port = device.port
            await device.stop()
            await client.until_not_synced(timeout=10)
            status = await eventually(lambda: _state_is(view, "dev", "disconnected"))
            assert status.generation == len(reports)
            device = SimulatedDevice.with_demo_sensors(rate=None)
            await device.start("127.0.0.1", port)
            await client.until_synced(timeout=10)
            await expect_mirror(view, "dev", reports[-1], len(reports))
    finally:
        await view.close()
        await device.stop()


async def _synced_after(client: Any, reports: list[Any], count: int) -> bool:
    return len(reports) >= count and client.synced


async def _model_has(client: Any, name: str, present: bool) -> bool:
    return (name in client.sensors) == present


async def _state_is(view: FleetView, name: str, state: str) -> Any:
    status = await view.status(name)
    return status if status is not None and status.state == state else None


async def test_readings_follow_the_model(io_loop: Any, redis_server: RedisServer) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    view = FleetView(redis_server.url, block=0.1)
    try:
        async with mirrored(redis_server.url, device) as (client, _):
            await client.until_synced(timeout=10)
            await eventually(lambda: _state_is(view, "dev", "synced"))
            updates = view.follow("dev", r"^cpu\.temperature\Z", initial=True)
            start = await asyncio.wait_for(updates.__anext__(), 5)
            assert isinstance(start, Gap) and start.reason == "start"
            assert list(start.readings) == ["cpu.temperature"]
            device.set_value("cpu.temperature", 61.5, status="warn")
            update = await asyncio.wait_for(updates.__anext__(), 5)
            assert isinstance(update, Update)
            assert (update.device, update.sensor) == ("dev", "cpu.temperature")
            assert update.reading.value == 61.5
            assert update.reading.status == SensorStatus.WARN
            assert update.generation == 1
            reading = await view.reading("dev", "cpu.temperature")
            assert reading == update.reading
            await updates.aclose()  # type: ignore[attr-defined]
    finally:
        await view.close()
        await device.stop()
