"""``katcp-inspect watch HOST:PORT [REGEX...]``: a live table of sensor readings, coloured by
status, that follows the device through disconnects and restarts until Ctrl-C.

On a terminal the table is redrawn in place; written to a file or a pipe, the command prints
one line per reading instead (and one per change of the connection state)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from typing import Any

from ..inspecting_client import InspectingClientAsync, InspectingClientStateType
from ..model import AttrDict
from ..sensor import Reading
from .common import EXIT_OK, CliError, Target, compile_patterns, parse_strategy, stop_on_signals
from .formatting import (
    describe_changes,
    describe_state,
    escape_text,
    format_timestamp,
    format_value,
    status_name,
)
from .live import SensorView, show_live
from .render import make_console


class LinePrinter:
    """The non-terminal output: ``<UTC time> <name> <status> <value>`` per reading, and
    ``# <address> <state>`` per change of state."""

    def __init__(self, client: InspectingClientAsync, label: str) -> None:
        self.client = client
        self.label = label
        self._last_state = ""
        #: Set when the command ends, so that the client's last report is not printed.
        self.closing = False

    def state(self, state: InspectingClientStateType, changes: AttrDict | None) -> None:
        if self.closing:
            return
        katcp = self.client.katcp_client
        text = describe_state(state, katcp.state, katcp.last_error)
        if changes:
            text += f" ({describe_changes(changes)})"
        if text != self._last_state:
            self._last_state = text
            print(f"# {self.label} {text}", flush=True)

    def reading(self, sensor: Any, reading: Reading) -> None:
        if self.closing:
            return
        value = format_value(reading.value, sensor.sensor_type)
        print(f"{format_timestamp(reading.timestamp)} {escape_text(sensor.name)} "
              f"{status_name(reading.status)} {value}", flush=True)


async def watch(target: Target, pattern: re.Pattern[str] | None, strategy: tuple[str, ...],
                *, timeout: float | None, seconds: float | None) -> int:
    console = make_console()
    client = InspectingClientAsync(target.host, target.port)
    # A rule for the pattern (or every sensor): it also covers sensors added later, and the
    # client applies it again after every reconnect.
    client.set_sampling_strategies(pattern.pattern if pattern else ".*", *strategy)
    label = str(target)
    printer = LinePrinter(client, label)
    if console.is_terminal:
        view = SensorView(client, label, pattern)
        view.note = " · " + " ".join(strategy) + " · Ctrl-C to quit"
    else:
        view = SensorView(client, label, pattern, on_state=printer.state,
                          on_reading=printer.reading)
    stop = asyncio.Event()
    failures: list[CliError] = []

    async def check_first_sync(timeout: float) -> None:
        try:
            await _first_sync(client, target, timeout)
        except CliError as exc:
            failures.append(exc)
            stop.set()

    await client.connect()
    guard = asyncio.ensure_future(check_first_sync(timeout)) if timeout is not None else None
    try:
        with stop_on_signals(stop):
            if console.is_terminal:
                await show_live(console, view, stop, seconds)
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), seconds)
    finally:
        if guard is not None:
            guard.cancel()
        printer.closing = True
        await client.stop()
    if failures:
        raise failures[0]
    return EXIT_OK


async def _first_sync(client: InspectingClientAsync, target: Target, timeout: float) -> None:
    try:
        await client.until_synced(timeout)
    except TimeoutError:
        katcp = client.katcp_client
        state = describe_state(client.state, katcp.state, katcp.last_error)
        raise CliError(f"{target} not synced within {timeout:g} s ({state})") from None


async def run(args: argparse.Namespace) -> int:
    pattern = compile_patterns(args.patterns)
    strategy = parse_strategy(args.strategy)
    return await watch(args.target, pattern, strategy, timeout=args.timeout,
                       seconds=args.seconds)
