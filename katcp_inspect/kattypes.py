"""KATCP sensor types and statuses, and the codecs between their wire form and Python values.

Decoding is the library's hot path (every ``#sensor-status`` goes through it), so
:func:`value_decoder` hands out one plain function per sensor, chosen once, and builtins where a
builtin already does the job. Everything here is pure: no I/O, no logging, no clock.
"""

from __future__ import annotations

import enum
import functools
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple


class SensorType(enum.IntEnum):
    """The eight KATCP sensor types (values as katcp-python's constants)."""

    INTEGER = 0
    FLOAT = 1
    BOOLEAN = 2
    LRU = 3
    DISCRETE = 4
    STRING = 5
    TIMESTAMP = 6
    ADDRESS = 7

    @property
    def wire_name(self) -> str:
        # One shared string per type: a cache holds one per sensor otherwise.
        return TYPE_NAMES[self]


class SensorStatus(enum.IntEnum):
    """The seven sensor statuses of KATCP v5 (values as katcp-python and aiokatcp)."""

    UNKNOWN = 0
    NOMINAL = 1
    WARN = 2
    ERROR = 3
    FAILURE = 4
    UNREACHABLE = 5
    INACTIVE = 6

    @property
    def wire_name(self) -> str:
        return _STATUS_NAMES[self]

    @property
    def valid_value(self) -> bool:
        """Whether the specification says a reading with this status carries a meaningful value."""
        return self in (SensorStatus.NOMINAL, SensorStatus.WARN, SensorStatus.ERROR)


#: Each type's name on the wire (one shared string per type).
TYPE_NAMES = {t: t.name.lower() for t in SensorType}
_STATUS_NAMES = {s: s.name.lower() for s in SensorStatus}
STATUS_FROM_WIRE: dict[bytes, SensorStatus] = {s.wire_name.encode(): s for s in SensorStatus}
STATUS_TO_WIRE: dict[SensorStatus, bytes] = {s: w for w, s in STATUS_FROM_WIRE.items()}

_TYPE_FROM_NAME = {t.wire_name: t for t in SensorType}

LRU_NOMINAL = 0
LRU_ERROR = 1


class Address(NamedTuple):
    """A KATCP address value.

    A tuple, so that code written for katcp-python, which used ``(host, port)``, can unpack it.
    """

    host: str
    port: int | None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


def type_from_name(name: str | bytes) -> tuple[SensorType, bool]:
    """Look up a ``#sensor-list`` type name, returning ``(type, known)``.

    An unknown name gives ``(SensorType.STRING, False)`` rather than an error: real devices send
    odd types, and keeping such a sensor as a string sensor (and warning) beats losing it, which
    is what katcp-python did (B16).
    """
    stype = _TYPE_FROM_NAME.get(_text(name))
    return (SensorType.STRING, False) if stype is None else (stype, True)


def _parse_int_param(text: str) -> int | float:
    # Devices write integer ranges as "0.0" (B16): keep the number, as an int where it is one.
    try:
        return int(text)
    except ValueError:
        number = float(text)
        return int(number) if number.is_integer() else number


def parse_params(stype: SensorType, params: Sequence[bytes | str]) -> list[Any]:
    """Turn ``#sensor-list`` parameters into Python values.

    Lenient on purpose (B16): integer ranges may be float-formatted, a discrete sensor may list
    no values, and types that take no parameters keep any extras as strings. Only a number that
    cannot be parsed at all raises :class:`ValueError`.
    """
    texts = [_text(p) for p in params]
    if stype == SensorType.INTEGER:
        return [_parse_int_param(t) for t in texts]
    if stype == SensorType.FLOAT:
        return [float(t) for t in texts]
    return texts


_DEFAULTS: dict[SensorType, Any] = {
    SensorType.BOOLEAN: False,
    SensorType.LRU: LRU_NOMINAL,
    SensorType.STRING: "",
    SensorType.TIMESTAMP: 0.0,
    SensorType.ADDRESS: Address("0.0.0.0", None),
}


def default_value(stype: SensorType, params: Sequence[Any] = ()) -> Any:
    """The value a sensor has before its first reading, as katcp-python chose it.

    ``params`` are parsed parameters (see :func:`parse_params`). A numeric sensor whose range
    excludes 0 starts at the bottom of its range instead.
    """
    if stype in (SensorType.INTEGER, SensorType.FLOAT):
        zero = 0 if stype == SensorType.INTEGER else 0.0
        low_high = params[:2]
        if (len(low_high) == 2 and all(isinstance(p, (int, float)) and math.isfinite(p)
                                       for p in low_high)
                and not low_high[0] <= zero <= low_high[1]):
            # A float-formatted integer range (B16) must still give an integer default.
            return int(low_high[0]) if stype == SensorType.INTEGER else float(low_high[0])
        return zero  # also for ranges that are not finite numbers: they are informational
    if stype == SensorType.DISCRETE:
        return params[0] if params else "unknown"
    return _DEFAULTS[stype]


ValueDecoder = Callable[[bytes], Any]


def _decode_integer(raw: bytes) -> int:
    # int() alone would also take b"1_000", b" 5" and b"+5", none of which C's %d writes.
    if raw.isdigit() or (raw[:1] == b"-" and raw[1:].isdigit()):
        return int(raw)
    raise ValueError(f"not a KATCP integer: {raw!r}")


_BOOLEANS = {b"1": True, b"0": False}
_LRUS = {b"nominal": LRU_NOMINAL, b"error": LRU_ERROR}


def _decode_boolean(raw: bytes) -> bool:
    try:
        return _BOOLEANS[raw]
    except KeyError:
        raise ValueError(f"not a KATCP boolean: {raw!r}") from None


def _decode_lru(raw: bytes) -> int:
    try:
        return _LRUS[raw]
    except KeyError:
        raise ValueError(f"not a KATCP lru value: {raw!r}") from None


def _decode_text(raw: bytes) -> str:
    # KATCP strings are bytes with no declared encoding; surrogateescape keeps them lossless.
    return raw.decode("utf-8", "surrogateescape")


def _decode_timestamp_ms(raw: bytes) -> float:
    # Dividing (rather than multiplying by 0.001) is correctly rounded, so whole milliseconds
    # survive a round trip through seconds exactly.
    return float(raw) / 1000


_ADDRESS_RE = re.compile(rb"(?:\[([^\]]+)\]|([^:\[\]]+))(?::([0-9]+))?\Z")


def _decode_address(raw: bytes) -> Address:
    match = _ADDRESS_RE.match(raw)
    if match is None:
        raise ValueError(f"not a KATCP address: {raw!r}")
    bracketed, plain, port = match.groups()
    host = _decode_text(bracketed if bracketed is not None else plain)
    if port is None:
        return Address(host, None)
    number = int(port)
    if number > 65535:
        raise ValueError(f"port out of range in KATCP address: {raw!r}")
    return Address(host, number)


#: Each type's value decoder for KATCP v5 (see :func:`value_decoder`).
V5_DECODERS: dict[SensorType, ValueDecoder] = {
    SensorType.INTEGER: _decode_integer,
    SensorType.FLOAT: float,
    SensorType.BOOLEAN: _decode_boolean,
    SensorType.LRU: _decode_lru,
    SensorType.DISCRETE: _decode_text,
    SensorType.STRING: _decode_text,
    SensorType.TIMESTAMP: float,
    SensorType.ADDRESS: _decode_address,
}


def value_decoder(stype: SensorType, params: Sequence[Any] = (), *, major: int = 5) -> ValueDecoder:
    """Return the function that turns one sensor's wire values into Python values.

    Choosing the function once per sensor keeps the per-update cost to a single call with no
    dispatch on the type. The functions raise :class:`ValueError` for a value that does not
    parse. ``params`` do not change the codec: numeric ranges are informational only, and
    discrete membership is a separate question (:func:`discrete_in_set`) so that a device that
    reports an undeclared value still has its reading recorded. KATCP v4 (``major < 5``) sends
    timestamp values in milliseconds.
    """
    if stype == SensorType.TIMESTAMP and major < 5:
        return _decode_timestamp_ms
    return V5_DECODERS[stype]


def decode_value(
    stype: SensorType, raw: bytes, params: Sequence[Any] = (), *, major: int = 5
) -> Any:
    """Decode one wire value; see :func:`value_decoder`."""
    return value_decoder(stype, params, major=major)(raw)


def decode_timestamp(raw: bytes, *, major: int = 5) -> float:
    """Decode a timestamp to seconds since the epoch (KATCP v4 sends milliseconds)."""
    return float(raw) if major >= 5 else _decode_timestamp_ms(raw)


def encode_timestamp(seconds: float, *, major: int = 5) -> bytes:
    """Encode seconds since the epoch: ``repr`` seconds for v5, whole milliseconds for v4."""
    if major >= 5:
        return repr(float(seconds)).encode()
    millis = float(seconds) * 1000
    if not math.isfinite(millis):
        raise ValueError(f"KATCP v4 timestamps are whole milliseconds, not {seconds!r}")
    return b"%d" % round(millis)


def _to_address(value: Any) -> Address:
    """Check an address value, raising ValueError if its wire form would not decode to it."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise ValueError(f"an address is a (host, port) pair, not {value!r}")
    host, port = value
    if not isinstance(host, str) or not host or "[" in host or "]" in host:
        raise ValueError(f"bad host in address {value!r}")
    if port is not None and (
        not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535
    ):
        raise ValueError(f"bad port in address {value!r}")
    return Address(host, port)


def _table_encoder(table: dict[Any, bytes], what: str) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        try:
            return table[value]
        except (KeyError, TypeError):
            raise ValueError(f"not {what}: {value!r}") from None

    return encode


def _encode_text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"expected str or bytes, not {type(value).__name__}")


_ENCODERS: dict[SensorType, Callable[[Any], bytes]] = {
    SensorType.INTEGER: lambda v: b"%d" % operator.index(v),
    SensorType.FLOAT: lambda v: repr(float(v)).encode(),
    SensorType.BOOLEAN: _table_encoder({v: k for k, v in _BOOLEANS.items()}, "a boolean"),
    SensorType.LRU: _table_encoder({v: k for k, v in _LRUS.items()}, "an lru value"),
    SensorType.DISCRETE: _encode_text,
    SensorType.STRING: _encode_text,
    SensorType.ADDRESS: lambda v: str(_to_address(v)).encode("utf-8", "surrogateescape"),
}


def value_encoder(stype: SensorType, *, major: int = 5) -> Callable[[Any], bytes]:
    """The function that encodes values of type ``stype`` (see :func:`encode_value`): for
    callers that encode many values of one sensor."""
    if stype == SensorType.TIMESTAMP:
        return functools.partial(encode_timestamp, major=major)
    return _ENCODERS[stype]


def encode_value(stype: SensorType, value: Any, *, major: int = 5) -> bytes:
    """Encode a Python value as the wire form of a sensor of type ``stype``.

    Raises :class:`ValueError` or :class:`TypeError` for a value that does not fit the type,
    rather than sending something the device would misread (an integer sensor will not
    silently truncate a float, for instance).
    """
    return value_encoder(stype, major=major)(value)


def discrete_in_set(value: str, params: Sequence[Any]) -> bool:
    """Whether a discrete value is allowed; a sensor that declared no values allows any."""
    return not params or value in params


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_address(value: Any) -> bool:
    try:
        _to_address(value)
    except ValueError:
        return False
    return True


_CHECKS: dict[SensorType, Callable[[Any, Sequence[Any]], bool]] = {
    SensorType.INTEGER: lambda v, _: _is_int(v),
    SensorType.FLOAT: lambda v, _: _is_real(v),
    SensorType.BOOLEAN: lambda v, _: isinstance(v, bool),
    SensorType.LRU: lambda v, _: _is_int(v) and v in (LRU_NOMINAL, LRU_ERROR),
    SensorType.DISCRETE: lambda v, p: isinstance(v, str) and discrete_in_set(v, p),
    SensorType.STRING: lambda v, _: isinstance(v, (str, bytes)),
    SensorType.TIMESTAMP: lambda v, _: _is_real(v),
    SensorType.ADDRESS: lambda v, _: _is_address(v),
}


def check_value(stype: SensorType, value: Any, params: Sequence[Any] = ()) -> None:
    """Raise :class:`ValueError` unless ``value`` is a valid Python value for the type.

    This guards values set locally (``Sensor.set_value``), so it is strict about Python types:
    ``True`` is not an integer reading, even though Python says it is an ``int``.
    """
    stype = SensorType(stype)
    if not _CHECKS[stype](value, params):
        raise ValueError(f"{value!r} is not a valid {stype.wire_name} value")
