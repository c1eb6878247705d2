"""The sync loop: the one task that keeps the model in step with the device and makes every
state report.

Everything else (connection events, ``#interface-changed``, updates for unknown sensors, stray
listing informs, lookups that changed the model) only records what needs doing (:attr:`work`,
:attr:`dirty`, a new :attr:`epoch`) and sets the wake flag. The loop goes through these
phases, one round from PLANNING back to PLANNING:

=========== ================================ ================ =================================
phase       reports                          holds            does, and goes to
=========== ================================ ================ =================================
PLANNING    DISCONNECTED while not connected the round's      waits for a negotiated connection;
                                             epoch and work   on a new one plans a whole
                                                              inspection (none if the first is
                                                              skipped); takes the work:
                                                              INSPECTING
INSPECTING  SYNCING, if there is work or the the work taken   inspects it; on success
            connection is new                                 REPORTING; on failure puts it
                                                              back (listed whole after an
                                                              inconsistent answer), then
                                                              BACKING_OFF, or PLANNING if the
                                                              connection or the run ended
BACKING_OFF (nothing)                        the delay        waits the backoff delay, a new
                                                              connection or stop: PLANNING
REPORTING   DATA_SYNCED_CHANGED with the     the snapshot     SAMPLING
            changes since the last report,   last reported
            or DATA_SYNCED (if there was
            work or a change)
SAMPLING    (nothing)                        (nothing)        sends the strategies the device
                                                              lacks (same connection only);
                                                              SYNCED if nothing is left to do,
                                                              else PLANNING
SYNCED      SYNCED                           (nothing)        waits for work, an unreported
                                                              change, another connection or
                                                              stop: PLANNING
=========== ================================ ================ =================================

With a :class:`~katcp_inspect.sync_gate.SyncGate` (shared by the clients of a fleet), a round
with work or on a new connection enters the gate in INSPECTING, after reporting SYNCING, and
leaves it once past SAMPLING (or on any way out of those phases): at most the gate's limit of
clients inspect, report and sample at once. Waiting at the gate ends, back to PLANNING, when
the connection changes or the run ends.

A failure that is not the device's (a bug, ours or in user code the loop calls) ends the
phase: it is logged with its traceback and the loop goes to BACKING_OFF. SYNCED is reported
only with nothing known to be left to do, so the client never reports synced with a model
known to be stale. May import ``backoff``, ``inspection``, ``model``, ``stats``, ``sync_gate``,
``sync_states``, ``text``, ``waiting`` and (for its types) ``client``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable

from .backoff import ExponentialRandomBackoff
from .inspection import EXPECTED_FAILURES, InconsistentAnswer, Work
from .message import Message
from .model import AttrDict, DeviceModel
from .stats import InspectingStats, OnceLogger
from .sync_gate import SyncGate
from .sync_states import (
    DATA_SYNCED,
    DATA_SYNCED_CHANGED,
    DISCONNECTED,
    SYNCED,
    SYNCING,
    State,
    StateReports,
)
from .waiting import Flag, with_timeout

if TYPE_CHECKING:
    from .client import DeviceClient

#: Unknown sensors (names in updates but not in the model) looked up one by one, per connection.
MAX_UNKNOWN_LOOKUPS = 100


class Phase(enum.Enum):
    """The phases of the sync loop; the table in the module's docstring says what each
    reports, holds and does, and which phase follows."""

    PLANNING = "planning"
    INSPECTING = "inspecting"
    BACKING_OFF = "backing off"
    REPORTING = "reporting"
    SAMPLING = "sampling"
    SYNCED = "synced"


#: The phases a round holds its place in the sync gate through, once it has entered it.
_GATED = frozenset({Phase.INSPECTING, Phase.REPORTING, Phase.SAMPLING})


class SyncLoop:
    """What the model needs from the device, and the loop that gets it and reports states."""

    def __init__(self, client: DeviceClient, model: DeviceModel, states: StateReports,
                 inspect: Callable[[Work], Awaitable[None]],
                 sample: Callable[[], Awaitable[Any]], stats: InspectingStats,
                 problems: OnceLogger, gate: SyncGate | None = None) -> None:
        #: Bumped by every connect() and stop(): a loop whose run is no longer it stands down.
        self.current_run = 0
        #: Bumped by every connection and disconnection.
        self.epoch = 0
        #: What the next round must inspect.
        self.work = Work()
        #: The model changed outside the loop (a lookup) and the change is not reported yet.
        self.dirty = False
        self.wake = Flag()
        #: katcp-python's ``initial_inspection=False``: skip the first inspection only.
        self.skip_first_inspection = False
        #: Unknown sensor names asked about on this connection, and whether past the bound
        #: the whole list was asked for instead.
        self.unknown_asked: set[str] = set()
        self._unknown_relisted = False
        self._client = client
        self._model = model
        self._states = states
        self._inspect = inspect
        self._sample = sample
        self._stats = stats
        self._problems = problems
        self._logger = problems.logger
        self._reported = model.snapshot()
        # The current run's loop: its number, backoff and round.
        self._run = 0
        self._backoff = ExponentialRandomBackoff(0, 0)
        self._retry_in = 0.0
        self._inspected_epoch = -1
        self._round_epoch = 0
        self._new_connection = False
        self._taken = Work()
        self._gate = gate
        #: Whether this loop holds a place in the gate.
        self._holding = False

    # ------------------------------------------------------------------ recording what to do

    def poke(self) -> None:
        self.wake.set()

    def want(self, work: Work) -> None:
        self.work.merge(work)
        self.poke()

    def connected(self) -> None:
        """A new connection (the caller wakes the loop once it has done its part)."""
        self.epoch += 1
        self.unknown_asked = set()
        self._unknown_relisted = False

    def disconnected(self) -> None:
        """The connection is gone (the caller wakes the loop once it has done its part)."""
        self.epoch += 1

    def interface_changed(self, message: Message) -> None:
        """``#interface-changed [sensor|request name]`` (and ``#device-changed``)."""
        args = [a.decode("utf-8", "surrogateescape") for a in message.arguments]
        if len(args) >= 2 and args[0] in ("sensor", "sensor-list"):
            self.want(Work(sensors={args[1]}))
        elif len(args) >= 2 and args[0] in ("request", "request-list"):
            self.want(Work(requests={args[1]}))
        elif args in (["sensor-list"], ["request-list"]):
            self.want(Work(all_sensors=args == ["sensor-list"],
                           all_requests=args == ["request-list"]))
        else:
            if message.name == "device-changed":
                self._logger.debug("%s sent #device-changed (treated as #interface-changed)",
                                   self._client.address)
            self.want(Work(all_requests=True, all_sensors=True))

    def stray_inform(self, message: Message) -> None:
        """A listing inform that answers no request: a late or duplicated answer. Without
        message ids, one that disagrees with the model means that a stray answer may have
        been taken for the real one (a duplicated refusal looks like any other): list that
        half again. One that agrees (the usual duplicate) changes nothing; with message ids
        nothing can be mistaken for the answer to another request."""
        flags = self._client.protocol_flags
        if flags is None or flags.message_ids or not self._model.contradicted_by(message):
            return
        self._stats.inconsistent_answers += 1
        self._problems.log(("stray", message.name), "%s: #%s answering no request disagrees "
                           "with the model; listing again", self._client.address,
                           message.name)
        sensors = message.name == "sensor-list"
        self.want(Work(all_sensors=sensors, all_requests=not sensors))

    def unknown_sensor(self, name: str) -> None:
        """An update named a sensor the model does not know: ask about a few names; past
        that (a confused or hostile device) list the sensors again, once per connection."""
        if name in self.unknown_asked or not self._states.state.data_synced:
            return
        if len(self.unknown_asked) < MAX_UNKNOWN_LOOKUPS:
            self.unknown_asked.add(name)
            self.work.sensors.add(name)
        elif not self._unknown_relisted:
            self._unknown_relisted = True
            self.work.all_sensors = True
        self.poke()

    # ------------------------------------------------------------------ the loop

    async def run(self, run: int, backoff: ExponentialRandomBackoff) -> None:
        """Go through the phases until ``run`` is no longer the current run or the client is
        closed for good."""
        self._run, self._backoff, self._inspected_epoch = run, backoff, -1
        phases = {Phase.PLANNING: self._planning, Phase.INSPECTING: self._inspecting,
                  Phase.BACKING_OFF: self._backing_off, Phase.REPORTING: self._reporting,
                  Phase.SAMPLING: self._sampling, Phase.SYNCED: self._synced}
        phase = Phase.PLANNING
        try:
            while run == self.current_run and self._client.running:
                try:
                    phase = await phases[phase]()
                except Exception:
                    # A bug (ours, or in user code we call) must not end the loop; a round on
                    # a new connection that it cut short starts over.
                    self._logger.exception("%s: the state loop failed; retrying in %.2f s",
                                           self._client.address, self._failed())
                    if self._new_connection:
                        self._inspected_epoch = -1
                    phase = Phase.BACKING_OFF
                if phase not in _GATED:
                    self._leave_gate()
        finally:
            self._leave_gate()

    async def _gate_entered(self) -> bool:
        """Wait for a place in the gate (at once without one); False if the connection
        changed or the run ended first."""
        if self._gate is None:
            return True
        run, epoch = self.current_run, self.epoch
        entry = self._gate.enter()
        try:
            while (not entry.done() and run == self.current_run and self._client.running
                   and epoch == self.epoch):
                self.wake.clear()
                woken = self.wake.wait()
                try:
                    await asyncio.wait({entry, woken}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    woken.cancel()
        finally:
            if not entry.done():
                entry.cancel()
        self._holding = not entry.cancelled()
        return self._holding and run == self.current_run and epoch == self.epoch

    def _leave_gate(self) -> None:
        if self._holding and self._gate is not None:
            self._holding = False
            self._gate.leave()

    def _failed(self) -> float:
        """Count a failed round and take the next backoff delay."""
        self._stats.failed_syncs += 1
        self._retry_in = self._backoff.delay
        self._backoff.failed()
        return self._retry_in

    async def _report(self, state: State, changes: AttrDict | None = None) -> None:
        await self._states.report(state, changes, self._client.address)

    async def _planning(self) -> Phase:
        if not self._client.is_connected:
            await self._report(DISCONNECTED)
            await self._sleep_until(lambda: self._client.is_connected)
            return Phase.PLANNING
        self._round_epoch = self.epoch
        self._new_connection = self._round_epoch != self._inspected_epoch
        if self._new_connection:
            self._inspected_epoch = self._round_epoch
            self.work = Work(all_requests=True, all_sensors=True)
            if self.skip_first_inspection:
                self.skip_first_inspection = False
                self.work = Work()
        self._taken, self.work = self.work, Work()
        return Phase.INSPECTING

    async def _inspecting(self) -> Phase:
        work = self._taken
        if work or self._new_connection:
            await self._report(SYNCING)
            if not await self._gate_entered():
                self.work.merge(work)  # superseded by the new connection's inspection
                return Phase.PLANNING
        if not work:
            return Phase.REPORTING
        try:
            await self._inspect(work)
        except Exception as exc:
            self.work.merge(work.widened() if isinstance(exc, InconsistentAnswer) else work)
            if not self._client.is_connected or self._run != self.current_run:
                return Phase.PLANNING
            # A bug (ours, or a user's factory) is logged with its traceback.
            self._logger.warning("%s: sync failed (%s); retrying in %.2f s",
                                 self._client.address, str(exc), self._failed(),
                                 exc_info=not isinstance(exc, EXPECTED_FAILURES))
            return Phase.BACKING_OFF
        self._backoff.success()
        return Phase.REPORTING

    async def _backing_off(self) -> Phase:
        await self._sleep_until(lambda: False, self._retry_in)
        return Phase.PLANNING

    async def _reporting(self) -> Phase:
        changes = self._model.changes_since(self._reported)
        self._reported = self._model.snapshot()
        self.dirty = False
        if self._taken or changes is not None:
            await self._report(DATA_SYNCED_CHANGED if changes else DATA_SYNCED, changes)
        return Phase.SAMPLING

    async def _sampling(self) -> Phase:
        if self._client.is_connected and self._round_epoch == self.epoch:
            await self._sample()
        # Synced only with nothing known to be left to do: no change announced meanwhile, no
        # lookup's change unreported, the same connection, not stopped.
        if (self.work or self.dirty or self._run != self.current_run
                or not self._client.is_connected or self._round_epoch != self.epoch):
            return Phase.PLANNING
        return Phase.SYNCED

    async def _synced(self) -> Phase:
        # A device that answered a whole sync is no accept-and-close device: its next restart
        # is followed at once, not after the backoff that guards against those.
        self._client.mark_healthy()
        await self._report(SYNCED)
        await self._sleep_until(lambda: bool(self.work) or self.dirty)
        return Phase.PLANNING

    async def _sleep_until(self, condition: Callable[[], bool],
                           delay: float | None = None) -> None:
        """Wait until ``condition()`` holds, the connection changes, the run ends, or
        ``delay`` passes; every event source sets the wake flag."""
        run, epoch = self.current_run, self.epoch
        connected = self._client.is_connected
        loop = asyncio.get_running_loop()
        deadline = None if delay is None else loop.time() + delay
        while (run == self.current_run and self._client.running and not condition()
               and epoch == self.epoch and connected == self._client.is_connected):
            self.wake.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                await with_timeout(self.wake.wait(), remaining)
            except TimeoutError:
                return


__all__ = ["MAX_UNKNOWN_LOOKUPS", "Phase", "SyncLoop"]
