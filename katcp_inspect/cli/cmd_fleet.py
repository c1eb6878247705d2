"""``katcp-inspect fleet CONFIG``: every device of a fleet configuration, live: a table of the
devices (state, protocol, sensors, updates/s, last error) and, with ``--sensor PATTERN``, the
matching sensors' readings across devices.

On a terminal the tables are redrawn in place; written to a file or a pipe, the command
prints a line per change of a device's state and per reading instead; ``--json`` prints one
snapshot once every device is synced (or at ``--timeout``) and exits."""

from __future__ import annotations

import argparse
import asyncio
import re

import attrs
from rich.console import RenderableType

from ..fleet import ConfigError, Fleet, FleetConfig
from ..fleet.config import DEFAULT_LEASE, RedisConfig
from .common import (
    EXIT_OK,
    CliError,
    compile_patterns,
    stop_on_signals,
    wait_stop,
)
from .fleet_view import Readings, reading_line, render, snapshot, state_line
from .formatting import json_document, sanitize_line
from .live import redraw_live
from .output import STDOUT
from .render import make_console


def _load(args: argparse.Namespace) -> FleetConfig:
    """The configuration, with ``--redis`` as its Redis URL."""
    try:
        config = FleetConfig.load(args.config)
        if args.redis is not None:
            table = config.redis or RedisConfig(args.redis, None, DEFAULT_LEASE)
            config = attrs.evolve(config, redis=attrs.evolve(table, url=args.redis))
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if (args.workers or args.worker) and config.redis is None:
        raise CliError("--workers needs --redis URL (or a [redis] table with a url)")
    return config


async def _snapshot(fleet: Fleet, readings: Readings | None, timeout: float) -> int:
    """Wait for every device to sync (at most ``timeout`` s); print the snapshot."""
    async with fleet:
        try:
            await fleet.until_synced(timeout)
            synced = True
        except TimeoutError:
            synced = False
        STDOUT.line(json_document(snapshot(fleet, readings)))
        missing = len(fleet) - fleet.summary()["counts"]["synced"]
    if not synced:
        raise CliError(f"{missing} of {len(fleet)} devices not synced within {timeout:g} s")
    return EXIT_OK


async def _lines(fleet: Fleet, readings: Readings | None, stop: asyncio.Event,
                 seconds: float | None) -> None:
    """A line per change of a device's state and per reading, until ``stop`` or ``seconds``."""
    fleet.add_state_listener(lambda name, state: STDOUT.line(state_line(state)))
    if readings is not None:
        readings.echo = lambda device, sensor, reading: STDOUT.line(
            reading_line(device, sensor, reading))
    async with fleet:
        await wait_stop(stop, seconds)
        if readings is not None:
            readings.echo = None


async def _live(fleet: Fleet, label: str, readings: Readings | None, stop: asyncio.Event,
                seconds: float | None) -> None:
    console = make_console()

    def draw() -> RenderableType:
        return render(label, fleet, readings, console.height)

    async with fleet:
        await redraw_live(console, draw, stop, seconds)


async def run(args: argparse.Namespace) -> int:
    config = _load(args)
    if args.worker or args.workers:
        from . import redis_paths  # imports redis: only for these paths

        if args.worker:
            return await redis_paths.run_worker(config)
        if args.sensor:
            raise CliError("--sensor is not supported with --workers")
        return await redis_paths.show_workers(args, config)
    fleet = Fleet.from_config(config)
    pattern: re.Pattern[str] | None = compile_patterns([args.sensor] if args.sensor else [])
    readings = Readings(pattern) if pattern is not None else None
    if readings is not None and pattern is not None:
        fleet.attach(readings, sensor=pattern.pattern)
    if args.json:
        return await _snapshot(fleet, readings, args.timeout)
    stop = asyncio.Event()
    STDOUT.on_closed = stop.set
    live = make_console().is_terminal and not args.lines
    with stop_on_signals(stop):
        if live:
            await _live(fleet, sanitize_line(args.config), readings, stop, args.seconds)
        else:
            await _lines(fleet, readings, stop, args.seconds)
    return EXIT_OK
