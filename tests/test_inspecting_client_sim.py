"""InspectingClientAsync against our SimulatedDevice, in each protocol version it speaks."""

from __future__ import annotations

from typing import Any

import pytest

from katcp_inspect import InspectingClientAsync, SensorStatus, SensorType
from katcp_inspect.inspecting_client import DATA_SYNCED_CHANGED, SYNCED
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor

from .support import wait_until
from .test_inspecting_client import Recorder, make_client

PROTOCOLS = ["5.1", "5.0", "4"]


def assert_model_matches(client: InspectingClientAsync, device: SimulatedDevice) -> None:
    """The client's model, sensor by sensor, is what the device says it has."""
    assert sorted(client.sensors) == sorted(device.sensors)
    assert sorted(client.requests) == sorted(device.requests)
    for name, info in client._model.sensors.items():
        sim = device.sensors[name]
        assert (info.description, info.units, info.type_name) == (
            sim.description, sim.units, sim.stype.wire_name), name


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_sync_and_live_values(io_loop: Any, protocol: str) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol=protocol)
    await device.start("127.0.0.1", 0)
    client = make_client(device.port, auto_sampling="auto")
    try:
        await client.connect()
        await client.until_synced(timeout=10)
        assert client.katcp_client.protocol_flags.major == (4 if protocol == "4" else 5)
        assert_model_matches(client, device)
        for name, sim in device.sensors.items():
            sensor = await client.future_get_sensor(name)
            reading = sensor.read()
            if sim.stype == SensorType.TIMESTAMP:  # KATCP 4 sends whole milliseconds
                assert reading.value == pytest.approx(sim.reading.value, abs=1e-3), name
            else:
                assert reading.value == sim.reading.value, name
            assert reading.status == sim.reading.status, name
            assert reading.timestamp == pytest.approx(sim.reading.timestamp, abs=1e-3), name
        device.set_value("cpu.temperature", 55.5, status="warn")
        temperature = await client.future_get_sensor("cpu.temperature")
        await wait_until(lambda: temperature.value() == 55.5)
        assert temperature.status() == SensorStatus.WARN
    finally:
        await client.stop()
        await device.stop()


@pytest.mark.parametrize("style", ["sensor", "list", "bare", "device-changed"])
async def test_every_interface_changed_style_is_followed(io_loop: Any, style: str) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None, interface_changed=style)
    await device.start("127.0.0.1", 0)
    try:
        client = make_client(device.port, auto_sampling="event")
        recorder = Recorder()
        client.set_state_callback(recorder)
        await client.connect()
        await client.until_synced(timeout=10)
        old = await client.future_get_sensor("device.mode")

        device.add_sensor(SimulatedSensor("integer", "new.counter", "New.", "", value=5))
        await wait_until(lambda: "new.counter" in client.sensors, what="the added sensor")
        device.add_sensor(SimulatedSensor("string", "device.mode", "Now a string.", "",
                                          value="free text"))
        device.remove_sensor("rx.band")
        await wait_until(lambda: "rx.band" not in client.sensors, what="the removal")
        await client.until_synced(timeout=10)
        assert_model_matches(client, device)

        new_mode = await client.future_get_sensor("device.mode")
        assert new_mode is not old and new_mode.sensor_type == SensorType.STRING
        await wait_until(lambda: new_mode.value() == "free text", what="a value, re-sampled")
        counter = await client.future_get_sensor("new.counter")
        await wait_until(lambda: counter.value() == 5, what="the new sensor sampled")
        reported = [c for s, c in recorder.calls if s == DATA_SYNCED_CHANGED]
        added = set().union(*(c.sensors.added for c in reported[1:] if "sensors" in c))
        removed = set().union(*(c.sensors.removed for c in reported[1:] if "sensors" in c))
        assert {"new.counter", "device.mode"} <= added
        assert {"rx.band", "device.mode"} <= removed
        await client.stop()
    finally:
        await device.stop()


async def test_restarts_into_other_versions_and_models(io_loop: Any) -> None:
    """The client follows 5.1 → 4 → 5.0 on one address, re-applying the user's strategy."""
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol="5.1")
    await device.start("127.0.0.1", 0)
    port = device.port
    client = make_client(port)
    await client.connect()
    await client.until_synced(timeout=10)
    await client.set_sampling_strategies(r"^cpu\.", "event")
    temperature = await client.future_get_sensor("cpu.temperature")
    try:
        for protocol, extra in (("4", "v4.only"), ("5.0", "v50.only")):
            await device.stop()
            await client.until_not_synced(timeout=10)
            device = SimulatedDevice.with_demo_sensors(rate=None, protocol=protocol)
            device.add_sensor(SimulatedSensor("float", extra, "Extra.", "", value=1.0))
            await device.start("127.0.0.1", port)
            await client.until_synced(timeout=10)
            assert extra in client.sensors
            assert client.katcp_client.protocol_flags.major == (4 if protocol == "4" else 5)
            temperature = await client.future_get_sensor("cpu.temperature")
            device.set_value("cpu.temperature", 60.25)
            await wait_until(lambda t=temperature: t.value() == 60.25, what=protocol)
        assert client.state == SYNCED
    finally:
        await client.stop()
        await device.stop()


async def test_timeout_hints_reach_the_model_and_the_client(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None)

    @device.request("calibrate", help="Calibrate (slow).", timeout_hint=12.5)
    async def calibrate(ctx: Any) -> None:
        return None

    await device.start("127.0.0.1", 0)
    try:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=10)
        request = await client.future_get_request("calibrate")
        assert (request.description, request.timeout_hint) == ("Calibrate (slow).", 12.5)
        assert client.katcp_client.timeout_hints == {"calibrate": 12.5}
        assert (await client.future_get_request("watchdog")).timeout_hint is None
        assert await client.future_get_request("nope") is None
        await client.stop()
    finally:
        await device.stop()


async def test_a_device_that_synced_is_followed_at_once_after_each_restart(io_loop: Any) -> None:
    """A whole sync proves a connection healthy: the reconnect backoff starts afresh, so a
    device that restarts again and again is not met with a growing delay (only devices that
    drop before a sync are)."""
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    client = make_client(device.port)
    backoff = client.katcp_client.reconnect_backoff
    backoff.delay_initial = 0.05
    backoff.success()
    try:
        await client.connect()
        for _ in range(4):
            await client.until_synced(timeout=10)
            assert backoff._base_delay == backoff.delay_initial
            device.drop_clients()
            await client.until_not_synced(timeout=10)
        await client.until_synced(timeout=10)
    finally:
        await client.stop()
        await device.stop()
