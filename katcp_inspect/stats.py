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

    #: Kinds remembered at most: kinds can come from the network (a sensor name per kind), so
    #: past this many every new kind is logged at DEBUG, which also bounds the memory used.
    MAX_KINDS = 1000

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: set[object] = set()

    def log(self, kind: object, msg: str, *args: Any, exc_info: bool = False) -> None:
        if kind in self._seen or len(self._seen) > self.MAX_KINDS:
            self.logger.debug(msg, *args, exc_info=exc_info)
            return
        self._seen.add(kind)
        if len(self._seen) > self.MAX_KINDS:
            self.logger.warning("Too many kinds of problem to warn about each: from now on "
                                "new ones are logged at DEBUG only")
        self.logger.warning(msg + " (further occurrences are logged at DEBUG)", *args,
                            exc_info=exc_info)


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
