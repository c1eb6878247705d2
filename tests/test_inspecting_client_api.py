"""The rest of katcp-python's inspecting-client API, as its users call it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado import gen

from katcp_inspect import (
    DeviceClient,
    InspectingClientAsync,
    Message,
    ProtocolFlags,
    Sensor,
    SensorStatus,
)
from katcp_inspect.inspecting_client import DATA_SYNCED_CHANGED, DISCONNECTED, SYNCED, SYNCING
from katcp_inspect.testing import SimulatedDevice

from .support import scripted_device, sensor_list, wait_until
from .test_inspecting_client import make_client


@pytest.fixture
def device(io_loop: Any) -> Any:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    io_loop.run_sync(lambda: device.start("127.0.0.1", 0))
    yield device
    io_loop.run_sync(device.stop)


@pytest.mark.parametrize("style", ["async", "gen.coroutine"])
async def test_coroutine_callbacks_are_awaited_before_the_next_state(
        io_loop: Any, device: SimulatedDevice, style: str) -> None:
    client = make_client(device.port)
    log: list[str] = []

    async def native(state: Any, changes: Any) -> None:
        log.append(f"begin {state}")
        await asyncio.sleep(0.01)
        log.append(f"end {state}")

    @gen.coroutine
    def tornado_style(state: Any, changes: Any) -> Any:
        log.append(f"begin {state}")
        yield gen.sleep(0.01)
        log.append(f"end {state}")

    client.set_state_callback(native if style == "async" else tornado_style)
    await client.connect()
    await client.until_synced(timeout=10)
    await wait_until(lambda: log[-1] == f"end {SYNCED}")
    states = [DISCONNECTED, SYNCING, DATA_SYNCED_CHANGED, SYNCED]
    assert log == [f"{edge} {s}" for s in states for edge in ("begin", "end")]
    await client.stop()


async def test_class_attributes_and_factory_overrides_are_honoured(io_loop: Any) -> None:
    built: list[DeviceClient] = []

    class Custom(InspectingClientAsync):
        sync_timeout = 0.2
        initial_resync_timeout = 0.02
        max_resync_timeout = 0.05

        def inform_hook_client_factory(self, host: str, port: int, *args: Any,
                                       **kwargs: Any) -> DeviceClient:
            client = super().inform_hook_client_factory(host, port, *args, **kwargs)
            built.append(client)
            return client

    async with scripted_device(responses={"help": lambda r: []}) as scripted:  # never replies
        client = Custom("127.0.0.1", scripted.port)
        assert built == [client.katcp_client]
        await client.connect()
        await wait_until(lambda: client.stats.failed_syncs >= 2, timeout=5)
        assert client.resync_delay is not None
        assert client.resync_delay.delay_initial == 0.02
        assert client.resync_delay.delay_max == 0.05
        await client.stop()


async def test_preset_protocol_flags_for_a_silent_device(io_loop: Any) -> None:
    async with scripted_device(b"", {"sensor-list": sensor_list(b"x X \\@ integer")}) as dev:
        client = make_client(dev.port)
        client.katcp_client.greeting_timeout = 60
        client.preset_protocol_flags(ProtocolFlags(5, 0, "M"))
        await client.connect()
        await client.until_synced(timeout=5)
        assert client.sensors == ["x"]
        assert client.katcp_client.protocol_flags == ProtocolFlags(5, 0, "M")
        await client.stop()


async def test_handle_sensor_value_and_update_sensor(io_loop: Any,
                                                     device: SimulatedDevice) -> None:
    client = make_client(device.port)
    await client.connect()
    await client.until_synced(timeout=10)
    mode = await client.future_get_sensor("device.mode")
    device.set_value("device.mode", "observing")
    await client.simple_request("sensor-value", "device.mode")
    assert mode.value() == "idle"  # replies to ?sensor-value are not updates by default...
    client.handle_sensor_value()
    await client.simple_request("sensor-value", "device.mode")
    assert mode.value() == "observing"  # ...until asked for
    await client.update_sensor("device.mode", b"1700000000.5", b"warn", b"maintenance")
    assert mode.read() == (1700000000.5, SensorStatus.WARN, "maintenance")
    assert client.bind_address == ("127.0.0.1", device.port)
    assert client.bind_address_string == f"127.0.0.1:{device.port}"
    await client.stop()


async def test_no_lookup_waits_forever(io_loop: Any) -> None:
    async with scripted_device() as dev:
        dev.stop_listening()  # the device is away
        client = make_client(dev.port)
        client.sync_timeout = 0.05
        await client.connect()
        with pytest.raises(TimeoutError):
            await client.future_get_sensor("anything")
        await client.stop()


async def test_until_state_rejects_invalid_states_and_times_out(io_loop: Any) -> None:
    client = make_client(1)
    with pytest.raises(ValueError, match="not a valid state"):
        client.until_state((True, True, True, True))  # type: ignore[arg-type]
    with pytest.raises(TimeoutError):
        await client.until_synced(timeout=0.01)
    assert not client._states.waiters  # a timed-out waiter leaves nothing behind


async def test_simple_request_keywords(io_loop: Any, device: SimulatedDevice) -> None:
    client = make_client(device.port)
    await client.connect()
    await client.until_synced(timeout=10)
    reply, informs = await client.simple_request("help", "watchdog", mid=555)
    assert str(reply) == "!help[555] ok 1"
    assert informs[0].mid == 555
    reply, _ = await client.simple_request("watchdog", use_mid=False)
    assert reply == Message.reply("watchdog", "ok")
    device.set_delay("watchdog", 1.0)
    reply, _ = await client.simple_request("watchdog", timeout=0.05)
    assert reply.arguments[0] == b"fail" and b"timed out" in reply.arguments[1]
    await client.stop()


async def test_a_raising_sensor_factory_does_not_end_the_loop(io_loop: Any,
                                                              device: SimulatedDevice) -> None:
    calls: list[str] = []

    def flaky_factory(**kwargs: Any) -> Any:
        calls.append(kwargs["name"])
        if kwargs["name"] == "device.mode" and calls.count("device.mode") == 1:
            raise RuntimeError("user bug")
        from katcp_inspect import Sensor
        return Sensor(kwargs.pop("sensor_type"), **kwargs)

    client = make_client(device.port, auto_sampling="event")
    client.sensor_factory = flaky_factory
    await client.connect()
    await client.until_synced(timeout=10)  # the first update for device.mode was lost...
    assert client.stats.callback_errors == 1
    mode = await client.future_get_sensor("device.mode")
    device.set_value("device.mode", "observing")
    await wait_until(lambda: mode.value() == "observing")  # ...but not the sensor
    await client.stop()


async def test_sensors_get_their_strategy_setter_through_the_constructor(
        io_loop: Any, device: SimulatedDevice) -> None:
    """A factory that names ``strategy_setter`` gets the client; one with katcp-python's
    keywords gets exactly those (a strict factory is not broken by the new keyword), and the
    Sensor it makes can still be sampled, as before the keyword existed."""
    strict_calls: list[dict[str, Any]] = []

    def strict_factory(*, name: str, sensor_type: Any, description: str, units: str,
                       params: Any) -> Sensor:
        strict_calls.append({"name": name})
        return Sensor(sensor_type, name, description, units, params)

    client = make_client(device.port)
    await client.connect()
    await client.until_synced(timeout=10)
    temperature = await client.future_get_sensor("cpu.temperature")
    reply, _ = await temperature.set_strategy("event")
    assert reply.reply_ok()
    client.sensor_factory = strict_factory
    mode = await client.future_get_sensor("device.mode")
    assert strict_calls == [{"name": "device.mode"}]
    reply, _ = await mode.set_strategy("event")
    assert reply.reply_ok()
    assert Sensor(Sensor.INTEGER, "alone", "", "", [0, 1]).strategy_setter is None
    with pytest.raises(RuntimeError, match="does not belong"):
        Sensor(Sensor.INTEGER, "alone", "", "", [0, 1]).set_strategy("event")
    await client.stop()
