"""``katcp-inspect watch`` written to a pipe (one line per reading and per state change), and
``katcp-inspect demo``. The terminal display is tested in test_watch_terminal.py."""

from __future__ import annotations

import re
from typing import Any

from katcp_inspect.testing import SimulatedDevice

from .conftest import StartDevice
from .helpers import CliProcess, closed_port, run_cli

READING = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z (\S+) (\S+) (.*)$")


def readings(out: str) -> list[tuple[str, str, str]]:
    found = []
    for line in out.splitlines():
        match = READING.match(line)
        if match:
            name, status, value = match.groups()
            found.append((name, status, value))
    return found


async def test_bounded_watch_prints_readings(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=10))
    device.set_value("device.message", "check the fan", status="warn")
    result = await run_cli("watch", f"127.0.0.1:{device.port}", r"^cpu\.", "message",
                           "--strategy", "period", "0.2", "--seconds", "1.5")
    assert result.code == 0, result.err
    lines = result.out.splitlines()
    assert f"# 127.0.0.1:{device.port} connecting" in lines
    assert f"# 127.0.0.1:{device.port} synced" in lines
    found = readings(result.out)
    assert {name for name, _, _ in found} == {"cpu.temperature", "device.message"}
    assert ("device.message", "warn", "check the fan") in found
    assert sum(name == "cpu.temperature" for name, _, _ in found) >= 3  # every 0.2 s
    assert "unreachable" not in result.out  # the watch's own disconnect is not shown


async def test_watch_follows_a_device_restart(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=None))
    process = await CliProcess.start("watch", f"127.0.0.1:{device.port}", "device.mode",
                                     "--seconds", "30")
    try:
        await process.until("synced", "device.mode nominal idle")
        await device.stop()
        await process.until("device.mode unreachable idle", "reconnecting")
        await device.start()  # the same port
        await process.until("synced")
        # The client has set the strategy again on the new connection by itself.
        device.set_value("device.mode", "observing")
        await process.until("device.mode nominal observing")
        process.interrupt()  # Ctrl-C ends a watch normally
        result = await process.finish()
    finally:
        await process.kill()
    assert result.code == 0, result.err


async def test_unreachable_with_timeout_is_2(io_loop: Any) -> None:
    with closed_port() as port:
        # Long enough for the first attempt to be refused on a loaded machine (it resolves the
        # address in a thread first), so the reason can be asserted.
        result = await run_cli("watch", f"127.0.0.1:{port}", "--timeout", "2", "-q")
    assert result.code == 2
    assert result.err.count("\n") == 1  # -q: the error, without the warnings before it
    assert result.err.startswith(f"katcp-inspect: 127.0.0.1:{port} not synced within 2 s")
    assert "Connection refused" in result.err


async def test_demo(io_loop: Any) -> None:
    result = await run_cli("demo", "--seconds", "1")
    assert result.code == 0, result.err
    out = result.out
    assert "Started a simulated KATCP device on 127.0.0.1:" in out
    for state in ("[!connected !synced !model_changed !data_synced]",
                  "[connected !synced !model_changed !data_synced]",
                  "[connected !synced model_changed data_synced]",
                  "[connected synced !model_changed data_synced]"):
        assert state in out
    assert "+13 requests, +40 sensors" in out
    assert "?set-mode" in out and "?sensor-list" in out
    assert "!add ok 5" in out
    assert "40 sensors" in out
    for sensor in ("cpu.temperature", "device.uptime", "rx.destination", "sim.lru-019"):
        assert sensor in out
    assert "warn" in out and "inactive" in out
    assert out.rstrip().splitlines()[-1].startswith("Next: run a device with katcp-inspect sim")
