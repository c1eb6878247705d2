"""``InspectingClientAsync``: a device model cache that keeps itself in step with a device.

The public API is that of katcp-python's ``katcp.inspecting_client.InspectingClientAsync`` (same
names, signatures, defaults, state tuples and callback contract), without its bugs. This
module holds the public face and the lifecycle (connect and stop, in the order they are
called); the work is done by collaborators, each in its own module:

- :mod:`~katcp_inspect.sync_loop`: the one task that makes every state transition, in the
  phases its table lists; :mod:`~katcp_inspect.sync_states`: the states and their waiters;
- :mod:`~katcp_inspect.inspection`: the inspection requests; :mod:`~katcp_inspect.model`: the
  model and what each answer means for it;
- :mod:`~katcp_inspect.sensor_updates`: the ``#sensor-status`` hot path into the sensor
  objects;
- :mod:`~katcp_inspect.sampling`: the strategies the user wants and what the device confirmed;
  :mod:`~katcp_inspect.sensor_wait`: waiting on a sensor condition.

May import all of those, and ``client``, ``message``, ``request``, ``sensor``, ``stats``,
``sync_gate``, ``text`` and ``waiting``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

from tornado.ioloop import IOLoop

from .backoff import ExponentialRandomBackoff
from .client import DeviceClient, Reply
from .errors import ClientClosedError
from .inspection import Inspector, SyncError, Work
from .message import Message
from .model import AttrDict, DeviceModel
from .request import Request, RequestType
from .runs import Runs
from .sampling import SamplingReconciler, StrategyBook, make_strategy
from .sensor import Reading, Sensor
from .sensor_updates import SensorUpdates
from .sensor_wait import Condition, SensorWaits
from .stats import InspectingStats, OnceLogger
from .sync_gate import SyncGate
from .sync_loop import SyncLoop
from .sync_states import (
    DATA_SYNCED,
    DATA_SYNCED_CHANGED,
    DISCONNECTED,
    SYNCED,
    SYNCING,
    VALID_STATES,
    InspectingClientStateType,
    State,
    StateCallback,
    StateReports,
)
from .text import printable
from .waiting import check_timeout, with_timeout

ic_logger = logging.getLogger("katcp_inspect.inspecting_client")

T = TypeVar("T")


def _now(make: Callable[[str], T], name: str) -> asyncio.Future[T | None]:
    """A future already holding ``make(name)`` (or what it raised)."""
    future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(make(name))
    except Exception as exc:
        future.set_exception(exc)
    return future


def _done(result: T) -> asyncio.Future[T | None]:
    future: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
    future.set_result(result)
    return future


class InspectingClientAsync:
    """A device model cache that keeps itself in sync with a KATCP device.

    Start it with :meth:`connect` (or :meth:`start`). It connects (and reconnects, unless
    ``auto_reconnect`` is false), lists the device's requests and sensors, and keeps that
    model current: it follows ``#interface-changed``, looks up names it does not know, and
    lists again after every reconnect. Progress is reported as a :attr:`state` (one of five
    :class:`InspectingClientStateType` tuples), to the callback given to
    :meth:`set_state_callback` and to the ``until_*`` waiters, until :meth:`stop`.

    Sensors and requests of the model are handed out as objects made by
    :attr:`sensor_factory` and :attr:`request_factory`; readings the device sends reach the
    sensor objects and their observers. ``initial_inspection=False`` skips the inspection of
    the first connection only; ``logger`` receives the client's log lines; ``ioloop`` is
    kept for compatibility (the running loop is used).

    ``auto_sampling`` (keyword only) samples every sensor with that strategy after each
    sync, e.g. ``"auto"`` or ``("period", 1.0)``, so the cache holds live values without any
    user code. ``sync_gate``: a :class:`~.sync_gate.SyncGate`, shared to take turns to sync.
    """

    #: Makes the sensor objects: called with the keywords ``name, sensor_type, description,
    #: units, params`` (and ``strategy_setter``, the client, if it names that parameter).
    sensor_factory: Callable[..., Any] = Sensor
    #: Makes the request objects: called with ``name, description, timeout_hint``.
    request_factory: Callable[..., Any] = RequestType
    #: Seconds allowed for each inspection request (and for lookups of unknown names).
    sync_timeout: float = 20
    #: First and longest delay (seconds) between failed inspections, growing exponentially.
    initial_resync_timeout: float = 5
    max_resync_timeout: float = 90

    def __init__(self, host: str, port: int, ioloop: IOLoop | None = None,
                 initial_inspection: bool | None = None, auto_reconnect: bool = True,
                 logger: logging.Logger = ic_logger, *,
                 auto_sampling: str | tuple[Any, ...] | None = None,
                 sync_gate: SyncGate | None = None) -> None:
        self.ioloop = ioloop
        #: The backoff between failed inspections of the current run (made by connect()).
        self.resync_delay: ExponentialRandomBackoff | None = None
        self.valid_states = VALID_STATES
        self.stats = InspectingStats()
        self._logger = logger
        self._problems = OnceLogger(logger)
        self._model = DeviceModel()
        self._request_objects: dict[str, Any] = {}
        self._update_on_lookup = True
        client = self.katcp_client = self.inform_hook_client_factory(
            host, port, auto_reconnect=auto_reconnect, logger=logger)
        if isinstance(auto_sampling, str):
            auto_sampling = (auto_sampling,)
        self._sampling = SamplingReconciler(
            StrategyBook(make_strategy(*auto_sampling) if auto_sampling is not None else None),
            client, self._model.sensors, self.stats, self._problems)
        self._states = StateReports(logger, self.stats)
        self._sync = SyncLoop(
            client, self._model, self._states,
            lambda work: self._inspector.inspect(work, self.sync_timeout),
            lambda: self._sampling.apply(None, self.sync_timeout), self.stats, self._problems,
            sync_gate)
        self.initial_inspection = True if initial_inspection is None else bool(initial_inspection)
        self._runs = Runs(client, self._sync, self._states, logger)
        self._inspector = Inspector(client, self._model, self.stats, self._problems,
                                    self._model_changed)
        self._updates = SensorUpdates(self._model.sensors, client, lambda: self.sensor_factory,
                                      self, self.stats, self._problems,
                                      self._sync.unknown_sensor)
        self._sensor_objects = self._updates.objects
        self._waits = SensorWaits(self, self._sampling, self._updates.objects.get,
                                  lambda: self._runs.stopped)
        client.hook_inform_arguments("sensor-status", self._updates.on_sensor_status)
        client.hook_inform("interface-changed", self._sync.interface_changed)
        client.hook_inform("device-changed", self._sync.interface_changed)
        client.hook_unhandled_inform(self._sync.stray_inform)
        client.add_connected_callback(self._on_connected)
        client.add_disconnected_callback(self._on_disconnected)
        # Without auto-reconnect a failed attempt closes the client, which ends the loop.
        client.add_failed_connect_callback(lambda error: self._sync.poke())

    def inform_hook_client_factory(self, host: str, port: int, *args: Any,
                                   **kwargs: Any) -> DeviceClient:
        """Build the :class:`DeviceClient` that carries the connection; override it in a
        subclass to use a customised one."""
        return DeviceClient(host, port, *args, **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def initial_inspection(self) -> bool:
        """Whether the next new connection is inspected: false (``initial_inspection=False``)
        only until the first connection's inspection has been skipped."""
        return not self._sync.skip_first_inspection

    @initial_inspection.setter
    def initial_inspection(self, value: bool) -> None:
        self._sync.skip_first_inspection = not value

    @property
    def state(self) -> State:
        """The state last reported (:data:`DISCONNECTED` before the first connection)."""
        return self._states.state

    @property
    def synced(self) -> bool:
        """Whether the last state reported is :data:`SYNCED`."""
        return self._states.state.synced

    @property
    def connected(self) -> bool:
        """Whether there is a negotiated connection to the device now."""
        return self.katcp_client.is_connected

    def is_connected(self) -> bool:
        """The same as :attr:`connected`."""
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
        """The device's ``(host, port)``."""
        return self.katcp_client.host, self.katcp_client.port

    @property
    def bind_address_string(self) -> str:
        """The device's address as ``host:port``, as log lines show it."""
        return self.katcp_client.address

    def preset_protocol_flags(self, flags: Any) -> None:
        """Take the device to speak with these :class:`~katcp_inspect.ProtocolFlags` instead of
        waiting for its greeting (for devices that do not announce their version)."""
        self.katcp_client.preset_flags = flags

    def set_ioloop(self, ioloop: IOLoop | None = None) -> None:
        """Kept for compatibility: the client runs on the running asyncio loop."""
        self.ioloop = ioloop

    def set_state_callback(self, cb: StateCallback | None) -> None:
        """Call ``cb(state, model_changes)`` on every change of state (a plain function or a
        coroutine function; it is awaited before the next transition). ``model_changes`` is
        None, or an :class:`~katcp_inspect.model.AttrDict` with ``requests`` and/or ``sensors``,
        each holding the ``added`` and ``removed`` name sets (a modified item is in both)."""
        self._states.callback = cb

    # ------------------------------------------------------------------ lifecycle

    def connect(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Start the client and its state loop; resolves once started. With a ``timeout``,
        also wait that long for the first (negotiated) connection; on expiry the client is
        stopped again and can be connected anew, and ``TimeoutError`` is raised.

        :meth:`connect` and :meth:`stop` take effect in the order they are called, and the
        last one decides. Right after :meth:`stop` (awaited or not), the new run starts once
        the old one has ended. If :meth:`stop` is called before this start happened, the stop
        wins: the future resolves without starting anything, or, with a ``timeout``, fails
        with :class:`ClientClosedError`, as it does when :meth:`stop` ends the wait for the
        first connection. Connecting a running client fails with ``RuntimeError``.
        """
        check_timeout(timeout)
        return self._runs.connect(timeout, self._new_backoff)

    start = connect

    def _new_backoff(self) -> ExponentialRandomBackoff:
        self.resync_delay = ExponentialRandomBackoff(self.initial_resync_timeout,
                                                     self.max_resync_timeout)
        return self.resync_delay

    def stop(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Stop the state loop and close the connection. The returned future (which never
        fails) resolves once this run has ended: its loop has made its last report and the
        connection is closed, whatever is called afterwards; awaiting it is optional. With a
        ``timeout``, it stops waiting after that long (and logs a warning).

        Every ``until_*`` waiter then pending ends at once: those whose condition holds for a
        stopped client (e.g. :meth:`until_not_synced`) resolve, the others fail with
        :class:`ClientClosedError`, as do waiters made while the client is stopped.
        """
        check_timeout(timeout)
        return self._runs.stop(timeout)

    close = stop

    async def __aenter__(self) -> InspectingClientAsync:
        """``async with InspectingClientAsync(...) as client:`` connects (as :meth:`connect`
        with no timeout: it does not wait for the device, nor for a sync) and stops on exit."""
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def until_stopped(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves once the client is stopped (at once if it was never started): by
        :meth:`stop`, or because the connection closed for good (``auto_reconnect=False``)."""
        return with_timeout(self._runs.until_stopped(), timeout)

    def join(self, timeout: float | None = None) -> asyncio.Future[None]:
        """The same as :meth:`until_stopped` (katcp-python's ``join`` did nothing here)."""
        return self.until_stopped(timeout)

    # ------------------------------------------------------------------ waiting on states

    def until_state(self, desired_state: State, timeout: float | None = None
                    ) -> asyncio.Future[None]:
        """Resolves when ``desired_state`` (one of the five valid states) is reported, at once
        if it is the current one. Like every ``until_*`` waiter: with a ``timeout`` it fails
        with ``TimeoutError`` after that many seconds; made before the first :meth:`connect`
        it waits for it; :meth:`stop` ends it (see there)."""
        if desired_state not in VALID_STATES:
            raise ValueError(f"{desired_state} is not a valid state")
        return self._until(lambda s: s == desired_state, timeout)

    def until_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves when the model is complete and the strategies applied (:data:`SYNCED`)."""
        return self._until(lambda s: s == SYNCED, timeout)

    def until_not_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves when the client is not (or no longer) synced: disconnected, or syncing
        again after a change or a reconnect; and when it is stopped."""
        return self._until(lambda s: not s.synced, timeout)

    def until_data_synced(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves when the model is complete (strategies may still be on their way)."""
        return self._until(lambda s: s.data_synced, timeout)

    def until_connected(self, timeout: float | None = None) -> asyncio.Future[None]:
        """Resolves when there is a negotiated connection (the protocol flags are known); like
        the other ``until_*`` waiters it ends when the client is stopped."""
        runs = self._runs
        return self._states.until_connected(
            runs.stopped, runs.running and self.katcp_client.is_connected, timeout)

    def _until(self, predicate: Callable[[State], bool],
               timeout: float | None) -> asyncio.Future[None]:
        return self._states.until(predicate, self._runs.stopped, timeout)

    # ------------------------------------------------------------------ events

    def _on_connected(self) -> None:
        flags = self.katcp_client.protocol_flags
        self._updates.connected(flags.major if flags is not None else 5)
        self._sampling.new_connection()
        self._sync.connected()
        self._states.connected()
        self._sync.poke()

    def _on_disconnected(self) -> None:
        self._sync.disconnected()
        self._updates.disconnected()
        self._sync.poke()

    def _model_changed(self, changes: AttrDict) -> None:
        """An inspection changed the model: the loop must report it; objects of removed
        items go, modified ones are made anew (B2), keeping the sensors' observers."""
        self._sync.dirty = True
        if "requests" in changes:
            for name in changes.requests.removed:
                self._request_objects.pop(name, None)
            self.katcp_client.timeout_hints = {
                n: i.timeout_hint for n, i in self._model.requests.items()
                if i.timeout_hint is not None}
        if "sensors" in changes:
            for name in changes.sensors.removed:
                self._updates.changed(name)
                self._sampling.forget(name)

    # ------------------------------------------------------------------ inspection

    def inspect(self) -> asyncio.Future[AttrDict | None]:
        """List all the device's requests and sensors now; resolves to the model changes
        (None if nothing changed). Raises :class:`SyncError` if the device fails it."""
        return asyncio.ensure_future(self._inspect_and_diff(Work(True, True)))

    def inspect_requests(self, name: str | None = None, timeout: float | None = None
                         ) -> asyncio.Future[AttrDict | None]:
        """Ask the device about request ``name`` (all requests when None) and update the
        model; resolves to the changes of the requests (``added`` and ``removed``), or None.
        ``timeout`` bounds each request (default :attr:`sync_timeout`)."""
        work = Work(all_requests=name is None, requests=set() if name is None else {name})
        return asyncio.ensure_future(self._inspect_and_diff(work, timeout, part="requests"))

    def inspect_sensors(self, name: str | None = None, timeout: float | None = None
                        ) -> asyncio.Future[AttrDict | None]:
        """The same as :meth:`inspect_requests`, for sensors."""
        work = Work(all_sensors=name is None, sensors=set() if name is None else {name})
        return asyncio.ensure_future(self._inspect_and_diff(work, timeout, part="sensors"))

    async def _inspect_and_diff(self, work: Work, timeout: float | None = None,
                                part: str | None = None) -> AttrDict | None:
        before = self._model.snapshot()
        await self._inspector.inspect(work, self.sync_timeout if timeout is None else timeout)
        self._sync.poke()
        changes = self._model.changes_since(before)
        if changes is not None and part is not None:
            return changes.get(part)
        return changes

    # ------------------------------------------------------------------ lookups

    def future_check_sensor(self, name: str, update: bool | None = None
                            ) -> asyncio.Future[bool]:
        """Resolves to whether the device has sensor ``name``. A name not in the model is
        asked about (unless ``update`` is false), after the first sync if that is still
        under way."""
        return asyncio.ensure_future(_look_up(self, name, update, sensors=True))

    def future_check_request(self, name: str, update: bool | None = None
                             ) -> asyncio.Future[bool]:
        """The same as :meth:`future_check_sensor`, for requests."""
        return asyncio.ensure_future(_look_up(self, name, update, sensors=False))

    def future_get_sensor(self, name: str, update: bool | None = None
                          ) -> asyncio.Future[Sensor | None]:
        """The sensor object for ``name`` (at once if known; looked up as by
        :meth:`future_check_sensor` otherwise), or None if the device does not know it.
        The same object is returned until the device changes the sensor's description.

        Typed as :class:`~katcp_inspect.sensor.Sensor`: a :attr:`sensor_factory` that makes
        objects of another type (katcp-python's ``katcp.Sensor``, say) gets those, and
        its user may ``typing.cast`` them to that type."""
        sensor = self._sensor_objects.get(name)
        if sensor is not None:
            return _done(sensor)
        if name in self._model.sensors.raw:  # known: no task, no request
            return _now(self._updates.sensor, name)
        return asyncio.ensure_future(self._get(name, update, self._sensor_object, sensors=True))

    def future_get_request(self, name: str, update: bool | None = None
                           ) -> asyncio.Future[Request | None]:
        """The same as :meth:`future_get_sensor`, for requests (typed as
        :class:`~katcp_inspect.request.Request`, what the default :attr:`request_factory`
        makes)."""
        if name in self._model.requests:
            return _now(self._request_object, name)
        return asyncio.ensure_future(self._get(name, update, self._request_object,
                                               sensors=False))

    async def _get(self, name: str, update: bool | None, make: Callable[[str], T],
                   sensors: bool) -> T | None:
        if not await _look_up(self, name, update, sensors):
            return None
        return make(name)

    def _sensor_object(self, name: str) -> Sensor:
        sensor: Sensor = self._updates.sensor(name)
        return sensor

    def _request_object(self, name: str) -> Request:
        request = self._request_objects.get(name)
        if request is None:
            info = self._model.requests[name]
            request = self.request_factory(name=info.name, description=info.description,
                                           timeout_hint=info.timeout_hint)
            self._request_objects[name] = request
        made: Request = request  # typed as the default factory's (see future_get_sensor)
        return made

    # ------------------------------------------------------------------ requests

    def simple_request(self, request: str, *args: Any, **kwargs: Any) -> asyncio.Future[Reply]:
        """Send ``?request args...``; resolves to ``(reply, informs)``. As in katcp-python, a
        timeout, a lost connection or "not connected" comes back as a ``fail`` reply. Keywords:
        ``timeout`` (seconds), ``mid`` (a message id to use) and ``use_mid``."""
        timeout = kwargs.pop("timeout", None)
        mid = kwargs.pop("mid", None)
        use_mid = kwargs.pop("use_mid", None)
        if kwargs:
            self._logger.warning("simple_request ignores unknown keywords %s", sorted(kwargs))
        message = Message.request(request, *args, mid=mid)  # a bad name raises at once
        return self.katcp_client.future_request(message, timeout, use_mid)

    # ------------------------------------------------------------------ sensor updates

    def handle_sensor_value(self) -> None:
        """Also treat ``#sensor-value`` informs (replies to ``?sensor-value``) as updates."""
        self.katcp_client.hook_inform_arguments("sensor-value", self._updates.on_sensor_status)

    def update_sensor(self, name: str, timestamp: bytes | float, status: Any,
                      value: Any) -> asyncio.Future[None]:
        """Apply one reading to sensor ``name`` as if the device had sent it: each part in
        wire form (``bytes``) or as a Python value (seconds, a status, a value)."""
        return asyncio.ensure_future(self._update_sensor(name, timestamp, status, value))

    async def _update_sensor(self, name: str, timestamp: bytes | float, status: Any,
                             value: Any) -> None:
        sensor = await self.future_get_sensor(name)
        if sensor is None or not self._updates.apply(sensor, name, timestamp, status, value):
            self._logger.error("Received update for %s, but could not create a sensor object",
                               printable(name))

    # ------------------------------------------------------------------ waiting on sensors

    def wait(self, name: str, condition: Condition,
             timeout: float | None = None) -> asyncio.Future[Reading]:
        """The first reading of sensor ``name`` equal to ``condition`` (a value) or meeting it
        (a predicate over the :class:`~katcp_inspect.sensor.Reading`); at once if the cached
        one does. An unsampled sensor is sampled with ``event`` meanwhile (also after a
        reconnect), and set back before this resolves. Fails with ``WaitTimeoutError`` after
        ``timeout`` s, ``UnknownSensorError``, what the predicate raised, or
        :class:`ClientClosedError` on :meth:`stop`."""
        return asyncio.ensure_future(self._waits.wait(name, condition, timeout))

    # ------------------------------------------------------------------ sampling strategies

    def set_sampling_strategy(self, name: str, strategy: str,
                              *params: Any) -> asyncio.Future[Reply]:
        """Sample sensor ``name`` with ``strategy`` (and its ``params``; times in seconds,
        whatever the KATCP version), now and after every reconnect and resync. Resolves to
        the device's answer for this sensor (``fail`` while disconnected: the strategy is
        applied once connected). Calls of one event-loop turn go together, as bulk requests
        with flag ``B`` (see :doc:`/performance`); each gets its own sensor's answer."""
        return self._sampling.want_one(name, make_strategy(strategy, *params),
                                       self.sync_timeout)

    def set_sampling_strategies(self, names: str | Iterable[str], strategy: str,
                                *params: Any) -> asyncio.Future[Reply]:
        """Like :meth:`set_sampling_strategy` for several sensors: a list of names, or a regular
        expression (a ``str``, ``re.search``) that also covers sensors the device adds later.
        Resolves, once the device has answered for every sensor, to the first refusal, or
        an ``ok`` reply."""
        return self._sampling.want(names, make_strategy(strategy, *params), self.sync_timeout)


async def _look_up(client: InspectingClientAsync, name: str, update: bool | None,
                   sensors: bool) -> bool:
    """Whether ``client``'s device has the sensor (or request) ``name``: in the model, after
    the first sync if that is under way, or (``update``) once asked about."""
    registry = client._model.sensors if sensors else client._model.requests
    if name in registry:
        return True
    if update is None:
        update = client._update_on_lookup
    if not client._states.state.data_synced and not client._runs.stopped:
        # The first sync lists everything; a name may well be in it (and code written for
        # katcp-python looks names up before the client has synced). Bounded: no lookup
        # waits forever.
        try:
            await client.until_data_synced(client.sync_timeout)
        except ClientClosedError:
            return name in registry
        if name in registry:
            return True
    if not update or not client.katcp_client.is_connected:
        return False
    work = Work(sensors={name}) if sensors else Work(requests={name})
    await client._inspector.inspect(work, client.sync_timeout)
    client._sync.poke()  # the loop reports what the lookup changed (B14)
    return name in registry


__all__ = [
    "DATA_SYNCED",
    "DATA_SYNCED_CHANGED",
    "DISCONNECTED",
    "SYNCED",
    "SYNCING",
    "VALID_STATES",
    "ExponentialRandomBackoff",
    "InspectingClientAsync",
    "InspectingClientStateType",
    "Request",
    "RequestType",
    "SyncError",
]
