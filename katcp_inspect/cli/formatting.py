"""Pure formatting for the command: values, ages, statuses and states as text.

Nothing here does I/O or imports rich, so ``inspect --json`` and ``request`` work without it
and every function can be tested with plain data.
"""

from __future__ import annotations

import datetime
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ..client import ConnectionState
from ..errors import NotConnectedError
from ..inspecting_client import InspectingClientStateType
from ..kattypes import LRU_ERROR, LRU_NOMINAL, Address, SensorStatus, SensorType
from ..message import Message
from ..sensor import Reading
from ..text import printable

#: rich style names by status: nominal green, warn yellow, error/failure/unreachable red,
#: inactive dim, unknown the terminal's default.
STATUS_STYLES: Mapping[SensorStatus, str] = {
    SensorStatus.UNKNOWN: "",
    SensorStatus.NOMINAL: "green",
    SensorStatus.WARN: "yellow",
    SensorStatus.ERROR: "red",
    SensorStatus.FAILURE: "bold red",
    SensorStatus.UNREACHABLE: "red",
    SensorStatus.INACTIVE: "dim",
}

_LRU_NAMES = {LRU_NOMINAL: "nominal", LRU_ERROR: "error"}


def escape_text(text: str | bytes | bytearray) -> str:
    """Device text safe to print (see :func:`~katcp_inspect.text.printable`): bytes that are not
    UTF-8 become ``\\xNN``; control, format (bidi) and separator characters ``\\n``, ``\\t``,
    ``\\x1b``, ``\\u202e``...; and a backslash ``\\\\`` (so the escapes are not ambiguous)."""
    return printable(text)


def sanitize_line(text: str) -> str:
    """Text that escapes its own backslashes (KATCP's wire form, a message built from escaped
    parts) with anything a terminal would still act on escaped; backslashes are left alone."""
    return printable(text, escape_backslash=False)


def format_number(value: float) -> str:
    """A float short enough for a table column, without losing what matters."""
    if not math.isfinite(value):
        return str(value)
    text = repr(value)
    return text if len(text) <= 12 else f"{value:.9g}"


def format_timestamp(seconds: float) -> str:
    """Seconds since the epoch as UTC, to the millisecond: ``2024-05-01 12:00:00.123Z``."""
    try:
        moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return format_number(seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def format_value(value: Any, sensor_type: SensorType | None = None) -> str:
    """A sensor value for display.

    Booleans are ``True``/``False``, lru values ``nominal``/``error``, timestamps UTC dates,
    addresses ``host:port`` (IPv6 hosts in brackets), floats compact; strings (and bytes) are
    escaped with :func:`escape_text`. ``None`` (no reading) is ``-``.
    """
    if value is None:
        return "-"
    if sensor_type == SensorType.LRU and value in _LRU_NAMES:
        return _LRU_NAMES[value]
    if sensor_type == SensorType.TIMESTAMP and isinstance(value, (int, float)) \
            and not isinstance(value, bool):
        return format_timestamp(float(value))
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    if isinstance(value, Address):
        return escape_text(str(value))
    if isinstance(value, (str, bytes, bytearray)):
        return escape_text(value)
    return escape_text(str(value))


def format_params(params: Sequence[Any]) -> str:
    """``#sensor-list`` parameters (ranges, discrete values) as one comma-separated cell."""
    return ", ".join(format_value(p) for p in params)


def format_age(seconds: float | None) -> str:
    """How long ago a reading was taken: ``0.4s``, ``12s``, ``5m03s``, ``2h05m``, ``3d04h``.
    ``None`` (never read) is ``-``; a reading from the future (clocks differ) gets a ``-``."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds < 0:
        return "-" + format_age(-seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def format_hint(seconds: float | None) -> str:
    """A request's timeout hint: ``2.5s``, or empty when the device gave none."""
    return "" if seconds is None else f"{format_number(float(seconds))}s"


def first_line(text: str) -> str:
    """The summary of a ``?help`` description: its first non-empty line."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def status_name(status: SensorStatus) -> str:
    return SensorStatus(status).wire_name


def status_style(status: SensorStatus) -> str:
    """The rich style for a status (see :data:`STATUS_STYLES`)."""
    return STATUS_STYLES.get(SensorStatus(status), "")


def describe_error(error: BaseException | None) -> str:
    """An exception as a short phrase safe to print: ``Connection refused`` rather than
    ``[Errno 111] Connection refused``."""
    if error is None:
        return "no error"
    if isinstance(error, OSError) and error.strerror:
        return sanitize_line(error.strerror)
    # The library escapes the device text it puts in its errors; this is for the others.
    return sanitize_line(str(error)) or type(error).__name__


def describe_state(state: InspectingClientStateType, connection: ConnectionState,
                   error: BaseException | None = None) -> str:
    """What an inspecting client is doing, in a few words, from its sync state and the state
    of its connection."""
    if state.synced:
        return "synced"
    if state.data_synced:
        return "model updated, setting sampling strategies"
    if state.connected:
        return "inspecting"
    if connection is ConnectionState.CONNECTING:
        return "connecting"
    if connection is ConnectionState.NEGOTIATING:
        return "connected, negotiating"
    if connection is ConnectionState.CONNECTED:
        return "connected"
    if connection is ConnectionState.DISCONNECTING:
        return "disconnecting"
    if connection is ConnectionState.SLEEPING:
        if error is None or isinstance(error, NotConnectedError):
            return "disconnected; reconnecting"
        return f"disconnected ({describe_error(error)}); reconnecting"
    return "closed"


def state_style(state: InspectingClientStateType) -> str:
    """Green when synced, yellow on the way, red when not connected."""
    if state.synced:
        return "green"
    return "yellow" if state.connected else "red"


def describe_changes(model_changes: Mapping[str, Any] | None) -> str:
    """Model changes (``{"sensors": {"added": ..., "removed": ...}, ...}``) as
    ``+40 sensors, +13 requests, 1 request modified``; empty when nothing changed."""
    if not model_changes:
        return ""
    parts = []
    for kind in ("requests", "sensors"):
        change = model_changes.get(kind)
        if not change:
            continue
        added, removed = set(change["added"]), set(change["removed"])
        modified = added & removed
        singular = kind[:-1]
        for count, sign, verb in ((len(added - modified), "+", ""),
                                  (len(removed - modified), "-", ""),
                                  (len(modified), "", " modified")):
            if count:
                noun = singular if count == 1 else kind
                parts.append(f"{sign}{count} {noun}{verb}")
    return ", ".join(parts)


def json_value(value: Any, sensor_type: SensorType | None = None) -> Any:
    """A sensor value as JSON: numbers, booleans and strings as themselves (bytes that are not
    UTF-8 as ``\\xNN``), lru values ``"nominal"``/``"error"``, addresses ``"host:port"``,
    timestamps seconds since the epoch, and non-finite floats as ``"nan"``, ``"inf"``..."""
    if sensor_type == SensorType.LRU and value in _LRU_NAMES:
        return _LRU_NAMES[value]
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (bytes, bytearray)):
        return json_text(bytes(value).decode("utf-8", "surrogateescape"))
    return json_text(str(value))


def json_text(text: str) -> str:
    """A name or description for JSON: exact, except bytes that are not UTF-8 (``\\xNN``)."""
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def json_document(data: Any) -> str:
    """``data`` as indented JSON, with UTF-8 as it is but every character a terminal would act
    on (``json`` leaves C1 controls, bidi controls and line separators raw) as ``\\uXXXX``."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    # Outside strings, json writes only printable ASCII and the newlines of the indentation.
    return "\n".join(line if line.isprintable() else _json_escape(line)
                     for line in text.split("\n"))


def json_line(data: Any) -> str:
    """``data`` as compact JSON on one line (``--json`` of ``watch`` and ``request``), escaped
    as :func:`json_document` does."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text if text.isprintable() else _json_escape(text)


def _json_escape(line: str) -> str:
    return "".join(char if char.isprintable() else _json_code(ord(char)) for char in line)


def _json_code(code: int) -> str:
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON spells the others as a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


@attrs.frozen
class SensorRow:
    """What a table or a JSON document shows of one sensor: a snapshot, unaffected by later
    readings. ``reading`` is ``None`` when the sensor has not been read; ``updates`` counts
    the readings a live view has seen (``None`` when not counted)."""

    name: str
    sensor_type: SensorType
    units: str = ""
    params: tuple[Any, ...] = ()
    description: str = ""
    reading: Reading | None = None
    updates: int | None = None

    @classmethod
    def of(cls, sensor: Any, *, read: bool = True, updates: int | None = None) -> SensorRow:
        """A snapshot of a :class:`~katcp_inspect.Sensor` (or any object with its attributes)."""
        return cls(sensor.name, SensorType(sensor.sensor_type), sensor.units or "",
                   tuple(sensor.params), sensor.description or "",
                   sensor.read() if read else None, updates)

    @property
    def type_name(self) -> str:
        return self.sensor_type.wire_name


def sensor_json(row: SensorRow, now: float) -> dict[str, Any]:
    """A sensor for ``inspect --json``; status, value, timestamp and age are ``null`` when it
    has not been read."""
    reading = row.reading
    return {
        "name": json_text(row.name),
        "type": row.type_name,
        "description": json_text(row.description),
        "units": json_text(row.units),
        "params": [json_value(p) for p in row.params],
        "status": None if reading is None else status_name(reading.status),
        "value": None if reading is None else json_value(reading.value, row.sensor_type),
        "timestamp": None if reading is None else reading.timestamp,
        "age": None if reading is None else round(now - reading.timestamp, 3),
    }


def request_json(request: Any) -> dict[str, Any]:
    """A request (``name``, ``description``, ``timeout_hint``) for ``inspect --json``."""
    return {"name": json_text(request.name), "description": json_text(request.description),
            "timeout_hint": request.timeout_hint}


def message_json(message: Message) -> dict[str, Any]:
    """An inform or a reply for ``request --json``: its type, name and arguments (text;
    bytes that are not UTF-8 as ``\\xNN``)."""
    kind = "reply" if message.mtype == Message.REPLY else "inform"
    return {"type": kind, "name": json_text(message.name),
            "arguments": [json_value(bytes(a)) for a in message.arguments]}


def format_message(message: Message) -> str:
    """A message as it goes on the wire (KATCP escapes: ``\\_`` for a space, ``\\n``...), without
    its message id, safe for a terminal (see :func:`sanitize_line`)."""
    return sanitize_line(str(Message(message.mtype, message.name, message.arguments)))
