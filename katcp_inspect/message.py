"""KATCP messages: the ``Message`` value, argument encoding, and parsing through katcp-codec.

Arguments are always kept as ``bytes`` (KATCP defines no character encoding); names are ``str``
and message ids ``int``. Wire encoding and decoding (escapes, ``\\@``, ids) is done by
katcp-codec, SARAO's Rust parser, so this module holds no escaping code of its own.
"""

from __future__ import annotations

import enum
import numbers
import re
from collections.abc import Iterable
from typing import Any, ClassVar, Union

from . import codec
from .errors import KatcpSyntaxError
from .text import printable

_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]*\Z")
MAX_MID = 2**31 - 1


class MessageType(enum.IntEnum):
    """The three kinds of KATCP message (values as in katcp-python)."""

    REQUEST = 0
    REPLY = 1
    INFORM = 2

    @property
    def symbol(self) -> str:
        return _SYMBOLS[self]


_SYMBOLS = {MessageType.REQUEST: "?", MessageType.REPLY: "!", MessageType.INFORM: "#"}
_BY_INDEX = tuple(MessageType)

ArgumentLike = Union[bytes, str, int, float, bool, Any]
MidLike = Union[int, str, bytes, None]


def encode_argument(value: ArgumentLike) -> bytes:
    """Encode one argument the KATCP way.

    ``bool`` becomes ``1``/``0`` (checked before ``int``), integers ``%d``, reals ``repr``,
    ``str`` UTF-8 (lone surrogates from ``surrogateescape`` decoding go back to their bytes),
    ``bytes`` unchanged; anything else is encoded as its ``str()``.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, numbers.Integral):
        return b"%d" % int(value)
    if isinstance(value, numbers.Real):
        return repr(float(value)).encode("ascii")
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def _check_mid(mid: MidLike) -> int | None:
    if mid is None:
        return None
    if isinstance(mid, bytes):
        mid = mid.decode("ascii", "replace")
    if isinstance(mid, str):
        if not mid.isdigit() or not mid.isascii():
            raise KatcpSyntaxError(f"message id must be a positive integer, not {mid!r}")
        mid = int(mid)
    if isinstance(mid, bool) or not isinstance(mid, int) or not 1 <= mid <= MAX_MID:
        raise KatcpSyntaxError(f"message id must be an integer in 1..{MAX_MID}, not {mid!r}")
    return mid


class Message:
    """One KATCP message: type, name, arguments (``bytes``) and an optional message id.

    >>> Message.request("sensor-value", "cpu.temp", mid=3)
    <Message ?sensor-value[3] cpu.temp>
    >>> bytes(Message.reply("help", "ok", 2))
    b'!help ok 2'
    """

    __slots__ = ("arguments", "mid", "mtype", "name")

    REQUEST: ClassVar[MessageType] = MessageType.REQUEST
    REPLY: ClassVar[MessageType] = MessageType.REPLY
    INFORM: ClassVar[MessageType] = MessageType.INFORM
    OK: ClassVar[bytes] = b"ok"
    FAIL: ClassVar[bytes] = b"fail"
    INVALID: ClassVar[bytes] = b"invalid"

    mtype: MessageType
    name: str
    arguments: list[bytes]
    mid: int | None

    def __init__(
        self,
        mtype: MessageType,
        name: str,
        arguments: Iterable[ArgumentLike] | None = None,
        mid: MidLike = None,
    ) -> None:
        if not _NAME_RE.match(name):
            raise KatcpSyntaxError(f"invalid message name {name!r}")
        self.mtype = MessageType(mtype)
        self.name = name
        self.arguments = [] if arguments is None else [encode_argument(a) for a in arguments]
        self.mid = _check_mid(mid)

    @classmethod
    def request(cls, name: str, *args: ArgumentLike, mid: MidLike = None) -> Message:
        return cls(MessageType.REQUEST, name, args, mid)

    @classmethod
    def reply(cls, name: str, *args: ArgumentLike, mid: MidLike = None) -> Message:
        return cls(MessageType.REPLY, name, args, mid)

    @classmethod
    def inform(cls, name: str, *args: ArgumentLike, mid: MidLike = None) -> Message:
        return cls(MessageType.INFORM, name, args, mid)

    @classmethod
    def reply_to_request(cls, request: Message, *args: ArgumentLike) -> Message:
        """A reply with the request's name and message id."""
        return cls(MessageType.REPLY, request.name, args, request.mid)

    @classmethod
    def reply_inform(cls, request: Message, *args: ArgumentLike) -> Message:
        """An inform that belongs to the reply to ``request`` (same name and id)."""
        return cls(MessageType.INFORM, request.name, args, request.mid)

    @classmethod
    def from_codec(cls, raw: Any) -> Message:
        """Adopt a message that katcp-codec has already parsed, without re-checking it."""
        msg = cls.__new__(cls)
        msg.mtype = _BY_INDEX[codec.type_index(raw.mtype)]
        msg.name = raw.name.decode("ascii")
        msg.arguments = raw.arguments
        msg.mid = raw.mid
        return msg

    @classmethod
    def trusted(cls, mtype: MessageType, name: str, arguments: list[bytes],
                mid: int | None = None) -> Message:
        """A message from parts the caller vouches for (a valid name, arguments already
        ``bytes``): the constructor's checks cost more than the message on hot paths."""
        msg = cls.__new__(cls)
        msg.mtype = mtype
        msg.name = name
        msg.arguments = arguments
        msg.mid = mid
        return msg

    @classmethod
    def parse(cls, line: bytes) -> Message:
        """Parse exactly one message from ``line`` (a trailing newline is optional).

        Raises :class:`KatcpSyntaxError` for a malformed line, an empty line or several messages.
        This is a convenience; connections use a long-lived :class:`MessageParser`.
        """
        if not line.endswith((b"\n", b"\r")):
            line += b"\n"
        items = codec.Parser(len(line) + 1).append(line)
        if len(items) != 1:
            raise KatcpSyntaxError(f"expected one message, found {len(items)} in {line!r}")
        item = items[0]
        if isinstance(item, ValueError):
            raise KatcpSyntaxError(f"{item} in {line!r}")
        return cls.from_codec(item)

    def encode(self) -> bytes:
        """The wire form, with the terminating newline."""
        return codec.encode(self.mtype, self.name.encode("ascii"), self.mid, self.arguments)

    def __bytes__(self) -> bytes:
        """The wire form without the newline (as in katcp-python)."""
        return self.encode()[:-1]

    def __str__(self) -> str:
        """The wire form for display: what KATCP does not escape (BEL, bidi controls...) and
        bytes that are not UTF-8 are spelled ``\\xNN``, so a device cannot drive a terminal
        or forge a log line through a message that is shown."""
        return printable(bytes(self), escape_backslash=False)

    def __repr__(self) -> str:
        text = str(self)
        if len(text) > 1000:
            text = text[:1000] + "..."
        return f"<Message {text}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message):
            return NotImplemented
        return (self.mtype, self.name, self.arguments, self.mid) == (
            other.mtype, other.name, other.arguments, other.mid)

    __hash__ = None  # type: ignore[assignment]  # mutable, like katcp-python's Message

    def copy(self) -> Message:
        """A copy with its own argument list (the message id is kept)."""
        return Message(self.mtype, self.name, list(self.arguments), self.mid)

    def reply_ok(self) -> bool:
        """True for a reply whose return code is exactly ``ok``."""
        return self.mtype is MessageType.REPLY and bool(self.arguments) and \
            self.arguments[0] == b"ok"

    def format_argument(self, index: int) -> str:
        """Argument ``index`` decoded for display (undecodable bytes shown as escapes)."""
        return self.arguments[index].decode("utf-8", "backslashreplace")


class MessageParser:
    """Turns chunks of bytes into messages and :class:`KatcpSyntaxError` items.

    Chunks need not be aligned with lines. A malformed line or a line over ``max_line_length``
    becomes an error item and parsing goes on with the next line; nothing is raised.
    """

    def __init__(self, max_line_length: int) -> None:
        self._parser = codec.Parser(max_line_length)

    def feed(self, data: bytes | bytearray | memoryview) -> list[Message | KatcpSyntaxError]:
        out: list[Message | KatcpSyntaxError] = []
        for item in self._parser.append(data):
            if isinstance(item, ValueError):
                out.append(KatcpSyntaxError(str(item)))
            else:
                out.append(Message.from_codec(item))
        return out

    @property
    def buffer_size(self) -> int:
        return self._parser.buffer_size
