"""The runs of an inspecting client: ``connect()`` and ``stop()`` in the order they are called.

Each call bumps the run number (:attr:`SyncLoop.current_run`), and the last call decides: a
state loop (or a start still waiting for the previous run to end) belongs to one run and
stands down as soon as it is no longer the current one. A new run starts only once the
previous run's loop has ended and its connection is closed, so there is never more than one
state loop. May import ``backoff``, ``client``, ``errors``, ``sync_loop``, ``sync_states`` and
``waiting``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Callable

from .backoff import ExponentialRandomBackoff
from .client import ConnectionState
from .errors import ClientClosedError
from .sync_loop import SyncLoop
from .sync_states import DISCONNECTED, StateReports
from .waiting import start_task, with_timeout

if TYPE_CHECKING:
    from .client import DeviceClient


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


async def _ended(closed: asyncio.Future[None], loop_task: asyncio.Future[None] | None) -> None:
    await closed
    if loop_task is not None:
        await asyncio.wait({loop_task})


class Runs:
    """Starts and stops one client's connection and state loop, run after run."""

    def __init__(self, client: DeviceClient, sync: SyncLoop, states: StateReports,
                 logger: logging.Logger) -> None:
        #: Between connect() and stop() (or the end of the loop when the connection closes
        #: for good).
        self.running = False
        #: Stopped since the last connect(); before the first one, waiters wait for it.
        self.stopped = False
        self.loop_task: asyncio.Future[None] | None = None
        self._client = client
        self._sync = sync
        self._states = states
        self._logger = logger

    def connect(self, timeout: float | None,
                backoff: Callable[[], ExponentialRandomBackoff]) -> asyncio.Future[None]:
        """Start a run (its loop backing off with ``backoff()``); see
        :meth:`InspectingClientAsync.connect`."""
        if self.running:
            return _failed(RuntimeError("the inspecting client is already running"))
        self.running = True
        self.stopped = False
        self._sync.current_run += 1
        return asyncio.ensure_future(self._connect(self._sync.current_run, timeout, backoff))

    async def _connect(self, run: int, timeout: float | None,
                       backoff: Callable[[], ExponentialRandomBackoff]) -> None:
        await self._previous_run_ended()
        if run != self._sync.current_run:
            if timeout:
                raise ClientClosedError("the inspecting client was stopped before it connected")
            return
        self._client.start()
        self.loop_task = start_task(self._state_loop(run, backoff()))
        if timeout:
            try:
                await self._states.until_connected(
                    self.stopped, self.running and self._client.is_connected, timeout)
            except BaseException:
                if run == self._sync.current_run:
                    await self.stop(None)
                raise

    async def _state_loop(self, run: int, backoff: ExponentialRandomBackoff) -> None:
        try:
            await self._sync.run(run, backoff)
        finally:
            if run == self._sync.current_run:  # closed for good: the client is stopped
                self.running = False
                self.stopped = True
                self._states.end()
            await self._states.report(DISCONNECTED, None, self._client.address)

    async def _previous_run_ended(self) -> None:
        previous = self.loop_task
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        if self._client.state is not ConnectionState.CLOSED:
            await asyncio.wait({self._client.until_closed()})

    def stop(self, timeout: float | None) -> asyncio.Future[None]:
        """End the current run; see :meth:`InspectingClientAsync.stop`."""
        self.running = False
        self.stopped = True
        self._sync.current_run += 1
        self._states.end()
        self._sync.poke()
        closed = self._client.close()
        loop_task = self.loop_task
        if loop_task is asyncio.current_task():
            loop_task = None  # called by the state callback: the loop ends once it returns
        return asyncio.ensure_future(self._stop(closed, loop_task, timeout))

    async def _stop(self, closed: asyncio.Future[None], loop_task: asyncio.Future[None] | None,
                    timeout: float | None) -> None:
        try:
            await with_timeout(_ended(closed, loop_task), timeout)
        except TimeoutError:
            self._logger.warning("%s: stop() still waiting after %s s", self._client.address,
                                 timeout)

    async def until_stopped(self) -> None:
        """Until the last run's loop has ended and the connection is closed."""
        loop_task = self.loop_task
        if loop_task is not None:
            await asyncio.wait({loop_task})
        await self._client.until_closed()
