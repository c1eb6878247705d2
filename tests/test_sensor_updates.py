"""The sensor-update path on plain data: a record per sensor until its object is asked for,
and the object, once made, carrying on from the record."""

from __future__ import annotations

import gc
import logging
from typing import Any, Callable

import pytest

from katcp_inspect import Reading, Sensor, SensorStatus, SensorType
from katcp_inspect.model import DeviceModel, SensorInfo
from katcp_inspect.sensor_updates import SensorUpdates
from katcp_inspect.stats import InspectingStats, OnceLogger
from katcp_inspect.testing import SimulatedDevice

from .support import wait_until
from .test_inspecting_client import make_client

NOMINAL, WARN, UNREACHABLE = SensorStatus.NOMINAL, SensorStatus.WARN, SensorStatus.UNREACHABLE


class FakeClient:
    address = "127.0.0.1:7147"


class Recorder:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def update(self, sensor: Any, reading: Reading) -> None:
        self.readings.append(reading)


def updates(factory: Callable[..., Any] = Sensor,
            names: tuple[str, ...] = ("a.float", "b.float")) -> SensorUpdates:
    model = DeviceModel()
    model.apply(sensors={name: SensorInfo(name, "A float", "V", "float") for name in names})
    unknown: list[str] = []
    return SensorUpdates(model.sensors, FakeClient(), lambda: factory,  # type: ignore[arg-type]
                         None, InspectingStats(),  # type: ignore[arg-type]
                         OnceLogger(logging.getLogger("test")), unknown.append)


def status(name: bytes, timestamp: bytes, value: bytes, wire_status: bytes = b"nominal"
           ) -> list[bytes]:
    return [timestamp, b"1", name, wire_status, value]


def test_a_sensor_nobody_asked_for_has_a_record_and_no_object() -> None:
    sensors = updates()
    sensors.on_sensor_status(status(b"a.float", b"10.0", b"1.5"))
    sensors.on_sensor_status(status(b"a.float", b"11.0", b"2.5", b"warn"))
    assert sensors.objects == {}
    assert sensors.reading("a.float") == Reading(11.0, WARN, 2.5)
    assert sensors.reading("b.float") is None  # no reading yet
    gc.collect()
    # A plain tuple of plain values: the collector stops tracking it (a Reading, holding an
    # enum member, it would scan in every full collection).
    assert not gc.is_tracked(sensors.records[b"a.float"])


def test_an_object_made_later_has_the_latest_reading_and_gets_the_next_ones() -> None:
    sensors = updates()
    sensors.on_sensor_status(status(b"a.float", b"10.0", b"1.5", b"warn"))
    sensor = sensors.sensor("a.float")
    assert sensor.read() == Reading(10.0, WARN, 1.5)
    assert sensors.records == {}  # the object took over
    recorder = Recorder()
    sensor.attach(recorder)
    sensors.on_sensor_status([b"12.0", b"2", b"a.float", b"nominal", b"3.5",
                              b"b.float", b"nominal", b"4.5"])
    assert recorder.readings == [Reading(12.0, NOMINAL, 3.5)]
    assert sensors.sensor("a.float") is sensor
    assert sensors.reading("b.float") == Reading(12.0, NOMINAL, 4.5)


def test_a_bad_reading_changes_neither_record_nor_object() -> None:
    sensors = updates()
    sensors.on_sensor_status(status(b"a.float", b"10.0", b"1.5"))
    sensors.on_sensor_status(status(b"a.float", b"11.0", b"not-a-float"))
    sensors.on_sensor_status(status(b"a.float", b"11.0", b"2.5", b"so-so"))
    assert sensors.reading("a.float") == Reading(10.0, NOMINAL, 1.5)
    assert sensors._stats.bad_updates == 2


def test_a_record_is_marked_unreachable_on_disconnect_and_keeps_its_value() -> None:
    sensors = updates()
    sensors.on_sensor_status(status(b"a.float", b"10.0", b"1.5"))
    sensors.disconnected()
    reading = sensors.sensor("a.float").read()
    assert (reading.status, reading.value) == (UNREACHABLE, 1.5) and reading.timestamp > 10


def test_another_factory_gets_its_object_at_the_first_reading() -> None:
    made: list[Any] = []

    def factory(**kwargs: Any) -> Sensor:
        sensor = Sensor(kwargs["sensor_type"], kwargs["name"])
        made.append(sensor)
        return sensor

    sensors = updates(factory)
    sensors.on_sensor_status(status(b"a.float", b"10.0", b"1.5"))
    assert [s.name for s in made] == ["a.float"] and sensors.records == {}
    assert made[0].read() == Reading(10.0, NOMINAL, 1.5)


def test_a_changed_sensor_loses_its_record() -> None:
    sensors = updates()
    sensors.on_sensor_status(status(b"a.float", b"10.0", b"1.5"))
    sensors.changed("a.float")  # redescribed by the device: the old reading is not its
    assert sensors.reading("a.float") is None


@pytest.mark.parametrize("with_object", [False, True])
def test_updates_leave_no_tracked_object_behind(with_object: bool) -> None:
    """No future, task, coroutine or other tracked object accumulates per update: each
    update's reading replaces the last."""
    sensors = updates()
    sensors.on_sensor_status(status(b"a.float", b"1.0", b"1.0"))
    if with_object:
        sensors.sensor("a.float")
    lines = [status(b"a.float", b"%d.0" % i, b"%d.5" % i) for i in range(1000)]
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for line in lines:
            sensors.on_sensor_status(line)
        grown = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert grown < 10  # a few at most (one-time), where one per update would be 1000
    assert sensors.reading("a.float") == Reading(999.0, NOMINAL, 999.5)


async def test_a_synced_fleet_client_makes_sensor_objects_only_when_asked(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None)
    await device.start("127.0.0.1", 0)
    client = make_client(device.port, auto_sampling="auto")
    try:
        await client.connect()
        await client.until_synced(timeout=10)
        name = next(n for n in client.sensors if device.get_sensor(n).stype == SensorType.INTEGER)
        await wait_until(lambda: client._updates.reading(name) is not None,
                         what="the initial values")
        assert client._updates.objects == {}  # every value cached in a record
        sensor = await client.future_get_sensor(name)
        assert sensor.value() == device.get_sensor(name).reading.value
        recorder = Recorder()
        sensor.attach(recorder)
        device.set_value(name, sensor.value() + 1)
        await wait_until(lambda: recorder.readings, what="the next reading")
        assert recorder.readings[-1].value == sensor.value() == device.get_sensor(
            name).reading.value
        assert list(client._updates.objects) == [name]
    finally:
        await client.stop()
        await device.stop()
