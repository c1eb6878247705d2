"""``katcp-inspect inspect HOST:PORT``: connect, sync, read the sensors once (``?sensor-value``)
and print the requests and sensors as tables, or as JSON."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from typing import Any

import attrs

from ..inspecting_client import InspectingClientAsync
from .common import EXIT_OK, CliError, Target, compile_patterns
from .formatting import (
    SensorRow,
    escape_text,
    json_document,
    json_text,
    request_json,
    sanitize_line,
    sensor_json,
)
from .session import sync_client

logger = logging.getLogger("katcp_inspect.cli")


@attrs.frozen
class Inspection:
    """What ``inspect`` found, taken before the client stops (which marks readings
    unreachable)."""

    target: Target
    protocol: str | None
    versions: dict[str, tuple[str, ...]]
    requests: list[Any]
    sensors: list[SensorRow]
    time: float

    def to_json(self) -> dict[str, Any]:
        return {
            "address": str(self.target),
            "protocol": self.protocol,
            "versions": {json_text(k): [json_text(v) for v in vs]
                         for k, vs in self.versions.items()},
            "requests": [request_json(r) for r in self.requests],
            "sensors": [sensor_json(row, self.time) for row in self.sensors],
        }


async def inspect_device(target: Target, timeout: float,
                         pattern: re.Pattern[str] | None = None) -> Inspection:
    """Connect, sync, read the sensors matching ``pattern`` (all without one) with one
    ``?sensor-value``, and disconnect; raises :class:`CliError`."""
    client = InspectingClientAsync(target.host, target.port)
    client.handle_sensor_value()  # the ?sensor-value informs update the cached sensors
    await sync_client(client, target, timeout)
    try:
        names = [n for n in client.sensors if pattern is None or pattern.search(n)]
        sensors = [await client.future_get_sensor(n) for n in names]  # cached: no requests
        read: set[str] = set()
        if names:
            reply, informs = await client.simple_request("sensor-value", timeout=timeout)
            if not reply.reply_ok():
                raise CliError(f"?sensor-value to {target} failed: {reply}")
            read = {i.arguments[2].decode("utf-8", "surrogateescape") for i in informs
                    if len(i.arguments) >= 5}
        flags = client.katcp_client.protocol_flags
        return Inspection(
            target=target,
            protocol=None if flags is None else str(flags),
            versions=dict(client.katcp_client.versions),
            requests=[await client.future_get_request(n) for n in client.requests],
            sensors=[SensorRow.of(s, read=s.name in read) for s in sensors if s is not None],
            time=time.time())
    finally:
        await client.stop()


def print_tables(found: Inspection, pattern: re.Pattern[str] | None, *,
                 wide: bool = False) -> None:
    from rich.text import Text

    from .render import make_console, requests_table, sensors_table

    console = make_console(wide=wide)
    width = console.width if console.is_terminal and not wide else None
    header = Text.assemble((str(found.target), "bold"), f"  KATCP {found.protocol}")
    device = found.versions.get("katcp-device") or found.versions.get("version")
    if device:
        header.append("  device " + " ".join(escape_text(v) for v in device))
    console.print(header)
    console.print(requests_table(found.requests, title=f"{len(found.requests)} requests",
                                 width=width))
    title = f"{len(found.sensors)} sensors" + (
        f" matching /{sanitize_line(pattern.pattern)}/" if pattern is not None else "")
    console.print(sensors_table(found.sensors, found.time, title=title, width=width))


async def run(args: argparse.Namespace) -> int:
    pattern = compile_patterns([args.sensors] if args.sensors else [])
    found = await inspect_device(args.target, args.timeout, pattern)
    if pattern is not None and not found.sensors:
        logger.warning("no sensor of %s matches /%s/", args.target, sanitize_line(args.sensors))
    if args.json:
        sys.stdout.write(json_document(found.to_json()) + "\n")
    else:
        print_tables(found, pattern, wide=args.wide)
    return EXIT_OK
