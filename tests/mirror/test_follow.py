"""Readers: whole models only, whatever the writers do; gaps detected and filled."""

from __future__ import annotations

import asyncio
from typing import Any

from katcp_inspect import Sensor, SensorType
from katcp_inspect.errors import WaitTimeoutError
from katcp_inspect.mirror import BlockingFleetView, FleetView, Gap, RedisMirror, Update
from katcp_inspect.model import AttrDict
from katcp_inspect.sync_states import SYNCED

from .fake_client import FakeClient
from .helpers import eventually, raw_generations
from .redis_server import RedisServer


def sensors(generation: int, count: int) -> list[Sensor]:
    made = []
    for i in range(count):
        sensor = Sensor(SensorType.INTEGER, f"g{generation}.{i}", "A sensor.")
        sensor.set(float(generation), Sensor.NOMINAL, generation)
        made.append(sensor)
    return made


async def generation(view: FleetView, name: str = "dev") -> int:
    status = await view.status(name)
    return 0 if status is None else status.generation


async def started(url: str, client: FakeClient, **options: Any) -> RedisMirror:
    mirror = RedisMirror(url, ["dev"], fair=False, lease=1.0, **options)
    mirror.add("dev", client)  # type: ignore[arg-type]
    await mirror.start()
    return mirror


async def test_readers_see_only_whole_models(io_loop: Any, redis_server: RedisServer) -> None:
    """Models of 500 sensors replace each other as fast as the writer goes; a reader reading
    in a loop always sees one generation's model with exactly its readings."""
    client = FakeClient(sensors(0, 500))
    mirror = await started(redis_server.url, client)
    view = FleetView(redis_server.url)
    seen: set[int] = set()
    try:
        await eventually(lambda: generation(view))

        async def read() -> None:
            while len(seen) < 10:
                state, carried, model, with_readings = await raw_generations(view, "dev")
                assert carried == {state}, f"readings of {carried} in generation {state}"
                assert model == with_readings
                assert len(model) == 500 and {n.split(".")[0] for n in model} == {
                    f"g{int(next(iter(model)).split('.')[0][1:])}"}
                seen.add(state)
                await asyncio.sleep(0)
        reader = asyncio.ensure_future(read())
        for new in range(1, 200):
            if reader.done():
                break
            client.objects = {s.name: s for s in sensors(new, 500)}
            client.report(SYNCED, AttrDict(sensors=AttrDict(added=set(), removed=set())))
            await mirror.until_written()
        await asyncio.wait_for(reader, 10)
    finally:
        await view.close()
        await mirror.stop()
    assert len(seen) >= 10


async def test_a_follower_behind_the_stream_gets_a_gap(
        io_loop: Any, redis_server: RedisServer) -> None:
    client = FakeClient(sensors(0, 1))
    sensor = client.objects["g0.0"]
    mirror = await started(redis_server.url, client, stream_maxlen=10)
    view = FleetView(redis_server.url, block=0.05)
    updates = view.follow("dev", initial=True)
    try:
        await eventually(lambda: generation(view))
        assert isinstance(await asyncio.wait_for(updates.__anext__(), 5), Gap)
        for value in range(1, 400):  # one stream entry each, trimmed to the last ~100
            sensor.set(float(value), Sensor.NOMINAL, value)
            await mirror.until_written()
        gap = await asyncio.wait_for(updates.__anext__(), 5)
        assert isinstance(gap, Gap) and gap.reason == "behind"
        assert gap.readings["g0.0"].value == 399
        sensor.set(400.0, Sensor.NOMINAL, 400)
        update = await asyncio.wait_for(updates.__anext__(), 5)
        assert isinstance(update, Update) and update.reading.value == 400
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
        await view.close()
        await mirror.stop()


async def test_readings_the_writer_dropped_make_a_gap(
        io_loop: Any, redis_server: RedisServer) -> None:
    client = FakeClient(sensors(0, 1))
    sensor = client.objects["g0.0"]
    mirror = await started(redis_server.url, client, buffer=3)
    view = FleetView(redis_server.url, block=0.05)
    updates = view.follow("dev", initial=True)
    try:
        await eventually(lambda: generation(view))
        assert isinstance(await asyncio.wait_for(updates.__anext__(), 5), Gap)
        for value in range(1, 11):  # in one turn: 3 fit the buffer, 7 are dropped
            sensor.set(float(value), Sensor.NOMINAL, value)
        gap = await asyncio.wait_for(updates.__anext__(), 5)
        assert isinstance(gap, Gap) and gap.reason == "dropped"
        assert gap.readings["g0.0"].value == 10
        status = await view.status("dev")
        assert status is not None and status.dropped == 7
        dev = mirror.mirror("dev")
        assert dev is not None and dev.stats.dropped == 7
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
        await view.close()
        await mirror.stop()


async def test_wait_for_a_condition(io_loop: Any, redis_server: RedisServer) -> None:
    client = FakeClient(sensors(0, 1))
    sensor = client.objects["g0.0"]
    mirror = await started(redis_server.url, client)
    view = FleetView(redis_server.url, block=0.05)
    try:
        await eventually(lambda: generation(view))
        assert (await view.wait("dev", "g0.0", 0, timeout=5)).value == 0  # at once
        waiting = asyncio.ensure_future(view.wait("dev", "g0.0", lambda r: r.value > 2, 5))
        for value in range(1, 5):
            sensor.set(float(value), Sensor.NOMINAL, value)
            await mirror.until_written()
        assert (await waiting).value == 3
        try:
            await view.wait("dev", "g0.0", 100, timeout=0.2)
            raise AssertionError("no timeout")
        except WaitTimeoutError:
            pass
    finally:
        await view.close()
        await mirror.stop()


async def test_the_blocking_view(io_loop: Any, redis_server: RedisServer) -> None:
    client = FakeClient(sensors(0, 2))
    mirror = await started(redis_server.url, client)
    view = FleetView(redis_server.url)
    try:
        await eventually(lambda: generation(view))
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(None, _read_blocking, redis_server.url)
        assert result == (["dev"], "synced", {"g0.0": 0, "g0.1": 0}, 0)
    finally:
        await view.close()
        await mirror.stop()


def _read_blocking(url: str) -> tuple[Any, ...]:
    with BlockingFleetView(url, block=0.05) as view:
        status = view.status("dev")
        snapshot = view.snapshot("dev")
        assert status is not None and snapshot is not None
        follow = view.follow("dev", initial=True, timeout=5)
        first = next(follow)
        follow.close()
        assert isinstance(first, Gap)
        return (view.devices(), status.state,
                {n: r.value for n, r in snapshot.readings.items()},
                view.wait("dev", "g0.1", 0, timeout=5).value)
