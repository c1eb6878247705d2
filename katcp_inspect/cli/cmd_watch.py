"""``katcp-inspect watch HOST:PORT [REGEX...]``: a live table of sensor readings, coloured by
status, that follows the device through disconnects and restarts until Ctrl-C.

On a terminal the table is redrawn in place; written to a file or a pipe (or with
``--lines``), the command prints one line per reading instead (and one per change of the
connection state); ``--json`` prints one JSON object per line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
from typing import Any

from ..inspecting_client import InspectingClientAsync, InspectingClientStateType
from ..model import AttrDict
from ..sensor import Reading
from .common import (
    EXIT_OK,
    CliError,
    Target,
    compile_patterns,
    parse_strategy,
    stop_on_signals,
)
from .formatting import (
    describe_changes,
    describe_state,
    escape_text,
    format_timestamp,
    format_value,
    json_text,
    json_value,
    sanitize_line,
    status_name,
)
from .live import SensorView, show_live
from .output import STDOUT
from .refusals import Refusals
from .render import make_console

logger = logging.getLogger("katcp_inspect.cli")


class LinePrinter:
    """The output without a live table: ``<UTC time> <name> <status> <value>`` per reading,
    ``# <address> <state>`` per change of state and ``# <address> <name> strategy refused:
    <reason>``; or, with ``as_json``, those as JSON objects (see docs/cli.md)."""

    def __init__(self, client: InspectingClientAsync, label: str, as_json: bool) -> None:
        self.client = client
        self.label = label
        self.as_json = as_json
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
        if text == self._last_state:
            return
        self._last_state = text
        if self.as_json:
            STDOUT.json({"type": "state", "address": self.label, "state": text,
                         "synced": state.synced})
        else:
            STDOUT.line(f"# {self.label} {text}")

    def reading(self, sensor: Any, reading: Reading) -> None:
        if self.closing:
            return
        if self.as_json:
            STDOUT.json({"type": "reading", "sensor": json_text(sensor.name),
                         "timestamp": reading.timestamp, "status": status_name(reading.status),
                         "value": json_value(reading.value, sensor.sensor_type)})
            return
        value = format_value(reading.value, sensor.sensor_type)
        STDOUT.line(f"{format_timestamp(reading.timestamp)} {escape_text(sensor.name)} "
                    f"{status_name(reading.status)} {value}")

    def refused(self, name: str, reason: str) -> None:
        if self.as_json:
            STDOUT.json({"type": "refused", "sensor": json_text(name), "reason": reason})
        else:
            STDOUT.line(f"# {self.label} {escape_text(name)} strategy refused: {reason}")


class Watch:
    """One ``watch`` run: the client, its view, and what ends it early."""

    def __init__(self, target: Target, pattern: re.Pattern[str] | None,
                 strategy: tuple[str, ...], *, live: bool, as_json: bool) -> None:
        self.target = target
        self.pattern = pattern
        self.strategy = strategy
        self.client = InspectingClientAsync(target.host, target.port)
        # A rule for the pattern (or every sensor): it also covers sensors added later, and
        # the client applies it again after every reconnect.
        self.client.set_sampling_strategies(pattern.pattern if pattern else ".*", *strategy)
        label = str(target)
        self.printer = LinePrinter(self.client, label, as_json)
        if live:
            self.view = SensorView(self.client, label, pattern, on_state=self._state)
            self.view.note = " · " + " ".join(strategy) + " · Ctrl-C to quit"
        else:
            self.view = SensorView(self.client, label, pattern, on_state=self._state,
                                   on_reading=self.printer.reading)
        self.live = live
        self.refusals = Refusals(self.client, strategy)
        self.stop = asyncio.Event()
        STDOUT.on_closed = self.stop.set
        self.failures: list[CliError] = []
        self._checks: set[asyncio.Future[None]] = set()

    def _state(self, state: InspectingClientStateType, changes: AttrDict | None) -> None:
        if not self.live:
            self.printer.state(state, changes)
        if state.synced and not self.printer.closing:
            # Not awaited here: the client waits for its state callback.
            check = asyncio.ensure_future(self._after_sync())
            self._checks.add(check)
            check.add_done_callback(self._checks.discard)

    async def _after_sync(self) -> None:
        names = sorted(self.view.sensors)
        if not names:
            logger.warning("%s: no sensor matches %s (of %d); waiting for the device to add "
                           "one", self.target, self._wanted(), len(self.client.sensors))
            return
        before = dict(self.refusals.refused)
        refused = await self.refusals.check(names)
        self.view.refused = refused
        if not self.live:
            for name, why in refused.items():
                if before.get(name) != why:
                    self.printer.refused(name, why)
        if len(refused) == len(names):
            why = refused[names[0]]
            self.failures.append(CliError(
                f"{self.target} refused strategy {' '.join(self.strategy)} for every watched "
                f"sensor ({len(names)}): {why}"))
            self.stop.set()

    def _wanted(self) -> str:
        return "any sensor" if self.pattern is None else \
            f"/{sanitize_line(self.pattern.pattern)}/"

    async def run(self, timeout: float | None, seconds: float | None) -> int:
        await self.client.connect()
        guard = asyncio.ensure_future(self._first_sync(timeout)) if timeout is not None \
            else None
        try:
            with stop_on_signals(self.stop):
                if self.live:
                    await show_live(make_console(), self.view, self.stop, seconds)
                else:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.stop.wait(), seconds)
        finally:
            for task in [guard, *self._checks]:
                if task is not None:
                    task.cancel()
            self.printer.closing = True
            await self.client.stop()
        if self.failures:
            raise self.failures[0]
        return EXIT_OK

    async def _first_sync(self, timeout: float) -> None:
        try:
            await self.client.until_synced(timeout)
        except TimeoutError:
            katcp = self.client.katcp_client
            state = describe_state(self.client.state, katcp.state, katcp.last_error)
            self.failures.append(CliError(
                f"{self.target} not synced within {timeout:g} s ({state})"))
            self.stop.set()


async def run(args: argparse.Namespace) -> int:
    if args.redis is not None:
        from . import redis_paths  # imports redis: only for this path

        return await redis_paths.watch(args)
    pattern = compile_patterns(args.patterns)
    strategy = parse_strategy(args.strategy)
    live = make_console().is_terminal and not (args.json or args.lines)
    watch = Watch(args.target, pattern, strategy, live=live, as_json=args.json)
    return await watch.run(args.timeout, args.seconds)
