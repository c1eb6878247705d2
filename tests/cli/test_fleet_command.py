"""``katcp-inspect fleet`` end to end against ``katcp-inspect sim --devices N`` (issue 14):
both commands run as subprocesses, killed by their PID; the output piped, as JSON, and on a
real terminal (tmux), where a device that goes away shows up as such."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shlex
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect.fleet import FleetConfig
from katcp_inspect.testing import SimulatedDevice

from .conftest import StartDevice
from .helpers import CLI, ENV, CliProcess, run_cli
from .test_watch_terminal import Tmux, row, styles_of

DEVICES = 6


@contextlib.asynccontextmanager
async def simulators(config: Path, count: int = DEVICES) -> AsyncIterator[FleetConfig]:
    """``katcp-inspect sim --devices count`` writing ``config``; killed (by PID) on leaving."""
    process = await asyncio.create_subprocess_exec(
        *CLI, "sim", "--devices", str(count), "--port", "0", "--protocols", "5.1,5.0,4",
        "--sensors", "12", "--rate", "5", "--write-config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV)
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        assert f"{count} simulated KATCP devices listening on 127.0.0.1" in line, line
        assert f"fleet configuration in {config}" in line
        yield FleetConfig.load(config)
    finally:
        if process.returncode is None:
            process.kill()
        await process.communicate()


async def test_piped_lines(io_loop: Any, tmp_path: Path) -> None:
    async with simulators(tmp_path / "fleet.toml") as config:
        command = await CliProcess.start("fleet", str(tmp_path / "fleet.toml"), "--sensor",
                                         r"^cpu\.temperature$", "--seconds", "30")
        try:
            await command.until(*(f"# {name} {device.address} synced"
                                  for name, device in config.devices.items()), timeout=20)
            await command.until(*(f"Z {name} cpu.temperature nominal " for name in
                                  config.devices), timeout=10)
            command.interrupt()
            result = await command.finish()
        finally:
            await command.kill()
    assert result.code == 0, result.err
    assert "# sim002 " + config.devices["sim002"].address + " synced (4.0)" in result.out
    assert "# sim001 " + config.devices["sim001"].address + " synced (5.0-MI)" in result.out
    assert re.search(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z sim000 cpu\.temperature "
                     r"nominal \S+$", result.out, re.MULTILINE)
    assert "rx.power" not in result.out


async def test_json_snapshot(io_loop: Any, tmp_path: Path) -> None:
    async with simulators(tmp_path / "fleet.toml") as config:
        result = await run_cli("fleet", str(tmp_path / "fleet.toml"), "--json",
                               "--sensor", r"^(cpu\.temperature|device\.mode)$")
    assert result.code == 0, result.err
    snapshot = json.loads(result.out)
    assert snapshot["counts"]["synced"] == DEVICES == snapshot["total"]
    assert {name: state["protocol"] for name, state in snapshot["devices"].items()} == {
        name: ("5.1-MIBT", "5.0-MI", "4.0")[i % 3] for i, name in enumerate(config.devices)}
    assert all(state["sensors"] == 12 and state["last_error"] is None
               for state in snapshot["devices"].values())
    readings = {(r["device"], r["sensor"]): r for r in snapshot["readings"]}
    assert len(readings) == 2 * DEVICES
    assert all(r["status"] is not None and r["value"] is not None for r in readings.values())


async def test_json_with_a_device_that_never_syncs(io_loop: Any, tmp_path: Path) -> None:
    config = FleetConfig.of({"here": "127.0.0.1:1"}, client_options={"connect_timeout": 0.5})
    path = tmp_path / "fleet.toml"
    path.write_text(config.to_toml())
    result = await run_cli("fleet", str(path), "--json", "--timeout", "1")
    assert result.code == 2
    assert "katcp-inspect: 1 of 1 devices not synced within 1 s" in result.err
    state = json.loads(result.out)["devices"]["here"]
    assert state["state"] == "disconnected"
    assert state["last_error"] == "Connection refused"


async def test_a_bad_configuration(io_loop: Any, tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[devices]\nm000 = "127.0.0.1:7147"\nm001 = "127.0.0.1"\n')
    result = await run_cli("fleet", str(path))
    assert result.code == 2
    assert result.err.strip() == (f"katcp-inspect: {path}:3: devices.m001.address: no port "
                                  "in '127.0.0.1' (expected HOST:PORT, e.g. 127.0.0.1:7147)")
    assert result.out == ""


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
async def test_in_a_terminal(io_loop: Any, start_device: StartDevice, tmp_path: Path) -> None:
    local = await start_device(SimulatedDevice.with_demo_sensors(12, rate=5))
    async with simulators(tmp_path / "sim.toml") as config:
        path = tmp_path / "fleet.toml"
        both = {**config.devices, "local": f"127.0.0.1:{local.port}"}
        path.write_text(FleetConfig.of(both, sampling=config.sampling,
                                       client_options={"reconnect_delay_max": 0.5}).to_toml())
        command = shlex.join([sys.executable, "-m", "katcp_inspect.cli", "fleet", str(path),
                              "--sensor", r"^cpu\.temperature$", "--seconds", "40"])
        tmux = Tmux(tmp_path / "tmux.socket")
        await tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "watch",
                   f"env -u COLUMNS -u LINES -u NO_COLOR {command}")
        try:
            screen = await tmux.wait_for(lambda s: f"{DEVICES + 1} synced" in s,
                                         "every device synced", timeout=20)
            assert f"{path} · {DEVICES + 1} devices · {DEVICES + 1} synced" in screen
            for name in both:
                assert re.search(rf"{name} .* synced .* 12 ", row(screen, f" {name} ")), name
            assert "4.0" in row(screen, " sim002 ") and "5.0-MI" in row(screen, " sim001 ")
            await tmux.wait_for(lambda s: all(
                "nominal" in line for line in s.splitlines() if "cpu.temperature" in line)
                and s.count("cpu.temperature") == DEVICES + 1, "the readings of every device")
            assert "32" in styles_of(await tmux.screen(escapes=True), "synced")  # green

            await local.stop()
            screen = await tmux.wait_for(
                lambda s: "Connection refused" in row(s, " local "), "the device gone")
            assert "disconnected" in row(screen, " local ")
            assert "31" in styles_of(await tmux.screen(escapes=True), "disconnected")  # red
            await local.start()
            await tmux.wait_for(lambda s: "synced" in row(s, " local ")
                                and f"{DEVICES + 1} synced" in s, "the device back")
        finally:
            await tmux("kill-server")
