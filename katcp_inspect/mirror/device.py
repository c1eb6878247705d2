"""``DeviceMirror``: one device's :class:`~katcp_inspect.InspectingClientAsync`, mirrored.

The mirror is told of the client's state reports (:meth:`DeviceMirror.state_changed`) and
observes the client's sensors (:meth:`DeviceMirror.update`, the hot path: it appends to a
bounded buffer and nothing else). It writes nothing itself: the worker's
:class:`~katcp_inspect.mirror.writer.Writer` asks it for its pending operations
(:meth:`DeviceMirror.take`) and hands back their results (:meth:`DeviceMirror.done`).

At each synced report the whole model and every latest reading go to Redis in one atomic
commit, under a new generation; readings then follow in batches of that generation. Any
failure (Redis lost, restarted, out of step) makes the next write a whole commit again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import attrs

from ..kattypes import STATUS_TO_WIRE, value_encoder
from ..sensor import Reading
from ..stats import OnceLogger
from ..sync_states import InspectingClientStateType
from ..text import printable
from .schema import (
    RECORD,
    encode_reading,
    encode_request,
    encode_sensor,
    pack_records,
    raw,
)

if TYPE_CHECKING:
    from ..inspecting_client import InspectingClientAsync
    from ..model import AttrDict
    from .schema import Keys

logger = logging.getLogger("katcp_inspect.mirror")

# Shared by every mirror of the process: a thousand devices fenced out at once (their worker
# lost Redis for a while) make one warning and then a count, not a thousand warnings.
_problems = OnceLogger(logger)

#: The device states of the mirror's ``state`` field (those of the fleet).
STATES = ("connecting", "syncing", "synced", "disconnected", "stopped")


@attrs.define
class MirrorStats:
    """What one device's mirror did, since it was made."""

    #: Whole models committed (each a new generation).
    commits: int = 0
    #: Batches of readings written.
    flushes: int = 0
    #: Readings written to the stream.
    readings: int = 0
    #: Readings left out of the stream because its buffer was full (the latest reading of
    #: each sensor still reached the readings hash).
    dropped: int = 0
    #: Writes refused because the lease was not this worker's.
    fenced: int = 0
    #: Writes that failed (Redis unreachable, restarted, an error): each makes the next
    #: write a whole commit.
    failures: int = 0
    #: Readings that could not be encoded for their sensor's type (skipped).
    bad_readings: int = 0


class Op(NamedTuple):
    """One script call: its name, keys and arguments, and what it was (``commit`` with the
    generation it proposes, ``flush``, ``status``)."""

    script: str
    keys: list[str]
    args: list[Any]
    kind: str
    generation: int = 0


def state_name(state: InspectingClientStateType) -> str:
    """The mirror's name for a client state (a fleet passes its own, see
    :meth:`DeviceMirror.set_status`)."""
    if state.synced:
        return "synced"
    return "syncing" if state.connected else "disconnected"


class DeviceMirror:
    """Mirrors the model, state and readings of one client while this worker holds the
    device's lease (:meth:`activate`). Made by :class:`~katcp_inspect.mirror.RedisMirror`."""

    def __init__(self, name: str, client: InspectingClientAsync, keys: Keys,
                 mark: Callable[[DeviceMirror], None], *, owner: str,
                 stream_maxlen: int, buffer: int) -> None:
        self.name = name
        self.client = client
        self.stats = MirrorStats()
        #: The token of the lease this worker holds, None while it holds none.
        self.token: str | None = None
        #: The generation last committed (or found current in Redis).
        self.generation = 0
        #: Called when a write was refused because another worker holds the lease.
        self.on_fenced: Callable[[str], None] | None = None
        self._raw_name = raw(name)
        self._keys = [keys.device(name, part) for part in
                      ("lease", "state", "sensors", "requests", "readings", "stream")]
        self._devices_key = keys.devices
        self._mark = mark
        self._owner = owner
        self._maxlen = stream_maxlen
        self._buffer = buffer
        self._problems = _problems
        # A synced report came and no model change since: the model may be committed.
        self._model_ready = False
        self._needs_commit = False
        self._status: dict[str, str] = {"state": "connecting", "last_error": "",
                                        "since": repr(time.time())}
        self._status_dirty = True
        self._marked = False
        #: Readings in arrival order, for the stream (at most ``buffer``): two lists rather
        #: than a list of pairs, so that a buffered reading makes no object of its own for
        #: the garbage collector to track (that alone cost the writer a fifth of its rate).
        self._stream_sensors: list[Any] = []
        self._stream_readings: list[Reading] = []
        #: The latest reading of each sensor that found the stream buffer full.
        self._overflow: dict[str, tuple[Any, Reading]] = {}
        self._dropped = 0
        #: Sensor objects observed, by name.
        self._observed: dict[str, Any] = {}
        #: Per sensor observed: its name as Redis gets it and its value's encoder (made
        #: anew at each commit, when the model may have changed).
        self._codecs: dict[str, tuple[bytes, Callable[[Any], bytes]]] = {}

    @property
    def active(self) -> bool:
        return self.token is not None

    # ------------------------------------------------------------------ told by the owner

    def activate(self, token: str) -> None:
        """This worker holds the device's lease (with ``token``): write the whole state."""
        self.token = token
        self._needs_commit = True
        self._status_dirty = True
        self._request()

    def deactivate(self) -> None:
        """The lease is gone: write nothing more, keep nothing buffered."""
        self.token = None
        self._clear_buffers()

    def close(self) -> None:
        """Stop observing the client's sensors."""
        self.deactivate()
        for sensor in self._observed.values():
            sensor.detach(self)
        self._observed.clear()

    def state_changed(self, state: InspectingClientStateType,
                      changes: AttrDict | None = None) -> None:
        """The client reported ``state`` (a state callback: the owner calls it, or installs it
        with ``set_state_callback``). A synced report commits the whole model; a model change
        holds the readings back until then."""
        if changes is not None:
            self._model_ready = False
        if state.synced:
            self._model_ready = True
            self._needs_commit = True
            self._request()
        self.set_status(state_name(state))

    def set_status(self, state: str | None = None, last_error: str | None = None) -> None:
        """Set the device's ``state`` (one of :data:`STATES`) and ``last_error`` as the
        mirror shows them (a fleet calls this with its own view of the device)."""
        if state is not None and state != self._status["state"]:
            self._status["state"] = state
            self._status["since"] = repr(time.time())
            self._status_dirty = True
        if last_error is not None and last_error != self._status["last_error"]:
            self._status["last_error"] = last_error
            self._status_dirty = True
        if self._status_dirty:
            self._request()

    # ------------------------------------------------------------------ the hot path

    def update(self, sensor: Any, reading: Reading) -> None:
        """A sensor observer: buffer the reading for the writer (no future, no task)."""
        if self.token is None:
            return
        if len(self._stream_readings) < self._buffer:
            self._stream_sensors.append(sensor)
            self._stream_readings.append(reading)
        else:
            self._overflow[sensor.name] = (sensor, reading)
            self._dropped += 1
        if not self._marked:
            self._marked = True
            self._mark(self)

    def _request(self) -> None:
        if self.token is not None and not self._marked:
            self._marked = True
            self._mark(self)

    # ------------------------------------------------------------------ for the writer

    def take(self) -> list[Op]:
        """The writes due now (none while inactive); the buffers are handed over."""
        self._marked = False
        if self.token is None:
            return []
        # The flags are cleared as the writes are taken, not when they succeed: a report
        # that comes while they are on their way sets them again, for the next batch.
        if self._needs_commit:
            self._clear_buffers()  # the commit carries every latest reading
            if self._model_ready:
                self._needs_commit = self._status_dirty = False
                return [self._commit()]
        ops = []
        if self._status_dirty:
            self._status_dirty = False
            ops.append(self._status_op())
        if self._stream_readings or self._overflow:
            if self.generation and not self._needs_commit:
                ops.append(self._flush())
            self._clear_buffers()
        return ops

    def done(self, op: Op, result: Any) -> bool:
        """The result of ``op`` (what the script returned, or the exception it raised); True
        if the writes are to be tried again later."""
        if isinstance(result, BaseException):
            self._failed(op, result)
            return True
        code, value = (int(result[0]), int(result[1])) if op.kind == "commit" else (int(result), 0)
        if code == 1:
            self._succeeded(op, value)
        elif code == -2:  # out of step: a newer generation exists (or ours is gone)
            if op.kind == "commit":
                self.generation = max(self.generation, value)
            self._needs_commit = True
            self._request()
        elif code == -3:  # no lease key: Redis restarted; the coordinator claims it again
            self._needs_commit = True
            self._status_dirty = True
            return True
        else:
            self._refused()
        return False

    def failed(self, error: BaseException) -> None:
        """The writes taken were lost (Redis unreachable): the next write is a whole commit."""
        self.stats.failures += 1
        self._needs_commit = True
        self._status_dirty = True

    def _succeeded(self, op: Op, value: int) -> None:
        if op.kind == "commit":
            self.generation = value
            self.stats.commits += 1
        elif op.kind == "flush":
            self.stats.flushes += 1

    def _failed(self, op: Op, error: BaseException) -> None:
        self._problems.log(("write", type(error)), "%s: a %s write to Redis failed (%r); the "
                           "whole state is written again", printable(self.name), op.kind,
                           error)
        self.failed(error)

    def _refused(self) -> None:
        self.stats.fenced += 1
        self._problems.log("fenced", "%s: Redis refused a write: another worker holds the "
                           "lease; this worker stops writing the device", printable(self.name))
        self.deactivate()
        if self.on_fenced is not None:
            self.on_fenced(self.name)

    def _clear_buffers(self) -> None:
        self._stream_sensors = []
        self._stream_readings = []
        self._overflow = {}
        self._dropped = 0

    # ------------------------------------------------------------------ the operations

    def _codec(self, sensor: Any) -> tuple[bytes, Callable[[Any], bytes]]:
        codec = self._codecs[sensor.name] = (raw(sensor.name),
                                             value_encoder(sensor.sensor_type))
        return codec

    def _encode(self, sensor: Any, reading: Reading, generation: int) -> bytes | None:
        try:
            return encode_reading(generation, sensor.sensor_type, reading)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            self._bad_reading(sensor, reading, exc)
            return None

    def _bad_reading(self, sensor: Any, reading: Any, exc: BaseException) -> None:
        self.stats.bad_readings += 1
        name = getattr(sensor, "name", "?")
        self._problems.log(("encode", name), "%s: reading %r of sensor %s does not encode "
                           "(%r); skipped", printable(self.name), reading, printable(name), exc)

    def _status_fields(self) -> list[Any]:
        flags = self.client.katcp_client.protocol_flags
        fields: list[Any] = []
        for key, value in (*self._status.items(),
                           ("protocol", "" if flags is None else str(flags))):
            fields += (key, value)
        return fields

    def _status_op(self) -> Op:
        return Op("status", self._keys[:2], [self.token, *self._status_fields()], "status")

    def _flush(self) -> Op:
        generation = self.generation
        stream, count = self._records(zip(self._stream_sensors, self._stream_readings),
                                      generation)
        latest, _ = self._records(self._overflow.values(), generation)
        self.stats.readings += count
        self.stats.dropped += self._dropped
        keys = [self._keys[0], self._keys[1], self._keys[4], self._keys[5]]
        return Op("flush", keys, [self.token, generation, self._maxlen, self._dropped, count,
                                  stream, latest], "flush", generation)

    def _records(self, readings: Iterable[tuple[Any, Reading]], generation: int
                 ) -> tuple[bytes, int]:
        """The records (see :func:`~katcp_inspect.mirror.schema.pack_records`) of
        ``readings``, and how many: the writer's inner loop, so written out here."""
        prefix = b"%d " % generation
        parts: list[bytes] = []
        codecs, pack, wire = self._codecs, RECORD.pack, STATUS_TO_WIRE
        for sensor, reading in readings:
            try:
                name, encode = codecs.get(sensor.name) or self._codec(sensor)
                timestamp, status, value = reading
                encoded = b"%s%r %s %s" % (prefix, float(timestamp), wire[status],
                                           encode(value))
            except (KeyError, ValueError, TypeError, AttributeError) as exc:
                self._bad_reading(sensor, reading, exc)
                continue
            parts += (pack(len(name), len(encoded)), name, encoded)
        return b"".join(parts), len(parts) // 3

    def _commit(self) -> Op:
        """The whole model and every latest reading, as the client has them now."""
        generation = self.generation + 1
        names = self.client.sensors
        sensors = []
        readings = []
        self._codecs = {}
        for name in names:
            sensor = self._observe(name)
            if sensor is None:
                continue
            raw_name = self._codec(sensor)[0]
            sensors.append((raw_name, encode_sensor(
                sensor.sensor_type, sensor.units, sensor.description, sensor.params)))
            encoded = self._encode(sensor, sensor.read(), generation)
            if encoded is not None:
                readings.append((raw_name, encoded))
        present = set(names)
        for gone in [n for n in self._observed if n not in present]:
            self._observed.pop(gone).detach(self)
        args = [self.token, generation, self._maxlen, self._raw_name, self._owner,
                pack_records(sensors), pack_records(self._requests()), pack_records(readings),
                *self._status_fields(), "sensors", len(names)]
        return Op("commit", [*self._keys, self._devices_key], args, "commit", generation)

    def _requests(self) -> list[tuple[bytes, bytes]]:
        records = []
        for name in self.client.requests:
            future = self.client.future_get_request(name)
            if future.done() and future.exception() is None:
                request = future.result()
                records.append((raw(name), encode_request(
                    getattr(request, "description", ""), getattr(request, "timeout_hint", None))))
            else:
                future.cancel()
        return records

    def _observe(self, name: str) -> Any | None:
        """The client's object of sensor ``name``, observed by this mirror (None if the
        client could not make one)."""
        future = self.client.future_get_sensor(name)
        if not future.done():  # not in the model any more: no lookup wanted
            future.cancel()
            return None
        error = future.exception()
        if error is not None:
            self._problems.log(("factory", name), "%s: no sensor object for %s (%r); not "
                               "mirrored", printable(self.name), printable(name), error)
            return None
        sensor = future.result()
        if sensor is None:
            return None
        old = self._observed.get(name)
        if old is not None and old is not sensor:
            old.detach(self)
        sensor.attach(self)
        self._observed[name] = sensor
        return sensor


__all__ = ["STATES", "DeviceMirror", "MirrorStats", "Op", "state_name"]
