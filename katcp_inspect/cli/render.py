"""rich tables for requests and sensors, and the console they are printed on.

Every device-supplied string is escaped (:func:`~katcp_inspect.text.printable`) and goes into
a :class:`rich.text.Text`, never into markup, so a sensor value such as ``[red]`` is shown as
it is; titles given as ``str`` (which may hold a user's pattern) are plain text too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..kattypes import SensorStatus
from .formatting import (
    SensorRow,
    escape_text,
    first_line,
    format_age,
    format_hint,
    format_params,
    format_value,
    status_name,
    status_style,
)

#: Width used when the output is not a terminal and ``COLUMNS`` is not set (rich would use 80,
#: truncating tables that are meant for files and pipes).
PIPE_WIDTH = 200


def make_console(*, stderr: bool = False) -> Console:
    """A console for stdout (or stderr) that does not guess at highlighting; wide when it
    writes to a file or a pipe."""
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


def status_text(status: SensorStatus) -> Text:
    """A status name in its colour (see :data:`~katcp_inspect.cli.formatting.STATUS_STYLES`)."""
    return Text(status_name(status), style=status_style(status))


def _plain(text: Text | str | None) -> Text | None:
    # rich reads a str title as markup: a user's pattern such as '[/x]' would not parse.
    return Text(text) if isinstance(text, str) else text


def requests_table(requests: Iterable[Any], *, title: Text | str | None = None) -> Table:
    """Requests (objects with ``name``, ``description``, ``timeout_hint``): name, the first
    line of the help, and the timeout hint. A ``str`` title is plain text, not markup."""
    table = Table(title=_plain(title), box=box.SIMPLE_HEAD, title_justify="left")
    table.add_column("Request", no_wrap=True, style="bold")
    table.add_column("Summary", overflow="ellipsis", no_wrap=True, max_width=72)
    table.add_column("Timeout hint", justify="right", no_wrap=True)
    for request in requests:
        table.add_row(Text("?" + escape_text(request.name)),
                      Text(escape_text(first_line(request.description))),
                      Text(format_hint(request.timeout_hint)))
    return table


def sensors_table(rows: Iterable[SensorRow], now: float, *, detail: bool = True,
                  title: Text | str | None = None, caption: Text | str | None = None) -> Table:
    """Sensors with their readings, ages computed against ``now``.

    ``detail``: name, type, units, params, status, value, age (for ``inspect``); otherwise
    name, status, value, units, age and updates, the readings seen so far (for live views).
    Rows without a reading show ``-``. ``str`` titles and captions are plain text, not markup.
    """
    table = Table(title=_plain(title), caption=_plain(caption), box=box.SIMPLE_HEAD,
                  title_justify="left", caption_justify="left")
    table.add_column("Sensor", no_wrap=True, style="bold")
    if detail:
        table.add_column("Type", no_wrap=True)
        table.add_column("Units", no_wrap=True)
        table.add_column("Params", overflow="ellipsis", max_width=40)
    table.add_column("Status", no_wrap=True)
    table.add_column("Value", overflow="ellipsis", max_width=60)
    if not detail:
        table.add_column("Units", no_wrap=True)
    table.add_column("Age", justify="right", no_wrap=True)
    if not detail:
        table.add_column("Updates", justify="right", no_wrap=True)
    for row in rows:
        reading = row.reading
        if reading is None:
            status_cell, value_cell, age_cell = Text("-", style="dim"), Text("-"), Text("-")
        else:
            status_cell = status_text(reading.status)
            value_cell = Text(format_value(reading.value, row.sensor_type))
            age_cell = Text(format_age(now - reading.timestamp))
        units = Text(escape_text(row.units))
        cells: list[Text] = [Text(escape_text(row.name))]
        if detail:
            cells += [Text(row.type_name), units, Text(format_params(row.params))]
        cells += [status_cell, value_cell]
        if not detail:
            cells.append(units)
        cells.append(age_cell)
        if not detail:
            cells.append(Text("-" if row.updates is None else str(row.updates)))
        table.add_row(*cells)
    return table
