"""The one place that knows how katcp-codec is reached.

katcp-codec's public ``Parser`` wraps every message its Rust core parses in a validated Python
dataclass, which costs about three times the parsing itself (its authors' ``_lib`` parses a
``#sensor-status`` line in ~0.25 µs; the wrapper adds ~0.75 µs). The validation repeats
checks the Rust grammar has already made, so on the hot path we take the core's messages
as they are. ``_lib`` ships typed stubs but is not public API: it is used only if it is
there and passes a self-test at import, with the public parser as the fallback, so a future
katcp-codec that changes it makes us slower, not wrong. Setting the environment variable
``KATCP_INSPECT_CODEC=public`` forces the fallback: CI runs the whole suite so, which is what
makes "slower, not wrong" a tested promise rather than a hope.
"""

from __future__ import annotations

import os
from typing import Any, Union

import katcp_codec


def _core_works() -> bool:
    if os.environ.get("KATCP_INSPECT_CODEC") == "public":
        return False
    try:
        from katcp_codec import _lib

        message, error = _lib.Parser(64).append(b"#x[7] a\\_b \\@\n bad\n")
        if isinstance(message, ValueError):
            return False
        return (isinstance(error, ValueError) and message.mtype is _lib.MessageType.INFORM
                and message.name == b"x" and message.mid == 7
                and message.arguments == [b"a b", b""]
                and bytes(_lib.Message(_lib.MessageType.REPLY, b"y", None, [b""])) == b"!y \\@\n")
    except Exception:  # absent, renamed or changed: use the public API
        return False


#: Whether the fast path through katcp-codec's core is in use.
FAST = _core_works()

if FAST:
    from katcp_codec import _lib

    _Parser: Any = _lib.Parser
    _Message: Any = _lib.Message
    REQUEST: Any = _lib.MessageType.REQUEST
    REPLY: Any = _lib.MessageType.REPLY
    INFORM: Any = _lib.MessageType.INFORM
else:  # pragma: no cover - exercised by the tests through ``make_parser(fast=False)``
    _Parser = katcp_codec.Parser
    _Message = None
    REQUEST = katcp_codec.MessageType.REQUEST
    REPLY = katcp_codec.MessageType.REPLY
    INFORM = katcp_codec.MessageType.INFORM

#: What a parser yields: messages (with ``mtype``, ``name``, ``mid``, ``arguments``) and
#: ``ValueError`` items for malformed lines.
ParsedItem = Union[Any, ValueError]


class Parser:
    """Chunks of bytes in, parsed items out (see :data:`ParsedItem`); never raises for bad
    input. ``fast=False`` forces katcp-codec's public parser."""

    __slots__ = ("_parser", "append", "fast")

    def __init__(self, max_line_length: int, *, fast: bool = FAST) -> None:
        self.fast = fast
        self._parser = (_Parser if fast else katcp_codec.Parser)(max_line_length)
        self.append = self._parser.append

    @property
    def buffer_size(self) -> int:
        return int(self._parser.buffer_size)


def type_index(mtype: Any) -> int:
    """0, 1 or 2 for a parsed message's request, reply or inform type (from either parser);
    katcp-codec numbers them 1, 2, 3."""
    return (mtype.value if isinstance(mtype, katcp_codec.MessageType) else int(mtype)) - 1


_PUBLIC_TYPES = (katcp_codec.MessageType.REQUEST, katcp_codec.MessageType.REPLY,
                 katcp_codec.MessageType.INFORM)


def encode(type_index: int, name: bytes, mid: int | None, arguments: list[bytes]) -> bytes:
    """The wire form of a message whose name and id are already known to be valid."""
    if _Message is not None:
        return bytes(_Message((REQUEST, REPLY, INFORM)[type_index], name, mid, arguments))
    return bytes(katcp_codec.Message(_PUBLIC_TYPES[type_index], name, mid, arguments,
                                     validate=False))
