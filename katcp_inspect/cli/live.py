"""A live view of an inspecting client's sensors: which to show, how many readings each has
had, and a rich table of them redrawn a few times a second (``watch`` and ``demo``)."""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Callable
from typing import Any, Optional

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from ..inspecting_client import InspectingClientAsync, InspectingClientStateType
from ..model import AttrDict
from ..sensor import Reading
from .common import wait_stop
from .formatting import SensorRow, describe_state, state_style
from .render import sensors_table

StateListener = Callable[[InspectingClientStateType, Optional[AttrDict]], Any]
ReadingListener = Callable[[Any, Reading], None]

#: Redraws per second of the live table.
REFRESH_RATE = 4.0
#: Lines of a live view that are not sensor rows: heading, blank, column names, rule, blank,
#: counters, and one spare.
LIVE_CHROME = 7


class SensorView:
    """Follows the sensors of ``client`` whose names match ``pattern`` (all without one).

    It takes the client's state callback (pass your own as ``on_state``), keeps the current
    sensor objects after every sync (objects are rebuilt when the device modifies a sensor) and
    observes them, counting readings. The client re-applies its sampling strategies after
    every reconnect by itself, so the view goes on updating after a device restart.
    """

    def __init__(self, client: InspectingClientAsync, label: str,
                 pattern: re.Pattern[str] | None = None, *,
                 on_state: StateListener | None = None,
                 on_reading: ReadingListener | None = None) -> None:
        self.client = client
        self.label = label
        self.pattern = pattern
        self.on_state = on_state
        self.on_reading = on_reading
        self.note = ""
        #: What to say when not every sensor fits: how to see fewer.
        self.narrow_hint = "narrow with REGEX"
        #: Sensors whose strategy the device refused → its reason (marked in the table).
        self.refused: dict[str, str] = {}
        self.sensors: dict[str, Any] = {}
        self.updates: dict[str, int] = {}
        client.set_state_callback(self._state_changed)

    def wants(self, name: str) -> bool:
        return self.pattern is None or bool(self.pattern.search(name))

    async def _state_changed(self, state: InspectingClientStateType,
                             model_changes: AttrDict | None) -> None:
        if state.data_synced:
            await self.refresh()
        if self.on_state is not None:
            result = self.on_state(state, model_changes)
            if inspect.isawaitable(result):
                await result

    async def refresh(self) -> None:
        """Take the sensor objects of the model as it is now (names already in the model
        resolve at once)."""
        fresh: dict[str, Any] = {}
        for name in self.client.sensors:
            if not self.wants(name):
                continue
            sensor = await self.client.future_get_sensor(name)
            if sensor is not None:
                sensor.attach(self)
                fresh[name] = sensor
        self.sensors = fresh

    def update(self, sensor: Any, reading: Reading) -> None:
        """Sensor observer: count the reading and pass it on."""
        self.updates[sensor.name] = self.updates.get(sensor.name, 0) + 1
        if self.on_reading is not None:
            self.on_reading(sensor, reading)

    def has_reading(self, name: str) -> bool:
        return self.updates.get(name, 0) > 0

    def state_text(self) -> Text:
        """``synced``, ``inspecting``, ``disconnected (Connection refused); reconnecting``..."""
        katcp = self.client.katcp_client
        state = self.client.state
        return Text(describe_state(state, katcp.state, katcp.last_error),
                    style=state_style(state))

    def render(self, max_rows: int | None = None, width: int | None = None) -> RenderableType:
        """A heading (address, protocol, state), the table (at most ``max_rows`` sensors, in
        name order, fitted to ``width``), and a line of counters."""
        katcp = self.client.katcp_client
        heading = Text.assemble((self.label, "bold"), " · ")
        if katcp.protocol_flags is not None:
            heading.append(f"KATCP {katcp.protocol_flags} · ")
        heading.append_text(self.state_text())
        connections = katcp.stats.connections
        names = sorted(self.sensors)
        shown = f"{len(names)} sensors"
        if max_rows is not None and len(names) > max_rows:
            names = names[:max_rows]
            shown = f"{len(names)} of {len(self.sensors)} sensors shown ({self.narrow_hint})"
        counters = Text(
            f"{shown} · {_count(sum(self.updates.values()), 'reading')} · "
            f"{_count(connections, 'connection')} · "
            f"{self.client.stats.bad_updates} bad updates · "
            f"{time.strftime('%H:%M:%S')}{self.note}", style="dim", no_wrap=True,
            overflow="ellipsis")
        rows = [SensorRow.of(self.sensors[name], read=self.has_reading(name),
                             updates=self.updates.get(name, 0)) for name in names]
        table = sensors_table(rows, time.time(), detail=False, refused=self.refused,
                              width=width)
        return Group(heading, table, counters)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


async def redraw_live(console: Console, render: Callable[[], RenderableType],
                      stop: asyncio.Event, seconds: float | None) -> None:
    """Redraw what ``render()`` gives, :data:`REFRESH_RATE` times a second, until ``stop`` is
    set or ``seconds`` have passed; the last drawing stays on screen."""
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    with Live(render(), console=console, auto_refresh=False,
              vertical_overflow="ellipsis") as live:
        while not stop.is_set():
            wait = 1 / REFRESH_RATE
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    break
            await wait_stop(stop, wait)
            live.update(render(), refresh=True)


async def show_live(console: Console, view: SensorView, stop: asyncio.Event,
                    seconds: float | None) -> None:
    """Redraw ``view`` on ``console`` until ``stop`` is set or ``seconds`` have passed; the
    last table stays on screen. (On a file or a pipe, rich prints only that last table.)"""

    def render() -> RenderableType:
        # On a terminal, only the rows that fit are built: a device may have 10 000 sensors.
        fits = max(console.height - LIVE_CHROME, 1) if console.is_terminal else None
        return view.render(fits, console.width if console.is_terminal else None)

    await redraw_live(console, render, stop, seconds)
    if not console.is_terminal:
        console.line()  # rich ends a terminal's live display with a newline, not a file's
