"""The documented katcp-python usage: ``tornado.gen.coroutine`` functions that ``yield`` the
client's futures, against our simulated device and against aiokatcp's server."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import aiokatcp
import pytest
from tornado import gen

from katcp_inspect import InspectingClientAsync, Message, SensorStatus
from katcp_inspect.inspecting_client import DATA_SYNCED_CHANGED, DISCONNECTED, SYNCED, SYNCING
from katcp_inspect.testing import SimulatedDevice

from .support import ThirdPartyDevice, port_of

Coroutine = Generator[Any, Any, Any]


class Device:
    """One of the two servers, behind the few operations these tests need."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.server: Any = None

    @gen.coroutine
    def start(self) -> Coroutine:
        if self.kind == "simulated":
            self.server = SimulatedDevice.with_demo_sensors(rate=None)
            yield self.server.start("127.0.0.1", 0)
            self.port = self.server.port
        else:
            self.server = ThirdPartyDevice("127.0.0.1", 0)
            yield self.server.start()
            self.server.sensors.add(aiokatcp.Sensor(
                float, "cpu.temperature", "CPU", "degC", default=42.5,
                initial_status=aiokatcp.Sensor.Status.NOMINAL))
            self.port = port_of(self.server)

    def set_temperature(self, value: float) -> None:
        if self.kind == "simulated":
            self.server.set_value("cpu.temperature", value)
        else:
            self.server.sensors["cpu.temperature"].value = value

    @gen.coroutine
    def stop(self) -> Coroutine:
        yield self.server.stop()


def run(io_loop: Any, kind: str, scenario: Any) -> None:
    @gen.coroutine
    def main() -> Coroutine:
        device = Device(kind)
        yield device.start()
        client = InspectingClientAsync("127.0.0.1", device.port)
        try:
            yield scenario(client, device)
        finally:
            client.stop()
            yield client.until_stopped(timeout=5)
            yield device.stop()

    io_loop.run_sync(main, timeout=30)


KINDS = ["simulated", "aiokatcp"]


@pytest.mark.parametrize("kind", KINDS)
def test_sync_states_and_lookups(io_loop: Any, kind: str) -> None:
    states: list[Any] = []

    @gen.coroutine
    def scenario(client: InspectingClientAsync, device: Device) -> Coroutine:
        client.set_state_callback(lambda state, changes: states.append(state))
        yield client.connect()
        yield client.until_synced(timeout=10)
        assert states == [DISCONNECTED, SYNCING, DATA_SYNCED_CHANGED, SYNCED]
        sensor = yield client.future_get_sensor("cpu.temperature")
        again = yield client.future_get_sensor("cpu.temperature")
        assert sensor is again and sensor.units == "degC"
        missing = yield client.future_get_sensor("no.such.sensor")
        assert missing is None
        request = yield client.future_get_request("watchdog")
        assert request.name == "watchdog"
        known = yield client.future_check_request("no-such-request")
        assert known is False

    run(io_loop, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_strategies_and_observers(io_loop: Any, kind: str) -> None:
    seen: list[Any] = []

    class Observer:
        def update(self, sensor: Any, reading: Any) -> None:
            seen.append(reading)

    @gen.coroutine
    def scenario(client: InspectingClientAsync, device: Device) -> Coroutine:
        yield client.connect()
        yield client.until_synced(timeout=10)
        sensor = yield client.future_get_sensor("cpu.temperature")
        sensor.attach(Observer())
        reply, _ = yield sensor.set_strategy("event")
        assert reply.reply_ok()
        device.set_temperature(77.25)
        for _ in range(200):
            if sensor.value() == 77.25:
                break
            yield gen.sleep(0.01)
        assert sensor.read()[1:] == (SensorStatus.NOMINAL, 77.25)
        assert seen and seen[-1].value == 77.25

    run(io_loop, kind, scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_simple_request_and_failure_replies(io_loop: Any, kind: str) -> None:
    @gen.coroutine
    def scenario(client: InspectingClientAsync, device: Device) -> Coroutine:
        yield client.connect()
        yield client.until_synced(timeout=10)
        reply, informs = yield client.simple_request("help", "watchdog")
        assert reply.reply_ok() and len(informs) == 1
        reply, _ = yield client.simple_request("no-such-request")
        assert reply.mtype is Message.REPLY and reply.arguments[0] == b"invalid"
        client.stop()
        yield client.until_stopped(timeout=5)
        reply, _ = yield client.simple_request("watchdog")
        assert reply.mtype is Message.REPLY and reply.arguments[0] == b"fail"

    run(io_loop, kind, scenario)
