"""The command's pure formatting (values, ages, statuses, states, JSON) and its rich tables."""

from __future__ import annotations

import argparse
import io
import math

import pytest
from rich.console import Console

from katcp_inspect import (
    Address,
    ConnectionLostError,
    InspectingClientStateType,
    Message,
    Reading,
    Request,
    Sensor,
    SensorStatus,
    SensorType,
)
from katcp_inspect.cli.cmd_request import exit_code, request_name
from katcp_inspect.cli.common import (
    CliError,
    Target,
    compile_patterns,
    parse_strategy,
    parse_target,
)
from katcp_inspect.cli.formatting import (
    SensorRow,
    describe_changes,
    describe_error,
    describe_state,
    escape_text,
    first_line,
    format_age,
    format_hint,
    format_message,
    format_params,
    format_timestamp,
    format_value,
    json_value,
    sensor_json,
    state_style,
    status_style,
)
from katcp_inspect.cli.render import requests_table, sensors_table, status_text
from katcp_inspect.client import ConnectionState
from katcp_inspect.errors import NotConnectedError

S = InspectingClientStateType


# -- text and values ---------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("plain text", "plain text"),
    ("25 °C", "25 °C"),  # UTF-8 is shown as it is
    (b"caf\xe9", "caf\\xe9"),  # bytes that are not UTF-8: escaped
    (b"caf\xe9".decode("utf-8", "surrogateescape"), "caf\\xe9"),  # ...also once decoded
    ("two\nlines\tand a tab", "two\\nlines\\tand a tab"),
    ("\x1b[31mred?", "\\x1b[31mred?"),  # no terminal escape gets through
    ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
    ("back\\slash", "back\\\\slash"),  # so the escapes above are unambiguous
    ("lone \ud800", "lone \\ud800"),
])
def test_escape_text(raw: str | bytes, shown: str) -> None:
    assert escape_text(raw) == shown


@pytest.mark.parametrize(("value", "stype", "shown"), [
    (None, None, "-"),
    (True, SensorType.BOOLEAN, "True"),
    (False, SensorType.BOOLEAN, "False"),
    (0, SensorType.LRU, "nominal"),
    (1, SensorType.LRU, "error"),
    (42, SensorType.INTEGER, "42"),
    (42.5, SensorType.FLOAT, "42.5"),
    (0.1 + 0.2, SensorType.FLOAT, "0.3"),
    (1284000000.0, SensorType.FLOAT, "1284000000.0"),
    (1.0e-7, SensorType.FLOAT, "1e-07"),
    (math.inf, SensorType.FLOAT, "inf"),
    (1700000000.25, SensorType.TIMESTAMP, "2023-11-14 22:13:20.250Z"),
    (Address("10.0.0.1", 7147), SensorType.ADDRESS, "10.0.0.1:7147"),
    (Address("::1", 7148), SensorType.ADDRESS, "[::1]:7148"),
    (Address("example.org", None), SensorType.ADDRESS, "example.org"),
    ("observing", SensorType.DISCRETE, "observing"),
    ("line\nbreak", SensorType.STRING, "line\\nbreak"),
    (b"\xff\x00", SensorType.STRING, "\\xff\\x00"),
    ("[red]not markup[/red]", SensorType.STRING, "[red]not markup[/red]"),
])
def test_format_value(value: object, stype: SensorType | None, shown: str) -> None:
    assert format_value(value, stype) == shown


def test_format_timestamp_out_of_range_falls_back_to_the_number() -> None:
    assert format_timestamp(1e20) == "1e+20"


@pytest.mark.parametrize(("seconds", "shown"), [
    (None, "-"),
    (0.0, "0.0s"),
    (0.44, "0.4s"),
    (9.96, "10.0s"),
    (12.7, "12s"),
    (303, "5m03s"),
    (7500, "2h05m"),
    (3 * 86400 + 4 * 3600 + 5, "3d04h"),
    (-2.5, "-2.5s"),  # the device's clock is ahead
    (math.nan, "-"),
])
def test_format_age(seconds: float | None, shown: str) -> None:
    assert format_age(seconds) == shown


def test_params_hints_and_help_summaries() -> None:
    assert format_params([10.0, 70.0]) == "10.0, 70.0"
    assert format_params(["idle", "observing"]) == "idle, observing"
    assert format_params([]) == ""
    assert format_hint(None) == ""
    assert format_hint(2.5) == "2.5s"
    assert first_line("Add two integers.\nReplies with the sum.") == "Add two integers."
    assert first_line("\n  Indented summary.  \nmore") == "Indented summary."
    assert first_line("") == ""


def test_format_message_is_the_wire_form_without_the_id() -> None:
    reply = Message.reply("echo", "ok", "a b", b"caf\xe9", "new\nline", mid=7)
    assert format_message(reply) == "!echo ok a\\_b caf\\xe9 new\\nline"
    inform = Message.inform("log", "warn", b"bell\x07")
    assert format_message(inform) == "#log warn bell\\x07"  # KATCP does not escape BEL


# -- statuses and states -----------------------------------------------------------------------

def test_status_styles() -> None:
    assert status_style(SensorStatus.NOMINAL) == "green"
    assert status_style(SensorStatus.WARN) == "yellow"
    for status in (SensorStatus.ERROR, SensorStatus.FAILURE, SensorStatus.UNREACHABLE):
        assert "red" in status_style(status)
    assert status_style(SensorStatus.INACTIVE) == "dim"
    assert status_style(SensorStatus.UNKNOWN) == ""
    text = status_text(SensorStatus.WARN)
    assert (text.plain, str(text.style)) == ("warn", "yellow")


def test_describe_state() -> None:
    cs = ConnectionState
    refused = ConnectionRefusedError(111, "Connection refused")
    assert describe_state(S(True, True, False, True), cs.CONNECTED) == "synced"
    assert describe_state(S(True, False, False, False), cs.CONNECTED) == "inspecting"
    assert describe_state(S(True, False, True, True), cs.CONNECTED).startswith("model updated")
    assert describe_state(S(False, False, False, False), cs.CONNECTING) == "connecting"
    assert describe_state(S(False, False, False, False), cs.SLEEPING, refused) == \
        "disconnected (Connection refused); reconnecting"
    assert describe_state(S(False, False, False, False), cs.SLEEPING,
                          NotConnectedError("x")) == "disconnected; reconnecting"
    assert describe_state(S(False, False, False, False), cs.CLOSED) == "closed"
    assert state_style(S(True, True, False, True)) == "green"
    assert state_style(S(True, False, False, False)) == "yellow"
    assert state_style(S(False, False, False, False)) == "red"


def test_describe_error() -> None:
    assert describe_error(ConnectionRefusedError(111, "Connection refused")) == \
        "Connection refused"
    assert describe_error(ConnectionLostError("gone")) == "gone"
    assert describe_error(TimeoutError()) == "TimeoutError"
    assert describe_error(None) == "no error"


def test_describe_changes() -> None:
    assert describe_changes(None) == ""
    changes = {"requests": {"added": {"a", "b", "m"}, "removed": {"m"}},
               "sensors": {"added": {"x"}, "removed": {"y", "z"}}}
    assert describe_changes(changes) == \
        "+2 requests, 1 request modified, +1 sensor, -2 sensors"


# -- JSON --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "stype", "expected"), [
    (None, None, None),
    (True, SensorType.BOOLEAN, True),
    (7, SensorType.INTEGER, 7),
    (2.5, SensorType.FLOAT, 2.5),
    (math.nan, SensorType.FLOAT, "nan"),
    (-math.inf, SensorType.FLOAT, "-inf"),
    (1, SensorType.LRU, "error"),
    (Address("::1", 7148), SensorType.ADDRESS, "[::1]:7148"),
    ("caf\udce9", SensorType.STRING, "caf\\xe9"),
    ("25 °C\n", SensorType.STRING, "25 °C\n"),  # JSON escapes control characters itself
    (b"\xff", SensorType.STRING, "\\xff"),
    ("lone \ud800", SensorType.STRING, "lone \\ud800"),
])
def test_json_value(value: object, stype: SensorType | None, expected: object) -> None:
    assert json_value(value, stype) == expected


def test_sensor_json_with_and_without_a_reading() -> None:
    sensor = Sensor(SensorType.DISCRETE, "mode", "The mode.", "", ["a", "b"])
    sensor.set(100.0, SensorStatus.WARN, "b")
    read = sensor_json(SensorRow.of(sensor), now=102.5)
    assert read == {"name": "mode", "type": "discrete", "description": "The mode.",
                    "units": "", "params": ["a", "b"], "status": "warn", "value": "b",
                    "timestamp": 100.0, "age": 2.5}
    unread = sensor_json(SensorRow.of(sensor, read=False), now=102.5)
    assert (unread["status"], unread["value"], unread["timestamp"], unread["age"]) == \
        (None, None, None, None)


# -- tables ------------------------------------------------------------------------------------

def render(renderable: object, *, styles: bool = False) -> str:
    console = Console(file=io.StringIO(), width=160, force_terminal=True,
                      color_system="standard", record=True)
    console.print(renderable)
    return console.export_text(styles=styles)


def test_requests_table() -> None:
    text = render(requests_table([Request("add", "Add two integers.\nMore.", 2.0),
                                  Request("[b]x", "Markup is not [red]read[/red].", None)]))
    assert "?add" in text and "Add two integers." in text and "More." not in text
    assert "2.0s" in text
    assert "?[b]x" in text and "[red]read[/red]" in text


def test_sensors_table_detail_and_live() -> None:
    now = 1000.0
    rows = [
        SensorRow("cpu.temp", SensorType.FLOAT, "degC", (10.0, 70.0), "",
                  Reading(998.0, SensorStatus.WARN, 71.5), 3),
        SensorRow("rx.addr", SensorType.ADDRESS, "", (), "",
                  Reading(990.0, SensorStatus.NOMINAL, Address("::1", 7148)), 1),
        SensorRow("never.read", SensorType.INTEGER),
    ]
    detail = render(sensors_table(rows, now))
    for expected in ("cpu.temp", "float", "degC", "10.0, 70.0", "warn", "71.5", "2.0s",
                     "[::1]:7148", "10s", "never.read"):
        assert expected in detail
    assert "Updates" not in detail
    live = render(sensors_table(rows, now, detail=False))
    assert "Updates" in live and "Params" not in live
    never = next(line for line in live.splitlines() if "never.read" in line)
    assert never.split()[1:] == ["-", "-", "-", "-"]  # no reading, updates not counted
    assert next(line for line in live.splitlines() if "cpu.temp" in line).split()[-1] == "3"
    styled = render(sensors_table(rows, now), styles=True)
    assert "\x1b[33mwarn" in styled and "\x1b[32mnominal" in styled


# -- arguments ---------------------------------------------------------------------------------

def test_parse_target() -> None:
    assert parse_target("127.0.0.1:7147") == Target("127.0.0.1", 7147)
    assert parse_target("[::1]:7147") == Target("::1", 7147)
    assert str(Target("::1", 7147)) == "[::1]:7147"
    assert parse_target("device.example.org:1235").host == "device.example.org"
    for bad in ("7147", "host", "host:", "host:port", "::1:7147", "host:0", "host:70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_target(bad)


def test_parse_strategy() -> None:
    assert parse_strategy(["event"]) == ("event",)
    assert parse_strategy(["period", "0.5"]) == ("period", "0.5")
    assert parse_strategy(["event-rate 1 10"]) == ("event-rate", "1", "10")
    for bad, message in ((["sometimes"], "unknown strategy"),
                         (["period"], "takes 1 parameter, not 0"),
                         (["event", "cpu"], "before --strategy"),
                         (["period", "soon"], "not a number")):
        with pytest.raises(CliError, match=message):
            parse_strategy(bad)


def test_compile_patterns() -> None:
    assert compile_patterns([]) is None
    pattern = compile_patterns([r"^cpu\.", "uptime$"])
    assert pattern is not None
    assert [bool(pattern.search(n)) for n in ("cpu.temp", "device.uptime", "rx.cpu")] == \
        [True, True, False]
    with pytest.raises(CliError, match="invalid regular expression"):
        compile_patterns(["("])


def test_request_names_and_exit_codes() -> None:
    assert request_name("?help") == "help"
    assert request_name("sensor-value") == "sensor-value"
    with pytest.raises(CliError, match="invalid request name"):
        request_name("bad name")
    assert exit_code(Message.reply("x", "ok")) == 0
    assert exit_code(Message.reply("x", "fail", "no")) == 1
    assert exit_code(Message.reply("x", "busy")) == 1
    assert exit_code(Message.reply("x", "invalid", "no")) == 2
    assert exit_code(Message.reply("x")) == 1


def test_live_view_shows_the_rows_that_fit() -> None:
    from katcp_inspect import InspectingClientAsync
    from katcp_inspect.cli.live import SensorView

    client = InspectingClientAsync("127.0.0.1", 1)  # never started
    view = SensorView(client, "127.0.0.1:1", compile_patterns([r"^a\."]))
    assert view.wants("a.one") and not view.wants("b.one")
    for name in ("a.three", "a.one", "a.two"):
        sensor = Sensor(SensorType.INTEGER, name)
        view.sensors[name] = sensor
        sensor.attach(view)
    view.sensors["a.one"].set(1000.0, SensorStatus.NOMINAL, 7)
    assert view.has_reading("a.one") and not view.has_reading("a.two")
    text = render(view.render(max_rows=2))
    assert "127.0.0.1:1 · closed" in text
    assert "a.one" in text and "a.three" in text and "a.two" not in text  # in name order
    assert "2 of 3 sensors shown" in text and "1 reading ·" in text
    one = next(line for line in text.splitlines() if "a.one" in line).split()
    assert one[1:3] == ["nominal", "7"] and one[-1] == "1"
