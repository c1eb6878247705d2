"""Peers for the inspecting client's hostile-device tests: a raw scripted device whose answers
may hold unsolicited lines, and an aiokatcp server with a multi-line request docstring.

No ``from __future__ import annotations`` here: aiokatcp reads handler annotations at run time.
"""


import contextlib
from collections.abc import AsyncIterator
from typing import Any, Optional

from katcp_inspect import Message

from .support import GREETING_V5, Responder, ScriptedDevice, ThirdPartyDevice, scripted_device

GREETING_V4 = b"#version device-1.0\n#build-state device-1.0.0\n"


class RawDevice(ScriptedDevice):
    """A :class:`ScriptedDevice` whose responders may also return unsolicited lines: only the
    lines that name the request (``#name ...`` and ``!name ...``) get its message id, so an
    ``#interface-changed`` can be slipped into an answer exactly where a test wants it."""

    def addressed(self, line: bytes, request: Message) -> bytes:
        return with_mid(line, request)


def with_mid(line: bytes, request: Message) -> bytes:
    """``line`` with ``request``'s message id, if it names the request."""
    name_end = line.find(b" ") if b" " in line else len(line)
    if request.mid is None or line[1:name_end] != request.name.encode():
        return line
    return line[:name_end] + b"[%d]" % request.mid + line[name_end:]


def raw_device(greeting: bytes = GREETING_V5,
               responses: Optional[dict[str, Responder]] = None
               ) -> contextlib.AbstractAsyncContextManager[ScriptedDevice]:
    return scripted_device(greeting, responses, kind=RawDevice)


class DocumentedDevice(ThirdPartyDevice):
    """aiokatcp's server with a request whose docstring has several lines: aiokatcp lists the
    first line in ``?help`` and the whole docstring in ``?help NAME``."""

    async def request_calibrate(self, ctx: Any, gain: float) -> None:
        """Calibrate the receiver.

        Parameters
        ----------
        gain : float
            The gain to calibrate for.
        """


@contextlib.asynccontextmanager
async def documented_device() -> AsyncIterator[DocumentedDevice]:
    server = DocumentedDevice("127.0.0.1", 0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
