"""The command shows device text escaped, on a pipe as on a terminal: a raw device's names,
values, versions and ``#disconnect`` reason cannot change the terminal's title, ring its bell or
forge a line on stdout or stderr; and a user's pattern is never read as rich markup
(issue 11, item 14)."""

from __future__ import annotations

import json
from typing import Any

from ..hostile import (
    BIDI_SENSOR,
    HOSTILE,
    SENSOR,
    disconnecting,
    forged_lines,
    hostile_device,
    sensor_status,
    unprintable,
)
from .helpers import CliProcess, Result, run_cli

#: HOSTILE as the device meant it, and as the command shows it.
RAW = "\nCRITICAL root: FORGED LOG LINE\x1b]0;pwned\x07\r\u202e\x9b\u2028"
ESCAPED = "\\nCRITICAL root: FORGED LOG LINE\\x1b]0;pwned\\x07\\r\\u202e\\x9b\\u2028"


def assert_clean(result: Result) -> None:
    """Nothing a terminal acts on in either stream (only the lines' own newlines), and no
    line forged by the device."""
    for stream, text in (("stdout", result.out), ("stderr", result.err)):
        assert not unprintable(text, allowed="\n"), f"{stream}:\n{text}"
        assert not forged_lines(text), f"{stream}:\n{text}"
    assert "Traceback" not in result.err, result.err


async def test_request_informs_reply_and_disconnect_reason(io_loop: Any) -> None:
    async with hostile_device() as device:
        device.responses["echo"] = lambda r: [b"#echo " + HOSTILE, b"!echo ok " + HOSTILE]
        result = await run_cli("-v", "request", f"127.0.0.1:{device.port}", "echo")
        assert_clean(result)
        assert result.code == 0, result.err
        assert "#echo \\nCRITICAL\\_root:" in result.out  # the wire form, made printable

        device.responses["hang-up"] = disconnecting(device, HOSTILE)
        result = await run_cli("-v", "request", f"127.0.0.1:{device.port}", "hang-up")
    assert_clean(result)
    assert result.code == 2
    assert f"disconnected us: bye{ESCAPED}" in result.err


async def test_inspect_tables_and_json(io_loop: Any) -> None:
    async with hostile_device() as device:
        target = f"127.0.0.1:{device.port}"
        tables = await run_cli("inspect", target)
        as_json = await run_cli("inspect", target, "--json")
    for result in (tables, as_json):
        assert_clean(result)
        assert result.code == 0, result.err
    assert f"evil{ESCAPED}" in tables.out and "bidi\\u202er.x" in tables.out
    data = json.loads(as_json.out)  # still JSON, and exact
    sensors = {s["name"]: s for s in data["sensors"]}
    assert set(sensors) == {"evil" + RAW, "bidi\u202er.x"}
    assert sensors["evil" + RAW]["value"] == "value" + RAW
    assert data["versions"]["katcp-device"] == ["dev" + RAW, "build" + RAW]


async def test_inspect_reports_a_hostile_disconnect_reason_escaped(io_loop: Any) -> None:
    async with hostile_device() as device:
        device.responses["sensor-list"] = disconnecting(device)
        result = await run_cli("-v", "inspect", f"127.0.0.1:{device.port}", "--timeout", "5")
    assert_clean(result)
    assert result.code == 2
    assert f"disconnected us: bye{ESCAPED}" in result.err


async def test_inspect_pattern_is_not_markup(io_loop: Any) -> None:
    async with hostile_device() as device:
        result = await run_cli("inspect", f"127.0.0.1:{device.port}", "--sensors", "[/x]")
    assert_clean(result)
    assert result.code == 0, result.err
    assert "1 sensors matching /(?:[/x])/" in result.out  # bidi\u202er.x: it has an x


async def test_watch_on_a_pipe(io_loop: Any) -> None:
    async with hostile_device() as device:
        def sample(request: Any) -> list[bytes]:
            peer = device.all[-1]
            peer.send(sensor_status(SENSOR, b"nominal", b"value" + HOSTILE))
            peer.send(sensor_status(BIDI_SENSOR, b"warn", b"3"))
            peer.send(b"#disconnect bye" + HOSTILE + b"\n")
            return [b"!sensor-sampling ok"]

        device.responses["sensor-sampling"] = sample
        process = await CliProcess.start("watch", f"127.0.0.1:{device.port}",
                                         "--seconds", "30")
        try:
            await process.until("bidi\\u202er.x warn 3", "disconnected (")
            process.interrupt()
            result = await process.finish()
        finally:
            await process.kill()
    assert_clean(result)
    assert result.code == 0, result.err
    assert f"evil{ESCAPED} nominal value{ESCAPED}" in result.out
    assert f"disconnected (127.0.0.1:{device.port} disconnected us: bye{ESCAPED})" in result.out
