"""One device of a fleet: its client, started and stopped for the fleet, and what the fleet
tracks of it (its state and since when, its last connection problem, its sensors, its rate
of messages).

The member owns its client's state callback and adds connection callbacks of its own; it
tells the fleet of every change through :class:`MemberEvents`. Nothing here runs per update.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from ..inspecting_client import InspectingClientStateType
from ..model import AttrDict
from ..stats import OnceLogger
from ..sync_gate import SyncGate
from ..text import printable
from ..waiting import drain
from .config import DeviceConfig
from .options import make_client
from .rules import SamplingRule
from .summary import DeviceState, describe_error

logger = logging.getLogger("katcp_inspect.fleet")
_problems = OnceLogger(logger)


class MemberEvents(Protocol):
    """What a member tells its fleet."""

    def state_changed(self, member: Member) -> None: ...

    def reported(self, member: Member, state: InspectingClientStateType,
                 changes: AttrDict | None) -> None: ...

    def sensors_changed(self, member: Member, added: Iterable[str],
                        removed: Iterable[str]) -> None: ...


class Member:
    """A device of the fleet and its :class:`~katcp_inspect.InspectingClientAsync`."""

    def __init__(self, name: str, device: DeviceConfig, options: Mapping[str, Any],
                 rules: tuple[SamplingRule, ...], gate: SyncGate,
                 events: MemberEvents) -> None:
        self.name = name
        self.device = device
        self.rules = rules
        self.client = make_client(device.host, device.port, options, gate)
        #: The fleet wants it running (between start() and stop()).
        self.running = False
        self.state = "stopped"
        self.since = time.monotonic()
        self.last_error: str | None = None
        self.sensor_count = 0
        self.updates_per_second = 0.0
        self._counted = (0, self.since)
        # An attempt failed or the connection was lost since start(): not connected is then
        # "disconnected" rather than "connecting".
        self._trouble = False
        self._rules_applied = False
        self._start_handle: asyncio.TimerHandle | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._events = events
        self.client.set_state_callback(self._reported)
        katcp = self.client.katcp_client
        katcp.add_failed_connect_callback(self._failed)
        katcp.add_disconnected_callback(self._lost)

    @property
    def address(self) -> str:
        return self.client.bind_address_string

    # ------------------------------------------------------------------ lifecycle

    def start(self, delay: float) -> None:
        """Connect after ``delay`` seconds (now if 0)."""
        if self.running:
            return
        self.running = True
        self._trouble = False
        self._set("connecting")
        if delay > 0:
            self._start_handle = asyncio.get_running_loop().call_later(delay, self._connect)
        else:
            self._connect()

    def _connect(self) -> None:
        self._start_handle = None
        if not self._rules_applied:
            # Remembered by the client (not connected yet, nothing is sent): applied after
            # every sync, to sensors added later too.
            self._rules_applied = True
            for rule in self.rules:
                self.client.set_sampling_strategies(rule.pattern, *rule.strategy)
        started = self._track(self.client.connect())
        started.add_done_callback(self._started)

    def _started(self, started: asyncio.Future[None]) -> None:
        if started.cancelled() or started.exception() is not None or not self.running:
            return
        self._track(self.client.until_stopped()).add_done_callback(self._closed)

    def _closed(self, _: asyncio.Future[None]) -> None:
        if self.running:  # closed for good without stop(): auto_reconnect is off
            self._set("stopped")

    def stop(self) -> asyncio.Future[None]:
        """Stop the client; resolves once it and everything the member started have ended."""
        self.running = False
        if self._start_handle is not None:
            self._start_handle.cancel()
            self._start_handle = None
        self._set("stopped")
        return asyncio.ensure_future(self._stopped(self.client.stop()))

    async def _stopped(self, stopping: asyncio.Future[None]) -> None:
        await stopping
        await drain(self._pending)

    def _track(self, future: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._pending.add(future)
        future.add_done_callback(self._untrack)
        return future

    def _untrack(self, future: asyncio.Future[Any]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("%s: %r failed", printable(self.name), future,
                         exc_info=future.exception())

    # ------------------------------------------------------------------ what the client says

    def _reported(self, state: InspectingClientStateType, changes: AttrDict | None) -> None:
        if changes and "sensors" in changes:
            self.sensor_count = len(self.client.sensors)
            self._events.sensors_changed(self, changes.sensors.added, changes.sensors.removed)
        if self.running:
            if state.synced:
                self._set("synced")
            elif state.connected:
                self._set("syncing")
            else:
                self._set("disconnected" if self._trouble else "connecting")
        self._events.reported(self, state, changes)

    def _failed(self, error: BaseException) -> None:
        if self.running:
            self._trouble = True
            self.last_error = describe_error(error)
            self._set("disconnected")

    def _lost(self) -> None:
        if self.running:
            self._trouble = True
            self.last_error = describe_error(self.client.katcp_client.last_error)
            self._set("disconnected")

    def _set(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.monotonic()
            self._events.state_changed(self)

    # ------------------------------------------------------------------ what the fleet shows

    def count_messages(self, now: float) -> None:
        """Take the rate of messages since the last call."""
        count = self.client.katcp_client.stats.messages
        before, then = self._counted
        if now > then:
            self.updates_per_second = (count - before) / (now - then)
        self._counted = (count, now)

    def snapshot(self) -> DeviceState:
        flags = self.client.katcp_client.protocol_flags
        return DeviceState(self.name, self.address, self.state,
                           None if flags is None else str(flags), self.sensor_count,
                           round(self.updates_per_second, 1), self.last_error, self.since)

    # ------------------------------------------------------------------ for the observers

    def sensor_names(self) -> list[str]:
        return self.client.sensors

    def sensor(self, name: str) -> Any | None:
        """The object of sensor ``name`` of the model (made now if need be), or None."""
        future = self.client.future_get_sensor(name)
        if not future.done():  # not in the model (any more): no lookup wanted
            future.cancel()
            return None
        error = future.exception()
        if error is not None:
            _problems.log(("factory", self.name), "%s: the sensor_factory failed for %s "
                          "(%r); the sensor is not observed", printable(self.name),
                          printable(name), error)
            return None
        return future.result()


__all__ = ["Member", "MemberEvents"]
