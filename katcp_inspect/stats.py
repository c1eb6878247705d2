"""Counters of what went wrong, so operators can see it, and logging that does not flood."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import attrs


class _Tally:
    """Occurrences of one kind since its last WARNING line."""

    __slots__ = ("count", "since")

    def __init__(self, since: float) -> None:
        self.count = 0
        self.since = since


#: The kind that kinds past :attr:`OnceLogger.MAX_KINDS` are counted under.
_OTHER_KINDS = object()


class OnceLogger:
    """Logs the first occurrence of each kind at WARNING, the rest at DEBUG, and at most one
    WARNING summary per kind and ``period``: the latest occurrence, with the number seen since
    the kind's previous WARNING line.

    A device that sends the same bad line ten thousand times must not produce ten thousand
    warnings, but the first one must be seen, and so must the fact that it goes on. The summary
    is written when an occurrence arrives at least ``period`` seconds after the previous
    WARNING of its kind (no timer: the logger needs no event loop).
    """

    #: Kinds remembered at most: kinds can come from the network (a sensor name per kind), so
    #: past this many, new kinds are counted together as one, which also bounds the memory used.
    MAX_KINDS = 1000
    #: Default seconds between two WARNING lines of one kind.
    PERIOD = 60.0

    def __init__(self, logger: logging.Logger, *, period: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.period = self.PERIOD if period is None else period
        self._clock = clock
        self._seen: dict[object, _Tally] = {}

    def log(self, kind: object, msg: str, *args: Any, exc_info: bool = False) -> None:
        now = self._clock()
        tally = self._seen.get(kind)
        if tally is None and len(self._seen) >= self.MAX_KINDS:
            kind = _OTHER_KINDS
            tally = self._seen.get(kind)
        if tally is None:
            self._seen[kind] = _Tally(now)
            if kind is _OTHER_KINDS:
                self.logger.warning("Too many kinds of problem to warn about each: from now on "
                                    "new kinds are counted together")
            self.logger.warning(msg + " (further occurrences are logged at DEBUG, and counted "
                                "every %g s)", *args, self.period, exc_info=exc_info)
            return
        tally.count += 1
        if now - tally.since < self.period:
            self.logger.debug(msg, *args, exc_info=exc_info)
            return
        self.logger.warning(msg + " (%d more like this since the warning %.0f s ago)", *args,
                            tally.count, now - tally.since, exc_info=exc_info)
        tally.count = 0
        tally.since = now


    def forget(self, kind: object) -> None:
        """Start ``kind`` afresh, its next occurrence warned as a first one: for problems that
        come in episodes (an outage), each of which deserves its own first warning."""
        self._seen.pop(kind, None)


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
    #: Negotiated connections lost before they proved healthy (so the backoff kept growing).
    short_connections: int = 0
    #: Lines that did not parse (skipped; the connection goes on).
    bad_lines: int = 0
    #: Lines over the maximum length (each resets the connection).
    long_lines: int = 0
    #: Replies that matched no pending request: late, unknown id, unasked.
    unmatched_replies: int = 0
    #: Informs with a message id that matches no pending request (late, or never asked).
    unmatched_informs: int = 0
    #: Replies and reply informs carrying the message id of a request of another name
    #: (dropped: they must not enter that request's result).
    misaddressed: int = 0
    #: Requests failed with ``ReplyTooLargeError``: more reply informs than the client's cap.
    oversized_replies: int = 0
    #: Reply informs and replies dropped because their request had exceeded that cap.
    overflow_dropped: int = 0
    #: Requests sent by the device to us; a client does not answer them.
    unexpected_requests: int = 0
    #: Inform hooks or callbacks that raised (logged; the others still ran).
    callback_errors: int = 0
    #: Messages received (replies, informs, malformed lines), counted a chunk at a time so
    #: that the count costs the hot path nothing: at steady state, the sensor updates.
    messages: int = 0
    #: Requests sent.
    requests: int = 0
    #: Requests that timed out.
    request_timeouts: int = 0
    #: Connections declared dead because ``?watchdog`` went unanswered.
    liveness_failures: int = 0


@attrs.define
class InspectingStats:
    """What an :class:`~katcp_inspect.InspectingClientAsync` has seen, since it was created."""

    #: Inspections that completed and were applied to the model.
    syncs: int = 0
    #: Inspections that failed (nothing applied; retried after the resync backoff).
    failed_syncs: int = 0
    #: ``#help`` / ``#sensor-list`` / ``#request-timeout-hint`` informs that made no sense.
    bad_informs: int = 0
    #: Sensor updates that could not be decoded (bad status, bad value, wrong count).
    bad_updates: int = 0
    #: Updates for sensors the device never listed.
    unknown_sensor_updates: int = 0
    #: Sensor observers or state callbacks that raised.
    callback_errors: int = 0
    #: ``?sensor-sampling`` requests the device refused.
    strategy_failures: int = 0
    #: Inspection answers that could not be the reply to their request (a named one listing
    #: other names, a count that disagrees with the informs): not applied, listed again; and
    #: listing informs that answered no request and disagreed with the model.
    inconsistent_answers: int = 0
