"""Counters of what went wrong, so operators can see it, and logging that does not flood."""

from __future__ import annotations

import logging
from typing import Any

import attrs


class OnceLogger:
    """Logs the first occurrence of each kind at WARNING and the rest at DEBUG.

    A device that sends the same bad line ten thousand times must not produce ten thousand
    warnings, but the first one must be seen.
    """

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: set[object] = set()

    def log(self, kind: object, msg: str, *args: Any) -> None:
        if kind in self._seen:
            self.logger.debug(msg, *args)
        else:
            self._seen.add(kind)
            self.logger.warning(msg + " (further occurrences are logged at DEBUG)", *args)


@attrs.define
class ClientStats:
    """What a :class:`~katcp_inspect.client.DeviceClient` has seen, since it was created."""

    #: TCP connection attempts started.
    connection_attempts: int = 0
    #: Attempts that failed before negotiation completed (refused, timed out, bad greeting...).
    connect_failures: int = 0
    #: Connections that completed negotiation.
    connections: int = 0
    #: Negotiated connections that were later lost or closed.
    disconnects: int = 0
    #: Lines that did not parse (skipped; the connection goes on).
    bad_lines: int = 0
    #: Lines over the maximum length (each resets the connection).
    long_lines: int = 0
    #: Replies (and reply informs) that matched no pending request: late, unknown id, unasked.
    unmatched_replies: int = 0
    #: Requests sent by the device to us; a client does not answer them.
    unexpected_requests: int = 0
    #: Inform hooks or callbacks that raised (logged; the others still ran).
    callback_errors: int = 0
    #: Requests sent.
    requests: int = 0
    #: Requests that timed out.
    request_timeouts: int = 0
    #: Connections declared dead because ``?watchdog`` went unanswered.
    liveness_failures: int = 0
