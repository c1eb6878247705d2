"""``BlockingFleetView``: :class:`~katcp_inspect.mirror.FleetView` for scripts, its methods
returning when done. Like :class:`~katcp_inspect.InspectingClient`, it runs an event loop in
a thread of its own and hands each call to it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ..blocking import _run_loop
from ..errors import WaitTimeoutError
from .view import Condition, DeviceSnapshot, DeviceStatus, FleetView

if TYPE_CHECKING:
    from types import TracebackType

    from ..sensor import Reading
    from .follow import Gap, Update

T = TypeVar("T")


class BlockingFleetView:
    """A blocking :class:`FleetView`: the same arguments and methods. ``with
    BlockingFleetView(url) as view:`` closes it on exit."""

    def __init__(self, url: str | None = None, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_loop, args=(self._loop,), daemon=True,
                                        name="katcp-inspect fleet view")
        self._thread.start()
        self._view: FleetView = self._call(_make(url, kwargs), None)
        self._closed = False

    def _call(self, coro: Awaitable[T], timeout: float | None) -> T:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking FleetView method was called on its own thread")
        future = asyncio.run_coroutine_threadsafe(_awaited(coro), self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise WaitTimeoutError(f"not done within {timeout} s") from None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the connection and end the thread (closing twice does nothing)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._call(self._view.close(), 10.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)

    def __enter__(self) -> BlockingFleetView:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def devices(self) -> list[str]:
        return self._call(self._view.devices(), None)

    def status(self, name: str) -> DeviceStatus | None:
        return self._call(self._view.status(name), None)

    def statuses(self) -> dict[str, DeviceStatus]:
        return self._call(self._view.statuses(), None)

    def snapshot(self, name: str) -> DeviceSnapshot | None:
        return self._call(self._view.snapshot(name), None)

    def readings(self, name: str) -> dict[str, Reading]:
        return self._call(self._view.readings(name), None)

    def reading(self, name: str, sensor: str) -> Reading | None:
        return self._call(self._view.reading(name, sensor), None)

    def wait(self, device: str, sensor: str, condition: Condition,
             timeout: float | None = None) -> Reading:
        """Block until the condition holds (the predicate runs on the view's thread)."""
        return self._call(self._view.wait(device, sensor, condition, timeout), None)

    def follow(self, device: str = ".*", sensor: str = ".*", *, initial: bool = False,
               timeout: float | None = None) -> Iterator[Update | Gap]:
        """The updates of :meth:`FleetView.follow`, one at a time; with a ``timeout``, each
        one waited for at most that long (``WaitTimeoutError``). Close the iterator (or
        leave the loop) to stop following."""
        updates = self._call(_follow(self._view, device, sensor, initial), None)
        try:
            while True:
                yield self._call(_next(updates), timeout)
        finally:
            if not self._closed:
                self._call(_close(updates), 10.0)


async def _make(url: str | None, kwargs: dict[str, Any]) -> FleetView:
    return FleetView(url, **kwargs)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _follow(view: FleetView, device: str, sensor: str,
                  initial: bool) -> AsyncIterator[Update | Gap]:
    return view.follow(device, sensor, initial=initial)


async def _next(updates: AsyncIterator[T]) -> T:
    return await updates.__anext__()


async def _close(updates: AsyncIterator[Any]) -> None:
    await updates.aclose()  # type: ignore[attr-defined]


__all__ = ["BlockingFleetView"]
