"""Exception types: one per kind of failure, each carrying the device's own words where any."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import tornado.util

from .text import printable

if TYPE_CHECKING:
    from .message import Message


class KatcpInspectError(Exception):
    """Base class of every error raised by katcp-inspect."""


class KatcpSyntaxError(KatcpInspectError, ValueError):
    """A line or an argument does not follow the KATCP grammar."""


class ProtocolError(KatcpInspectError, ValueError):
    """The device's protocol version or flags cannot be understood or are not supported."""


class NotConnectedError(KatcpInspectError, ConnectionError):
    """A request was made while the client was not connected (and negotiated)."""


class ConnectionLostError(KatcpInspectError, ConnectionError):
    """The connection went away before the reply arrived."""


class ClientClosedError(ConnectionLostError):
    """The client was closed by its owner before the reply arrived or a waiter was satisfied."""


class LineTooLongError(KatcpInspectError, ConnectionError):
    """The device sent a line longer than the configured maximum; the connection is reset."""


# Before Python 3.11, asyncio's TimeoutError (which tornado.gen.TimeoutError names) is not
# the built-in one; a timeout must be catchable as either.
_TIMEOUT_BASES: tuple[type[Exception], ...] = tuple(dict.fromkeys(
    (TimeoutError, asyncio.TimeoutError, tornado.util.TimeoutError)))


class WaitTimeoutError(KatcpInspectError, *_TIMEOUT_BASES):  # type: ignore[misc]
    """Something awaited with a timeout did not happen in time.

    Both ``except TimeoutError`` and ``except tornado.gen.TimeoutError`` catch it, on every
    supported Python.
    """


class RequestTimeoutError(WaitTimeoutError):
    """No reply arrived in time."""


class RequestError(KatcpInspectError):
    """The device answered with something other than ``ok``.

    :attr:`reply` is the reply message and :attr:`reason` the device's explanation (its second
    argument, decoded for display).
    """

    def __init__(self, reply: Message, informs: list[Message] | None = None) -> None:
        self.reply = reply
        self.informs = informs if informs is not None else []
        args = reply.arguments
        self.reason = args[1].decode("utf-8", "backslashreplace") if len(args) > 1 else ""
        code = printable(args[0]) if args else "<no return code>"
        text = f"?{reply.name} {code}"
        super().__init__(f"{text}: {printable(args[1])}" if self.reason else text)


class RequestFailedError(RequestError):
    """The device replied ``fail`` (or any return code that is neither ``ok`` nor ``invalid``)."""


class RequestInvalidError(RequestError):
    """The device replied ``invalid``: it considers the request malformed or unknown."""


class ReplyTooLargeError(KatcpInspectError):
    """The device sent more reply informs (or bytes of them) for one request than the client's
    cap allows (``max_reply_informs`` / ``max_reply_bytes``). The informs received so far are
    dropped; so is what still comes for that request."""


class UnknownSensorError(KatcpInspectError, KeyError):
    """The device has no sensor of that name (the model was synced, or the name looked up)."""

    def __str__(self) -> str:
        # KeyError's own str() is the repr of its argument; this is a sentence.
        return str(self.args[0]) if self.args else ""
