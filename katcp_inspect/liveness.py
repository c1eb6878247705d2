"""The watchdog, without I/O: ``?watchdog`` at an interval while connected; a reply slower than
the timeout (or none) means the connection is dead. Imports the errors and waiting modules.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .errors import RequestTimeoutError
from .waiting import Timer

Request = Callable[..., "asyncio.Future[Any]"]


class Watchdog:
    """Sends ``?watchdog`` through ``request`` every ``interval`` seconds (``None``: never)
    between :meth:`start` and :meth:`stop`; calls ``dead()`` if one goes unanswered."""

    def __init__(self, interval: float | None, timeout: float,
                 call_later: Callable[..., Timer], request: Request,
                 dead: Callable[[], None]) -> None:
        self.interval = interval
        self.timeout = timeout
        self._call_later = call_later
        self._request = request
        self._dead = dead
        self._running = False
        self._handle: Timer | None = None

    @property
    def scheduled(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        self._running = True
        self._schedule()

    def stop(self) -> None:
        self._running = False
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _schedule(self) -> None:
        if self.interval is not None:
            self._handle = self._call_later(self.interval, self._send)

    def _send(self) -> None:
        self._handle = None
        future = self._request("watchdog", timeout=self.timeout)
        future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            return
        if isinstance(future.exception(), RequestTimeoutError) and self._running:
            self._dead()
        elif self._running and self._handle is None:
            self._schedule()
