"""A Fleet with a Redis URL: its model mirrored, and in workers mode its devices shared."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from katcp_inspect.fleet import ConfigError, Fleet, FleetConfig
from katcp_inspect.fleet.summary import DeviceState
from katcp_inspect.mirror import FleetView
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor

from .helpers import eventually, model_of
from .redis_server import RedisServer
from .test_mirror import expect_mirror


@contextlib.asynccontextmanager
async def devices(count: int) -> AsyncIterator[dict[str, SimulatedDevice]]:
    started = {f"d{i}": SimulatedDevice.with_demo_sensors(rate=None) for i in range(count)}
    try:
        for device in started.values():
            await device.start("127.0.0.1", 0)
        yield started
    finally:
        for device in started.values():
            await device.stop()


def addresses(started: dict[str, SimulatedDevice]) -> dict[str, str]:
    return {name: f"127.0.0.1:{device.port}" for name, device in started.items()}


async def test_a_fleet_mirrored_equals_its_model_at_synced_reports(
        io_loop: Any, redis_server: RedisServer) -> None:
    async with devices(3) as started, FleetView(redis_server.url) as view:
        fleet = Fleet(addresses(started), connect_spread=0, redis=redis_server.url,
                      redis_lease=1.0)
        reports: dict[str, list[Any]] = {name: [] for name in started}

        def listener(name: str, state: DeviceState) -> None:
            if state.state == "synced":
                reports[name].append(model_of(fleet[name]))
        fleet.add_state_listener(listener)
        async with fleet:
            await fleet.until_synced(10)
            for name in started:
                await expect_mirror(view, name, reports[name][-1], 1)
            # A model change is a new sync: the mirror follows with a new generation.
            started["d1"].add_sensor(SimulatedSensor("integer", "new.counter", "New.", "",
                                                     value=5))
            await eventually(lambda: _reports(reports, "d1", 2), what="second sync")
            await expect_mirror(view, "d1", reports["d1"][-1], 2)
        statuses = await view.statuses()
        assert {name: status.state for name, status in statuses.items()} == dict.fromkeys(
            started, "stopped")


async def _reports(reports: dict[str, list[Any]], name: str, count: int) -> bool:
    return len(reports[name]) >= count


async def synced_owners(view: FleetView, names: list[str]) -> dict[str, str] | None:
    """Each device's owner once every device is synced in Redis, else None."""
    statuses = await view.statuses()
    if set(statuses) != set(names) or any(s.state != "synced" for s in statuses.values()):
        return None
    return {name: status.owner for name, status in statuses.items()}


async def test_two_fleets_in_workers_mode_split_the_devices_and_one_takes_over(
        io_loop: Any, redis_server: RedisServer) -> None:
    async with devices(4) as started, FleetView(redis_server.url) as view:
        config = addresses(started)
        names = list(config)
        first = Fleet(config, connect_spread=0, redis=redis_server.url, redis_lease=1.0,
                      workers=True)
        second = Fleet(config, connect_spread=0, redis=redis_server.url, redis_lease=1.0,
                       workers=True)
        await first.start()
        await second.start()
        try:
            assert first.mirror is not None and second.mirror is not None
            workers = {first.mirror.worker_id, second.mirror.worker_id}
            assert len(workers) == 2

            async def split() -> dict[str, str] | None:
                owners = await synced_owners(view, names)
                both = owners is not None and set(owners.values()) == workers
                return owners if both and not first.owned & second.owned else None
            owners = await eventually(split, timeout=15, what="the devices split")
            assert first.owned | second.owned == set(names)
            # A fleet runs only the devices it owns.
            for fleet in (first, second):
                for name in names:
                    assert (fleet.state(name).state == "synced") == (name in fleet.owned)
                assert {n for n, o in owners.items() if o == fleet.mirror.worker_id} \
                    == fleet.owned

            await first.stop()
            survivor = second.mirror.worker_id

            async def taken_over() -> bool:
                owners = await synced_owners(view, names)
                return owners is not None and set(owners.values()) == {survivor}
            await eventually(taken_over, timeout=15, what="the takeover")
            assert second.owned == set(names)
            await second.until_synced(10)
        finally:
            await first.stop()
            await second.stop()


def test_workers_need_a_redis_url() -> None:
    with pytest.raises(ConfigError, match="Redis URL"):
        Fleet({"d0": "127.0.0.1:7147"}, workers=True)


def test_the_redis_table_is_read_and_written_back(tmp_path: Any) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[redis]\nurl = "redis://127.0.0.1:6379/0"\nprefix = "lab:"\n'
                    'lease = 2.5\n\n[devices]\nd0 = "127.0.0.1:7147"\n')
    config = FleetConfig.load(path)
    assert config.redis is not None
    assert (config.redis.url, config.redis.prefix, config.redis.lease) == (
        "redis://127.0.0.1:6379/0", "lab:", 2.5)
    again = tmp_path / "again.toml"
    again.write_text(config.to_toml())
    assert FleetConfig.load(again) == config


@pytest.mark.parametrize(("text", "line", "message"), [
    ('[redis]\nurl = "redis://x"\nport = 6379\n', 3, "unknown key"),
    ('[redis]\nprefix = "lab:"\n', 1, "no url"),
    ('[redis]\nurl = "http://secret@x"\n', 2, "must start with redis://"),
    ('[redis]\nurl = "redis://x"\nlease = 0\n', 3, "more than 0"),
    ('redis = 5\n', 1, "must be a table"),
])
def test_a_bad_redis_table_is_a_config_error_with_file_and_line(
        tmp_path: Any, text: str, line: int, message: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text(text + '\n[devices]\nd0 = "127.0.0.1:7147"\n')
    with pytest.raises(ConfigError, match=message) as caught:
        FleetConfig.load(path)
    assert caught.value.file == str(path) and caught.value.line == line
    assert "secret" not in str(caught.value)


async def test_a_fleet_keeps_running_while_redis_is_unreachable(io_loop: Any) -> None:
    async with devices(1) as started, Fleet(addresses(started), connect_spread=0,
                     redis="redis://127.0.0.1:1/0", redis_lease=1.0) as fleet:
        await asyncio.wait_for(fleet.until_synced(), 10)
