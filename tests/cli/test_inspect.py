"""``katcp-inspect inspect``: tables and JSON of a device served by the test's event loop, and
one-line errors with exit code 2 when the device cannot be reached or does not answer."""

from __future__ import annotations

import json
import time
from typing import Any

from katcp_inspect import Address, SensorType
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor

from .conftest import StartDevice
from .helpers import closed_port, run_cli

TS = 1_700_000_000.5


def fixed_device(protocol: str = "5.1") -> SimulatedDevice:
    """One sensor of each type with a fixed reading, and a request with a timeout hint."""
    t = SensorType
    sensors = [
        SimulatedSensor(t.INTEGER, "an.int", "An integer.", "count", [0, 100], value=5),
        SimulatedSensor(t.FLOAT, "a.float", "A float.", "V", [-1.0, 1.0], value=0.25,
                        status="warn"),
        SimulatedSensor(t.BOOLEAN, "a.bool", "A boolean.", "", value=True),
        SimulatedSensor(t.LRU, "an.lru", "An lru.", "", value=1, status="error"),
        SimulatedSensor(t.DISCRETE, "a.discrete", "A discrete.", "", ["one", "two"],
                        value="two"),
        SimulatedSensor(t.STRING, "a.string", "A string.", "", value=b"caf\xe9 [red]x"),
        SimulatedSensor(t.TIMESTAMP, "a.timestamp", "A timestamp.", "s", value=TS),
        SimulatedSensor(t.ADDRESS, "an.address", "An address.", "",
                        value=Address("::1", 7147)),
        SimulatedSensor(t.INTEGER, "not.read", "Never set: status unknown.", ""),
    ]
    device = SimulatedDevice(protocol=protocol, sensors=sensors)
    device.add_request("slow", lambda ctx: None, help="A slow one.\nSecond line.",
                       timeout_hint=7.5)
    return device


async def test_tables(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(fixed_device())
    result = await run_cli("inspect", f"127.0.0.1:{device.port}")
    assert result.code == 0, result.err
    assert result.err == ""
    out = result.out
    assert f"127.0.0.1:{device.port}  KATCP 5.1-MIBT  device simulated-device-1.0" in out
    assert "11 requests" in out and "9 sensors" in out
    slow = next(line for line in out.splitlines() if "?slow" in line)
    assert slow.split() == ["?slow", "A", "slow", "one.", "7.5s"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.strip() and line.split()[0] in device.sensors}
    assert rows["a.float"][1:6] == ["float", "V", "-1.0,", "1.0", "warn"]
    assert rows["an.lru"][-3:-1] == ["error", "error"]
    assert "caf\\xe9 [red]x" in out  # not UTF-8, not markup
    assert "2023-11-14 22:13:20.500Z" in out
    assert "[::1]:7147" in out
    assert rows["not.read"][-3:] == ["unknown", "0", rows["not.read"][-1]]


async def test_json(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(fixed_device())
    before = time.time()
    result = await run_cli("inspect", f"127.0.0.1:{device.port}", "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["address"] == f"127.0.0.1:{device.port}"
    assert data["protocol"] == "5.1-MIBT"
    assert data["versions"]["katcp-device"] == ["simulated-device-1.0", "simulated-device-1.0.0"]
    requests = {r["name"]: r for r in data["requests"]}
    # The first line only: the model is the same whichever form of ?help described it.
    assert requests["slow"] == {"name": "slow", "description": "A slow one.",
                                "timeout_hint": 7.5}
    assert requests["help"]["timeout_hint"] is None
    sensors = {s["name"]: s for s in data["sensors"]}
    assert list(sensors) == sorted(device.sensors)
    values = {name: (s["status"], s["value"]) for name, s in sensors.items()}
    assert values == {
        "an.int": ("nominal", 5), "a.float": ("warn", 0.25), "a.bool": ("nominal", True),
        "an.lru": ("error", "error"), "a.discrete": ("nominal", "two"),
        "a.string": ("nominal", "caf\\xe9 [red]x"), "a.timestamp": ("nominal", TS),
        "an.address": ("nominal", "[::1]:7147"), "not.read": ("unknown", 0)}
    an_int = sensors["an.int"]
    assert (an_int["type"], an_int["units"], an_int["params"], an_int["description"]) == (
        "integer", "count", [0, 100], "An integer.")
    assert sensors["a.discrete"]["params"] == ["one", "two"]
    reading_time = device.sensors["an.int"].timestamp
    assert an_int["timestamp"] == reading_time
    assert 0 <= an_int["age"] <= time.time() - before + (before - reading_time) + 1


async def test_json_with_a_sensor_filter_on_katcp_v4(io_loop: Any,
                                                     start_device: StartDevice) -> None:
    device = await start_device(fixed_device(protocol="4"))
    result = await run_cli("inspect", f"127.0.0.1:{device.port}", "--json",
                           "--sensors", r"^a\.(float|timestamp)$")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["protocol"] == "4.0"
    sensors = {s["name"]: s for s in data["sensors"]}
    assert set(sensors) == {"a.float", "a.timestamp"}
    # KATCP v4 counts milliseconds: both the reading's time and a timestamp value.
    assert sensors["a.timestamp"]["value"] == TS
    assert abs(sensors["a.float"]["timestamp"] - device.sensors["a.float"].timestamp) < 0.002


async def test_unreachable_device(io_loop: Any) -> None:
    with closed_port() as port:
        result = await run_cli("inspect", f"127.0.0.1:{port}", "--timeout", "2")
    assert result.code == 2
    assert result.out == ""
    assert result.err == f"katcp-inspect: cannot connect to 127.0.0.1:{port}: " \
                         "Connection refused\n"


async def test_device_that_does_not_answer(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(fixed_device())
    device.stall()  # TCP stays open; nothing is answered
    try:
        started = time.monotonic()
        result = await run_cli("inspect", f"127.0.0.1:{device.port}", "--timeout", "0.5")
        assert time.monotonic() - started < 10
    finally:
        device.resume()
    assert result.code == 2
    assert result.err.count("\n") == 1
    assert "did not complete the sync" in result.err and "0.5 s" in result.err
