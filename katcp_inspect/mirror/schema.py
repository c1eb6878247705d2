"""The key schema (version 1) and the encodings of what the mirror stores in Redis.

Pure data: no Redis client here. Names are data: a device name enters a key only escaped
(:func:`escape`, reversible by :func:`unescape`); sensor and request names are hash fields and
stream payload, binary-safe as they are. See docs/redis.md for the schema as a reader sees it.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from ..kattypes import STATUS_FROM_WIRE, STATUS_TO_WIRE, SensorType, encode_value
from ..sensor import Reading

#: The schema version: part of every key, so that a new layout can live beside an old one.
VERSION = "v1"
DEFAULT_PREFIX = "katcp:"

#: Bytes of a device name kept as they are in keys; every other byte is ``%XX``.
_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ESCAPED = re.compile(rb"%([0-9A-F]{2})")


def raw(name: str) -> bytes:
    """A name as Redis stores it: UTF-8, with undecodable bytes (surrogate escapes, as the
    library decodes device text) restored as they came."""
    return name.encode("utf-8", "surrogateescape")


def text(data: bytes) -> str:
    """The inverse of :func:`raw`."""
    return data.decode("utf-8", "surrogateescape")


def escape(name: str) -> str:
    """A device name as it appears in keys: bytes outside ``[A-Za-z0-9._-]`` become ``%XX``
    (upper-case hex), so that no name can contain the separator ``:``, a glob character,
    a brace (a cluster hash tag), a space or a newline, and no two names share a key."""
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw(name))


def unescape(escaped: str) -> str:
    """The device name of an :func:`escape`\\ d key part."""
    return text(_ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), escaped.encode("ascii")))


class Keys:
    """The keys of one prefix (default ``katcp:``), version 1."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self.base = f"{prefix}{VERSION}:"
        #: Set of the names of the devices mirrored.
        self.devices = self.base + "devices"
        #: Sorted set of live workers, scored by when their heartbeat expires (ms).
        self.workers = self.base + "workers"

    def device(self, name: str, part: str) -> str:
        """``{prefix}v1:dev:{escaped name}:{part}``: ``lease``, ``state``, ``sensors``,
        ``requests``, ``readings`` or ``stream``."""
        return f"{self.base}dev:{escape(name)}:{part}"

    def name_of(self, key: str) -> str | None:
        """The device name a device key belongs to (None for other keys)."""
        head = self.base + "dev:"
        if not key.startswith(head):
            return None
        return unescape(key[len(head):].split(":", 1)[0])


# ---------------------------------------------------------------------- readings

def encode_reading(generation: int, stype: SensorType, reading: Reading) -> bytes:
    """``generation timestamp status value``: the value in its KATCP wire form (unescaped, so
    it is the rest of the string, spaces and all). Raises ``ValueError`` or ``KeyError`` for a
    value that does not encode as ``stype``."""
    timestamp, status, value = reading
    return b"%d %r %s %s" % (generation, float(timestamp), STATUS_TO_WIRE[status],
                             encode_value(stype, value))


class Decoded(NamedTuple):
    generation: int
    reading: Reading


def decode_reading(data: bytes, decode: Callable[[bytes], Any]) -> Decoded:
    """The inverse of :func:`encode_reading`, the value decoded by ``decode`` (the sensor
    type's :func:`~katcp_inspect.kattypes.value_decoder`); ``ValueError`` or ``KeyError`` if
    malformed."""
    generation, timestamp, status, value = data.split(b" ", 3)
    stamp = float(timestamp)
    if not math.isfinite(stamp):
        raise ValueError(f"timestamp {timestamp!r}")
    return Decoded(int(generation),
                   Reading(stamp, STATUS_FROM_WIRE[status], decode(value)))


#: A record's header: the lengths of the name and of the encoded reading.
RECORD = struct.Struct("<II")


def pack_records(records: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Stream payload: readings in order, each name and encoded reading length-prefixed (a
    sensor may appear more than once; names may hold any byte)."""
    parts: list[bytes] = []
    pack = RECORD.pack
    for name, encoded in records:
        parts += (pack(len(name), len(encoded)), name, encoded)
    return b"".join(parts)


def unpack_records(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    """The records of :func:`pack_records`; ``ValueError`` if the blob is cut short."""
    offset, end = 0, len(blob)
    size = RECORD.size
    while offset < end:
        if offset + size > end:
            raise ValueError("truncated record header")
        name_len, enc_len = RECORD.unpack_from(blob, offset)
        offset += size
        if offset + name_len + enc_len > end:
            raise ValueError("truncated record")
        yield blob[offset:offset + name_len], blob[offset + name_len:offset + name_len + enc_len]
        offset += name_len + enc_len


# ---------------------------------------------------------------------- the model

def _jsonable(param: Any) -> Any:
    return param if isinstance(param, (int, float, str)) else str(param)


def encode_sensor(stype: SensorType, units: str, description: str,
                  params: Sequence[Any]) -> bytes:
    """A sensor's model entry: JSON ``[type name, units, description, [params...]]``."""
    return json.dumps([stype.wire_name, units, description,
                       [_jsonable(p) for p in params]]).encode()


class SensorModel(NamedTuple):
    """A sensor of a mirrored model."""

    name: str
    type: SensorType
    units: str
    description: str
    params: tuple[Any, ...]


_TYPES = {t.wire_name: t for t in SensorType}


def decode_sensor(name: str, data: bytes) -> SensorModel:
    """The inverse of :func:`encode_sensor`; ``ValueError`` (or ``KeyError``) if malformed."""
    type_name, units, description, params = json.loads(data)
    return SensorModel(name, _TYPES[type_name], str(units), str(description), tuple(params))


def encode_request(description: str, timeout_hint: float | None) -> bytes:
    """A request's model entry: JSON ``[description, timeout hint or null]``."""
    return json.dumps([description, timeout_hint]).encode()


class RequestModel(NamedTuple):
    """A request of a mirrored model."""

    name: str
    description: str
    timeout_hint: float | None


def decode_request(name: str, data: bytes) -> RequestModel:
    description, hint = json.loads(data)
    return RequestModel(name, str(description), None if hint is None else float(hint))


__all__ = [
    "DEFAULT_PREFIX",
    "VERSION",
    "Keys",
    "RequestModel",
    "SensorModel",
    "decode_reading",
    "decode_request",
    "decode_sensor",
    "encode_reading",
    "encode_request",
    "encode_sensor",
    "escape",
    "pack_records",
    "raw",
    "text",
    "unescape",
    "unpack_records",
]
