"""``katcp-inspect watch`` on a real terminal: run in a detached tmux session (120x40), the
screen read back with ``tmux capture-pane`` (``-e`` keeps the colours). The device runs in
the test's event loop and restarts on the same port; the display must follow."""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect.testing import SimulatedDevice

from .conftest import StartDevice

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

SGR = re.compile(r"\x1b\[([0-9;]*)m")


async def run_blocking(args: list[str]) -> subprocess.CompletedProcess[str]:
    """``args`` run in a thread with :func:`subprocess.run`, not the loop's subprocess support:
    under uvloop the tmux server started by ``new-session`` kept the pipes of the command that
    started it open, so reading them to the end never ended."""
    run = functools.partial(subprocess.run, args, capture_output=True, text=True, timeout=30,
                            check=False)
    return await asyncio.get_running_loop().run_in_executor(None, run)


class Tmux:
    """A tmux server of our own (its socket in a temporary directory, no user configuration)."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket

    async def __call__(self, *args: str) -> str:
        result = await run_blocking(["tmux", "-S", str(self.socket), "-f", os.devnull, *args])
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    async def screen(self, *, escapes: bool = False) -> str:
        return await self("capture-pane", "-p", *(["-e"] if escapes else []), "-t", "watch")

    async def wait_for(self, predicate: Callable[[str], bool], what: str,
                       timeout: float = 10.0) -> str:
        """Poll the screen until ``predicate(screen)``; return that screen."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        screen = ""
        while loop.time() < deadline:
            screen = await self.screen()
            if predicate(screen):
                return screen
            await asyncio.sleep(0.1)
        raise AssertionError(f"the screen never showed {what}:\n{screen}")


def styles_of(styled: str, word: str) -> set[str]:
    """The SGR codes in force where ``word`` is shown (the escapes just before it)."""
    codes: set[str] = set()
    for match in re.finditer(r"((?:\x1b\[[0-9;]*m)+)" + re.escape(word), styled):
        for params in SGR.findall(match.group(1)):
            codes.update(params.split(";"))
    return codes


def row(screen: str, name: str) -> str:
    return next(line for line in screen.splitlines() if name in line)


async def test_watch_in_a_terminal_follows_a_restart(io_loop: Any, start_device: StartDevice,
                                                     tmp_path: Path) -> None:
    device = await start_device(SimulatedDevice.with_demo_sensors(16, rate=5))
    device.set_value("device.message", "check the fan", status="warn")
    device.set_status("device.serial", "inactive")
    device.set_status("device.locked", "failure")
    command = shlex.join([sys.executable, "-m", "katcp_inspect.cli", "watch",
                          f"127.0.0.1:{device.port}", "--seconds", "40"])
    # The terminal decides the size and the colours: no inherited overrides.
    command = f"env -u COLUMNS -u LINES -u NO_COLOR {command}"
    tmux = Tmux(tmp_path / "tmux.socket")
    await tmux("new-session", "-d", "-x", "120", "-y", "40", "-s", "watch", command)
    try:
        screen = await tmux.wait_for(
            lambda s: "synced" in s and "16 sensors" in s and "check the fan" in s,
            "the synced table")
        assert f"127.0.0.1:{device.port} · KATCP 5.1-MIBT · synced" in screen
        for name in ("cpu.temperature", "device.uptime", "rx.destination", "rx.lru-ok"):
            assert name in screen
        assert "Updates" in screen
        styled = await tmux.screen(escapes=True)
        assert "32" in styles_of(styled, "nominal")  # green
        assert "33" in styles_of(styled, "warn")  # yellow
        assert "2" in styles_of(styled, "inactive")  # dim
        assert {"1", "31"} <= styles_of(styled, "failure")  # bold red
        assert "32" in styles_of(styled, "synced")

        await device.stop()
        screen = await tmux.wait_for(
            lambda s: "unreachable" in row(s, "cpu.temperature") and "synced" not in s,
            "the sensors unreachable")
        styled = await tmux.screen(escapes=True)
        assert "31" in styles_of(styled, "unreachable")  # red

        await device.start()  # the same port, as a rebooted device
        await tmux.wait_for(lambda s: "2 connections" in s and "· synced" in s,
                            "the client back and synced")
        device.set_value("device.message", "back after the restart")
        screen = await tmux.wait_for(lambda s: "back after the restart" in s,
                                     "an update after the restart")
        # Sampled again, by the client: live readings, no longer unreachable.
        assert "unreachable" not in row(screen, "cpu.temperature")
    finally:
        await tmux("kill-server")
