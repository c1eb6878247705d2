"""Sensor and Reading: katcp-python's interface, observers that cannot hurt each other."""

from __future__ import annotations

import gc
from typing import Any

import pytest

from katcp_inspect import Reading, Sensor, SensorStatus
from katcp_inspect.sensor import SensorKind


class Recorder:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def update(self, sensor: Sensor, reading: Reading) -> None:
        self.readings.append(reading)


def test_constructor_and_constants_as_in_katcp_python() -> None:
    sensor = Sensor(Sensor.INTEGER, "an.int", "An integer.", "count", [-5, 5])
    assert (sensor.name, sensor.stype, sensor.type, sensor.params) == (
        "an.int", "integer", "integer", [-5, 5])
    assert sensor.read().status == Sensor.UNKNOWN and sensor.value() == 0
    assert Sensor.STATUSES[Sensor.NOMINAL] == "nominal"
    assert Sensor(float, "f").sensor_type == Sensor.FLOAT  # Python types as shortcuts
    assert Sensor(Sensor.DISCRETE, "d", params=["on", "off"]).value() == "on"
    assert "no unit" in Sensor(Sensor.STRING, "s").description
    assert Sensor.parse_type("quaternion") == Sensor.STRING  # unknown types: B16


def test_set_value_checks_and_notifies_in_order() -> None:
    sensor = Sensor(Sensor.FLOAT, "f")
    first, second = Recorder(), Recorder()
    sensor.attach(first)
    sensor.attach(second)
    sensor.attach(first)  # once only
    sensor.set_value(1.5, Sensor.WARN, timestamp=10.0)
    assert first.readings == second.readings == [Reading(10.0, SensorStatus.WARN, 1.5)]
    with pytest.raises(ValueError):  # noqa: PT011
        sensor.set_value("not a float")
    sensor.detach(first)
    sensor.set(11.0, Sensor.NOMINAL, 2.0)
    assert len(first.readings) == 1 and len(second.readings) == 2
    timestamp, status, value = sensor.read()  # still a plain tuple
    assert (timestamp, status, value) == (11.0, SensorStatus.NOMINAL, 2.0)


def test_a_raising_observer_does_not_stop_the_others() -> None:
    class Broken:
        def update(self, sensor: Any, reading: Any) -> None:
            raise RuntimeError("user bug")

    sensor = Sensor(Sensor.INTEGER, "i")
    good = Recorder()
    sensor.attach(Broken())
    sensor.attach(good)
    sensor.update_from_wire(5.0, b"nominal", b"7")
    assert good.readings == [Reading(5.0, SensorStatus.NOMINAL, 7)]


def test_wire_updates_change_nothing_when_bad() -> None:
    sensor = Sensor(Sensor.INTEGER, "i")
    sensor.set_formatted(b"1.0", b"nominal", b"3")
    for status, value in ((b"fine", b"4"), (b"nominal", b"four")):
        with pytest.raises((KeyError, ValueError)):
            sensor.update_from_wire(2.0, status, value)
    assert sensor.read() == (1.0, SensorStatus.NOMINAL, 3)
    assert sensor.format_reading(sensor.read()) == (b"1.0", b"nominal", b"3")
    with pytest.raises(RuntimeError, match="does not belong"):
        sensor.set_strategy("event")


def test_the_strategy_setter_is_a_constructor_keyword() -> None:
    asked: list[tuple[Any, ...]] = []

    class Setter:
        def set_sampling_strategy(self, name: str, strategy: str, *params: Any) -> Any:
            asked.append((name, strategy, *params))
            return "reply"

    sensor = Sensor(Sensor.FLOAT, "f", "a float", "", None, strategy_setter=Setter())
    assert sensor.set_strategy("period", 0.5) == "reply"
    assert asked == [("f", "period", 0.5)]


def test_params_are_a_list_made_only_when_first_read() -> None:
    sensor = Sensor.from_model("an.int", "An integer.", "", SensorKind.of(Sensor.INTEGER, (0, 10)),
                               None)
    # Unread, they are a tuple: no list for the collector to scan per sensor of a fleet.
    assert not any(isinstance(held, list) for held in gc.get_referents(sensor))
    assert sensor.params == [0, 10] and sensor.params is sensor.params
    sensor.params.append(20)  # a list, as katcp-python's, kept once made
    assert sensor.params == [0, 10, 20]
    sensor.params = [1]
    assert sensor.params == [1] and Sensor(Sensor.FLOAT, "f").params == []
