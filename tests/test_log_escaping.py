"""Device text is data: a raw device whose names, values, reply texts and ``#disconnect``
reason carry newlines, terminal escapes and bidi controls cannot forge a log line or drive a
terminal through the library's log messages and exception texts (issue 11, item 14)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from katcp_inspect import ConnectionLostError, Message, RequestFailedError, RequestInvalidError
from katcp_inspect.sensor import Sensor

from .hostile import (
    BIDI_SENSOR,
    HOSTILE,
    RAW_CONTROLS,
    SENSOR,
    hostile_device,
    sensor_status,
    unprintable,
)
from .support import Responder, listing, wait_until
from .test_client import connected_client
from .test_inspecting_client import make_client


def wire_text(wire: bytes) -> str:
    """What one argument in wire form says, as the client decodes names."""
    return Message.parse(b"#x " + wire).arguments[0].decode("utf-8", "surrogateescape")


def failing_once(responder: Responder, reply: bytes) -> Responder:
    calls: list[Message] = []

    def respond(request: Message) -> list[bytes]:
        calls.append(request)
        return [reply] if len(calls) == 1 else responder(request)

    return respond


class RaisingObserver:
    def update(self, sensor: Any, reading: Any) -> None:
        raise RuntimeError("observer failed")


async def test_hostile_device_text_never_reaches_a_log_message_raw(
        io_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with hostile_device() as device:
        responses = device.responses
        responses["help"] = failing_once(responses["help"], b"!help fail no" + HOSTILE)
        responses["sensor-list"] = listing(
            "sensor-list", SENSOR + b" d u string", BIDI_SENSOR + b" d u integer 0 9",
            b"type" + HOSTILE + b" d u weird" + HOSTILE,
            b"params" + HOSTILE + b" d u integer x" + HOSTILE + b" 9")
        responses["sensor-sampling"] = lambda r: [b"!sensor-sampling fail no" + HOSTILE]
        client = make_client(device.port, auto_sampling="event")
        client.initial_resync_timeout = 0.01
        await client.connect()
        await client.until_synced(timeout=5)
        for name in ("type", "params"):
            await client.future_get_sensor(wire_text(name.encode() + HOSTILE))
        evil = await client.future_get_sensor(wire_text(SENSOR))
        evil.attach(RaisingObserver())
        peer = device.all[-1]
        peer.send(sensor_status(SENSOR, b"nominal", b"x"))
        peer.send(sensor_status(BIDI_SENSOR, b"nominal", b"not-a-number" + HOSTILE))
        peer.send(sensor_status(b"unknown" + HOSTILE, b"nominal", b"1"))
        peer.send(b"#disconnect bye" + HOSTILE + b"\n")
        katcp = client.katcp_client
        await wait_until(lambda: isinstance(katcp.last_error, ConnectionLostError)
                         and "disconnected us" in str(katcp.last_error))
        error = str(katcp.last_error)
        await client.stop()
    assert not unprintable(error), error
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("katcp_inspect")]
    for expected in ("is disconnecting us", "disconnected us", "sync failed",
                     "update for unknown sensor", "bad update for sensor", "refused strategy",
                     "has unknown type", "has unparsable params", "Observer"):
        assert any(expected in m for m in messages), f"no log message with {expected!r}"
    raw = [m for m in messages if unprintable(m)]
    assert not raw, "device text logged raw:\n" + "\n".join(map(repr, raw))


async def test_request_errors_escape_the_device_text_and_keep_its_words(io_loop: Any) -> None:
    async with hostile_device() as device:
        device.responses["refuse"] = lambda r: [b"!refuse fail no" + HOSTILE]
        device.responses["reject"] = lambda r: [b"!reject invalid no" + HOSTILE]
        device.responses["odd"] = lambda r: [b"!odd \x07code" + HOSTILE]
        client = await connected_client(device.port)
        errors = []
        for name, kind in (("refuse", RequestFailedError), ("reject", RequestInvalidError),
                           ("odd", RequestFailedError)):
            with pytest.raises(kind) as info:
                await client.request(name)
            errors.append(info.value)
        await client.close()
    for error in errors:
        assert not unprintable(str(error)), str(error)
    assert str(errors[0]).startswith("?refuse fail: no\\nCRITICAL root: FORGED LOG LINE\\x1b")
    reason = errors[0].reason  # the device's own words stay available
    assert reason.startswith("no\nCRITICAL") and all(c in reason for c in RAW_CONTROLS)


def test_message_str_and_repr_are_printable_wire_forms() -> None:
    message = Message.parse(b"#log warn " + HOSTILE + b" \\\\ \xff")
    for text in (str(message), repr(message)):
        assert not unprintable(text), text
    assert str(message) == ("#log warn \\nCRITICAL\\_root:\\_FORGED\\_LOG\\_LINE\\e]0;pwned\\x07"
                            "\\r\\u202e\\x9b\\u2028 \\\\ \\xff")  # KATCP's escapes kept


def test_sensor_repr_escapes_its_name() -> None:
    sensor = Sensor(str, "evil\n\x1b]0;x\x07\u202e", "")
    assert not unprintable(repr(sensor)), repr(sensor)
