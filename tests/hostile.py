"""A raw scripted device whose text is hostile: names, descriptions, units, values, version
strings, reply texts and ``#disconnect`` reasons that carry newlines, terminal escapes, BEL,
C1 controls, bidi overrides and line separators; and the checks that none of it comes out raw.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from katcp_inspect import Message

from .support import GREETING_V5, Responder, ScriptedDevice, help_list, listing

#: In KATCP's wire form: a forged log line after an escaped newline, a terminal title change
#: (ESC ] 0 ; ... BEL), a carriage return, a bidi override, a C1 CSI and a line separator
#: (newline, CR and ESC must be escaped on the wire; the rest travel raw).
HOSTILE = (b"\\nCRITICAL\\_root:\\_FORGED\\_LOG\\_LINE\\e]0;pwned\x07\\r\xe2\x80\xae"
           b"\xc2\x9b\xe2\x80\xa8")
#: What a device's hostile text must never show to a reader: each is acted on by a terminal
#: or splits a line.
RAW_CONTROLS = ("\x1b", "\x07", "\r", "\u202e", "\x9b", "\u2028")
FORGED = "CRITICAL root: FORGED LOG LINE"

SENSOR = b"evil" + HOSTILE
BIDI_SENSOR = b"bidi\xe2\x80\xaer.x"
TIMESTAMP = b"1700000000.5"
GREETING = GREETING_V5 + b"#version-connect katcp-device dev" + HOSTILE + b" build" + HOSTILE \
    + b"\n"


def unprintable(text: str, allowed: str = "") -> list[str]:
    """The characters of ``text`` that are not printable (those in ``allowed`` excepted)."""
    return [char for char in text if not char.isprintable() and char not in allowed]


def forged_lines(text: str) -> list[str]:
    """Lines that start with what the device tried to forge (a split on any line boundary
    Python knows, so a separator that only a terminal honours counts too)."""
    return [line for line in text.splitlines() if line.lstrip().startswith(FORGED)]


def sensor_status(name: bytes, status: bytes, value: bytes) -> bytes:
    return b"#sensor-status " + TIMESTAMP + b" 1 " + name + b" " + status + b" " + value + b"\n"


def sensor_values(request: Message) -> list[bytes]:
    """``?sensor-value``: hostile readings of both sensors."""
    return [b"#sensor-value " + TIMESTAMP + b" 1 " + SENSOR + b" nominal value" + HOSTILE,
            b"#sensor-value " + TIMESTAMP + b" 1 " + BIDI_SENSOR + b" warn 3",
            b"!sensor-value ok 2"]


def hostile_responses() -> dict[str, Responder]:
    """A model whose every string is hostile (sensors, requests, version), and readings."""
    return {
        "help": help_list(b"req" + HOSTILE + b" help" + HOSTILE, b"help Lists\\_requests."),
        "sensor-list": listing(
            "sensor-list",
            SENSOR + b" desc" + HOSTILE + b" unit" + HOSTILE + b" string",
            BIDI_SENSOR + b" d u integer 0 9"),
        "sensor-value": sensor_values,
    }


def disconnecting(device: ScriptedDevice, *informs: bytes) -> Responder:
    """A responder that sends reply informs with the arguments ``informs`` and then, instead
    of a reply, ``#disconnect`` with a hostile reason."""

    def respond(request: Message) -> list[bytes]:
        peer = device.all[-1]
        head = b"#" + request.name.encode() + (b"" if request.mid is None
                                               else b"[%d]" % request.mid)
        for inform in informs:
            peer.send(head + b" " + inform + b"\n")
        peer.send(b"#disconnect bye" + HOSTILE + b"\n")
        return []

    return respond


@contextlib.asynccontextmanager
async def hostile_device() -> AsyncIterator[ScriptedDevice]:
    """A raw scripted device on 127.0.0.1 with :func:`hostile_responses` and a hostile
    ``katcp-device`` version."""
    device = ScriptedDevice(GREETING, hostile_responses())
    device.listen_now()
    try:
        yield device
    finally:
        device.shutdown()
