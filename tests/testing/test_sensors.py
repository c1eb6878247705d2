"""The simulated device's sensor model, demo sensors and generated values (no sockets)."""

from __future__ import annotations

import pytest

from katcp_inspect.kattypes import Address, SensorStatus, SensorType, check_value
from katcp_inspect.testing import (
    SimulatedSensor,
    ValueGenerator,
    demo_sensors,
    generated_reading,
)


def test_a_sensor_without_a_value_is_unknown() -> None:
    sensor = SimulatedSensor("float", "x.y", params=[2.0, 3.0])
    assert sensor.status is SensorStatus.UNKNOWN
    assert sensor.value == 2.0  # the bottom of a range that excludes 0
    sensor.set_value(2.5)
    assert sensor.status is SensorStatus.NOMINAL


@pytest.mark.parametrize(("stype", "value"), [
    ("integer", 1.5), ("integer", True), ("boolean", 1), ("discrete", "purple"),
    ("address", ("host", 70000)), ("lru", 2),
])
def test_bad_values_are_refused(stype: str, value: object) -> None:
    sensor = SimulatedSensor(stype, "s", params=["red", "green"] if stype == "discrete" else [])
    with pytest.raises(ValueError, match="not a valid"):
        sensor.set_value(value)


def test_bad_names_types_and_statuses_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid sensor name"):
        SimulatedSensor("integer", "a,b")
    with pytest.raises(ValueError, match="unknown sensor type"):
        SimulatedSensor("complex", "a")
    with pytest.raises(ValueError, match="unknown sensor status"):
        SimulatedSensor("integer", "a").set_value(1, "fine")


def test_status_line_is_cached_per_reading_and_version() -> None:
    sensor = SimulatedSensor(SensorType.TIMESTAMP, "t", value=10.25, timestamp=20.5)
    line = sensor.status_line()
    assert line == b"#sensor-status 20.5 1 t nominal 10.25\n"
    assert sensor.status_line() is line
    assert sensor.status_line(4) == b"#sensor-status 20500 1 t nominal 10250\n"
    sensor.set_value(11.0, "warn", timestamp=21.0)
    assert sensor.status_line() == b"#sensor-status 21.0 1 t warn 11.0\n"


def test_observers() -> None:
    sensor = SimulatedSensor("string", "s")
    seen = []

    def observer(s: SimulatedSensor, reading: object) -> None:
        seen.append(reading)

    sensor.attach(observer)
    sensor.set_value("a")
    sensor.detach(observer)
    sensor.set_value("b")
    assert [r.value for r in seen] == ["a"]  # type: ignore[attr-defined]


def test_demo_sensors() -> None:
    sensors = demo_sensors(40)
    assert len(sensors) == 40
    assert len({s.name for s in sensors}) == 40
    assert {s.stype for s in sensors} == set(SensorType)
    assert {s.stype for s in demo_sensors(16)} == set(SensorType)
    assert len(demo_sensors(3)) == 3
    assert all(s.status is SensorStatus.NOMINAL for s in sensors)


def test_generated_values_fit_their_type_and_change() -> None:
    for sensor in demo_sensors(40):
        values = []
        for step in range(30):
            value, status = generated_reading(sensor, step)
            check_value(sensor.stype, value, sensor.params)
            sensor.set_value(value, status)
            values.append(value)
        # An uptime changes once a second, not every step.
        if sensor.stype in (SensorType.INTEGER, SensorType.FLOAT, SensorType.BOOLEAN,
                            SensorType.STRING) and sensor.counter != "seconds":
            assert all(a != b for a, b in zip(values, values[1:])), sensor.name
        if sensor.stype == SensorType.ADDRESS:
            assert isinstance(values[0], Address)


def test_value_generator_updates_once_per_step() -> None:
    sensors = demo_sensors(16)
    generator = ValueGenerator(lambda: sensors[:2], rate=10)
    generator.update_once()
    assert generator.step == 1
    assert not generator.running
    with pytest.raises(ValueError, match="positive"):
        ValueGenerator(list, rate=0)
