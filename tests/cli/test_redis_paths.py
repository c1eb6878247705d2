"""The ``--redis`` paths end to end: ``katcp-inspect fleet CONFIG --redis URL --workers K``
and ``katcp-inspect watch --redis URL DEVICE:PATTERN``, against ``katcp-inspect sim`` and a
real redis-server, every process killed by its PID, the output piped."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect.mirror import FleetView

from ..mirror.helpers import eventually
from ..mirror.redis_server import RedisServer, redis_server
from .helpers import CliProcess, run_cli
from .test_fleet_command import DEVICES, simulators

__all__ = ["redis_server"]  # the fixture, for this module's tests


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


async def test_fleet_with_two_workers(io_loop: Any, tmp_path: Path,
                                      redis_server: RedisServer) -> None:
    config_path = tmp_path / "fleet.toml"
    pids: list[int] = []
    async with simulators(config_path) as config:
        command = await CliProcess.start("fleet", str(config_path), "--redis",
                                         redis_server.url, "--workers", "2", "--seconds", "60")
        try:
            await command.until("# workers (PID): ")
            pids = [int(pid) for pid in command.lines[-1].split(":")[1].split()]
            assert len(pids) == 2
            await command.until(*(f"# {name} {device.address} synced"
                                  for name, device in config.devices.items()), timeout=30)
            async with FleetView(redis_server.url) as view:
                async def split() -> bool:
                    statuses = await view.statuses()
                    owners = {s.owner.split(":")[-1] for s in statuses.values()
                              if s.state == "synced"}
                    return len(statuses) == DEVICES and owners == {str(p) for p in pids}
                await eventually(split, timeout=20, what="the devices split by the workers")
            command.interrupt()
            result = await command.finish(timeout=20)
        finally:
            kill_all(pids)  # first: they hold the command's stderr open
            await command.kill()
    assert result.code == 0, result.err
    assert not any(alive(pid) for pid in pids), "the workers outlived the command"


@pytest.mark.parametrize("url_from", ["option", "file"])
async def test_fleet_with_workers_as_json(io_loop: Any, tmp_path: Path,
                                          redis_server: RedisServer, url_from: str) -> None:
    config_path = tmp_path / "fleet.toml"
    async with simulators(config_path) as config:
        if url_from == "file":  # the [redis] table's url, for the command and its workers
            with config_path.open("a") as toml:
                toml.write(f'\n[redis]\nurl = "{redis_server.url}"\n')
            option = []
        else:
            option = ["--redis", redis_server.url]
        result = await run_cli("fleet", str(config_path), *option,
                               "--workers", "2", "--json", "--timeout", "30", timeout=60)
    assert result.code == 0, result.err
    snapshot = json.loads(result.out)
    assert snapshot["counts"]["synced"] == DEVICES == snapshot["total"]
    devices = snapshot["devices"]
    assert {name: state["state"] for name, state in devices.items()} == dict.fromkeys(
        config.devices, "synced")
    assert all(state["sensors"] == 12 for state in devices.values())
    assert len(devices) == DEVICES


async def test_workers_need_redis(io_loop: Any, tmp_path: Path) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text('[devices]\nm000 = "127.0.0.1:7147"\n')
    result = await run_cli("fleet", str(path), "--workers", "2")
    assert result.code == 2
    assert "--workers needs --redis URL" in result.err


async def test_watch_reads_from_redis(io_loop: Any, tmp_path: Path,
                                      redis_server: RedisServer) -> None:
    config_path = tmp_path / "fleet.toml"
    async with simulators(config_path):
        fleet = await CliProcess.start("fleet", str(config_path), "--redis", redis_server.url,
                                       "--lines", "--seconds", "60")
        watch = await CliProcess.start("watch", "--redis", redis_server.url,
                                       r"sim001:^cpu\.temperature$", "--seconds", "60")
        try:
            await fleet.until("# sim001 ", timeout=20)
            # The latest reading first, then those that follow, each a line.
            await watch.until("Z sim001 cpu.temperature nominal ", timeout=20)
            await watch.until("Z sim001 cpu.temperature nominal ", timeout=20)
            watch.interrupt()
            result = await watch.finish()
            fleet.interrupt()
            await fleet.finish(timeout=20)
        finally:
            await watch.kill()
            await fleet.kill()
    assert result.code == 0, result.err
    assert "sim000" not in result.out and "rx.power" not in result.out


async def test_watch_without_redis_still_wants_host_port(io_loop: Any) -> None:
    result = await run_cli("watch", "nowhere")
    assert result.code == 2
    assert "expected HOST:PORT" in result.err

