"""Negotiation without I/O: from a device's greeting (or its silence), which KATCP a connection
speaks. Imports only the message, protocol, errors, stats, text and waiting modules.

A KATCP 5 device greets with ``#version-connect katcp-protocol``; a KATCP 4 device with
``#version`` and ``#build-state``, or with nothing. Only the katcp-protocol line decides, and a
KATCP 5 device may send it after a ``#build-state``: after a v4 line the negotiation waits a
little (``v4_grace``) for it, not the whole greeting timeout, which would delay every
connection to a real v4 device. A device that has greeted with katcp-protocol once is never
taken for v4 afterwards; one whose katcp-protocol line came after the grace is given the whole
timeout from then on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from .errors import ProtocolError
from .message import Message
from .protocol import KATCP_V4, ProtocolFlags
from .stats import OnceLogger
from .waiting import Timer, Timers


class Negotiation:
    """The greetings of one device, over its connections.

    ``begin`` starts negotiating a new connection; the outcome is reported through ``decided``
    (the connection's flags) or ``drop`` (the connection is to be dropped with that error).
    """

    def __init__(self, *, timeout: float, fallback: ProtocolFlags | None, v4_grace: float,
                 logger: logging.Logger, problems: OnceLogger, address: Callable[[], str],
                 decided: Callable[[ProtocolFlags], None],
                 drop: Callable[[BaseException], None]) -> None:
        self.timeout = timeout
        self.fallback = fallback
        self.v4_grace = v4_grace
        self._logger = logger
        self._problems = problems
        self._address = address
        self._decided = decided
        self._drop = drop
        #: ``#version-connect`` (or v4 ``#version`` / ``#build-state``) of the connection.
        self.versions: dict[str, tuple[str, ...]] = {}
        #: The flags in use on the connection, once decided.
        self.flags: ProtocolFlags | None = None
        self._timers: Timers | None = None
        self._handle: Timer | None = None
        self._negotiating = False
        #: Whether this device has ever greeted with katcp-protocol (then it is not v4).
        self._device_greets = False
        #: Whether this connection's flags are assumed (v4 by default), not announced.
        self._assumed = False
        #: Whether this connection's greeting included a v4 ``#version`` / ``#build-state``.
        self._v4_greeting = False
        #: Whether this device has sent katcp-protocol after the ``v4_grace``.
        self._greets_late = False

    @property
    def waiting(self) -> bool:
        """Whether the greeting timer runs."""
        return self._handle is not None

    def begin(self, timers: Timers) -> None:
        """A new connection: wait for its greeting."""
        self.versions = {}
        self._assumed = False
        self._v4_greeting = False
        self._negotiating = True
        self._timers = timers
        self._handle = timers.call_later(self.timeout, self._timed_out)

    def end(self) -> None:
        """The connection is no longer negotiating (decided, or gone)."""
        self._negotiating = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def decide(self, flags: ProtocolFlags, assumed: bool = False) -> None:
        self._assumed = assumed
        self.flags = flags
        self._decided(flags)

    def version_connect(self, message: Message) -> None:
        """``#version-connect``, while negotiating or after."""
        if len(message.arguments) < 2:
            return
        role = message.format_argument(0)
        self.versions[role] = tuple(a.decode("utf-8", "backslashreplace")
                                    for a in message.arguments[1:])
        if role != "katcp-protocol":
            return
        try:
            flags = ProtocolFlags.parse_version(message.arguments[1])
        except ProtocolError as exc:
            if self._negotiating:
                self._drop(exc)
            else:
                self._problems.log("late-greeting", "%s: %s (ignored: already connected as %s)",
                                   self._address(), str(exc), self.flags)
            return
        self._device_greets = True
        self._announced(flags)

    def _announced(self, flags: ProtocolFlags) -> None:
        if self._negotiating:
            self.decide(flags)
        elif flags == self.flags:
            pass
        elif self._assumed:
            # The greeting was late, not missing: everything decided on the assumed version
            # (timestamp units, ids, hints) is wrong. Start again on a fresh connection.
            self._greets_late = True
            self._drop(ProtocolError(
                f"{self._address()} greeted with KATCP {flags} after the client had assumed "
                f"{self.flags}; reconnecting"))
        else:
            self._problems.log("late-greeting", "%s announced KATCP %s but the client uses %s",
                               self._address(), flags, self.flags)

    def v4_greeting(self, message: Message) -> None:
        """``#version`` or ``#build-state``: a KATCP 4 greeting, unless katcp-protocol follows."""
        self.versions[message.name] = tuple(a.decode("utf-8", "backslashreplace")
                                            for a in message.arguments)
        if not self._negotiating or self._v4_greeting:
            return
        self._v4_greeting = True
        if self._greets_late:
            return  # its katcp-protocol line came late before: give it the whole timeout
        timers, handle = self._timers, self._handle
        if (timers is not None and handle is not None
                and handle.when() > timers.time() + self.v4_grace):
            handle.cancel()
            self._handle = timers.call_later(self.v4_grace, self._timed_out)

    def _timed_out(self) -> None:
        self._handle = None
        # A device that has greeted with katcp-protocol before is slow now, not a v4 device.
        if self._v4_greeting:
            self._logger.debug("%s greeted as KATCP 4: no katcp-protocol line followed",
                               self._address())
            self._greets_late = False
            self.decide(KATCP_V4, assumed=True)
        elif self.fallback is not None and not self._device_greets:
            self._logger.info("%s sent no protocol greeting within %g s; assuming KATCP %s",
                              self._address(), self.timeout, self.fallback)
            self.decide(self.fallback, assumed=True)
        else:
            self._drop(ProtocolError(
                f"{self._address()} sent no protocol greeting within {self.timeout} s"))
