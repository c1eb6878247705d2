"""Waiting until a sensor of an inspecting client meets a condition (katcp-python's
``KATCPResource.wait``).

A wait is one future, resolved by an observer attached to the sensor for as long as the wait
lasts and by one timer: nothing is added to the ``#sensor-status`` path but the observer's
call. A sensor the user samples with no strategy is sampled with ``event`` for the wait,
through the client's :class:`~katcp_inspect.sampling.StrategyBook` (a held strategy that the
user's own choices override, and that the sync loop applies again after each reconnect), and
set back once no wait needs it. May import ``errors``, ``sampling``, ``sensor``, ``text`` and
``waiting``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable, Union

from .errors import ClientClosedError, UnknownSensorError, WaitTimeoutError
from .sampling import NONE, SamplingReconciler, make_strategy
from .sensor import Reading, Sensor
from .text import printable
from .waiting import check_timeout, with_timeout

if TYPE_CHECKING:
    from .inspecting_client import InspectingClientAsync

#: What a wait waits for: a value (compared with ``reading.value``) or a predicate over the
#: :class:`~katcp_inspect.sensor.Reading`.
Condition = Union[Callable[[Reading], object], Any]

#: The strategy a wait samples with when the user samples the sensor with none.
WAIT_STRATEGY = make_strategy("event")


def as_predicate(condition: Condition) -> Callable[[Reading], object]:
    if callable(condition):
        return condition
    return lambda reading: reading.value == condition


class _Waiter:
    """The observer of one wait: resolves its future with the first reading that satisfies
    the predicate (or with what the predicate raised)."""

    __slots__ = ("future", "predicate")

    def __init__(self, predicate: Callable[[Reading], object],
                 future: asyncio.Future[Reading]) -> None:
        self.predicate = predicate
        self.future = future

    def update(self, sensor: Any, reading: Reading) -> None:
        if self.future.done():
            return
        try:
            satisfied = self.predicate(reading)
        except Exception as exc:
            self.future.set_exception(exc)
            return
        if satisfied:
            self.future.set_result(reading)


def _expire(future: asyncio.Future[Reading], timeout: float) -> None:
    if not future.done():
        future.set_exception(WaitTimeoutError(f"condition not met within {timeout:g} s"))


def _stopped_first(future: asyncio.Future[Reading], stopped: asyncio.Future[None]) -> None:
    if not stopped.cancelled():
        _closed(future)


class SensorWaits:
    """The waits of one inspecting client."""

    def __init__(self, client: InspectingClientAsync, sampling: SamplingReconciler,
                 current: Callable[[str], Any], stopped: Callable[[], bool]) -> None:
        self._client = client
        self._sampling = sampling
        # The sensor object cached now: a sensor the device redescribes gets a new object
        # (carrying the observers over), from which the waiter must be detached too.
        self._current = current
        self._stopped = stopped

    async def wait(self, name: str, condition: Condition, timeout: float | None) -> Reading:
        """See :meth:`InspectingClientAsync.wait`."""
        check_timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        sensor: Sensor | None = await with_timeout(self._client.future_get_sensor(name),
                                                   timeout)
        if sensor is None:
            if self._stopped():
                raise ClientClosedError("the inspecting client is stopped")
            raise UnknownSensorError(f"the device has no sensor {printable(name)}")
        predicate = as_predicate(condition)
        reading = sensor.read()
        if predicate(reading):
            return reading
        future: asyncio.Future[Reading] = loop.create_future()
        waiter = _Waiter(predicate, future)
        timer = (None if deadline is None or timeout is None
                 else loop.call_at(deadline, _expire, future, timeout))
        stopped = self._client.until_stopped()
        stopped.add_done_callback(lambda done: _stopped_first(future, done))
        sensor.attach(waiter)
        held = self._sampling.book.user_wanted(name) == NONE
        try:
            if held:
                self._sampling.book.hold(name, WAIT_STRATEGY)
                await self._apply(name, deadline)
            return await future
        finally:
            if timer is not None:
                timer.cancel()
            stopped.cancel()
            future.cancel()  # if this wait was cancelled, nothing may resolve it later
            self._detach(name, sensor, waiter)
            if held:
                self._release(name)
                await self._apply(name, None)

    def _detach(self, name: str, sensor: Sensor, waiter: _Waiter) -> None:
        sensor.detach(waiter)
        current = self._current(name)
        if current is not None and current is not sensor:
            current.detach(waiter)

    def _release(self, name: str) -> None:
        # The hold's request may have timed out and still reached the device: take it as
        # applied, so that restoring sends what the user wants whatever the device did.
        self._sampling.confirmed.setdefault(name, WAIT_STRATEGY)
        self._sampling.book.release(name)

    async def _apply(self, name: str, deadline: float | None) -> None:
        """Bring the device's strategy for ``name`` to what the book wants, within the
        wait's deadline if there is one (a new connection gets it from the sync loop)."""
        if not self._client.connected:
            return
        timeout = self._client.sync_timeout
        if deadline is not None:
            timeout = max(0.0, min(timeout, deadline - asyncio.get_running_loop().time()))
        await self._sampling.apply([name], timeout)


def _closed(future: asyncio.Future[Reading]) -> None:
    if not future.done():
        future.set_exception(ClientClosedError("the inspecting client was stopped"))
