"""Names are data: any device, sensor or request name survives the trip through Redis, and a
device name enters a key only escaped (reversibly)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror import FleetView, Gap, RedisMirror, Update, escape, exact, unescape
from katcp_inspect.mirror.schema import Keys

from .fake_client import FakeClient
from .helpers import eventually
from .redis_server import RedisServer

HOSTILE = ["a:b", "line\nbreak", "star*?[x]", "{tag}", "%41", "sp ace", "\udcff\udcfe",
           "ü", "dev:stream", ""]


@given(st.text())
def test_escaping_is_reversible_and_key_safe(name: str) -> None:
    escaped = escape(name)
    assert unescape(escaped) == name
    assert all(c.isascii() and (c.isalnum() or c in "._-%") for c in escaped)
    keys = Keys("p:")
    assert keys.name_of(keys.device(name, "state")) == name


def test_escaping_keeps_plain_names_readable() -> None:
    assert escape("m000.rx-1_a") == "m000.rx-1_a"
    assert escape("a:b") == "a%3Ab" and escape("%") == "%25"
    assert escape("\udcff") == "%FF"  # a byte that was not UTF-8 comes back as that byte


async def test_hostile_names_round_trip(io_loop: Any, redis_server: RedisServer) -> None:
    clients = {}
    for i, name in enumerate(HOSTILE):
        sensor = Sensor(SensorType.INTEGER, HOSTILE[(i + 1) % len(HOSTILE)], "d\n'x'", "u")
        sensor.set(1.5, Sensor.NOMINAL, i)
        clients[name] = FakeClient([sensor], [HOSTILE[(i + 2) % len(HOSTILE)]])
    mirror = RedisMirror(redis_server.url, HOSTILE, fair=False, lease=1.0)
    for name, client in clients.items():
        mirror.add(name, client)  # type: ignore[arg-type]
    view = FleetView(redis_server.url, block=0.05)
    await mirror.start()
    try:
        async def all_there() -> bool:
            statuses = await view.statuses()
            return sorted(statuses) == sorted(HOSTILE) and all(
                s.generation == 1 for s in statuses.values())
        await eventually(all_there, what="every device committed")
        assert await view.devices() == sorted(HOSTILE)
        for i, name in enumerate(HOSTILE):
            snapshot = await view.snapshot(name)
            assert snapshot is not None
            sensor = HOSTILE[(i + 1) % len(HOSTILE)]
            assert list(snapshot.sensors) == [sensor]
            assert snapshot.sensors[sensor].description == "d\n'x'"
            assert snapshot.readings[sensor].value == i
            request = HOSTILE[(i + 2) % len(HOSTILE)]
            assert list(snapshot.requests) == [request]
            assert snapshot.requests[request].timeout_hint == 2.5
        for key in await view.redis.keys("*"):
            name = view.keys.name_of(key.decode("ascii"))
            assert name is None or name in HOSTILE
        await _follow_one(view, clients, HOSTILE[1])
    finally:
        await view.close()
        await mirror.stop()


async def _follow_one(view: FleetView, clients: dict[str, FakeClient], name: str) -> None:
    """Following one hostile device by its exact name sees its update, and only it."""
    updates = view.follow(exact(name), initial=True)
    try:
        first = await asyncio.wait_for(updates.__anext__(), 5)
        assert isinstance(first, Gap) and first.device == name
        for client in clients.values():
            sensor = next(iter(client.objects.values()))
            sensor.set(2.0, Sensor.WARN, 99)
        update = await asyncio.wait_for(updates.__anext__(), 5)
        assert isinstance(update, Update)
        assert (update.device, update.sensor, update.reading.value) == (
            name, HOSTILE[2], 99)
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
