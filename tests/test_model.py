"""DeviceModel: inspections applied in one step, and changes computed against a snapshot."""

from __future__ import annotations

import gc

import pytest

from katcp_inspect import Message
from katcp_inspect.model import (
    AttrDict,
    DeviceModel,
    RequestInfo,
    SensorInfo,
    SensorListReader,
    collect_sensor_list,
    parse_help,
    parse_timeout_hints,
)


def sensor(name: str, description: str = "d") -> SensorInfo:
    return SensorInfo(name, description, "", "integer", ())


def test_full_inspection_adds_removes_and_modifies() -> None:
    model = DeviceModel()
    model.apply(sensors={"a": sensor("a"), "b": sensor("b")})
    reported = model.snapshot()
    model.apply(sensors={"b": sensor("b", "new"), "c": sensor("c")})
    assert model.changes_since(reported) == {
        "sensors": {"added": {"b", "c"}, "removed": {"a", "b"}}}
    assert list(model.sensors) == ["b", "c"]


def test_named_inspection_touches_only_that_name() -> None:
    model = DeviceModel()
    model.apply(requests={"x": RequestInfo("x", "X"), "y": RequestInfo("y", "Y")})
    before = model.snapshot()
    model.apply(requests={}, asked_request="x")  # the device no longer knows x
    model.apply(requests={"z": RequestInfo("z", "Z")}, asked_request="z")
    assert set(model.requests) == {"y", "z"}
    assert model.changes_since(before) == {"requests": {"added": {"z"}, "removed": {"x"}}}
    model.apply(sensors={}, asked_sensor="/no-match/")  # a regex never removes
    assert model.changes_since(model.snapshot()) is None


def test_changes_have_katcp_pythons_shape() -> None:
    changes = AttrDict(sensors=AttrDict(added={"a"}, removed=set()))
    assert changes.sensors.added == changes["sensors"]["added"] == {"a"}
    with pytest.raises(AttributeError):
        _ = changes.requests


def arguments(*informs: Message) -> list[list[bytes]]:
    """What the parsers read: each inform's arguments (see ``request_arguments``)."""
    return [inform.arguments for inform in informs]


def test_parsers_keep_what_makes_sense_and_report_the_rest() -> None:
    found, problems = parse_help(arguments(Message.inform("help", "a", "A."),
                                           Message.inform("help")))
    assert found == {"a": "A."} and len(problems) == 1
    hints, problems = parse_timeout_hints(arguments(
        Message.inform("request-timeout-hint", "a", "2.5"),
        Message.inform("request-timeout-hint", "b", "0"),
        Message.inform("request-timeout-hint", "c", "soon")))
    assert hints == {"a": 2.5} and problems == [
        "bad #request-timeout-hint: <Message #request-timeout-hint c soon>"]
    sensors, problems = collect_sensor_list(map(SensorListReader(), arguments(
        Message.inform("sensor-list", "s", "S", "V", "float", "0", "1"),
        Message.inform("sensor-list", "short", "x"),
        Message.inform("sensor-list", b"\xff", b"\xfe", "", "string"))))
    assert sensors["s"] == SensorInfo("s", "S", "V", "float", ("0", "1"))
    assert len(sensors) == 2 and len(problems) == 1  # non-UTF-8 is kept, losslessly
    assert problems[0].endswith(": <Message #sensor-list short x>")


def test_the_registry_holds_plain_tuples_the_collector_stops_tracking() -> None:
    model = DeviceModel()
    model.apply(sensors={"s": SensorInfo("s", "S", "V", "float", ("0", "1"))})
    info = model.sensors["s"]
    assert isinstance(info, SensorInfo) and info.units == "V"
    assert model.sensors.get("nope") is None and "s" in model.sensors
    assert dict(model.sensors.items()) == {"s": info} and len(model.sensors) == 1
    gc.collect()
    # A named tuple is never untracked: a fleet's million of them would be scanned by
    # every full collection.
    assert not any(gc.is_tracked(fields) for fields in model.sensors.raw.values())
