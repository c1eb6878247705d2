"""``InspectingClientAsync``: the sync state loop and the device model cache.

The public API is that of katcp-python's ``katcp.inspecting_client.InspectingClientAsync`` (same
names, signatures, defaults, state tuples and callback contract), without its bugs. One task,
the state loop, makes every state transition; everything else (connection events,
``#interface-changed``, lookups that found something new) records what needs doing and wakes it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Iterable
from typing import Any, Callable, NamedTuple, Optional

import attrs
from tornado.ioloop import IOLoop

from . import kattypes
from .backoff import ExponentialRandomBackoff
from .client import ConnectionState, DeviceClient, Reply
from .errors import ClientClosedError, KatcpInspectError
from .kattypes import STATUS_FROM_WIRE, SensorStatus
from .message import Message
from .model import (
    AttrDict,
    DeviceModel,
    RequestInfo,
    SensorInfo,
    parse_help,
    parse_sensor_list,
    parse_timeout_hints,
)
from .request import Request, RequestType
from .sampling import Strategy, StrategyBook, for_protocol, format_strategy, make_strategy
from .sensor import Sensor
from .stats import InspectingStats, OnceLogger
from .text import printable
from .waiting import Flag, check_timeout, start_task, with_timeout

ic_logger = logging.getLogger("katcp_inspect.inspecting_client")

#: Names per bulk ``?sensor-sampling`` request, so that no line gets huge.
BULK_SAMPLING_CHUNK = 500
#: Unknown sensors (names in updates but not in the model) looked up one by one, per connection.
MAX_UNKNOWN_LOOKUPS = 100
#: Past this many changed names in one half (requests or sensors), that half is listed whole:
#: a burst of named ``#interface-changed`` costs one listing, not a request per name.
MAX_NAMED_INSPECTIONS = 100


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


class SyncError(KatcpInspectError):
    """An inspection failed: the device refused it, timed out, or the connection went away."""


@attrs.define
class _Work:
    """What the model needs from the device: everything, or some names."""

    all_requests: bool = False
    all_sensors: bool = False
    requests: set[str] = attrs.Factory(set)
    sensors: set[str] = attrs.Factory(set)

    def __bool__(self) -> bool:
        return self.all_requests or self.all_sensors or bool(self.requests or self.sensors)

    def merge(self, other: _Work) -> None:
        self.all_requests |= other.all_requests
        self.all_sensors |= other.all_sensors
        self.requests |= other.requests
        self.sensors |= other.sensors

    def widened(self) -> _Work:
        """The same work with each half that names items listed whole instead."""
        return _Work(all_requests=self.all_requests or bool(self.requests),
                     all_sensors=self.all_sensors or bool(self.sensors))

    def coalesced(self) -> _Work:
        """Many names of one half are cheaper as one listing of that half."""
        if len(self.requests) <= MAX_NAMED_INSPECTIONS >= len(self.sensors):
            return self
        return _Work(self.all_requests or len(self.requests) > MAX_NAMED_INSPECTIONS,
                     self.all_sensors or len(self.sensors) > MAX_NAMED_INSPECTIONS,
                     self.requests if len(self.requests) <= MAX_NAMED_INSPECTIONS else set(),
                     self.sensors if len(self.sensors) <= MAX_NAMED_INSPECTIONS else set())


class _Inconsistent(SyncError):
    """An answer that cannot be the reply to the request it matched: a named inspection that
    lists other names, or a reply whose count disagrees with its informs. Without message ids
    (KATCP 4) it is how a duplicated or stray reply shows; it is retried as a whole listing,
    which no stray answer to a named request can be mistaken for."""


@attrs.frozen
class _Call:
    """One inspection request: what it is for, and the name it asks about (None: all)."""

    kind: str
    request: str
    asked: str | None

    @property
    def is_pattern(self) -> bool:
        return self.asked is not None and self.asked.startswith("/") and self.asked.endswith("/")


def _count(reply: Message) -> int | None:
    """The number of informs a listing's reply (``!name ok N``) announces, if it does."""
    if len(reply.arguments) < 2:
        return None
    try:
        return int(reply.arguments[1])
    except ValueError:
        return None


def _failed(exc: BaseException) -> asyncio.Future[Any]:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    future.set_exception(exc)
    return future


def _now(make: Callable[[str], Any], name: str) -> asyncio.Future[Any]:
    """A future already holding ``make(name)`` (or what it raised)."""
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(make(name))
    except Exception as exc:
        future.set_exception(exc)
    return future


StateCallback = Callable[[State, Optional[AttrDict]], Any]
SensorUpdater = Callable[[float, bytes, bytes], None]


class InspectingClientAsync:
    """A device model cache that keeps itself in sync with a KATCP device.

    Start it with :meth:`connect` (or :meth:`start`); it connects, inspects the device's
    requests and sensors, reports progress through the state callback and the ``until_*``
    waiters, and follows the device through reconnects and interface changes until
    :meth:`stop`. See katcp-python's documentation for the contract; differences are listed in
    the migration guide.

    ``auto_sampling`` (new, keyword only) samples every sensor with that strategy after each
    sync, e.g. ``"auto"`` or ``("period", 1.0)``, so the cache holds live values without any
    user code.
    """

    sensor_factory: Callable[..., Any] = Sensor
    request_factory: Callable[..., Any] = RequestType
    #: Seconds allowed for each inspection request (and for lookups of unknown names).
    sync_timeout: float = 20
    initial_resync_timeout: float = 5
    max_resync_timeout: float = 90

    def __init__(self, host: str, port: int, ioloop: IOLoop | None = None,
                 initial_inspection: bool | None = None, auto_reconnect: bool = True,
                 logger: logging.Logger = ic_logger, *,
                 auto_sampling: str | tuple[Any, ...] | None = None) -> None:
        self.ioloop = ioloop
        self.initial_inspection = True if initial_inspection is None else bool(initial_inspection)
        self.resync_delay: ExponentialRandomBackoff | None = None
        self.valid_states = VALID_STATES
        self.stats = InspectingStats()
        self._logger = logger
        self._problems = OnceLogger(logger)
        self._model = DeviceModel()
        self._reported = self._model.snapshot()
        self._sensor_objects: dict[str, Any] = {}
        self._updaters: dict[bytes, SensorUpdater] = {}
        self._request_objects: dict[str, Any] = {}
        if isinstance(auto_sampling, str):
            auto_sampling = (auto_sampling,)
        self._strategies = StrategyBook(
            make_strategy(*auto_sampling) if auto_sampling is not None else None)
        self._applied: dict[str, Strategy] = {}
        self._state = DISCONNECTED
        self._last_reported: State | None = None
        self._state_cb: StateCallback | None = None
        self._state_waiters: dict[asyncio.Future[None], Callable[[State], bool]] = {}
        self._connected_waiters: set[asyncio.Future[None]] = set()
        #: Between connect() and stop() (or the end of the loop when the connection closes
        #: for good).
        self._running = False
        #: Stopped since the last connect(); before the first one, waiters wait for it.
        self._stopped = False
        #: Bumped by every connect() and stop(): the run a state loop belongs to.
        self._run = 0
        self._loop_task: asyncio.Future[None] | None = None
        self._wake = Flag()
        self._work = _Work()
        self._epoch = 0
        self._dirty = False
        self._unknown_asked: set[str] = set()
        self._unknown_relisted = False
        self._update_on_lookup = True
        #: Wire timestamp units per second (KATCP 4: milliseconds); dividing by it is exact
        #: for whole milliseconds, where multiplying by 0.001 is not.
        self._ticks_per_second = 1.0
        self.katcp_client: DeviceClient = self.inform_hook_client_factory(
            host, port, auto_reconnect=auto_reconnect, logger=logger)
        client = self.katcp_client
        client.hook_inform_arguments("sensor-status", self._on_sensor_status)
        client.hook_inform("interface-changed", self._on_interface_changed)
        client.hook_inform("device-changed", self._on_interface_changed)
        client.hook_unhandled_inform(self._on_stray_inform)
        client.add_connected_callback(self._on_connected)
        client.add_disconnected_callback(self._on_disconnected)
        # Without auto-reconnect a failed attempt closes the client, which ends the loop.
        client.add_failed_connect_callback(lambda error: self._poke())

    def inform_hook_client_factory(self, host: str, port: int, *args: Any,
                                   **kwargs: Any) -> DeviceClient:
        """Build the low-level client; override in a subclass to customise it."""
        return DeviceClient(host, port, *args, **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def state(self) -> State:
        return self._state

    @property
    def synced(self) -> bool:
        return self._state.synced

    @property
    def connected(self) -> bool:
        return self.katcp_client.is_connected

    def is_connected(self) -> bool:
        return self.katcp_client.is_connected

    @property
    def sensors(self) -> list[str]:
        """Names of the sensors in the model, in the device's order."""
        return list(self._model.sensors)

    @property
    def requests(self) -> list[str]:
        """Names of the requests in the model, in the device's order."""
        return list(self._model.requests)

    @property
    def bind_address(self) -> tuple[str, int]:
        return self.katcp_client.host, self.katcp_client.port

    @property
    def bind_address_string(self) -> str:
        return self.katcp_client.address

    def preset_protocol_flags(self, flags: Any) -> None:
        """Use these flags instead of waiting for the device's greeting."""
        self.katcp_client.preset_flags = flags

    def set_ioloop(self, ioloop: IOLoop | None = None) -> None:
        self.ioloop = ioloop

    def set_state_callback(self, cb: StateCallback | None) -> None:
        """Call ``cb(state, model_changes)`` on every change of state (a plain function or a
        coroutine function; it is awaited before the next transition)."""
        self._state_cb = cb

    # ------------------------------------------------------------------ lifecycle
    #
    # connect() and stop() take effect in the order they are called, and the last one decides:
    # each bumps ``_run``, and a state loop (or a start still waiting for the previous run to
    # end) belongs to one run and stands down as soon as it is no longer the current one. A
    # new run starts only once the previous run's loop has ended and its connection is
    # closed, so there is never more than one state loop.

    def connect(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Start the client and its state loop; resolves once started. With a ``timeout``,
        also wait that long for the first (negotiated) connection; on expiry the client is
        stopped again and can be connected anew, and ``TimeoutError`` is raised.

        Right after :meth:`stop` (awaited or not), the new run starts once the old one has
        ended. If :meth:`stop` is called before this start happened, the stop wins: the future
        resolves without starting anything, or, with a ``timeout``, fails with
        :class:`ClientClosedError`, as it does when :meth:`stop` ends the wait for the first
        connection. Connecting a running client fails with ``RuntimeError``.
        """
        check_timeout(timeout)
        if self._running:
            return _failed(RuntimeError("the inspecting client is already running"))
        self._running = True
        self._stopped = False
        self._run += 1
        return asyncio.ensure_future(self._connect(self._run, timeout))

    start = connect

    async def _connect(self, run: int, timeout: float | None) -> None:
        await self._previous_run_ended()
        if run != self._run:
            if timeout:
                raise ClientClosedError("the inspecting client was stopped before it connected")
            return
        self.katcp_client.start()
        self._loop_task = start_task(self._state_loop(run))
        if timeout:
            try:
                await self.until_connected(timeout)
            except BaseException:
                if run == self._run:
                    await self.stop()
                raise

    async def _previous_run_ended(self) -> None:
        previous = self._loop_task
        if previous is not None and not previous.done():
            await asyncio.wait({previous})
        if self.katcp_client.state is not ConnectionState.CLOSED:
            await asyncio.wait({self.katcp_client.until_closed()})

    def stop(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Stop the state loop and close the connection. The returned future (which never
        fails) resolves once this run has ended: its loop has made its last report and the
        connection is closed, whatever is called afterwards; awaiting it is optional.

        Every ``until_*`` waiter then pending ends at once: those whose condition holds for a
        stopped client (e.g. :meth:`until_not_synced`) resolve, the others fail with
        :class:`ClientClosedError`, as do waiters made while the client is stopped.
        """
        check_timeout(timeout)
        self._running = False
        self._stopped = True
        self._run += 1
        self._end_waiters()
        self._wake.set()
        closed = self.katcp_client.close()
        loop_task = self._loop_task
        if loop_task is asyncio.current_task():
            loop_task = None  # called by the state callback: the loop ends once it returns
        return asyncio.ensure_future(self._stop(closed, loop_task, timeout))

    close = stop

    async def _stop(self, closed: asyncio.Future[None], loop_task: asyncio.Future[None] | None,
                    timeout: float | None) -> None:
        try:
            await with_timeout(self._ended(closed, loop_task), timeout)
        except TimeoutError:
            self._logger.warning("%s: stop() still waiting after %s s", self.bind_address_string,
                                 timeout)

    @staticmethod
    async def _ended(closed: asyncio.Future[None],
                     loop_task: asyncio.Future[None] | None) -> None:
        await closed
        if loop_task is not None:
            await asyncio.wait({loop_task})

    def until_stopped(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves once the client is stopped (at once if it was never started): by
        :meth:`stop`, or because the connection closed for good (``auto_reconnect=False``)."""
        return with_timeout(self._wait_stopped(), timeout)

    async def _wait_stopped(self) -> None:
        loop_task = self._loop_task
        if loop_task is not None:
            await asyncio.wait({loop_task})
        await self.katcp_client.until_closed()

    def join(self, timeout: float | None = None) -> asyncio.Future[None]:
        """The same as :meth:`until_stopped` (katcp-python's ``join`` did nothing here)."""
        return self.until_stopped(timeout)

    # ------------------------------------------------------------------ waiting on states

    def _until(self, predicate: Callable[[State], bool],
               timeout: float | None) -> asyncio.Future[None]:
        """A waiter for a state. Made before the first :meth:`connect` it waits for it; made
        while stopped it resolves or fails at once (see :meth:`stop`)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if predicate(DISCONNECTED if self._stopped else self._state):
            future.set_result(None)
        elif self._stopped:
            future.set_exception(ClientClosedError("the inspecting client is stopped"))
        else:
            self._state_waiters[future] = predicate
            future.add_done_callback(self._forget_waiter)
        return with_timeout(future, timeout)

    def _end_waiters(self) -> None:
        """Resolve or fail every waiter: the client is stopped."""
        stopped = ClientClosedError("the inspecting client was stopped")
        waiters, self._state_waiters = self._state_waiters, {}
        for future, predicate in waiters.items():
            if future.done():
                continue
            if predicate(DISCONNECTED):
                future.set_result(None)
            else:
                future.set_exception(stopped)
        connected, self._connected_waiters = self._connected_waiters, set()
        for future in connected:
            if not future.done():
                future.set_exception(stopped)

    def _forget_waiter(self, future: asyncio.Future[None]) -> None:
        self._state_waiters.pop(future, None)

    def until_state(self, desired_state: State, timeout: float | None = None
                    ) -> asyncio.Future[None]:
        if desired_state not in VALID_STATES:
            raise ValueError(f"{desired_state} is not a valid state")
        return self._until(lambda s: s == desired_state, timeout)

    def until_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        return self._until(lambda s: s == SYNCED, timeout)

    def until_not_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        return self._until(lambda s: not s.synced, timeout)

    def until_data_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        return self._until(lambda s: s.data_synced, timeout)

    def until_connected(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Wait for a negotiated connection (the protocol flags are known); like the other
        ``until_*`` waiters it ends when the client is stopped."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._stopped:
            future.set_exception(ClientClosedError("the inspecting client is stopped"))
        elif self._running and self.katcp_client.is_connected:
            future.set_result(None)
        else:
            self._connected_waiters.add(future)
            future.add_done_callback(self._connected_waiters.discard)
        return with_timeout(future, timeout)

    # ------------------------------------------------------------------ the state loop

    async def _report(self, state: State, model_changes: AttrDict | None = None) -> None:
        if state == self._last_reported and model_changes is None:
            return
        self._last_reported = self._state = state
        self._logger.debug("%s: %s %s", self.bind_address_string, state, model_changes or "")
        for future, predicate in list(self._state_waiters.items()):
            if predicate(state) and not future.done():
                future.set_result(None)
        cb = self._state_cb
        if cb is None:
            return
        try:
            result = cb(state, model_changes)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.stats.callback_errors += 1
            self._logger.exception("State callback %r raised for %s", cb, state)

    async def _state_loop(self, run: int) -> None:
        backoff = self.resync_delay = ExponentialRandomBackoff(self.initial_resync_timeout,
                                                               self.max_resync_timeout)
        synced_epoch = -1
        try:
            while run == self._run and self.katcp_client.running:
                try:
                    synced_epoch = await self._step(run, backoff, synced_epoch)
                except Exception:
                    # A bug (ours, or in user code we call) must not end the loop: log it
                    # with its traceback and try again after the backoff.
                    self.stats.failed_syncs += 1
                    delay = backoff.delay
                    backoff.failed()
                    self._logger.exception("%s: the state loop failed; retrying in %.2f s",
                                           self.bind_address_string, delay)
                    await self._sleep_until(lambda: False, delay)
        finally:
            if run == self._run:  # the connection closed for good: the client is stopped
                self._running = False
                self._stopped = True
                self._end_waiters()
            await self._report(DISCONNECTED)

    async def _step(self, run: int, backoff: ExponentialRandomBackoff, synced_epoch: int) -> int:
        """One round of the loop: wait for a connection; or inspect what is needed, report,
        apply strategies, report synced and wait for more work. Returns the connection epoch
        whose first inspection has been started."""
        if not self.is_connected():
            await self._report(DISCONNECTED)
            await self._sleep_until(self.is_connected)
            return synced_epoch
        epoch = self._epoch
        new_connection = epoch != synced_epoch
        if new_connection:
            self._work = _Work(all_requests=True, all_sensors=True)
            if not self.initial_inspection:  # katcp-python: skip the first one only
                self.initial_inspection = True
                self._work = _Work()
        work, self._work = self._work, _Work()
        if work or new_connection:
            await self._report(SYNCING)
        if work and not await self._inspect_or_back_off(work, run, backoff):
            return epoch
        changes = self._model.changes_since(self._reported)
        self._reported = self._model.snapshot()
        self._dirty = False
        if work or changes is not None:
            await self._report(DATA_SYNCED_CHANGED if changes else DATA_SYNCED, changes)
        changes = None  # not kept alive while the loop waits
        if self.is_connected() and epoch == self._epoch:
            await self._apply_sampling()
        # Synced only with nothing known to be left to do: no change announced meanwhile, no
        # lookup's change unreported, the same connection, not stopped.
        if (self._work or self._dirty or run != self._run or not self.is_connected()
                or epoch != self._epoch):
            return epoch
        await self._report(SYNCED)
        await self._sleep_until(lambda: bool(self._work) or self._dirty)
        return epoch

    async def _inspect_or_back_off(self, work: _Work, run: int,
                                   backoff: ExponentialRandomBackoff) -> bool:
        """Inspect ``work``; on failure put it back (listed whole if an answer was
        inconsistent), log, and wait for the backoff. Whether it succeeded."""
        try:
            await self._inspect(work)
        except Exception as exc:
            self._work.merge(work.widened() if isinstance(exc, _Inconsistent) else work)
            if not self.is_connected() or run != self._run:
                return False
            self.stats.failed_syncs += 1
            delay = backoff.delay
            backoff.failed()
            expected = isinstance(exc, (KatcpInspectError, ConnectionError, TimeoutError))
            # A bug (ours, or a user's factory) is logged with its traceback.
            self._logger.warning("%s: sync failed (%s); retrying in %.2f s",
                                 self.bind_address_string, str(exc), delay,
                                 exc_info=not expected)
            await self._sleep_until(lambda: False, delay)
            return False
        backoff.success()
        return True

    async def _sleep_until(self, condition: Callable[[], bool],
                           delay: float | None = None) -> None:
        """Wait until ``condition()`` holds, the connection changes, we are stopped, or
        ``delay`` passes; every event source sets the wake flag."""
        run = self._run
        epoch = self._epoch
        connected = self.katcp_client.is_connected
        loop = asyncio.get_running_loop()
        deadline = None if delay is None else loop.time() + delay
        while (run == self._run and self.katcp_client.running and not condition()
               and epoch == self._epoch and connected == self.katcp_client.is_connected):
            self._wake.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await with_timeout(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _poke(self) -> None:
        self._wake.set()

    # ------------------------------------------------------------------ events

    def _on_connected(self) -> None:
        flags = self.katcp_client.protocol_flags
        ticks = 1000.0 if flags is not None and flags.major < 5 else 1.0
        if ticks != self._ticks_per_second:  # another protocol version: decode anew
            self._ticks_per_second = ticks
            self._updaters.clear()
        self._epoch += 1
        self._applied = {}
        self._unknown_asked = set()
        self._unknown_relisted = False
        connected, self._connected_waiters = self._connected_waiters, set()
        for future in connected:
            if not future.done():
                future.set_result(None)
        self._poke()

    def _on_disconnected(self) -> None:
        self._epoch += 1
        now = time.time()
        for sensor in self._sensor_objects.values():
            try:
                sensor.set(now, SensorStatus.UNREACHABLE, sensor.read().value)
            except Exception:
                self.stats.callback_errors += 1
                self._logger.exception("Marking %r unreachable failed", sensor)
        self._poke()

    def _on_interface_changed(self, message: Message) -> None:
        args = [a.decode("utf-8", "surrogateescape") for a in message.arguments]
        work = self._work
        if len(args) >= 2 and args[0] in ("sensor", "sensor-list"):
            work.sensors.add(args[1])
        elif len(args) >= 2 and args[0] in ("request", "request-list"):
            work.requests.add(args[1])
        elif args == ["sensor-list"]:
            work.all_sensors = True
        elif args == ["request-list"]:
            work.all_requests = True
        else:
            if message.name == "device-changed":
                self._logger.debug("%s sent #device-changed (treated as #interface-changed)",
                                   self.bind_address_string)
            work.all_requests = work.all_sensors = True
        self._poke()

    def _on_stray_inform(self, message: Message) -> None:
        """A listing inform that answers no request: a late or duplicated answer. Without
        message ids, one that disagrees with the model means that a stray answer may have
        been taken for the real one (a duplicated refusal looks like any other): list that
        half again. One that agrees (the usual duplicate) changes nothing; with message ids
        nothing can be mistaken for the answer to another request."""
        flags = self.katcp_client.protocol_flags
        if flags is None or flags.message_ids:
            return
        if message.name == "sensor-list":
            try:
                info = SensorInfo.from_arguments(message.arguments)
            except ValueError:
                return
            if self._model.sensors.get(info.name) != info:
                self._relist_after_stray(message, sensors=True)
        elif message.name == "help" and message.arguments:
            found, _ = parse_help([message])
            if any(self._described(name) != text for name, text in found.items()):
                self._relist_after_stray(message, sensors=False)

    def _described(self, name: str) -> str | None:
        info = self._model.requests.get(name)
        return None if info is None else info.description

    def _relist_after_stray(self, message: Message, sensors: bool) -> None:
        self.stats.inconsistent_answers += 1
        self._problems.log(("stray", message.name), "%s: #%s answering no request disagrees "
                           "with the model; listing again", self.bind_address_string,
                           message.name)
        if sensors:
            self._work.all_sensors = True
        else:
            self._work.all_requests = True
        self._poke()

    # ------------------------------------------------------------------ inspection

    def inspect(self) -> asyncio.Future[AttrDict | None]:
        """Inspect everything now; resolves to the model changes (or None)."""
        return asyncio.ensure_future(self._inspect_and_diff(_Work(True, True)))

    def inspect_requests(self, name: str | None = None, timeout: float | None = None
                         ) -> asyncio.Future[AttrDict | None]:
        work = _Work(all_requests=name is None, requests=set() if name is None else {name})
        return asyncio.ensure_future(self._inspect_and_diff(work, timeout, part="requests"))

    def inspect_sensors(self, name: str | None = None, timeout: float | None = None
                        ) -> asyncio.Future[AttrDict | None]:
        work = _Work(all_sensors=name is None, sensors=set() if name is None else {name})
        return asyncio.ensure_future(self._inspect_and_diff(work, timeout, part="sensors"))

    async def _inspect_and_diff(self, work: _Work, timeout: float | None = None,
                                part: str | None = None) -> AttrDict | None:
        before = self._model.snapshot()
        await self._inspect(work, timeout)
        self._poke()
        changes = self._model.changes_since(before)
        if changes is not None and part is not None:
            return changes.get(part)
        return changes

    async def _ask(self, call: _Call, timeout: float | None) -> Reply | None:
        """Send one inspection request; ``None`` means a named lookup found nothing (the
        device's wording of its refusal does not matter: B4)."""
        args = () if call.asked is None else (call.asked,)
        reply, informs = await self.katcp_client.request_raw(
            call.request, *args, timeout=self.sync_timeout if timeout is None else timeout)
        if reply.reply_ok():
            return reply, informs
        if call.asked is not None:
            return None
        raise SyncError(f"?{call.request} failed during sync: {reply}")

    def _inconsistent(self, call: _Call, why: str) -> _Inconsistent:
        self.stats.inconsistent_answers += 1
        asked = "" if call.asked is None else " " + printable(call.asked)
        self._problems.log(("inconsistent", call.kind), "%s: inconsistent answer to ?%s%s "
                           "(%s); not applied, listed again", self.bind_address_string,
                           call.request, asked, why)
        return _Inconsistent(f"inconsistent answer to ?{call.request}{asked}: {why}")

    def _calls(self, work: _Work) -> list[_Call]:
        flags = self.katcp_client.protocol_flags
        hints = flags is not None and flags.request_timeout_hints
        calls = []
        for asked in [None] if work.all_requests else sorted(work.requests):
            calls.append(_Call("help", "help", asked))
            if hints:
                calls.append(_Call("hint", "request-timeout-hint", asked))
        if work.all_sensors:
            calls.append(_Call("sensors", "sensor-list", None))
        else:
            calls.extend(_Call("sensors", "sensor-list", asked) for asked in sorted(work.sensors))
        return calls

    async def _inspect(self, work: _Work, timeout: float | None = None) -> None:
        """Ask the device for what ``work`` names, all requests in flight together, then apply
        the results to the model in one step. If anything fails, or any answer cannot be the
        reply to its request, nothing is applied."""
        work = work.coalesced()
        calls = self._calls(work)
        results = await asyncio.gather(*(self._ask(call, timeout) for call in calls),
                                       return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if isinstance(result, (KatcpInspectError, ConnectionError, TimeoutError)):
                    raise SyncError(f"inspection of {self.bind_address_string} failed: "
                                    f"{result}") from result
                raise result
        answers: list[tuple[_Call, dict[str, Any]]] = []
        hints: dict[str, float] = {}
        for call, result in zip(calls, results):
            if isinstance(result, BaseException):  # all raised above; this narrows the type
                raise result
            found = {} if result is None else self._parse(call, *result)
            if call.kind == "hint":
                hints.update(found)
            else:
                answers.append((call, found))
        self._apply(answers, hints)
        self.stats.syncs += 1

    def _parse(self, call: _Call, reply: Message, informs: list[Message]) -> dict[str, Any]:
        """One answer's informs, by name, checked against the reply: it cannot be the answer
        to ``call`` if its count (``!name ok N``) matches neither the informs that came nor the
        well-formed ones, or if a named inspection's answer names anything else."""
        found: dict[str, Any]
        if call.kind == "help":
            descriptions, problems = parse_help(informs)
            found = {name: RequestInfo(name, text) for name, text in descriptions.items()}
        elif call.kind == "hint":
            found, problems = parse_timeout_hints(informs)
        else:
            found, problems = parse_sensor_list(informs)
        for problem in problems:
            self.stats.bad_informs += 1
            self._problems.log(("inform", call.kind), "%s: %s", self.bind_address_string,
                               problem)
        count = _count(reply)
        if count is not None and count not in (len(informs), len(informs) - len(problems)):
            raise self._inconsistent(call, f"the reply counts {count} informs, "
                                           f"{len(informs)} came")
        if call.asked is not None and not call.is_pattern and any(
                name != call.asked for name in found):
            raise self._inconsistent(call, "it names " + printable(
                ", ".join(sorted(found))[:200]))
        return found

    def _apply(self, answers: list[tuple[_Call, dict[str, Any]]],
               hints: dict[str, float]) -> None:
        """Apply every answer of one inspection: a whole listing replaces its half; a named
        one covers its name (and what a ``/pattern/`` returned). Linear in the answers."""
        before = self._model.snapshot()
        for call, found in answers:
            if call.kind == "help":
                requests = {name: attrs.evolve(info, timeout_hint=hints[name])
                            if name in hints else info for name, info in found.items()}
                self._model.apply(requests=requests, asked_request=call.asked)
            else:
                self._model.apply(sensors=found, asked_sensor=call.asked)
        changes = self._model.changes_since(before)
        if changes is None:
            return
        self._dirty = True
        self._refresh_objects(changes)

    def _refresh_objects(self, changes: AttrDict) -> None:
        """Drop cached objects of removed items; rebuild those of modified ones (B2), moving
        the observers the user attached to the new object."""
        if "requests" in changes:
            for name in changes.requests.removed:
                self._request_objects.pop(name, None)
            self.katcp_client.timeout_hints = {
                n: i.timeout_hint for n, i in self._model.requests.items()
                if i.timeout_hint is not None}
        if "sensors" in changes:
            for name in changes.sensors.removed:
                old = self._sensor_objects.pop(name, None)
                self._updaters.pop(name.encode("utf-8", "surrogateescape"), None)
                self._applied.pop(name, None)
                if old is not None and name in self._model.sensors:
                    new = self._sensor_object(name)
                    for observer in getattr(old, "observers", ()):
                        new.attach(observer)

    # ------------------------------------------------------------------ model objects

    def _sensor_object(self, name: str) -> Any:
        sensor = self._sensor_objects.get(name)
        if sensor is not None:
            return sensor
        info = self._model.sensors[name]
        stype, known = kattypes.type_from_name(info.type_name)
        if not known:
            self._problems.log(("type", info.type_name), "%s: sensor %s has unknown type %r; "
                               "kept as a string sensor", self.bind_address_string,
                               printable(name), info.type_name)
        try:
            params = kattypes.parse_params(stype, info.params)
        except ValueError:
            self._problems.log("params", "%s: sensor %s has unparsable params %r; ignored",
                               self.bind_address_string, printable(name), info.params)
            params = []
        sensor = self.sensor_factory(name=info.name, sensor_type=stype,
                                     description=info.description, units=info.units,
                                     params=params)
        if isinstance(sensor, Sensor):
            sensor._strategy_setter = self
        self._sensor_objects[info.name] = sensor
        return sensor

    def _make_updater(self, sensor: Any, stype: kattypes.SensorType) -> SensorUpdater:
        """How wire readings reach ``sensor``: straight into our own :class:`Sensor`, or
        decoded here for objects from other factories, and for timestamp-typed values from a
        KATCP v4 device (milliseconds)."""
        major = 5 if self._ticks_per_second == 1.0 else 4
        if isinstance(sensor, Sensor) and (stype != kattypes.SensorType.TIMESTAMP or major >= 5):
            return sensor.update_from_wire
        decode = kattypes.value_decoder(stype, major=major)

        def updater(timestamp: float, raw_status: bytes, raw_value: bytes) -> None:
            sensor.set(timestamp, STATUS_FROM_WIRE[raw_status], decode(raw_value))
        return updater

    def _request_object(self, name: str) -> Any:
        request = self._request_objects.get(name)
        if request is None:
            info = self._model.requests[name]
            request = self.request_factory(name=info.name, description=info.description,
                                           timeout_hint=info.timeout_hint)
            self._request_objects[name] = request
        return request

    # ------------------------------------------------------------------ lookups

    async def _lookup(self, name: str, update: bool | None, sensors: bool) -> bool:
        registry = self._model.sensors if sensors else self._model.requests
        if name in registry:
            return True
        if update is None:
            update = self._update_on_lookup
        if not self._state.data_synced and not self._stopped:
            # The first sync lists everything; a name may well be in it (and code written for
            # katcp-python looks names up before the client has synced). Bounded: no lookup
            # waits forever.
            try:
                await self.until_data_synced(self.sync_timeout)
            except ClientClosedError:
                return name in registry
            if name in registry:
                return True
        if not update or not self.katcp_client.is_connected:
            return False
        work = _Work(sensors={name}) if sensors else _Work(requests={name})
        await self._inspect(work, self.sync_timeout)
        self._poke()  # the loop reports what the lookup changed (B14)
        return name in registry

    def future_check_sensor(self, name: str, update: bool | None = None
                            ) -> asyncio.Future[bool]:
        return asyncio.ensure_future(self._lookup(name, update, sensors=True))

    def future_check_request(self, name: str, update: bool | None = None
                             ) -> asyncio.Future[bool]:
        return asyncio.ensure_future(self._lookup(name, update, sensors=False))

    def future_get_sensor(self, name: str, update: bool | None = None) -> asyncio.Future[Any]:
        """The cached sensor object for ``name`` (at once if known), or None if the device
        does not know it."""
        if name in self._model.sensors:
            return _now(self._sensor_object, name)
        return asyncio.ensure_future(self._get(name, update, sensors=True))

    def future_get_request(self, name: str, update: bool | None = None
                           ) -> asyncio.Future[Any]:
        if name in self._model.requests:
            return _now(self._request_object, name)
        return asyncio.ensure_future(self._get(name, update, sensors=False))

    async def _get(self, name: str, update: bool | None, sensors: bool) -> Any:
        if not await self._lookup(name, update, sensors):
            return None
        return self._sensor_object(name) if sensors else self._request_object(name)

    # ------------------------------------------------------------------ requests

    def simple_request(self, request: str, *args: Any, **kwargs: Any) -> asyncio.Future[Reply]:
        """Send ``?request args...``; resolves to ``(reply, informs)``. As in katcp-python, a
        timeout, a lost connection or "not connected" comes back as a ``fail`` reply."""
        timeout = kwargs.pop("timeout", None)
        mid = kwargs.pop("mid", None)
        use_mid = kwargs.pop("use_mid", None)
        if kwargs:
            self._logger.warning("simple_request ignores unknown keywords %s", sorted(kwargs))
        message = Message.request(request, *args, mid=mid)  # a bad name raises at once
        return self.katcp_client.future_request(message, timeout, use_mid)

    # ------------------------------------------------------------------ sensor updates

    def _on_sensor_status(self, args: list[bytes]) -> None:
        """The hot path: ``#sensor-status timestamp n (name status value)*n``."""
        if len(args) == 5 and args[1] == b"1":  # what devices send, nearly always
            updater = self._updaters.get(args[2])
            if updater is not None:
                try:
                    updater(float(args[0]) / self._ticks_per_second, args[3], args[4])
                except (KeyError, ValueError) as exc:
                    self._bad_update(args[2], exc)
                return
        try:
            timestamp = float(args[0]) / self._ticks_per_second
            n = int(args[1])
            if n < 0 or len(args) != 2 + 3 * n:
                raise ValueError(f"{len(args)} arguments for {n} readings")
        except (ValueError, IndexError) as exc:
            self.stats.bad_updates += 1
            self._problems.log("sensor-status", "%s: malformed #sensor-status (%s); skipped",
                               self.bind_address_string, exc)
            return
        updaters = self._updaters
        for i in range(2, len(args), 3):
            name = args[i]
            updater = updaters.get(name) or self._updater_for(name)
            if updater is None:
                continue
            try:
                updater(timestamp, args[i + 1], args[i + 2])
            except (KeyError, ValueError) as exc:
                self._bad_update(name, exc)

    def _bad_update(self, name: bytes, exc: BaseException) -> None:
        self.stats.bad_updates += 1
        self._problems.log(("bad-update", name), "%s: bad update for sensor %s (%s); skipped",
                           self.bind_address_string, printable(name), repr(exc))

    def _updater_for(self, raw_name: bytes) -> SensorUpdater | None:
        name = raw_name.decode("utf-8", "surrogateescape")
        info = self._model.sensors.get(name)
        if info is not None:
            try:
                sensor = self._sensor_object(info.name)
            except Exception:
                self.stats.callback_errors += 1
                self._problems.log(("factory", name), "%s: sensor_factory failed for %s",
                                   self.bind_address_string, printable(name), exc_info=True)
                return None
            stype = getattr(sensor, "sensor_type", None)
            if not isinstance(stype, kattypes.SensorType):
                stype = kattypes.type_from_name(info.type_name)[0]
            updater = self._updaters[raw_name] = self._make_updater(sensor, stype)
            return updater
        self.stats.unknown_sensor_updates += 1
        self._problems.log("unknown-sensor", "%s: update for unknown sensor %s",
                           self.bind_address_string, printable(name))
        if name not in self._unknown_asked and self._state.data_synced:
            # Ask about a few names; past that (a confused or hostile device) relist once.
            if len(self._unknown_asked) < MAX_UNKNOWN_LOOKUPS:
                self._unknown_asked.add(name)
                self._work.sensors.add(name)
            elif not self._unknown_relisted:
                self._unknown_relisted = True
                self._work.all_sensors = True
            self._poke()
        return None

    def handle_sensor_value(self) -> None:
        """Also treat ``#sensor-value`` informs (replies to ``?sensor-value``) as updates."""
        self.katcp_client.hook_inform_arguments("sensor-value", self._on_sensor_status)

    def update_sensor(self, name: str, timestamp: bytes | float, status: Any,
                      value: Any) -> asyncio.Future[None]:
        """Apply one reading given in wire form (``bytes``) to sensor ``name``."""
        return asyncio.ensure_future(self._update_sensor(name, timestamp, status, value))

    async def _update_sensor(self, name: str, timestamp: bytes | float, status: Any,
                             value: Any) -> None:
        sensor = await self.future_get_sensor(name)
        if sensor is None:
            self._logger.error("Received update for %s, but could not create a sensor object",
                               printable(name))
            return
        raw_name = name.encode("utf-8", "surrogateescape")
        updater = self._updaters.get(raw_name) or self._updater_for(raw_name)
        assert updater is not None
        ts = float(timestamp) / (self._ticks_per_second if isinstance(timestamp, bytes) else 1)
        try:
            updater(ts, status if isinstance(status, bytes) else
                    kattypes.STATUS_TO_WIRE[SensorStatus(status)],
                    value if isinstance(value, bytes) else kattypes.encode_value(
                        sensor.sensor_type, value))
        except (KeyError, ValueError) as exc:
            self._bad_update(name.encode("utf-8", "surrogateescape"), exc)

    # ------------------------------------------------------------------ sampling strategies

    def set_sampling_strategy(self, name: str, strategy: str,
                              *params: Any) -> asyncio.Future[Reply]:
        """Sample sensor ``name`` with ``strategy``, now and after every reconnect and resync.
        Resolves to the device's reply (a ``fail`` reply while disconnected; the strategy is
        still remembered and applied once connected)."""
        self._strategies.set(name, make_strategy(strategy, *params))
        return asyncio.ensure_future(self._sample([name]))

    def set_sampling_strategies(self, names: str | Iterable[str], strategy: str,
                                *params: Any) -> asyncio.Future[Reply]:
        """Like :meth:`set_sampling_strategy` for several sensors: a list of names, or a regular
        expression (a ``str``) that also covers sensors the device adds later."""
        wanted = make_strategy(strategy, *params)
        if isinstance(names, str):
            self._strategies.set_pattern(names, wanted)
            pattern = re.compile(names)
            targets = [n for n in self._model.sensors if pattern.search(n)]
        else:
            targets = list(names)
            self._strategies.set(targets, wanted)
        return asyncio.ensure_future(self._sample(targets))

    async def _sample(self, names: list[str]) -> Reply:
        if not self.katcp_client.is_connected:
            return Message.reply("sensor-sampling", "fail", "not connected; the strategy is "
                                 "remembered and applied on connection"), []
        replies = await self._apply_sampling(names)
        return replies[-1] if replies else (Message.reply("sensor-sampling", "ok"), [])

    async def _apply_sampling(self, names: Iterable[str] | None = None) -> list[Reply]:
        """Send what the device needs to match the strategies the user wants: bulk requests
        (chunked) with flag B, otherwise one request per sensor, all in flight together."""
        known = [n for n in (self._model.sensors if names is None else names)
                 if n in self._model.sensors]
        plan = self._strategies.plan(known, self._applied)
        flags = self.katcp_client.protocol_flags
        bulk = flags is not None and flags.bulk_set_sensor_sampling
        sends: list[Awaitable[list[Reply]]] = []
        refused: list[Reply] = []
        for strategy, group in plan.items():
            if bulk:
                # With bulk sampling a device reads "a,b" as two sensors: such a name cannot
                # be sampled without sampling others.
                refused.extend(self._refuse_comma(n, strategy) for n in group if "," in n)
                group = [n for n in group if "," not in n]
            if bulk and len(group) > 1:
                sends.extend(self._sample_bulk(group[start:start + BULK_SAMPLING_CHUNK], strategy)
                             for start in range(0, len(group), BULK_SAMPLING_CHUNK))
            elif group:
                sends.append(self._sample_each(group, strategy))
        return refused + [reply for replies in await asyncio.gather(*sends) for reply in replies]

    def _refuse_comma(self, name: str, strategy: Strategy) -> Reply:
        self.stats.strategy_failures += 1
        self._problems.log(("comma", name), "%s: cannot sample sensor %s: its name has a comma, "
                           "which this device (bulk sampling) reads as a list of sensors",
                           self.bind_address_string, printable(name))
        return Message.reply("sensor-sampling", "fail", f"cannot sample {name!r} with "
                             f"{format_strategy(strategy)}: a device with bulk sampling reads "
                             "the comma in its name as a list of sensors"), []

    async def _sample_bulk(self, names: list[str], strategy: Strategy) -> list[Reply]:
        reply = await self._sampling_request(",".join(names), strategy)
        if reply[0].reply_ok():
            self._applied.update(dict.fromkeys(names, strategy))
            return [reply]
        # Refused as a whole (one name gone, or no bulk after all): one by one.
        return await self._sample_each(names, strategy)

    async def _sample_each(self, names: list[str], strategy: Strategy) -> list[Reply]:
        return list(await asyncio.gather(*(self._sample_one(name, strategy) for name in names)))

    async def _sample_one(self, name: str, strategy: Strategy) -> Reply:
        reply = await self._sampling_request(name, strategy)
        if reply[0].reply_ok():
            self._applied[name] = strategy
        elif self.katcp_client.is_connected:
            self.stats.strategy_failures += 1
            self._problems.log(("strategy", name), "%s refused strategy %s for %s: %s",
                               self.bind_address_string, format_strategy(strategy),
                               printable(name), reply[0])
        return reply

    def _sampling_request(self, names: str, strategy: Strategy) -> asyncio.Future[Reply]:
        flags = self.katcp_client.protocol_flags
        wire = for_protocol(strategy, flags.major if flags is not None else 5)
        return self.katcp_client.future_request(
            Message.request("sensor-sampling", names, *wire), self.sync_timeout)

__all__ = [
    "ExponentialRandomBackoff",
    "InspectingClientAsync",
    "InspectingClientStateType",
    "Request",
    "RequestType",
    "SyncError",
]
