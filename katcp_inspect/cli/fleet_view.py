"""What ``katcp-inspect fleet`` shows: the devices table, the readings of the sensors that
match ``--sensor`` across devices (kept by a fleet observer), and their JSON and line forms.

Device names come from the configuration and sensor names and values from the devices: all
are escaped before they reach a terminal or a pipe, and go into rich as ``Text``, never
markup."""

from __future__ import annotations

import re
import time
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..fleet import DeviceState, Fleet
from ..sensor import Reading
from .formatting import (
    escape_text,
    format_age,
    format_timestamp,
    format_value,
    json_text,
    json_value,
    status_name,
)
from .render import status_text

#: rich styles of the device states.
STATE_STYLES = {"synced": "green", "syncing": "yellow", "connecting": "yellow",
                "disconnected": "red", "stopped": "dim"}


class Readings:
    """The latest reading of each sensor matching the pattern, per device: a fleet observer
    (one call per update, a dict store)."""

    def __init__(self, pattern: re.Pattern[str] | None) -> None:
        self.pattern = pattern
        #: (device, sensor name) → [sensor, reading, updates].
        self.latest: dict[tuple[str, str], list[Any]] = {}
        #: Called with each update too (the line output).
        self.echo: Any = None

    def __call__(self, device: str, sensor: Any, reading: Reading) -> None:
        entry = self.latest.get((device, sensor.name))
        if entry is None:
            self.latest[device, sensor.name] = [sensor, reading, 1]
        else:
            entry[0], entry[1] = sensor, reading
            entry[2] += 1
        if self.echo is not None:
            self.echo(device, sensor, reading)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def heading(label: str, fleet: Fleet) -> Text:
    counts = fleet.summary()["counts"]
    parts = [f"{counts[state]} {state}" for state in STATE_STYLES if counts[state]]
    text = Text.assemble((label, "bold"), f" · {_count(len(fleet), 'device')} · ")
    text.append(", ".join(parts) or "none")
    if fleet.syncing:
        text.append(f" · {fleet.syncing} syncing now (at most {fleet.max_syncing})")
    return text


def devices_table(states: list[DeviceState], max_rows: int | None) -> Table:
    """Name, address, state, protocol, sensors, updates/s and last error of each device;
    devices not synced first, at most ``max_rows``."""
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Device", "Address", "State", "Protocol", "Sensors", "Updates/s",
                   "Last error"):
        table.add_column(column, no_wrap=column != "Last error", overflow="fold",
                         justify="right" if column in ("Sensors", "Updates/s") else "left")
    states = sorted(states, key=lambda s: (s.state == "synced", s.name))
    for state in states[:max_rows]:
        table.add_row(Text(escape_text(state.name), style="bold"),
                      Text(escape_text(state.address)),
                      Text(state.state, style=STATE_STYLES.get(state.state, "")),
                      Text(state.protocol or "-"), Text(str(state.sensors)),
                      Text(f"{state.updates_per_second:g}"), Text(state.last_error or ""))
    if max_rows is not None and len(states) > max_rows:
        table.caption = f"{len(states) - max_rows} more devices, all synced (--json: all)"
    return table


def readings_table(readings: Readings, max_rows: int | None) -> Table:
    """The sensors' latest readings, by device and sensor name."""
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("Device", "Sensor", "Status", "Value", "Units", "Age", "Updates"):
        table.add_column(column, overflow="fold",
                         justify="right" if column in ("Age", "Updates") else "left")
    now = time.time()
    keys = sorted(readings.latest)
    for device, name in keys[:max_rows]:
        sensor, reading, updates = readings.latest[device, name]
        table.add_row(Text(escape_text(device)), Text(escape_text(name), style="bold"),
                      status_text(reading.status),
                      Text(format_value(reading.value, sensor.sensor_type)),
                      Text(escape_text(sensor.units or "")),
                      Text(format_age(now - reading.timestamp)), Text(str(updates)))
    if max_rows is not None and len(keys) > max_rows:
        table.caption = f"{len(keys) - max_rows} more readings (narrow with --sensor)"
    return table


def render(label: str, fleet: Fleet, readings: Readings | None,
           height: int | None) -> RenderableType:
    """The heading, the devices and (with ``--sensor``) the readings, fitted to ``height``
    lines when drawn on a terminal."""
    states = fleet.states()
    device_rows = sensor_rows = None
    if height is not None:
        room = max(height - 8, 2)
        device_rows = room if readings is None else max(min(len(states), room // 2), 1)
        sensor_rows = max(room - device_rows - 4, 1)
    parts: list[RenderableType] = [heading(label, fleet), devices_table(states, device_rows)]
    if readings is not None:
        parts.append(readings_table(readings, sensor_rows))
    footer = f"{time.strftime('%H:%M:%S')} · Ctrl-C to quit"
    parts.append(Text(footer, style="dim"))
    return Group(*parts)


def state_line(state: DeviceState) -> str:
    """``# <device> <address> <state>[ (<protocol>)][: <last error>]``, for the lines."""
    extra = f" ({state.protocol})" if state.protocol and state.state != "stopped" else ""
    error = f": {state.last_error}" if state.state == "disconnected" and state.last_error \
        else ""
    return (f"# {escape_text(state.name)} {escape_text(state.address)} {state.state}{extra}"
            f"{error}")


def reading_line(device: str, sensor: Any, reading: Reading) -> str:
    """``<UTC time> <device> <sensor> <status> <value>``, for the lines."""
    return (f"{format_timestamp(reading.timestamp)} {escape_text(device)} "
            f"{escape_text(sensor.name)} {status_name(reading.status)} "
            f"{format_value(reading.value, sensor.sensor_type)}")


def snapshot(fleet: Fleet, readings: Readings | None) -> dict[str, Any]:
    """The fleet's summary as JSON: each device's ``since`` given as ``seconds_in_state``,
    and, with ``--sensor``, every matching sensor's latest reading (``null`` if none came)."""
    data = summary_json(fleet.summary())
    if readings is not None:
        data["readings"] = _readings_json(fleet, readings)
    return data


def summary_json(data: dict[str, Any]) -> dict[str, Any]:
    """A fleet summary made fit for JSON: device names escaped, each device's ``since`` (a
    monotonic time) given as ``seconds_in_state``."""
    now = time.monotonic()
    devices = {}
    for name, state in data["devices"].items():
        state["name"] = json_text(name)
        state["seconds_in_state"] = round(now - state.pop("since"), 3)
        devices[json_text(name)] = state
    data["devices"] = devices
    return data


def _readings_json(fleet: Fleet, readings: Readings) -> list[dict[str, Any]]:
    rows = []
    pattern = readings.pattern
    for device in fleet.names:
        for name in fleet[device].sensors:
            if pattern is not None and not pattern.search(name):
                continue
            entry = readings.latest.get((device, name))
            reading = None if entry is None else entry[1]
            stype = None if entry is None else entry[0].sensor_type
            rows.append({
                "device": json_text(device), "sensor": json_text(name),
                "status": None if reading is None else status_name(reading.status),
                "value": None if reading is None else json_value(reading.value, stype),
                "timestamp": None if reading is None else reading.timestamp})
    return rows
