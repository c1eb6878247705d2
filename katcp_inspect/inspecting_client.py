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
from typing import Any, Callable, NamedTuple, Optional, TypeVar

import attrs
from tornado.ioloop import IOLoop

from . import kattypes
from .backoff import ExponentialRandomBackoff
from .client import DeviceClient, Reply
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
from .waiting import Flag, start_task, with_timeout

T = TypeVar("T")
ic_logger = logging.getLogger("katcp_inspect.inspecting_client")

#: Names per bulk ``?sensor-sampling`` request, so that no line gets huge.
BULK_SAMPLING_CHUNK = 500
#: Unknown sensors (names in updates but not in the model) looked up one by one, per connection.
MAX_UNKNOWN_LOOKUPS = 100


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


def _answer_to(found: dict[str, T], asked: str | None) -> dict[str, T]:
    """The part of several named inspections' results that answers the one for ``asked``
    (all of it for a full inspection or a ``/regex/``)."""
    if asked is None or (asked.startswith("/") and asked.endswith("/")):
        return found
    return {name: info for name, info in found.items() if name == asked}


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
        self._running = False
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

    def connect(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Start the client and its state loop. With a ``timeout``, also wait that long for the
        first (negotiated) connection; on expiry the client is stopped again and can be
        connected anew, and ``TimeoutError`` is raised."""
        return asyncio.ensure_future(self._connect(timeout))

    start = connect

    async def _connect(self, timeout: float | None) -> None:
        if self._running:
            raise RuntimeError("the inspecting client is already running")
        self._running = True
        self.katcp_client.start()
        self._loop_task = start_task(self._state_loop())
        if timeout:
            try:
                await self.katcp_client.until_connected(timeout)
            except BaseException:
                await self._stop()
                raise

    def stop(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Stop the state loop and close the connection. The returned future (which never
        fails) resolves once everything has stopped; awaiting it is optional."""
        return asyncio.ensure_future(self._stop(timeout))

    close = stop

    async def _stop(self, timeout: float | None = None) -> None:
        self._running = False
        self._wake.set()
        try:
            await with_timeout(self._wait_stopped(), timeout)
        except TimeoutError:
            self._logger.warning("%s: stop() still waiting after %s s", self.bind_address_string,
                                 timeout)

    async def _wait_stopped(self) -> None:
        await self.katcp_client.close()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)

    def until_stopped(self, timeout: float | None = None) -> asyncio.Future[None]:
        return with_timeout(self._wait_stopped(), timeout)

    def join(self, timeout: float | None = None) -> asyncio.Future[None]:
        """The same as :meth:`until_stopped` (katcp-python's ``join`` did nothing here)."""
        return self.until_stopped(timeout)

    # ------------------------------------------------------------------ waiting on states

    def _until(self, predicate: Callable[[State], bool],
               timeout: float | None) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if predicate(self._state):
            future.set_result(None)
        else:
            self._state_waiters[future] = predicate
            future.add_done_callback(self._forget_waiter)
        return with_timeout(future, timeout)

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
        """Wait for a negotiated connection (the protocol flags are known)."""
        return self.katcp_client.until_connected(timeout)

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

    async def _state_loop(self) -> None:
        backoff = self.resync_delay = ExponentialRandomBackoff(self.initial_resync_timeout,
                                                               self.max_resync_timeout)
        synced_epoch = -1
        try:
            while self._running and self.katcp_client.running:
                if not self.is_connected():
                    await self._report(DISCONNECTED)
                    await self._sleep_until(self.is_connected)
                    continue
                epoch = self._epoch
                new_connection = epoch != synced_epoch
                if new_connection:
                    self._work = _Work(all_requests=True, all_sensors=True)
                    if not self.initial_inspection:  # katcp-python: skip the first one only
                        self.initial_inspection = True
                        self._work = _Work()
                    synced_epoch = epoch
                work, self._work = self._work, _Work()
                if work or new_connection:
                    await self._report(SYNCING)
                if work:
                    try:
                        await self._inspect(work)
                    except Exception as exc:
                        self._work.merge(work)
                        if not self.is_connected() or not self._running:
                            continue
                        self.stats.failed_syncs += 1
                        delay = backoff.delay
                        backoff.failed()
                        expected = isinstance(exc, (KatcpInspectError, ConnectionError,
                                                    TimeoutError))
                        # A bug (ours, or a user's factory) must not end the loop either.
                        self._logger.warning("%s: sync failed (%s); retrying in %.2f s",
                                             self.bind_address_string, str(exc), delay,
                                             exc_info=not expected)
                        await self._sleep_until(lambda: False, delay)
                        continue
                    backoff.success()
                changes = self._model.changes_since(self._reported)
                self._reported = self._model.snapshot()
                self._dirty = False
                if work or changes is not None:
                    await self._report(DATA_SYNCED_CHANGED if changes else DATA_SYNCED, changes)
                changes = None  # not kept alive while the loop waits
                if self.is_connected() and epoch == self._epoch:
                    await self._apply_sampling()
                if not (self._running and self.is_connected() and epoch == self._epoch):
                    continue
                await self._report(SYNCED)
                await self._sleep_until(lambda: bool(self._work) or self._dirty)
        finally:
            self._running = False
            await self._report(DISCONNECTED)
            # What is still awaited can no longer happen: say so instead of hanging.
            stopped = ClientClosedError("the inspecting client was stopped")
            for future in list(self._state_waiters):
                if not future.done():
                    future.set_exception(stopped)

    async def _sleep_until(self, condition: Callable[[], bool],
                           delay: float | None = None) -> None:
        """Wait until ``condition()`` holds, the connection changes, we are stopped, or
        ``delay`` passes; every event source sets the wake flag."""
        epoch = self._epoch
        connected = self.katcp_client.is_connected
        loop = asyncio.get_running_loop()
        deadline = None if delay is None else loop.time() + delay
        while (self._running and self.katcp_client.running and not condition()
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

    async def _ask(self, name: str, *args: Any, timeout: float | None,
                   named: bool) -> list[Message] | None:
        """Send one inspection request; ``None`` means a named lookup found nothing (the
        device's wording of its refusal does not matter: B4)."""
        reply, informs = await self.katcp_client.request_raw(
            name, *args, timeout=self.sync_timeout if timeout is None else timeout)
        if reply.reply_ok():
            return informs
        if named:
            return None
        raise SyncError(f"?{name} failed during sync: {reply}")

    async def _inspect(self, work: _Work, timeout: float | None = None) -> None:
        """Ask the device for what ``work`` names, all requests in flight together, then apply
        the results to the model in one step. If anything fails, nothing is applied."""
        flags = self.katcp_client.protocol_flags
        hints_wanted = flags is not None and flags.request_timeout_hints
        calls: list[tuple[str, str | None, Awaitable[list[Message] | None]]] = []

        def ask(kind: str, request: str, name: str | None) -> None:
            args = () if name is None else (name,)
            calls.append((kind, name, self._ask(request, *args, timeout=timeout,
                                                named=name is not None)))

        if work.all_requests:
            ask("help", "help", None)
            if hints_wanted:
                ask("hint", "request-timeout-hint", None)
        for name in () if work.all_requests else sorted(work.requests):
            ask("help", "help", name)
            if hints_wanted:
                ask("hint", "request-timeout-hint", name)
        if work.all_sensors:
            ask("sensors", "sensor-list", None)
        for name in () if work.all_sensors else sorted(work.sensors):
            ask("sensors", "sensor-list", name)
        results = await asyncio.gather(*(c for _, _, c in calls), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if isinstance(result, (KatcpInspectError, ConnectionError, TimeoutError)):
                    raise SyncError(f"inspection of {self.bind_address_string} failed: "
                                    f"{result}") from result
                raise result

        hints: dict[str, float] = {}
        requests: dict[str, RequestInfo] = {}
        sensors: dict[str, SensorInfo] = {}
        for (kind, _, _), result in zip(calls, results):
            assert not isinstance(result, BaseException)
            informs = result or []
            if kind == "help":
                found, problems = parse_help(informs)
                for request_name, description in found.items():
                    requests[request_name] = RequestInfo(request_name, description)
            elif kind == "hint":
                found_hints, problems = parse_timeout_hints(informs)
                hints.update(found_hints)
            else:
                found_sensors, problems = parse_sensor_list(informs)
                sensors.update(found_sensors)
            for problem in problems:
                self.stats.bad_informs += 1
                self._problems.log(("inform", kind), "%s: %s", self.bind_address_string, problem)
        for request_name, info in requests.items():
            if request_name in hints:
                requests[request_name] = attrs.evolve(info, timeout_hint=hints[request_name])
        self._apply(
            requests if (work.all_requests or work.requests) else None,
            sensors if (work.all_sensors or work.sensors) else None,
            None if work.all_requests else work.requests,
            None if work.all_sensors else work.sensors)
        self.stats.syncs += 1

    def _apply(self, requests: dict[str, RequestInfo] | None,
               sensors: dict[str, SensorInfo] | None,
               asked_requests: set[str] | None, asked_sensors: set[str] | None) -> None:
        before = self._model.snapshot()
        if requests is not None:
            for asked in sorted(asked_requests) if asked_requests is not None else [None]:
                self._model.apply(requests=_answer_to(requests, asked), asked_request=asked)
        if sensors is not None:
            for asked_sensor in sorted(asked_sensors) if asked_sensors is not None else [None]:
                self._model.apply(sensors=_answer_to(sensors, asked_sensor),
                                  asked_sensor=asked_sensor)
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
        stopped = self._loop_task is not None and not self._running
        if not self._state.data_synced and not stopped:
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
        for strategy, group in plan.items():
            if bulk and len(group) > 1:
                sends.extend(self._sample_bulk(group[start:start + BULK_SAMPLING_CHUNK], strategy)
                             for start in range(0, len(group), BULK_SAMPLING_CHUNK))
            else:
                sends.append(self._sample_each(group, strategy))
        return [reply for replies in await asyncio.gather(*sends) for reply in replies]

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
