"""Compare an inspecting client's model with a SimulatedDevice's own, as a readable list of
differences (empty when they agree).

What is compared: the request names, each request's description and timeout hint (a hint is
expected only from a device with flag ``T``); the sensor names, each sensor's type,
parameters, description and units (the registry and any cached sensor object); and, with
``readings=True``, each sensor's latest reading (status, value, timestamp).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs

from ...inspecting_client import SYNCED, InspectingClientAsync, InspectingClientStateType
from ...kattypes import SensorStatus, SensorType
from ...message import encode_argument
from ...model import AttrDict
from ..device import SimulatedDevice

#: Readings from KATCP v4 devices carry whole milliseconds.
TIME_TOLERANCE = 1e-3


@attrs.frozen
class ExpectedRequest:
    description: str
    timeout_hint: float | None


@attrs.frozen
class ExpectedSensor:
    type_name: str
    params: tuple[str, ...]
    description: str
    units: str


@attrs.frozen
class ExpectedReading:
    timestamp: float
    status: SensorStatus
    value: Any
    stype: SensorType


@attrs.frozen
class ExpectedModel:
    """What a client synced with a device should hold (see :func:`expected_model`)."""

    requests: Mapping[str, ExpectedRequest]
    sensors: Mapping[str, ExpectedSensor]
    readings: Mapping[str, ExpectedReading]

    def changes_to(self, new: ExpectedModel) -> dict[str, tuple[set[str], set[str]]]:
        """The model changes a client should report going from ``self`` to ``new``: per part,
        ``(added, removed)`` with modified items in both (parts without changes left out)."""
        out = {}
        for part, old_items, new_items in (("requests", self.requests, new.requests),
                                           ("sensors", self.sensors, new.sensors)):
            added = {n for n in new_items if n not in old_items}
            removed = {n for n in old_items if n not in new_items}
            modified = {n for n in new_items if n in old_items and new_items[n] != old_items[n]}
            if added or removed or modified:
                out[part] = (added | modified, removed | modified)
        return out


def _text(value: Any) -> str:
    return encode_argument(value).decode("utf-8", "surrogateescape")


def expected_model(device: SimulatedDevice) -> ExpectedModel:
    """The model a client should build from ``device`` as it is now."""
    hints = device.protocol_flags.request_timeout_hints
    requests = {
        name: ExpectedRequest(info.description,
                              float(info.timeout_hint) if hints and info.timeout_hint
                              and info.timeout_hint > 0 else None)
        for name, info in device.requests.items()}
    sensors = {
        name: ExpectedSensor(s.stype.wire_name, tuple(_text(p) for p in s.params),
                             s.description, s.units)
        for name, s in device.sensors.items()}
    readings = {
        name: ExpectedReading(s.reading.timestamp, s.reading.status, s.reading.value, s.stype)
        for name, s in device.sensors.items()}
    return ExpectedModel(requests, sensors, readings)


def _close(a: float, b: float, tolerance: float) -> bool:
    return math.isclose(a, b, rel_tol=0, abs_tol=tolerance)


def _same_value(expected: ExpectedReading, actual: Any) -> bool:
    if expected.stype == SensorType.TIMESTAMP:
        return isinstance(actual, (int, float)) and _close(actual, expected.value,
                                                           TIME_TOLERANCE)
    if expected.stype == SensorType.FLOAT:
        return isinstance(actual, float) and (actual == expected.value or _close(
            actual, expected.value, 1e-12))
    return bool(actual == expected.value)


def model_differences(client: InspectingClientAsync,
                      device: SimulatedDevice | ExpectedModel, *,
                      readings: bool = True) -> list[str]:
    """Every way the client's model differs from the device's, one line each."""
    expected = device if isinstance(device, ExpectedModel) else expected_model(device)
    model = client._model
    diffs: list[str] = []

    def names(part: str, want: Mapping[str, Any], have: Mapping[str, Any]) -> None:
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        if missing:
            diffs.append(f"{part} missing from the client: {', '.join(missing)}")
        if extra:
            diffs.append(f"{part} the device does not have: {', '.join(extra)}")

    names("requests", expected.requests, model.requests)
    for name, want in expected.requests.items():
        info = model.requests.get(name)
        if info is None:
            continue
        have = ExpectedRequest(info.description, info.timeout_hint)
        if have != want:
            diffs.append(f"request {name}: device {want}, client {have}")
        obj = client._request_objects.get(name)
        if obj is not None and (getattr(obj, "description", None), getattr(
                obj, "timeout_hint", None)) != (want.description, want.timeout_hint):
            diffs.append(f"request {name}: cached object {obj!r} is stale (device {want})")

    names("sensors", expected.sensors, model.sensors)
    for name, want_sensor in expected.sensors.items():
        sensor_info = model.sensors.get(name)
        if sensor_info is None:
            continue
        have_sensor = ExpectedSensor(sensor_info.type_name, tuple(sensor_info.params),
                                     sensor_info.description, sensor_info.units)
        if have_sensor != want_sensor:
            diffs.append(f"sensor {name}: device {want_sensor}, client {have_sensor}")
        obj = client._updates.objects.get(name)
        if obj is not None and (obj.sensor_type.wire_name, obj.description, obj.units) != (
                want_sensor.type_name, want_sensor.description, want_sensor.units):
            diffs.append(f"sensor {name}: cached object {obj!r} is stale "
                         f"(device {want_sensor})")
        if not readings:
            continue
        want_reading = expected.readings[name]
        reading = client._updates.reading(name)
        if reading is None:
            diffs.append(f"sensor {name}: no reading received (device has {want_reading})")
            continue
        if (reading.status != want_reading.status
                or not _same_value(want_reading, reading.value)
                or not _close(reading.timestamp, want_reading.timestamp, TIME_TOLERANCE)):
            diffs.append(f"sensor {name}: reading ({reading.timestamp!r}, "
                         f"{reading.status.name}, {reading.value!r}), device has "
                         f"({want_reading.timestamp!r}, {want_reading.status.name}, "
                         f"{want_reading.value!r})")
    return diffs


def assert_model_matches(client: InspectingClientAsync,
                         device: SimulatedDevice | ExpectedModel, *,
                         readings: bool = True) -> None:
    diffs = model_differences(client, device, readings=readings)
    assert not diffs, "the client's model differs from the device's:\n  " + "\n  ".join(diffs)


class SyncAudit:
    """A state callback that checks the model every time ``synced`` is reported.

    ``device`` is the device the client talks to (changeable, e.g. after a restart), or a
    list of devices the client may be talking to (the model must then match one of them
    entirely). :attr:`false_synced` lists every SYNCED report whose model did not match, with
    why.
    """

    def __init__(self, client: InspectingClientAsync,
                 device: SimulatedDevice | list[SimulatedDevice], *,
                 readings: bool = True) -> None:
        self.client = client
        self.device = device
        self.readings = readings
        self.calls: list[tuple[InspectingClientStateType, AttrDict | None]] = []
        self.synced_reports = 0
        self.false_synced: list[list[str]] = []
        self.hooks: list[Any] = []

    def __call__(self, state: InspectingClientStateType, changes: AttrDict | None) -> None:
        self.calls.append((state, changes))
        if state == SYNCED:
            self.synced_reports += 1
            devices = self.device if isinstance(self.device, list) else [self.device]
            every = [model_differences(self.client, d, readings=self.readings)
                     for d in devices]
            if all(every):
                self.false_synced.append([d for diffs in every for d in diffs])
        for hook in self.hooks:
            hook(state, changes)

    @property
    def states(self) -> list[InspectingClientStateType]:
        return [s for s, _ in self.calls]

    def names_from_changes(self, part: str) -> set[str]:
        """The names of ``part`` (``"sensors"`` or ``"requests"``) that a user who started
        from nothing and applied every reported model change would hold now."""
        names: set[str] = set()
        for _, changes in self.calls:
            if changes is not None and part in changes:
                names = (names - set(changes[part].removed)) | set(changes[part].added)
        return names
