"""Issue 13, the command: pipes, JSON lines, refused strategies, patterns that match nothing,
validated options, and tables that keep their key columns in a narrow terminal."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect.testing import SimulatedDevice

from .conftest import StartDevice
from .helpers import CLI, ENV, Result, run_cli


@pytest.mark.parametrize("command", ["request", "watch"])
async def test_closed_pipe_ends_quietly_with_141(io_loop: Any, start_device: StartDevice,
                                                 command: str) -> None:
    # More output than a pipe holds (?sensor-list of 2000 sensors), or a stream of readings.
    device = await start_device(SimulatedDevice.with_demo_sensors(2000, rate=20))
    args = ["sensor-list"] if command == "request" else ["--json", "--seconds", "15"]
    line = shlex.join([*CLI, command, f"127.0.0.1:{device.port}", *args])
    # `| head -2`, with the status of the command (not head's) as the shell's.
    result = await _run("bash", "-c", f"set -o pipefail; {line} | head -2", check=False)
    assert result.code == 141, result.err
    assert result.err == ""
    assert len(result.out.splitlines()) == 2


async def test_request_json_lines(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device()
    result = await run_cli("request", f"127.0.0.1:{device.port}", "help", "halt", "--json")
    assert result.code == 0, result.err
    objects = [json.loads(line) for line in result.out.splitlines()]
    assert objects[0]["type"] == "inform" and objects[0]["name"] == "help"
    assert objects[0]["arguments"][0] == "halt"
    assert objects[-1] == {"type": "reply", "name": "help", "arguments": ["ok", "1"]}


async def test_watch_json_and_every_strategy_refused(io_loop: Any,
                                                     start_device: StartDevice) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=None))
    result = await run_cli("watch", f"127.0.0.1:{device.port}", "^cpu", "--json",
                           "--strategy", "period", "-1", "--seconds", "15")
    assert result.code == 2
    objects = [json.loads(line) for line in result.out.splitlines()]
    refused = [o for o in objects if o["type"] == "refused"]
    assert [o["sensor"] for o in refused] == ["cpu.temperature"]
    assert "refused strategy period -1 for every watched sensor (1)" in result.err


async def test_watch_json_readings(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=None))
    result = await run_cli("watch", f"127.0.0.1:{device.port}", "^cpu", "--json",
                           "--seconds", "2")
    assert result.code == 0, result.err
    readings = [o for o in map(json.loads, result.out.splitlines()) if o["type"] == "reading"]
    assert readings[0]["sensor"] == "cpu.temperature"
    assert readings[0]["status"] == "nominal" and readings[0]["value"] == 42.5


async def test_a_pattern_that_matches_nothing_is_said(io_loop: Any,
                                                      start_device: StartDevice) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=None))
    result = await run_cli("watch", f"127.0.0.1:{device.port}", "^nothing", "--seconds", "2")
    assert result.code == 0
    assert "no sensor matches" in result.err and "^nothing" in result.err
    assert "(of 16); waiting for the device to add one" in result.err
    result = await run_cli("inspect", f"127.0.0.1:{device.port}", "--sensors", "^nothing")
    assert "no sensor of" in result.err and "matches /^nothing/" in result.err
    quiet = await run_cli("inspect", f"127.0.0.1:{device.port}", "--sensors", "^nothing", "-q")
    assert quiet.err == ""


@pytest.mark.parametrize("option", [("--port", "99999"), ("--sensors", "-3"),
                                    ("--rate", "-1")])
def test_sim_options_are_validated(option: tuple[str, str]) -> None:
    result = subprocess.run([*CLI, "sim", *option], capture_output=True, text=True, env=ENV,
                            timeout=20)
    assert result.returncode == 2
    assert f"argument {option[0]}" in result.stderr


async def test_no_color_flag(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=None))
    args = ("inspect", f"127.0.0.1:{device.port}")
    coloured = await _run("env", "FORCE_COLOR=1", *CLI, *args)
    plain = await _run("env", "FORCE_COLOR=1", *CLI, *args, "--no-color")
    green = "\x1b[32m"  # nominal (bold stays: NO_COLOR is about colours)
    assert green in coloured
    assert green not in plain and "sensor-sampling" in plain


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("columns", [80, 60])
async def test_inspect_keeps_names_and_values_in_a_narrow_terminal(
        io_loop: Any, start_device: StartDevice, tmp_path: Path, columns: int) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=None))
    command = shlex.join([*CLI, "inspect", f"127.0.0.1:{device.port}"])
    out = tmp_path / "screen.txt"
    tmux = ["tmux", "-S", str(tmp_path / "sock"), "-f", os.devnull]
    script = f"env -u COLUMNS -u LINES {command}; tmux wait-for -S done"
    await _run(*tmux, "new-session", "-d", "-x", str(columns), "-y", "60", "-s", "t",
               f"sh -c {shlex.quote(script)}; sleep 30")
    try:
        await _run(*tmux, "wait-for", "done")
        screen = await _run(*tmux, "capture-pane", "-p", "-S", "-100", "-t", "t")
        out.write_text(screen)
        # Whole names: no `?sens…`.
        for name in device.requests:
            assert f"  ?{name} " in screen
        for name in device.sensors:
            assert f"  {name} " in screen
        assert "Value" in screen
        assert f"127.0.0.1:{device.port}" in screen.replace("\n", "").replace(" ", "")
        assert "[::1]:7148" in screen
    finally:
        await _run(*tmux, "kill-server")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("columns", [80, 60])
async def test_watch_keeps_names_and_values_in_a_narrow_terminal(
        io_loop: Any, start_device: StartDevice, tmp_path: Path, columns: int) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(12, rate=None))
    command = shlex.join([*CLI, "watch", f"127.0.0.1:{device.port}", "--seconds", "3"])
    tmux = ["tmux", "-S", str(tmp_path / "sock"), "-f", os.devnull]
    # The live table's last frame stays on the screen once the command has ended.
    script = f"env -u COLUMNS -u LINES {command}; tmux wait-for -S done"
    await _run(*tmux, "new-session", "-d", "-x", str(columns), "-y", "40", "-s", "t",
               f"sh -c {shlex.quote(script)}; sleep 30")
    try:
        await _run(*tmux, "wait-for", "done")
        screen = await _run(*tmux, "capture-pane", "-p", "-S", "-100", "-t", "t")
        (tmp_path / "screen.txt").write_text(screen)
        for name in device.sensors:
            assert f" {name} " in screen, f"{name} cut at {columns} columns:\n{screen}"
        assert "Value" in screen
    finally:
        await _run(*tmux, "kill-server")


async def _run(*args: str, check: bool = True) -> Any:
    """``args`` run to the end: its stdout (``check``), or a :class:`Result`. In a thread with
    :func:`subprocess.run`: under uvloop a tmux server started by ``new-session`` kept the
    loop's pipes open, so reading them to the end never ended."""
    run = functools.partial(subprocess.run, args, capture_output=True, text=True, env=ENV,
                            timeout=30, check=False)
    result = await asyncio.get_running_loop().run_in_executor(None, run)
    if not check:
        return Result(result.returncode, result.stdout, result.stderr)
    assert result.returncode == 0, result.stderr
    return result.stdout

