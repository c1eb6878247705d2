"""Faults: Redis restarted, unreachable at start, a worker cut off from it."""

from __future__ import annotations

import asyncio
from typing import Any

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror import FleetView, Gap, RedisMirror, Update, connect
from katcp_inspect.testing import FaultProxy, SimulatedDevice

from ..test_inspecting_client import make_client
from .fake_client import FakeClient
from .helpers import eventually
from .redis_server import RedisServer, require_server


def one_sensor(value: int) -> tuple[FakeClient, Sensor]:
    sensor = Sensor(SensorType.INTEGER, "s", "A sensor.")
    sensor.set(1.0, Sensor.NOMINAL, value)
    return FakeClient([sensor]), sensor


async def generation(view: FleetView, name: str = "dev") -> int:
    status = await view.status(name)
    return 0 if status is None else status.generation


async def test_a_restarted_redis_gets_the_whole_state_again(
        io_loop: Any, redis_server: RedisServer) -> None:
    client, sensor = one_sensor(1)
    mirror = RedisMirror(redis_server.url, ["dev"], fair=False, lease=0.6)
    mirror.add("dev", client)  # type: ignore[arg-type]
    view = FleetView(redis_server.url, block=0.05)
    await mirror.start()
    updates = view.follow("dev", initial=True)
    try:
        await eventually(lambda: generation(view), what="the first commit")
        first = await asyncio.wait_for(updates.__anext__(), 5)
        assert isinstance(first, Gap) and first.readings["s"].value == 1
        next_item = asyncio.ensure_future(updates.__anext__())

        await redis_server.arestart()  # empty: no data, no scripts, no leases
        sensor.set(2.0, Sensor.NOMINAL, 2)
        gap = await asyncio.wait_for(next_item, 10)
        assert isinstance(gap, Gap) and gap.reason == "reconnect"
        await eventually(lambda: generation(view), timeout=10, what="the state rewritten")
        snapshot = await view.snapshot("dev")
        assert snapshot is not None and snapshot.readings["s"].value == 2
        assert snapshot.status.state == "synced"

        sensor.set(3.0, Sensor.NOMINAL, 3)
        while True:  # the reconnect Gap may be followed by the rewrite's own
            item = await asyncio.wait_for(updates.__anext__(), 10)
            if isinstance(item, Update):
                break
            assert isinstance(item, Gap)
        assert item.reading.value == 3
    finally:
        await updates.aclose()  # type: ignore[attr-defined]
        await view.close()
        await mirror.stop()


async def test_redis_unreachable_at_start_blocks_nothing(io_loop: Any) -> None:
    server = RedisServer(require_server())  # not started yet
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    client = make_client(device.port, auto_sampling="event")
    mirror = RedisMirror(server.url, ["dev"], fair=False, lease=0.6)
    mirror.add("dev", client)
    view = FleetView(server.url)
    try:
        await mirror.start()
        await client.connect()
        await client.until_synced(timeout=10)  # the in-process model does not wait
        assert mirror.owned == frozenset()
        await server.astart()
        await eventually(lambda: generation(view), timeout=10, what="the late commit")
        snapshot = await view.snapshot("dev")
        assert snapshot is not None and sorted(snapshot.sensors) == sorted(client.sensors)
    finally:
        await client.stop()
        await mirror.stop()
        await view.close()
        await device.stop()
        server.close()


async def test_a_cut_off_worker_stops_and_its_late_writes_are_refused(
        io_loop: Any, redis_server: RedisServer) -> None:
    proxy = FaultProxy("127.0.0.1", redis_server.port)
    await proxy.start()
    cut_client, cut_sensor = one_sensor(1)
    other_client, _ = one_sensor(2)
    cut = RedisMirror(f"redis://127.0.0.1:{proxy.port}/0", ["dev"], worker_id="cut",
                      fair=False, lease=0.6)
    cut.add("dev", cut_client)  # type: ignore[arg-type]
    other = RedisMirror(redis_server.url, ["dev"], worker_id="other", fair=False, lease=0.6)
    other.add("dev", other_client)  # type: ignore[arg-type]
    view = FleetView(redis_server.url)
    try:
        await cut.start()
        await eventually(lambda: generation(view), what="the cut worker's commit")
        # Its answer back too: a stall before it passes the proxy would hold the late write
        # below behind the commit, until the lease is given up and the write dropped unsent.
        await cut.until_written()
        await other.start()
        proxy.to_device.stall()
        proxy.to_client.stall()
        cut_sensor.set(5.0, Sensor.NOMINAL, 10)  # a write that reaches Redis late

        await eventually(lambda: _true(not cut.owned), what="the cut worker giving up")
        status = await eventually(lambda: _owner_is(view, "other"), what="the takeover")
        assert status.generation == 2
        proxy.to_device.resume()
        proxy.to_client.resume()
        mirror = cut.mirror("dev")
        assert mirror is not None
        await eventually(lambda: _true(mirror.stats.fenced >= 1), what="the refusal")
        reading = await view.reading("dev", "s")
        assert reading is not None and reading.value == 2
    finally:
        await cut.stop()
        await other.stop()
        await view.close()
        await proxy.stop()


async def _true(value: bool) -> bool:
    return value


async def _owner_is(view: FleetView, owner: str) -> Any:
    status = await view.status("dev")
    return status if status is not None and status.owner == owner else None


async def test_urls_with_a_password_work(io_loop: Any) -> None:
    server = RedisServer(require_server(), ["--requirepass", "s3cret"])
    server.start()
    try:
        good = connect(f"redis://:s3cret@127.0.0.1:{server.port}/0")
        assert await good.ping()
        await good.aclose()
        client, _ = one_sensor(7)
        url = f"redis://default:s3cret@127.0.0.1:{server.port}/2"
        async with RedisMirror(url, ["dev"], fair=False, lease=0.6) as mirror:
            mirror.add("dev", client)  # type: ignore[arg-type]
            async with FleetView(url) as view:
                await eventually(lambda: generation(view), what="the commit")
                assert await view.reading("dev", "s") is not None
    finally:
        server.close()
