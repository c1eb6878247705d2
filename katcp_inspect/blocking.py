"""``InspectingClient``: the inspecting client with blocking methods, for scripts and notebooks.

It runs an :class:`~katcp_inspect.InspectingClientAsync` on an asyncio loop of its own, in a
daemon thread; each method hands a coroutine to that loop
(``asyncio.run_coroutine_threadsafe``) and blocks until it is done. So it works in a plain
script (no loop), inside Jupyter (whose loop runs in the main thread) and from several threads
at once. Observers, state callbacks and wait predicates run on the client's thread. A client
that is never stopped does not hold up the interpreter's exit (the thread is a daemon); one
that is garbage-collected is stopped on its loop. May import ``errors``,
``inspecting_client``, ``sensor``, ``sensor_wait``, ``sync_states``, ``request`` and (for its types)
``client``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from .errors import WaitTimeoutError
from .inspecting_client import InspectingClientAsync
from .request import RequestType
from .sensor import Reading, Sensor
from .sensor_wait import Condition
from .sync_states import State

if TYPE_CHECKING:
    from types import TracebackType

    from .client import Reply

T = TypeVar("T")


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _stop_then_end(client: InspectingClientAsync, timeout: float | None) -> None:
    try:
        await client.stop(timeout)
    finally:
        asyncio.get_running_loop().stop()


def _abandoned(loop: asyncio.AbstractEventLoop, client: InspectingClientAsync) -> None:
    """The blocking client was garbage-collected without stop(): stop it on its loop."""
    with contextlib.suppress(RuntimeError):  # the loop is already closed
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(_stop_then_end(client, 5.0)))


class InspectingClient:
    """A blocking :class:`~katcp_inspect.InspectingClientAsync`: the same model cache, with
    methods that return when done. ``with InspectingClient(host, port) as client:`` connects
    and stops on exit. Keywords are those of :class:`~katcp_inspect.InspectingClientAsync`.

    Every method may be called from any thread except the client's own (from an observer or a
    state callback it would wait for itself: ``RuntimeError``). Sensor objects handed out are
    safe to read from any thread: a :class:`~katcp_inspect.Reading` is an immutable tuple
    that the client's thread replaces with one assignment, so ``sensor.read()`` returns a
    whole reading, never a mix of two. Their observers run on the client's thread; to change
    what they sample, use :meth:`set_sampling_strategy`, not ``sensor.set_strategy()``.
    """

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_loop, args=(self._loop,), daemon=True,
                                        name=f"katcp-inspect {host}:{port}")
        self._thread.start()
        self._client: InspectingClientAsync = self._call(self._make(host, port, kwargs), None)
        self._stopped = False
        self._finalizer = weakref.finalize(self, _abandoned, self._loop, self._client)
        self._finalizer.atexit = False  # a daemon thread needs no help at exit

    @staticmethod
    async def _make(host: str, port: int, kwargs: dict[str, Any]) -> InspectingClientAsync:
        return InspectingClientAsync(host, port, **kwargs)

    # ------------------------------------------------------------------ running on the loop

    def _call(self, coro: Awaitable[T], timeout: float | None) -> T:
        """Run ``coro`` on the client's loop and wait for its result, at most ``timeout``
        seconds (then it is cancelled and :class:`WaitTimeoutError` raised)."""
        if threading.current_thread() is self._thread:
            if asyncio.iscoroutine(coro):
                coro.close()
            raise RuntimeError("a blocking InspectingClient method was called on the "
                               "client's own thread (from an observer or callback?)")
        future = asyncio.run_coroutine_threadsafe(_awaited(coro), self._loop)
        try:
            return future.result(timeout)
        except BaseException as exc:
            if future.done():
                raise  # what the coroutine raised
            # Our timeout, or e.g. KeyboardInterrupt in a notebook: do not leave it running.
            future.cancel()
            if isinstance(exc, concurrent.futures.TimeoutError):
                raise WaitTimeoutError(f"not done within {timeout} s") from None
            raise

    def _run(self, make: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        return self._call(_made_on_loop(make), timeout)

    # ------------------------------------------------------------------ lifecycle

    @property
    def async_client(self) -> InspectingClientAsync:
        """The asynchronous client underneath: use it only on the client's own thread."""
        return self._client

    @property
    def thread(self) -> threading.Thread:
        """The thread on which the client's loop, observers and callbacks run."""
        return self._thread

    def connect(self, timeout: float | None = None) -> None:
        """Start the client (see :meth:`InspectingClientAsync.connect`); with a ``timeout``,
        also wait that long for the first connection."""
        self._run(lambda: self._client.connect(timeout))

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the client and end its thread (waiting at most ``timeout`` seconds for the
        connection to close). Stopping twice does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self._finalizer.detach()
        with contextlib.suppress(RuntimeError):  # the loop has already ended
            asyncio.run_coroutine_threadsafe(_stop_then_end(self._client, timeout), self._loop)
        if threading.current_thread() is not self._thread:
            self._thread.join(None if timeout is None else timeout + 1.0)

    close = stop

    def __enter__(self) -> InspectingClient:
        self.connect()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ state and model

    def until_synced(self, timeout: float | None = None) -> None:
        """Block until the model is complete and the strategies applied."""
        self._run(lambda: self._client.until_synced(timeout))

    def until_connected(self, timeout: float | None = None) -> None:
        self._run(lambda: self._client.until_connected(timeout))

    @property
    def state(self) -> State:
        return self._client.state

    @property
    def synced(self) -> bool:
        return self._client.synced

    @property
    def sensors(self) -> list[str]:
        """Names of the model's sensors (read on the client's thread)."""
        return self._run(lambda: _done(self._client.sensors))

    @property
    def requests(self) -> list[str]:
        return self._run(lambda: _done(self._client.requests))

    def get_sensor(self, name: str, timeout: float | None = None) -> Sensor | None:
        """The cached sensor object (looked up if the model does not have it yet), or None."""
        return self._run(lambda: self._client.future_get_sensor(name), timeout)

    def get_request(self, name: str, timeout: float | None = None) -> RequestType | None:
        return self._run(lambda: self._client.future_get_request(name), timeout)

    # ------------------------------------------------------------------ requests and sensors

    def simple_request(self, request: str, *args: Any, timeout: float | None = None,
                       **kwargs: Any) -> Reply:
        """``(reply, informs)`` of ``?request args...``; as on the asynchronous client, a
        timeout or lost connection comes back as a ``fail`` reply."""
        return self._run(lambda: self._client.simple_request(
            request, *args, timeout=timeout, **kwargs))

    def wait(self, name: str, condition: Condition, timeout: float | None = None) -> Reading:
        """Block until sensor ``name`` meets ``condition`` (see
        :meth:`InspectingClientAsync.wait`; the predicate runs on the client's thread)."""
        return self._run(lambda: self._client.wait(name, condition, timeout))

    def set_sampling_strategy(self, name: str, strategy: str, *params: Any) -> Reply:
        return self._run(lambda: self._client.set_sampling_strategy(name, strategy, *params))

    def set_sampling_strategies(self, names: Any, strategy: str, *params: Any) -> Reply:
        return self._run(lambda: self._client.set_sampling_strategies(names, strategy, *params))


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


async def _made_on_loop(make: Callable[[], Awaitable[T]]) -> T:
    # The client's futures must be made on its loop: ``make`` is called there.
    return await make()


async def _done(value: T) -> T:
    return value


__all__ = ["InspectingClient"]
