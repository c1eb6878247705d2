"""The ``--redis`` paths of the commands (imported only with ``--redis``: they need the
``redis`` extra).

- ``katcp-inspect fleet CONFIG --redis URL --workers K``: K worker processes on this machine
  (each this command with ``--worker``: a fleet in workers mode, no output); this process
  shows the devices from Redis (:class:`~katcp_inspect.mirror.FleetView`) and stops its
  workers by PID when it ends.
- ``katcp-inspect watch --redis URL DEVICE:PATTERN``: the readings followed from Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from ..fleet import DeviceState, Fleet, FleetConfig
from ..fleet.summary import summarise
from ..mirror import DEFAULT_PREFIX, DeviceStatus, FleetView, Gap, Update, exact
from ..sensor import Reading
from .common import EXIT_OK, CliError, stop_on_signals, wait_stop
from .fleet_view import devices_table, state_line, summary_json
from .formatting import (
    escape_text,
    format_timestamp,
    json_document,
    json_text,
    sanitize_line,
    status_name,
)
from .live import REFRESH_RATE
from .output import STDOUT
from .render import make_console

#: Seconds between two reads of the devices' states from Redis.
POLL = 0.25
#: Seconds a worker gets to give its leases back before it is killed.
WORKER_GRACE = 5.0


# ---------------------------------------------------------------------- fleet --worker


async def run_worker(config: FleetConfig) -> int:
    """One worker: a fleet in workers mode until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    with stop_on_signals(stop):
        async with Fleet.from_config(config, workers=True):
            await stop.wait()
    return EXIT_OK


# ---------------------------------------------------------------------- fleet --workers K


@contextlib.asynccontextmanager
async def workers(args: argparse.Namespace) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """``args.workers`` worker processes, stopped by PID (SIGTERM, then SIGKILL) on leaving."""
    # The workers read the same configuration; a --redis URL given here goes to them too
    # (a URL from the file stays out of their command lines, which any user can read).
    command = [sys.executable, "-m", "katcp_inspect.cli", "fleet", args.config, "--worker",
               *(["--redis", args.redis] if args.redis is not None else [])]
    started: list[asyncio.subprocess.Process] = []
    try:
        for _ in range(args.workers):
            started.append(await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL))
        yield started
    finally:
        for process in started:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                await asyncio.wait_for(process.wait(), WORKER_GRACE)
            except asyncio.TimeoutError:
                process.kill()
                await process.wait()


def device_states(config: FleetConfig, statuses: dict[str, DeviceStatus]) -> list[DeviceState]:
    """The configured devices as Redis shows them (``connecting`` until a worker wrote one)."""
    now, wall = time.monotonic(), time.time()
    states = []
    for name, device in config.devices.items():
        status = statuses.get(name)
        if status is None:
            states.append(DeviceState(name, device.address, "connecting", None, 0, 0.0, None,
                                      now))
            continue
        states.append(DeviceState(name, device.address, status.state, status.protocol or None,
                                  status.sensors, 0.0, status.last_error or None,
                                  now - max(wall - status.since, 0.0)))
    return states


async def show_workers(args: argparse.Namespace, config: FleetConfig) -> int:
    stop = asyncio.Event()
    STDOUT.on_closed = stop.set
    if config.redis is None:  # _load() saw to it; this says so to the type checker
        raise CliError("--workers needs --redis URL (or a [redis] table with a url)")
    async with FleetView(config.redis.url, prefix=config.redis.prefix or DEFAULT_PREFIX
                         ) as view, \
            workers(args) as started:
        with stop_on_signals(stop):
            if args.json:
                return await _snapshot(view, config, args.timeout)
            if make_console().is_terminal and not args.lines:
                await _live(view, config, args, stop, started)
            else:
                STDOUT.line("# workers (PID): " + " ".join(str(p.pid) for p in started))
                await _lines(view, config, args.seconds, stop)
    return EXIT_OK


async def _snapshot(view: FleetView, config: FleetConfig, timeout: float) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        states = device_states(config, await view.statuses())
        synced = sum(state.state == "synced" for state in states)
        if synced == len(states) or loop.time() >= deadline:
            break
        await asyncio.sleep(POLL)
    STDOUT.line(json_document(summary_json(summarise(states))))
    if synced < len(states):
        raise CliError(f"{len(states) - synced} of {len(states)} devices not synced within "
                       f"{timeout:g} s")
    return EXIT_OK


async def _lines(view: FleetView, config: FleetConfig, seconds: float | None,
                 stop: asyncio.Event) -> None:
    """A line per change of a device's state in Redis, until ``stop`` or ``seconds``."""
    shown: dict[str, tuple[str, str | None]] = {}
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    while not stop.is_set() and (deadline is None or loop.time() < deadline):
        for state in device_states(config, await view.statuses()):
            key = (state.state, state.protocol)
            if shown.get(state.name) != key:
                shown[state.name] = key
                STDOUT.line(state_line(state))
        await wait_stop(stop, POLL)


async def _live(view: FleetView, config: FleetConfig, args: argparse.Namespace,
                stop: asyncio.Event, started: list[asyncio.subprocess.Process]) -> None:
    console = make_console()
    label = sanitize_line(args.config)
    pids = " ".join(str(process.pid) for process in started)

    async def draw() -> RenderableType:
        states = device_states(config, await view.statuses())
        synced = sum(state.state == "synced" for state in states)
        heading = Text.assemble((label, "bold"), f" · {len(states)} devices · {synced} "
                                f"synced · from Redis · workers (PID) {pids}")
        rows = max(console.height - 8, 2) if console.height else None
        return Group(heading, devices_table(states, rows))

    loop = asyncio.get_running_loop()
    deadline = None if args.seconds is None else loop.time() + args.seconds
    with Live(await draw(), console=console, auto_refresh=False,
              vertical_overflow="ellipsis") as live:
        while not stop.is_set() and (deadline is None or loop.time() < deadline):
            await wait_stop(stop, 1 / REFRESH_RATE)
            live.update(await draw(), refresh=True)


# ---------------------------------------------------------------------- watch --redis


def parse_device_pattern(text: str, patterns: Iterable[str]) -> tuple[str, str]:
    """``DEVICE:PATTERN`` (and more REGEX arguments) → a device pattern and a sensor one."""
    device, _, first = text.partition(":")
    if not device:
        raise CliError(f"expected DEVICE:PATTERN, not {sanitize_line(text)!r}")
    wanted = [p for p in (first, *patterns) if p]
    for pattern in wanted:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise CliError(f"bad pattern {sanitize_line(pattern)!r}: {exc}") from None
    return exact(device), "|".join(f"(?:{p})" for p in wanted) or ".*"


def _reading(device: str, sensor: str, reading: Reading, as_json: bool) -> None:
    if as_json:
        STDOUT.json({"type": "reading", "device": json_text(device),
                     "sensor": json_text(sensor), "timestamp": reading.timestamp,
                     "status": status_name(reading.status), "value": _json(reading.value)})
    else:
        STDOUT.line(f"{format_timestamp(reading.timestamp)} {escape_text(device)} "
                    f"{escape_text(sensor)} {status_name(reading.status)} "
                    f"{escape_text(str(reading.value))}")


def _json(value: Any) -> Any:
    if isinstance(value, bytes):
        return json_text(value.decode("utf-8", "replace"))
    if isinstance(value, str):
        return json_text(value)
    return value


async def watch(args: argparse.Namespace) -> int:
    """Print every reading of the matching sensors as it reaches Redis (a line, or JSON)."""
    device, sensor = parse_device_pattern(args.target, args.patterns)
    stop = asyncio.Event()
    STDOUT.on_closed = stop.set
    async with FleetView(args.redis) as view:
        with stop_on_signals(stop):
            follow = asyncio.ensure_future(_follow(view, device, sensor, args.json))
            try:
                await wait_stop(stop, args.seconds)
            finally:
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow
    return EXIT_OK


async def _follow(view: FleetView, device: str, sensor: str, as_json: bool) -> None:
    async for item in view.follow(device, sensor, initial=True):
        if isinstance(item, Update):
            _reading(item.device, item.sensor, item.reading, as_json)
        elif isinstance(item, Gap):
            if not as_json:
                STDOUT.line(f"# {escape_text(item.device)} {item.reason}: latest readings "
                            f"(generation {item.generation})")
            for name, reading in sorted(item.readings.items()):
                _reading(item.device, name, reading, as_json)


__all__ = ["device_states", "parse_device_pattern", "run_worker", "show_workers", "watch"]
