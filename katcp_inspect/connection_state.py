"""The states of a device client's connection, the legal transitions between them, and what the
client holds in each. Imports nothing of the package.

Theory of operation
-------------------
A client holds at most one connection. It starts CLOSED; :meth:`start` begins an attempt
(CONNECTING). Once TCP is up the client waits for the device to say which KATCP it speaks
(NEGOTIATING); when that is known, or assumed after a timeout, it is CONNECTED, and only then are
requests sent. A connection ends in one of two ways: the client decides to drop it (the user
asks, the device says ``#disconnect``, a line is too long, a greeting is bad, ``?watchdog`` goes
unanswered), then it waits in DISCONNECTING for the socket to close; or the socket goes away by
itself. Either way the client then sleeps (SLEEPING, a growing backoff) and tries again, or, if
it is not to reconnect, is CLOSED. :meth:`close` from any state ends in CLOSED.

What the client holds in each state (checked by ``check_invariants`` whenever the event loop
runs or a user callback is called)::

    state          connection   connect task   sleep handle   last_error   closed flag
    CONNECTING     no           yes            no             any          no
    NEGOTIATING    yes          no             no             any          no
    CONNECTED      yes          no             no             None         no
    DISCONNECTING  yes          no             no             set          no
    SLEEPING       no           no             yes            set          no
    CLOSED         no           no             no             set          yes

Requests are pending only while CONNECTED: leaving it fails them all. The network cannot cause
a transition outside :data:`LEGAL_TRANSITIONS`; one would be a bug of the client, so it raises
:class:`IllegalTransitionError` before anything changes, which ends the connection attempt it
happened in (the client then retries).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class ConnectionState(enum.Enum):
    CONNECTING = "connecting"
    NEGOTIATING = "negotiating"
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"
    SLEEPING = "sleeping"
    CLOSED = "closed"


_S = ConnectionState

#: Each state's possible successors; ``_set_state`` refuses any other change (and no change).
LEGAL_TRANSITIONS: Mapping[ConnectionState, frozenset[ConnectionState]] = {
    _S.CLOSED: frozenset({_S.CONNECTING}),  # start()
    # TCP up; or refused / timed out / close()
    _S.CONNECTING: frozenset({_S.NEGOTIATING, _S.SLEEPING, _S.CLOSED}),
    # greeted; bad greeting or close(); the socket went away by itself
    _S.NEGOTIATING: frozenset({_S.CONNECTED, _S.DISCONNECTING, _S.SLEEPING, _S.CLOSED}),
    # the client drops it; the socket went away by itself
    _S.CONNECTED: frozenset({_S.DISCONNECTING, _S.SLEEPING, _S.CLOSED}),
    # the socket is closed: retry later, or stop
    _S.DISCONNECTING: frozenset({_S.SLEEPING, _S.CLOSED}),
    # the backoff timer; close()
    _S.SLEEPING: frozenset({_S.CONNECTING, _S.CLOSED}),
}


class IllegalTransitionError(RuntimeError):
    """A bug of the client: a change of state that :data:`LEGAL_TRANSITIONS` does not allow."""


def check_transition(old: ConnectionState, new: ConnectionState) -> None:
    """Raise :class:`IllegalTransitionError` unless ``old -> new`` is legal."""
    if new not in LEGAL_TRANSITIONS[old]:
        raise IllegalTransitionError(f"illegal transition {old.name} -> {new.name}")
