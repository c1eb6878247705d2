"""A scripted device with an odd but parsable model, and the hostile lines it can send.

Shared by test 5 (hostile input, the hypothesis fuzz) and ``scripts/fuzz_read_path.py``.
"""

from __future__ import annotations

import attrs

from ...message import Message
from .scripted import Responder, help_list, sensor_list

#: The model: every entry parses except ``short`` (too few arguments) and one bare ``#help``.
SENSOR_ENTRIES = (
    b"a.float A\\_float. degC float -10 10",
    b"an.int An\\_int. count integer 0 5",
    b"a.string A\\_string. \\@ string",
    b"a.bool A\\_bool. \\@ boolean",
    b"a.discrete A\\_discrete. \\@ discrete one two",
    b"weird.type Weird\\_type. u mystery-type 1 2",
    b"utf8.desc \xff\xfe\\_d\xe9scription \xb5s string",
    b"bad.params Bad\\_params. u integer x y",
    b"short only-two",
)
HELP_ENTRIES = (b"watchdog Check\\_liveness.", b"help List\\_requests.",
                b"sensor-list List\\_sensors.", b"odd \xff\xfe\\_help")
#: Sensors the client must end up with (``short`` is dropped as malformed).
EXPECTED_SENSORS = {"a.float", "an.int", "a.string", "a.bool", "a.discrete", "weird.type",
                    "utf8.desc", "bad.params"}
EXPECTED_REQUESTS = {"watchdog", "help", "sensor-list", "odd"}


def responses() -> dict[str, Responder]:
    helps = help_list(*HELP_ENTRIES)

    def help_with_a_bad_inform(request: Message) -> list[bytes]:
        lines = list(helps(request))
        return lines if request.arguments else [b"#help", *lines]

    return {"help": help_with_a_bad_inform, "sensor-list": sensor_list(*SENSOR_ENTRIES)}


@attrs.frozen
class Hostile:
    """One kind of hostile line: the counter it must move (``None``: none), by how much per
    line, and a piece of the warning that must be logged once for it (``None``: no warning)."""

    kind: str
    line: bytes
    counter: str | None
    delta: int
    warning: str | None


#: Counters are ``client.<name>`` for the low-level client's stats, ``ic.<name>`` for the
#: inspecting client's.
HOSTILE = (
    Hostile("invalid escape", b"#log a\\qb", "client.bad_lines", 1, "malformed line"),
    Hostile("non-numeric mid", b"!watchdog[abc] ok", "client.bad_lines", 1, "malformed line"),
    Hostile("zero mid", b"!watchdog[0] ok", "client.bad_lines", 1, "malformed line"),
    Hostile("huge mid", b"!watchdog[99999999999999999999] ok", "client.bad_lines", 1,
            "malformed line"),
    Hostile("NUL byte", b"#log \x00", "client.bad_lines", 1, "malformed line"),
    Hostile("bare type character", b"#", "client.bad_lines", 1, "malformed line"),
    Hostile("name starting with a digit", b"#1x", "client.bad_lines", 1, "malformed line"),
    Hostile("reply to nothing", b"!frobnicate ok", "client.unmatched_replies", 1,
            "matches no pending request"),
    Hostile("reply with an unknown mid", b"!watchdog[4242] ok", "client.unmatched_replies", 1,
            "matches no pending request"),
    Hostile("request from the device", b"?evil 1 2", "client.unexpected_requests", 1,
            "sent us a request"),
    Hostile("#sensor-status with a wrong count", b"#sensor-status 1.0 2 a.float nominal 1",
            "ic.bad_updates", 1, "malformed #sensor-status"),
    Hostile("#sensor-status without arguments", b"#sensor-status", "ic.bad_updates", 1,
            "malformed #sensor-status"),
    Hostile("#sensor-status with a bad timestamp", b"#sensor-status soon 1 a.float nominal 1",
            "ic.bad_updates", 1, "malformed #sensor-status"),
    Hostile("#sensor-status with a negative count", b"#sensor-status 1.0 -1", "ic.bad_updates",
            1, "malformed #sensor-status"),
    Hostile("unknown status", b"#sensor-status 1.0 1 a.float bogus 1.5", "ic.bad_updates", 1,
            "bad update for sensor a.float"),
    Hostile("bad integer value", b"#sensor-status 1.0 1 an.int nominal 1.5", "ic.bad_updates",
            1, "bad update for sensor an.int"),
    Hostile("bad boolean value", b"#sensor-status 1.0 1 a.bool nominal maybe",
            "ic.bad_updates", 1, "bad update for sensor a.bool"),
    Hostile("non-UTF-8 sensor name", b"#sensor-status 1.0 1 \xff\xfe nominal 1",
            "ic.unknown_sensor_updates", 1, "update for unknown sensor"),
    Hostile("unknown sensor", b"#sensor-status 1.0 1 no.such nominal 1",
            "ic.unknown_sensor_updates", 1, "update for unknown sensor"),  # one kind
    Hostile("#version-connect with one argument", b"#version-connect katcp-protocol", None, 0,
            None),
    Hostile("inform nobody asked for", b"#sensor-list ghost Ghost. u integer", None, 0, None),
    Hostile("empty lines and stray carriage returns", b"\r\n\r\r\n", None, 0, None),
)

#: Greetings while connected: ignored, warned about once (both are one kind for the log).
VERSION_HOSTILE = (
    Hostile("unparsable protocol version", b"#version-connect katcp-protocol 9.x-??", None, 0,
            "ignored: already connected"),
    Hostile("other protocol version", b"#version-connect katcp-protocol 5.0-MI", None, 0,
            "announced KATCP 5.0"),
)

#: Accepted as they are (non-UTF-8 is legal in KATCP arguments): the value is kept.
NON_UTF8_VALUE = b"#sensor-status 1.0 1 a.string nominal \xff\xfe"
