""":class:`Fleet`: many devices, one event loop, one model; an
:class:`~katcp_inspect.InspectingClientAsync` per device, started, watched and stopped
together."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import ClientClosedError
from ..inspecting_client import InspectingClientAsync, InspectingClientStateType
from ..model import AttrDict
from ..sensor import Reading
from ..sensor_wait import Condition
from ..sync_gate import SyncGate
from ..waiting import check_timeout, with_timeout
from .config import (
    DEFAULT_CONNECT_SPREAD,
    DEFAULT_LEASE,
    DEFAULT_MAX_SYNCING,
    ConfigError,
    DeviceConfig,
    DeviceSpec,
    FleetConfig,
    RedisConfig,
    check_device_options,
    check_name,
)
from .member import Member
from .observers import FleetObserver, FleetObservers
from .summary import DeviceState, summarise

if TYPE_CHECKING:
    from ..mirror import RedisMirror
    from .mirroring import FleetMirror

logger = logging.getLogger("katcp_inspect.fleet")

#: Seconds between two samples of each device's message count (its rate).
RATE_INTERVAL = 1.0

#: Called with a device's name and new state on every change of state.
StateListener = Callable[[str, DeviceState], Any]


class Fleet:
    """Many KATCP devices in one process: one :class:`~katcp_inspect.InspectingClientAsync`
    per device, on one event loop, with their configuration, states and observers together.

    ``devices`` maps each device's name to ``"HOST:PORT"`` or a :class:`DeviceConfig` (its
    own client options and sampling rules). ``sampling`` maps sensor-name patterns
    (``re.search``) to strategies (``"event"``, ``"period 0.5"``, ``"auto"``) for every
    device; a device's own rules come after them and win, as later rules win. They are given
    to each client as pattern rules, so they cover sensors added later and are applied again
    after every reconnect. ``client_options`` are options of every client
    (:data:`~katcp_inspect.fleet.options.CLIENT_OPTIONS`; a device's own win).

    :meth:`start` spreads the first connection attempts over ``connect_spread`` seconds, in a
    random order, and at most ``max_syncing`` devices sync (list their model and set their
    strategies) at once, when they start as when many restart together. A configuration that
    cannot be used raises :class:`ConfigError` (a ``ValueError``).

    With ``redis`` (a URL: ``redis://``, ``rediss://``, ``unix://``; needs the ``redis``
    extra) the fleet also mirrors its devices into Redis under ``redis_prefix``
    (docs/redis.md). With ``workers``, it shares the devices with the other fleets (processes)
    given the same devices and Redis, by leases of ``redis_lease`` seconds: it runs only the
    devices whose lease it holds (:attr:`owned`), and takes others over when their worker
    stops or dies; the others show as ``"stopped"`` here (read them with
    :class:`~katcp_inspect.mirror.FleetView`), so wait for ``devices=fleet.owned``.
    """

    def __init__(self, devices: Mapping[str, DeviceSpec], *,
                 sampling: Mapping[str, str] | None = None,
                 client_options: Mapping[str, Any] | None = None,
                 max_syncing: int = DEFAULT_MAX_SYNCING,
                 connect_spread: float = DEFAULT_CONNECT_SPREAD,
                 redis: str | None = None, redis_prefix: str | None = None,
                 redis_lease: float = DEFAULT_LEASE, workers: bool = False) -> None:
        self._config = FleetConfig.of(devices, sampling=sampling, client_options=client_options,
                                      max_syncing=max_syncing, connect_spread=connect_spread)
        if workers and redis is None:
            raise ConfigError("workers need a Redis URL (redis=...)", ("redis", "url"))
        self._gate = SyncGate(max_syncing)
        self._members: dict[str, Member] = {}
        self._synced: set[str] = set()
        self._observers = FleetObservers()
        self._listeners: list[StateListener] = []
        # Futures of until_synced() waiting for the next change of state: set them all.
        self._changes: set[asyncio.Future[None]] = set()
        self._phase = "new"  # then "running" and "stopped", and again
        self._rate_timer: asyncio.TimerHandle | None = None
        self._stopping: asyncio.Future[Any] | None = None
        for name, device in self._config.devices.items():
            self._members[name] = self._member(name, device)
        self._mirror = None if redis is None else self._mirroring(
            RedisConfig(redis, redis_prefix, redis_lease), workers)

    def _mirroring(self, config: RedisConfig, workers: bool) -> FleetMirror:
        from .mirroring import FleetMirror  # imports redis: only for a fleet that uses it

        return FleetMirror(self._members, config, workers=workers,
                           spread=self._config.connect_spread,
                           running=lambda: self._phase == "running")

    @classmethod
    def from_config(cls, config: FleetConfig, *, workers: bool = False) -> Fleet:
        redis = config.redis
        return cls(config.devices, sampling=config.sampling,
                   client_options=config.client_options, max_syncing=config.max_syncing,
                   connect_spread=config.connect_spread,
                   redis=None if redis is None else redis.url,
                   redis_prefix=None if redis is None else redis.prefix,
                   redis_lease=DEFAULT_LEASE if redis is None else redis.lease, workers=workers)

    @classmethod
    def from_file(cls, path: str | Path, *, workers: bool = False) -> Fleet:
        """A fleet from a TOML configuration file (see :meth:`FleetConfig.load`)."""
        return cls.from_config(FleetConfig.load(path), workers=workers)

    def _member(self, name: str, device: DeviceConfig) -> Member:
        return Member(name, device, self._config.device_options(device),
                      self._config.device_rules(device), self._gate, self)

    # ------------------------------------------------------------------ the devices

    @property
    def names(self) -> tuple[str, ...]:
        """The devices' names, in the order they were given or added."""
        return tuple(self._members)

    @property
    def max_syncing(self) -> int:
        """Devices that may sync at once."""
        return self._gate.limit

    @property
    def syncing(self) -> int:
        """Devices syncing now (listing their model or setting strategies), at most
        :attr:`max_syncing`; others may wait for their turn."""
        return self._gate.holders

    @property
    def owned(self) -> frozenset[str]:
        """The devices this fleet runs: all of them, but in workers mode only those whose
        lease it holds now."""
        if self._mirror is not None and self._mirror.workers:
            return self._mirror.owned
        return frozenset(self._members)

    @property
    def mirror(self) -> RedisMirror | None:
        """The :class:`~katcp_inspect.mirror.RedisMirror` while the fleet runs with Redis."""
        return None if self._mirror is None else self._mirror.redis

    def __getitem__(self, name: str) -> InspectingClientAsync:
        """The client of device ``name`` (``KeyError`` if there is none)."""
        return self._get(name).client

    def __contains__(self, name: object) -> bool:
        return name in self._members

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._members))

    def _get(self, name: str) -> Member:
        member = self._members.get(name)
        if member is None:
            raise KeyError(f"no device {name!r} in the fleet")
        return member

    def add_device(self, name: str, spec: DeviceSpec) -> None:
        """Add a device (``"HOST:PORT"`` or a :class:`DeviceConfig`), started at once if the
        fleet runs. ``ValueError`` if the name is taken; :class:`ConfigError` (a
        ``ValueError`` too) for a bad name or configuration."""
        check_name(name)
        if name in self._members:
            raise ValueError(f"device {name!r} is already in the fleet")
        try:
            device = DeviceConfig.of(spec)
        except ConfigError as exc:
            raise exc.within(("devices", name)) from None
        check_device_options(self._config.options, device, name)
        member = self._members[name] = self._member(name, device)
        if self._mirror is not None:
            self._mirror.add(member)  # in workers mode, started once its lease is held
        if self._phase == "running" and not self._workers:
            member.start(0.0)
        self._changed()

    async def remove_device(self, name: str) -> None:
        """Stop device ``name``'s client and forget the device (``KeyError`` if unknown);
        returns once the client has stopped. Waits for it among others fail with
        ``KeyError``; waits on its client end with :class:`ClientClosedError`."""
        member = self._get(name)
        del self._members[name]
        self._synced.discard(name)
        self._observers.device_removed(name)
        stopping = member.stop()
        self._changed()
        if self._mirror is not None:
            await self._mirror.remove(name)
        await stopping

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start every device's client (doing nothing if the fleet runs); returns at once,
        the first attempts spread over ``connect_spread`` seconds. A stopped fleet may be
        started again."""
        if self._stopping is not None and not self._stopping.done():
            await asyncio.wait({self._stopping})
        if self._phase == "running":
            return
        self._phase = "running"
        loop = asyncio.get_running_loop()
        self._rate_timer = loop.call_later(RATE_INTERVAL, self._count_messages)
        if not self._workers:
            spread = self._config.connect_spread
            for member in self._members.values():
                member.start(random.uniform(0, spread) if spread > 0 else 0.0)
        if self._mirror is not None:
            await self._mirror.start()

    async def stop(self, timeout: float | None = None) -> None:
        """Stop every client; returns once every client and every task of the fleet has
        ended (or after ``timeout`` seconds, with a warning). Pending waits of the fleet, and
        those made while it is stopped, fail with :class:`ClientClosedError`."""
        check_timeout(timeout)
        self._phase = "stopped"
        if self._rate_timer is not None:
            self._rate_timer.cancel()
            self._rate_timer = None
        self._changed(ClientClosedError("the fleet was stopped"))
        stopping = self._stopping = asyncio.ensure_future(self._stop_all())
        try:
            await with_timeout(asyncio.shield(stopping), timeout)
        except TimeoutError:
            logger.warning("Fleet.stop(): %d devices still stopping after %s s",
                           sum(member.client.katcp_client.running
                               for member in self._members.values()), timeout)

    async def _stop_all(self) -> None:
        members = list(self._members.values())
        if self._workers and self._mirror is not None:
            await self._mirror.stop()  # leases first: no takeover waits for the lease time
        await asyncio.gather(*(member.stop() for member in members))
        if self._mirror is not None:
            await self._mirror.stop()  # after the members: their "stopped" is written

    @property
    def _workers(self) -> bool:
        return self._mirror is not None and self._mirror.workers

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ waiting

    def until_synced(self, timeout: float | None = None, devices: Iterable[str] | None = None,
                     quorum: int | None = None) -> asyncio.Future[None]:
        """Resolves when every device (or each of ``devices``; or at least ``quorum`` of them)
        is synced at the same moment. Fails with ``TimeoutError`` after ``timeout`` seconds,
        ``KeyError`` if a named device is (or gets) removed, and :class:`ClientClosedError`
        if the fleet is (or gets) stopped. Made before :meth:`start`, it waits for it."""
        check_timeout(timeout)
        names = None if devices is None else (
            (devices,) if isinstance(devices, str) else tuple(devices))
        for name in names or ():
            self._get(name)
        if quorum is not None:
            most = len(self._members) if names is None else len(names)
            if isinstance(quorum, bool) or not isinstance(quorum, int) or not 0 <= quorum <= most:
                raise ValueError(f"quorum must be a whole number from 0 to {most}, "
                                 f"not {quorum!r}")
        return with_timeout(self._until_synced(names, quorum), timeout)

    async def _until_synced(self, names: tuple[str, ...] | None, quorum: int | None) -> None:
        while not self._synced_enough(names, quorum):
            change: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._changes.add(change)
            try:
                await change
            finally:
                self._changes.discard(change)

    def _synced_enough(self, names: tuple[str, ...] | None, quorum: int | None) -> bool:
        if self._phase == "stopped":
            raise ClientClosedError("the fleet is stopped")
        if names is None:
            synced, total = len(self._synced), len(self._members)
        else:
            for name in names:
                if name not in self._members:
                    raise KeyError(f"device {name!r} was removed from the fleet")
            synced, total = sum(name in self._synced for name in names), len(names)
        return synced >= (total if quorum is None else quorum)

    def _changed(self, error: BaseException | None = None) -> None:
        changes, self._changes = self._changes, set()
        for change in changes:
            if change.done():
                continue
            if error is None:
                change.set_result(None)
            else:
                change.set_exception(error)

    def wait(self, device: str, sensor: str, condition: Condition,
             timeout: float | None = None) -> asyncio.Future[Reading]:
        """Device ``device``'s :meth:`~katcp_inspect.InspectingClientAsync.wait`: the first
        reading of ``sensor`` equal to ``condition`` (or meeting it, a predicate)."""
        return self._get(device).client.wait(sensor, condition, timeout)

    # ------------------------------------------------------------------ observers

    def attach(self, observer: FleetObserver, device: str = ".*", sensor: str = ".*") -> None:
        """Call ``observer(device_name, sensor, reading)`` on every update of every sensor
        whose name matches ``sensor`` (``re.search``) of every device whose name matches
        ``device``: sensors and devices added later too, and after reconnects and model
        changes. Attached again with other patterns, an observer also covers those; each
        sensor calls it once. ``ValueError`` for a bad pattern."""
        self._observers.attach(observer, device, sensor, self._members.values())

    def detach(self, observer: FleetObserver) -> None:
        """Stop calling ``observer`` (all its patterns); an unknown observer is ignored."""
        self._observers.detach(observer)

    def add_state_listener(self, listener: StateListener) -> None:
        """Call ``listener(name, state)`` with a device's :class:`DeviceState` whenever it
        changes state."""
        self._listeners.append(listener)

    def remove_state_listener(self, listener: StateListener) -> None:
        self._listeners.remove(listener)

    # ------------------------------------------------------------------ states

    def state(self, name: str) -> DeviceState:
        """What device ``name`` is doing now (``KeyError`` if there is none)."""
        return self._get(name).snapshot()

    def states(self) -> list[DeviceState]:
        return [member.snapshot() for member in self._members.values()]

    def summary(self) -> dict[str, Any]:
        """Devices per state and each device's state, as a dict that serialises to JSON
        (see :func:`~katcp_inspect.fleet.summary.summarise`)."""
        return summarise(self.states())

    def _count_messages(self) -> None:
        now = time.monotonic()
        for member in self._members.values():
            member.count_messages(now)
        self._rate_timer = asyncio.get_running_loop().call_later(RATE_INTERVAL,
                                                                 self._count_messages)

    # ------------------------------------------------------------------ what members say

    def state_changed(self, member: Member) -> None:
        if self._members.get(member.name) is not member:
            return  # removed
        if member.state == "synced":
            self._synced.add(member.name)
        else:
            self._synced.discard(member.name)
        self._changed()
        if self._mirror is not None:
            self._mirror.status(member)
        if self._listeners:
            state = member.snapshot()
            for listener in list(self._listeners):
                try:
                    listener(member.name, state)
                except Exception:
                    logger.exception("State listener %r raised", listener)

    def reported(self, member: Member, state: InspectingClientStateType,
                 changes: AttrDict | None) -> None:
        if self._mirror is not None and self._members.get(member.name) is member:
            self._mirror.reported(member, state, changes)

    def sensors_changed(self, member: Member, added: Iterable[str],
                        removed: Iterable[str]) -> None:
        if self._members.get(member.name) is member:
            self._observers.sensors_changed(member, added, removed)


__all__ = ["RATE_INTERVAL", "Fleet", "StateListener"]
