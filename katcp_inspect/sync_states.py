"""The states an inspecting client reports, and who is told of them: the ``until_*`` waiters
and the state callback.

A state is katcp-python's four-field tuple; five combinations are valid (:data:`VALID_STATES`).
Only the sync loop reports states (:meth:`StateReports.report`); waiters made while the client
is stopped, and those pending when it stops, end at once (:meth:`StateReports.end`). May import
``errors``, ``model``, ``stats`` and ``waiting``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any, Callable, NamedTuple, Optional

from .errors import ClientClosedError
from .model import AttrDict
from .stats import InspectingStats
from .waiting import with_timeout


class InspectingClientStateType(NamedTuple):
    """The state of the sync loop (katcp-python's four fields, five valid combinations)."""

    connected: bool
    synced: bool
    model_changed: bool
    data_synced: bool

    def __str__(self) -> str:
        return "[" + " ".join(("" if value else "!") + field
                              for field, value in zip(self._fields, self)) + "]"


State = InspectingClientStateType
DISCONNECTED = State(False, False, False, False)
SYNCING = State(True, False, False, False)
DATA_SYNCED_CHANGED = State(True, False, True, True)
DATA_SYNCED = State(True, False, False, True)
SYNCED = State(True, True, False, True)
VALID_STATES = frozenset({DISCONNECTED, SYNCING, DATA_SYNCED_CHANGED, DATA_SYNCED, SYNCED})

StateCallback = Callable[[State, Optional[AttrDict]], Any]


class StateReports:
    """The state last reported, and the waiters and callback told of each new one."""

    def __init__(self, logger: logging.Logger, stats: InspectingStats) -> None:
        self.state = DISCONNECTED
        self.callback: StateCallback | None = None
        #: Pending state waiters and what each waits for.
        self.waiters: dict[asyncio.Future[None], Callable[[State], bool]] = {}
        #: Pending waiters for a negotiated connection.
        self.connected_waiters: set[asyncio.Future[None]] = set()
        self._last_reported: State | None = None
        self._logger = logger
        self._stats = stats

    async def report(self, state: State, model_changes: AttrDict | None, where: str) -> None:
        """Enter ``state``; tell the waiters, then the callback (awaited if it returns an
        awaitable). A state reported again is told again only with model changes."""
        if state == self._last_reported and model_changes is None:
            return
        self._last_reported = self.state = state
        self._logger.debug("%s: %s %s", where, state, model_changes or "")
        for future, predicate in list(self.waiters.items()):
            if predicate(state) and not future.done():
                future.set_result(None)
        cb = self.callback
        if cb is None:
            return
        try:
            result = cb(state, model_changes)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._stats.callback_errors += 1
            self._logger.exception("State callback %r raised for %s", cb, state)

    def until(self, predicate: Callable[[State], bool], stopped: bool,
              timeout: float | None) -> asyncio.Future[None]:
        """A waiter for a state. Made while ``stopped``, it resolves or fails at once."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if predicate(DISCONNECTED if stopped else self.state):
            future.set_result(None)
        elif stopped:
            future.set_exception(ClientClosedError("the inspecting client is stopped"))
        else:
            self.waiters[future] = predicate
            future.add_done_callback(self._forget)
        return with_timeout(future, timeout)

    def _forget(self, future: asyncio.Future[None]) -> None:
        self.waiters.pop(future, None)

    def until_connected(self, stopped: bool, connected: bool,
                        timeout: float | None) -> asyncio.Future[None]:
        """A waiter for a negotiated connection (``connected``: there is one now)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if stopped:
            future.set_exception(ClientClosedError("the inspecting client is stopped"))
        elif connected:
            future.set_result(None)
        else:
            self.connected_waiters.add(future)
            future.add_done_callback(self.connected_waiters.discard)
        return with_timeout(future, timeout)

    def connected(self) -> None:
        """A connection was negotiated: the connection waiters resolve."""
        waiters, self.connected_waiters = self.connected_waiters, set()
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def end(self) -> None:
        """The client is stopped: waiters whose condition holds for a stopped client resolve,
        the others fail with :class:`ClientClosedError`."""
        stopped = ClientClosedError("the inspecting client was stopped")
        waiters, self.waiters = self.waiters, {}
        for future, predicate in waiters.items():
            if future.done():
                continue
            if predicate(DISCONNECTED):
                future.set_result(None)
            else:
                future.set_exception(stopped)
        connected, self.connected_waiters = self.connected_waiters, set()
        for future in connected:
            if not future.done():
                future.set_exception(stopped)
