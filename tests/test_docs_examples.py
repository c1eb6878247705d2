"""The documentation's examples are programs: run each and check what it prints."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_quickstart(io_loop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    await load("quickstart").main()
    out = capsys.readouterr().out
    assert "KATCP 5.1-MIBT" in out
    assert "?sensor-sampling" in out
    assert "cpu.temperature" in out


async def test_tutorial_basics(io_loop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    await load("tutorial_basics").main()
    out = capsys.readouterr().out
    assert "cpu.temperature = 42.5 degC (nominal)" in out
    assert "Unknown names give None: None" in out
    assert "#sensor-value" in out and "device.mode" in out


async def test_tutorial_watch(io_loop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    await load("tutorial_watch").main()
    out = capsys.readouterr().out
    assert "The device restarts..." in out
    assert "(the cached reading is now unreachable)" in out
    after_restart = out.split("The device restarts...")[1]
    assert "state [connected synced !model_changed data_synced]" in after_restart
    assert after_restart.count("device.uptime:") >= 4  # unreachable mark + 3 live updates


def test_tutorial_coroutine(io_loop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    io_loop.run_sync(load("tutorial_coroutine").main, timeout=30)
    out = capsys.readouterr().out
    assert "Request: watchdog -" in out
    assert "Sensor: device.mode discrete ['idle', 'observing', 'maintenance']" in out
    assert "?watchdog -> !watchdog" in out and " ok" in out


def test_the_tutorial_shows_whole_programs() -> None:
    # A part of a file (`:pyobject:`, `:lines:`) left out its imports: copied, it failed with
    # NameError. Each example is included whole, with a link to the file.
    text = (Path(__file__).parent.parent / "docs" / "tutorial.md").read_text()
    includes = re.findall(r"```\{literalinclude\} (\S+)\n((?::\w+:.*\n)*)", text)
    assert len(includes) == 3
    for path, options in includes:
        assert options == ":language: python\n", path
        assert f"<{path}>`" in text, path


async def test_fleet_basics(io_loop: Any, capsys: pytest.CaptureFixture[str]) -> None:
    await load("fleet_basics").main()
    out = capsys.readouterr().out
    assert "3 of 3 devices synced" in out
    assert "m002: KATCP 4.0, 40 sensors" in out
    assert "m001: cpu.temperature = 51.5 (warn)" in out
    assert "m001 reached 51.5" in out
    assert {line.split(":")[0] for line in out.splitlines() if "cpu.temperature =" in line} \
        == {"m000", "m001", "m002"}
