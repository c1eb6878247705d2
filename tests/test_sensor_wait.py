"""``InspectingClientAsync.wait``: a sensor condition, against the simulated device."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from katcp_inspect import (
    ClientClosedError,
    InspectingClientAsync,
    Reading,
    SensorStatus,
    UnknownSensorError,
    WaitTimeoutError,
)
from katcp_inspect.testing import SimulatedDevice

from .support import wait_until
from .test_inspecting_client import make_client


@asynccontextmanager
async def synced(**kwargs: Any) -> AsyncIterator[tuple[SimulatedDevice, InspectingClientAsync]]:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    client = make_client(device.port, **kwargs)
    try:
        await client.connect()
        await client.until_synced(timeout=10)
        yield device, client
    finally:
        await client.stop()
        await device.stop()


def device_strategy(device: SimulatedDevice, name: str) -> str:
    (connection,) = device.connections
    return connection.sampling.strategy(name).strategy.value


async def test_already_satisfied_resolves_at_once_without_sampling(io_loop: Any) -> None:
    async with synced() as (device, client):
        mode = device.sensors["device.mode"].reading.value
        reading = await client.wait("device.mode", mode, timeout=0)
        assert isinstance(reading, Reading) and reading.value == mode
        assert device_strategy(device, "device.mode") == "none"


async def test_satisfied_later_samples_for_the_wait_then_restores(io_loop: Any) -> None:
    async with synced() as (device, client):
        waiting = client.wait("cpu.temperature", 77.5, timeout=10)
        await wait_until(lambda: device_strategy(device, "cpu.temperature") == "event",
                         timeout=5, what="event sampling for the wait")
        assert not waiting.done()
        device.set_value("cpu.temperature", 77.5)
        reading = await waiting
        assert reading.value == 77.5
        assert device_strategy(device, "cpu.temperature") == "none"
        sensor = await client.future_get_sensor("cpu.temperature")
        assert sensor is not None and sensor.observers == ()


async def test_the_users_strategy_is_kept(io_loop: Any) -> None:
    async with synced() as (device, client):
        await client.set_sampling_strategy("cpu.temperature", "period", 0.5)
        waiting = client.wait("cpu.temperature", 11.0, timeout=10)
        device.set_value("cpu.temperature", 11.0)
        assert (await waiting).value == 11.0
        assert device_strategy(device, "cpu.temperature") == "period"


async def test_a_predicate_over_the_reading(io_loop: Any) -> None:
    async with synced() as (device, client):
        waiting = client.wait("cpu.temperature",
                              lambda r: r.status == SensorStatus.WARN and r.value > 60,
                              timeout=10)
        await wait_until(lambda: device_strategy(device, "cpu.temperature") == "event",
                         timeout=5)
        device.set_value("cpu.temperature", 50.0, status="warn")
        device.set_value("cpu.temperature", 65.0, status="nominal")
        await asyncio.sleep(0.05)  # neither reading meets the predicate
        assert not waiting.done()
        device.set_value("cpu.temperature", 66.0, status="warn")
        assert (await waiting).value == 66.0


async def test_a_predicate_that_raises_fails_the_wait(io_loop: Any) -> None:
    async with synced() as (_, client):
        def broken(reading: Reading) -> bool:
            raise ZeroDivisionError
        with pytest.raises(ZeroDivisionError):
            await client.wait("cpu.temperature", broken, timeout=10)


async def test_timeout_raises_the_librarys_error_and_restores(io_loop: Any) -> None:
    async with synced() as (device, client):
        with pytest.raises(WaitTimeoutError):
            await client.wait("cpu.temperature", 1234.0, timeout=0.2)
        assert device_strategy(device, "cpu.temperature") == "none"
        sensor = await client.future_get_sensor("cpu.temperature")
        assert sensor is not None and sensor.observers == ()


async def test_survives_a_reconnect(io_loop: Any) -> None:
    async with synced() as (device, client):
        waiting = client.wait("cpu.temperature", 88.0, timeout=15)
        await wait_until(lambda: device_strategy(device, "cpu.temperature") == "event",
                         timeout=5)
        device.drop_clients()
        await client.until_not_synced(timeout=5)
        await client.until_synced(timeout=10)
        # The new connection samples the sensor again, for the wait.
        await wait_until(lambda: len(device.connections) == 1
                         and device_strategy(device, "cpu.temperature") == "event",
                         timeout=5, what="the strategy re-applied after the reconnect")
        assert not waiting.done()
        device.set_value("cpu.temperature", 88.0)
        assert (await waiting).value == 88.0
        assert device_strategy(device, "cpu.temperature") == "none"


async def test_unknown_sensor(io_loop: Any) -> None:
    async with synced() as (_, client):
        with pytest.raises(UnknownSensorError) as raised:
            await client.wait("no.such\x1bsensor", 1, timeout=5)
        assert isinstance(raised.value, KeyError)
        assert "\x1b" not in str(raised.value)


async def test_stop_ends_a_wait(io_loop: Any) -> None:
    async with synced() as (_, client):
        waiting = client.wait("cpu.temperature", 999.0)
        await asyncio.sleep(0.05)
        await client.stop()
        with pytest.raises(ClientClosedError):
            await waiting


async def test_two_waits_on_one_sensor_share_the_hold(io_loop: Any) -> None:
    async with synced() as (device, client):
        first = client.wait("cpu.temperature", 1.0, timeout=10)
        second = client.wait("cpu.temperature", 2.0, timeout=10)
        await wait_until(lambda: device_strategy(device, "cpu.temperature") == "event",
                         timeout=5)
        device.set_value("cpu.temperature", 1.0)
        await first
        assert device_strategy(device, "cpu.temperature") == "event"
        device.set_value("cpu.temperature", 2.0)
        await second
        assert device_strategy(device, "cpu.temperature") == "none"
