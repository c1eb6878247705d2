"""Things to wait on, made so that no waiter is ever lost and each costs O(1).

katcp-python's ``until_any`` removed callbacks from a list while it was being walked, losing
waiters (bug B1). Here a waiter is a future of its own in a set; it leaves the set when it is
resolved, cancelled or timed out, and setting a flag resolves every waiter still present.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Coroutine, Set
from typing import Any, Protocol, TypeVar

from .errors import WaitTimeoutError

T = TypeVar("T")


class Timer(Protocol):
    """A scheduled call (an asyncio ``TimerHandle``, or a fake clock's in the tests)."""

    def cancel(self) -> None: ...

    def when(self) -> float: ...


class Timers(Protocol):
    """The clock the client core runs on: an asyncio loop, or a fake one in the tests."""

    def time(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> Timer: ...


def done_future(result: T) -> asyncio.Future[T]:
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


def check_timeout(timeout: float | None, what: str = "timeout", *,
                  allow_none: bool = True, allow_inf: bool = False) -> None:
    """Raise ``ValueError`` unless ``timeout`` is a finite number of seconds, at least 0.

    NaN must never reach a timer: it breaks the ordering of the event loop's timer heap, which
    then delays unrelated timers.
    """
    if timeout is None and allow_none:
        return
    if (isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and timeout >= 0
            and (math.isfinite(timeout) or allow_inf)):
        return
    raise ValueError(f"{what} must be a finite number of seconds, at least 0, not {timeout!r}")


def with_timeout(awaitable: Awaitable[T], timeout: float | None) -> asyncio.Future[T]:
    """A future for ``awaitable`` that fails with :class:`WaitTimeoutError` after ``timeout``
    seconds (``None``: never), cancelling the awaitable so that a waiter leaves its set at once.

    A timeout that is not a finite number of seconds, at least 0, raises ``ValueError`` (and the
    awaitable is cancelled, so that a waiter does not stay behind).
    """
    try:
        check_timeout(timeout)
    except ValueError:
        _discard(awaitable)
        raise
    future = asyncio.ensure_future(awaitable)
    if timeout is None:
        return future
    return asyncio.ensure_future(_bounded(future, timeout))


def _discard(awaitable: Awaitable[Any]) -> None:
    if isinstance(awaitable, Coroutine):
        awaitable.close()
    elif isinstance(awaitable, asyncio.Future):
        awaitable.cancel()


async def _bounded(future: asyncio.Future[T], timeout: float) -> T:
    try:
        return await asyncio.wait_for(future, timeout)
    except asyncio.TimeoutError:
        raise WaitTimeoutError(f"not done within {timeout:g} s") from None


def start_task(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task whose first step runs on a later turn of the loop, even under an eager task
    factory (``asyncio.eager_task_factory`` runs a task's first step inside ``create_task``).

    For tasks started in the middle of a state change: the caller finishes the change, and
    stores the task, before the task can see anything or start another change. Constructing
    the Task directly is what bypasses the loop's factory.
    """
    return asyncio.Task(coro)


async def drain(tasks: Set[asyncio.Future[Any]]) -> None:
    """Wait until every future in ``tasks`` is done, including those added while waiting.

    Whether a done future has already left the set (through a done-callback) is never relied
    upon: since Python 3.12 an await on futures that are already done can return without the
    loop running those callbacks, and eager tasks finish inside ``create_task``. So each round
    takes a snapshot of what is not done yet, and the loop ends when that snapshot is empty.
    Outcomes are retrieved, so nothing is reported as never retrieved; they are not raised.
    """
    while True:
        pending = [task for task in tasks if not task.done()]
        if not pending:
            break
        await asyncio.wait(pending)
        for task in pending:
            if not task.cancelled():
                task.exception()


class Flag:
    """A boolean that coroutines can wait to become true."""

    def __init__(self, value: bool = False) -> None:
        self._value = value
        self._waiters: set[asyncio.Future[None]] = set()

    def is_set(self) -> bool:
        return self._value

    def set(self) -> None:
        self._value = True
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._value = False

    def wait(self) -> asyncio.Future[None]:
        if self._value:
            return done_future(None)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        waiter.add_done_callback(self._waiters.discard)
        return waiter

    def fail(self, exc: BaseException) -> None:
        """Fail every current waiter with ``exc`` (the flag itself is unchanged)."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def __len__(self) -> int:
        """How many waiters are waiting (for tests and leak checks)."""
        return len(self._waiters)


async def wait_first(*waiters: asyncio.Future[Any], timeout: float | None = None) -> None:
    """Wait until one of ``waiters`` is done (or ``timeout`` seconds have passed), then cancel
    them all, so that each leaves its set whichever way the wait ended."""
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            if not waiter.cancel() and not waiter.cancelled():
                waiter.exception()  # retrieved, so never reported as lost


class Counter:
    """A count that only goes up, and that coroutines can wait to reach a value.

    Waiters on one value share a :class:`Flag`, set when the count gets there; a flag whose
    waiters have all gone is dropped, so abandoned waits leave nothing behind.
    """

    def __init__(self) -> None:
        self.value = 0
        self._reached: dict[int, Flag] = {}

    def increment(self) -> None:
        self.value += 1
        flag = self._reached.pop(self.value, None)
        if flag is not None:
            flag.set()

    def wait_for(self, value: int) -> asyncio.Future[None]:
        """A future that is done once the count is ``value`` or more."""
        if self.value >= value:
            return done_future(None)
        flag = self._reached.setdefault(value, Flag())
        waiter = flag.wait()
        waiter.add_done_callback(lambda _: self._drop_unwaited(value, flag))
        return waiter

    def _drop_unwaited(self, value: int, flag: Flag) -> None:
        if not len(flag) and self._reached.get(value) is flag:
            del self._reached[value]


class ConnectWaiters:
    """Futures waiting for the next connection; some fail after a number of failed attempts."""

    def __init__(self) -> None:
        #: Each waiter, with the failed attempts it still accepts (``None``: any number).
        self._waiters: dict[asyncio.Future[None], int | None] = {}

    def add(self, future: asyncio.Future[None], fail_after_failures: int | None) -> None:
        self._waiters[future] = fail_after_failures
        future.add_done_callback(self._forget)

    def _forget(self, future: asyncio.Future[None]) -> None:
        self._waiters.pop(future, None)

    def __len__(self) -> int:
        """How many waiters are waiting (for leak checks)."""
        return len(self._waiters)

    def resolve(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def fail(self, error: BaseException) -> None:
        waiters, self._waiters = self._waiters, {}
        for future in waiters:
            if not future.done():
                future.set_exception(error)

    def count_failure(self, error: BaseException) -> None:
        """One more attempt failed: fail the waiters that accept no more, with ``error``."""
        for future, remaining in list(self._waiters.items()):
            if remaining is None:
                continue
            if remaining <= 1:
                del self._waiters[future]
                if not future.done():
                    future.set_exception(error)
            else:
                self._waiters[future] = remaining - 1
