"""rich tables for requests and sensors, and the console they are printed on.

Every device-supplied string is escaped (:func:`~katcp_inspect.text.printable`) and goes into
a :class:`rich.text.Text`, never into markup, so a sensor value such as ``[red]`` is shown as
it is; titles given as ``str`` (which may hold a user's pattern) are plain text too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
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
from .output import STDOUT

#: Width used when the output is not a terminal and ``COLUMNS`` is not set (rich would use 80,
#: truncating tables that are meant for files and pipes).
PIPE_WIDTH = 200


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich would exit with status 1 at once, skipping the command's cleanup.
        STDOUT.close()
        raise BrokenPipeError


NAME_MIN_WIDTH = 12
#: Below this width a sensors table leaves out its least needed column.
NARROW = 100
#: The narrowest a Value column gets (rich would otherwise squeeze it out at 60 columns).
VALUE_MIN_WIDTH = 12


def make_console(*, stderr: bool = False, wide: bool = False) -> Console:
    """A console for stdout (or stderr) that does not guess at highlighting; wide when it
    writes to a file or a pipe, or when asked (``--wide``: lines as long as they need)."""
    console = _Console(stderr=stderr, highlight=False)
    if wide or (not console.is_terminal and "COLUMNS" not in os.environ):
        console.width = PIPE_WIDTH
    return console


def status_text(status: SensorStatus) -> Text:
    """A status name in its colour (see :data:`~katcp_inspect.cli.formatting.STATUS_STYLES`)."""
    return Text(status_name(status), style=status_style(status))


def _plain(text: Text | str | None) -> Text | None:
    # rich reads a str title as markup: a user's pattern such as '[/x]' would not parse.
    return Text(text) if isinstance(text, str) else text


def name_column(names: Iterable[str], width: int | None) -> dict[str, Any]:
    """A name column as wide as its longest name (up to half the ``width``; past that, the
    name folds onto more lines): rich would otherwise squeeze names to ``?sens…``."""
    longest = max((len(escape_text(name)) for name in names), default=0) + 1
    widest = longest if width is None else min(longest, max(NAME_MIN_WIDTH, width * 2 // 5))
    return {"overflow": "fold", "min_width": max(widest, NAME_MIN_WIDTH)}


def requests_table(requests: Iterable[Any], *, title: Text | str | None = None,
                   width: int | None = None) -> Table:
    """Requests (objects with ``name``, ``description``, ``timeout_hint``): name, the first
    line of the help, and the timeout hint (names fitted to ``width``, see :func:`name_column`).
    A ``str`` title is plain text, not markup."""
    requests = list(requests)
    table = Table(title=_plain(title), box=box.SIMPLE_HEAD, title_justify="left")
    name = name_column(("?" + r.name for r in requests), width)
    table.add_column("Request", style="bold", **name)
    # The summary gives way first (rich would squeeze the names): it is only the first line
    # of the help. What is left beside the name and the hint (and the columns' padding).
    summary = 72 if width is None else max(min(72, width - name["min_width"] - 20), 8)
    table.add_column("Summary", overflow="ellipsis", no_wrap=True, max_width=summary)
    table.add_column("Timeout hint", justify="right", no_wrap=True)
    for request in requests:
        table.add_row(Text("?" + escape_text(request.name)),
                      Text(escape_text(first_line(request.description))),
                      Text(format_hint(request.timeout_hint)))
    return table


def sensors_table(rows: Iterable[SensorRow], now: float, *, detail: bool = True,
                  title: Text | str | None = None, caption: Text | str | None = None,
                  refused: Mapping[str, str] | None = None, width: int | None = None) -> Table:
    """Sensors with their readings, ages computed against ``now``.

    ``detail``: name, type, units, params, status, value, age (for ``inspect``); otherwise
    name, status, value, units, age and updates, the readings seen so far (for live views).
    Rows without a reading show ``-``; sensors in ``refused`` (name → the device's reason)
    show the status ``refused`` and the reason. ``str`` titles and captions are plain text,
    not markup. Fitted to ``width``: names fold (never cut), values wrap, and below
    :data:`NARROW` columns the type and params (detail) or the updates (live) are left out.
    """
    rows = list(rows)
    narrow = width is not None and width < NARROW
    table = Table(title=_plain(title), caption=_plain(caption), box=box.SIMPLE_HEAD,
                  title_justify="left", caption_justify="left")
    table.add_column("Sensor", style="bold", **name_column((r.name for r in rows), width))
    if detail:
        if not narrow:
            table.add_column("Type", no_wrap=True)
        table.add_column("Units", no_wrap=True)
        if not narrow:
            table.add_column("Params", overflow="ellipsis", max_width=40)
    table.add_column("Status", no_wrap=True)
    table.add_column("Value", overflow="fold", min_width=VALUE_MIN_WIDTH, max_width=60)
    if not detail:
        table.add_column("Units", no_wrap=True)
    table.add_column("Age", justify="right", no_wrap=True)
    if not detail and not narrow:
        table.add_column("Updates", justify="right", no_wrap=True)
    for row in rows:
        reading = row.reading
        if refused is not None and row.name in refused:
            status_cell, value_cell = Text("refused", style="red"), Text(refused[row.name])
            age_cell = Text("-")
        elif reading is None:
            status_cell, value_cell, age_cell = Text("-", style="dim"), Text("-"), Text("-")
        else:
            status_cell = status_text(reading.status)
            value_cell = Text(format_value(reading.value, row.sensor_type))
            age_cell = Text(format_age(now - reading.timestamp))
        units = Text(escape_text(row.units))
        cells: list[Text] = [Text(escape_text(row.name))]
        if detail:
            cells += [units] if narrow else [Text(row.type_name), units,
                                             Text(format_params(row.params))]
        cells += [status_cell, value_cell]
        if not detail:
            cells.append(units)
        cells.append(age_cell)
        if not detail and not narrow:
            cells.append(Text("-" if row.updates is None else str(row.updates)))
        table.add_row(*cells)
    return table
