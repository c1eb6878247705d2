"""The sensor-update path: ``#sensor-status`` readings into the cached sensor objects and
their observers, and the cache of sensor objects that path feeds.

This is the product's hot path. A reading of the usual one-reading inform costs one dict
lookup (the raw name to the sensor's object) and one call; no future, task or coroutine is
made per update. Bad readings are counted, logged once per kind and skipped. Names the model
does not know are reported to the sync loop, which looks them up. May import ``kattypes``,
``model``, ``sensor``, ``stats``, ``text`` and (for its types) ``client``.

A sensor has no object until one is asked for (a lookup, :meth:`SensorUpdates.sensor`) or a
``sensor_factory`` other than the default is in force at its first reading: until then its
latest reading is a *record*, a plain tuple of plain values (:data:`Record`), which the
garbage collector stops tracking. A fleet of a million sensors, most of which nobody looks
at, then holds a tuple per sensor instead of a sensor object, its reading, its parameters
and a bound method, all tracked and scanned by every full collection.
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any, Callable, Protocol

from . import kattypes
from .kattypes import STATUS_FROM_WIRE, SensorStatus, SensorType
from .model import SensorFields, SensorInfo, SensorRegistry
from .sensor import Reading, Sensor, SensorKind, StrategySetter
from .stats import InspectingStats, OnceLogger
from .text import printable

if TYPE_CHECKING:
    from .client import DeviceClient

#: Sensor kinds (type name and parameters) remembered: a device could make every sensor a
#: kind of its own (a discrete sensor's values, say), and a peer must not grow this unbounded.
MAX_KINDS = 1024
#: The latest reading of a sensor that has no object yet: ``(type code, timestamp, status
#: code, value)``, the codes the ``int`` values of :class:`~katcp_inspect.kattypes.SensorType`
#: and :class:`SensorStatus`. Only plain values, so that the collector stops tracking it (a
#: :class:`Reading` holds an enum member, which keeps it tracked).
Record = tuple[int, float, int, Any]

_STATUS_CODE: dict[bytes, int] = {wire: int(status) for wire, status in STATUS_FROM_WIRE.items()}
_STATUSES: list[SensorStatus] = sorted(SensorStatus)
_UNREACHABLE = int(SensorStatus.UNREACHABLE)
_TIMESTAMP = SensorType.TIMESTAMP


class Target(Protocol):
    """What readings from the wire are given to: a :class:`Sensor`, or a :class:`_Decoding`."""

    def update_from_wire(self, timestamp: float, raw_status: bytes,
                         raw_value: bytes) -> None: ...


class _Decoding:
    """Readings for an object that does not decode wire values itself: one made by another
    factory, or a timestamp-typed sensor of a KATCP v4 device (milliseconds)."""

    __slots__ = ("decode", "sensor")

    def __init__(self, sensor: Any, decode: kattypes.ValueDecoder) -> None:
        self.sensor = sensor
        self.decode = decode

    def update_from_wire(self, timestamp: float, raw_status: bytes, raw_value: bytes) -> None:
        self.sensor.set(timestamp, STATUS_FROM_WIRE[raw_status], self.decode(raw_value))


def _decoders(major: int) -> list[kattypes.ValueDecoder]:
    """Each type's value decoder (by type code) for KATCP ``major``."""
    return [kattypes.value_decoder(stype, major=major) for stype in sorted(SensorType)]


def _names_strategy_setter(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` takes a ``strategy_setter`` keyword: factories with katcp-python's
    signature are called with exactly its keywords."""
    try:
        return "strategy_setter" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


class SensorUpdates:
    """The sensor objects of one inspecting client, made on first use by its factory, the
    records of the sensors without one, and the readings that reach both."""

    def __init__(self, sensors: SensorRegistry, client: DeviceClient,
                 factory: Callable[[], Callable[..., Any]], strategy_setter: StrategySetter,
                 stats: InspectingStats, problems: OnceLogger,
                 on_unknown: Callable[[str], None]) -> None:
        self.objects: dict[str, Any] = {}
        #: What each object's readings are given to, by the name as it comes on the wire.
        self.targets: dict[bytes, Target] = {}
        #: The latest readings of the sensors without an object, by the name on the wire.
        self.records: dict[bytes, Record] = {}
        #: Wire timestamp units per second (KATCP 4: milliseconds); dividing by it is exact
        #: for whole milliseconds, where multiplying by 0.001 is not.
        self.ticks_per_second = 1.0
        self._decoders = _decoders(5)
        self._sensors = sensors
        self._client = client
        self._setter = strategy_setter
        self._stats = stats
        self._problems = problems
        self._on_unknown = on_unknown
        #: The client's ``sensor_factory`` now (users may replace it at any time).
        self._current_factory = factory
        self._factory: Callable[..., Any] | None = None
        self._factory_takes_setter = False
        #: ``#sensor-list`` (type name, parameters) → what sensors of that kind share.
        self._kinds: dict[tuple[str, tuple[str, ...]], SensorKind] = {}

    def connected(self, major: int) -> None:
        """A new connection speaks KATCP ``major``: another version decodes anew."""
        ticks = 1000.0 if major < 5 else 1.0
        if ticks != self.ticks_per_second:
            self.ticks_per_second = ticks
            self._decoders = _decoders(major)
            for name, sensor in self.objects.items():
                info = self._sensors.get(name)
                stype = SensorType.STRING if info is None else self._kind_of(info).sensor_type
                self.targets[name.encode("utf-8", "surrogateescape")] = self._target(sensor,
                                                                                    stype)

    def disconnected(self) -> None:
        """Every cached reading keeps its value, now with the status ``unreachable``."""
        now = time.time()
        for sensor in self.objects.values():
            try:
                sensor.set(now, SensorStatus.UNREACHABLE, sensor.read().value)
            except Exception:
                self._stats.callback_errors += 1
                self._problems.logger.exception("Marking %r unreachable failed", sensor)
        records = self.records
        for raw_name, (code, _, _, value) in records.items():
            records[raw_name] = (code, now, _UNREACHABLE, value)

    # ------------------------------------------------------------------ the hot path

    def on_sensor_status(self, args: list[bytes]) -> None:
        """``#sensor-status timestamp n (name status value)*n``."""
        if len(args) == 5 and args[1] == b"1":  # what devices send, nearly always
            name = args[2]
            target = self.targets.get(name)
            try:
                if target is not None:
                    target.update_from_wire(float(args[0]) / self.ticks_per_second, args[3],
                                            args[4])
                else:
                    self._update_record(name, float(args[0]) / self.ticks_per_second,
                                        args[3], args[4])
            except (KeyError, ValueError) as exc:
                self.bad_update(name, exc)
            return
        try:
            timestamp = float(args[0]) / self.ticks_per_second
            n = int(args[1])
            if n < 0 or len(args) != 2 + 3 * n:
                raise ValueError(f"{len(args)} arguments for {n} readings")
        except (ValueError, IndexError) as exc:
            self._stats.bad_updates += 1
            self._problems.log("sensor-status", "%s: malformed #sensor-status (%s); skipped",
                               self._client.address, exc)
            return
        for i in range(2, len(args), 3):
            self.update(args[i], timestamp, args[i + 1], args[i + 2])

    def update(self, raw_name: bytes, timestamp: float, raw_status: bytes,
               raw_value: bytes) -> None:
        """Apply one wire reading (timestamp in seconds) to sensor ``raw_name``; a bad one
        is counted, logged and skipped."""
        target = self.targets.get(raw_name)
        try:
            if target is not None:
                target.update_from_wire(timestamp, raw_status, raw_value)
            else:
                self._update_record(raw_name, timestamp, raw_status, raw_value)
        except (KeyError, ValueError) as exc:
            self.bad_update(raw_name, exc)

    def _update_record(self, raw_name: bytes, timestamp: float, raw_status: bytes,
                       raw_value: bytes) -> None:
        record = self.records.get(raw_name)
        if record is None:
            self._first_reading(raw_name, timestamp, raw_status, raw_value)
            return
        code = record[0]
        self.records[raw_name] = (code, timestamp, _STATUS_CODE[raw_status],
                                  self._decoders[code](raw_value))

    def _first_reading(self, raw_name: bytes, timestamp: float, raw_status: bytes,
                       raw_value: bytes) -> None:
        """The first reading of a sensor without an object: a record, or (with another
        factory) an object made now. A name the model does not know is counted, logged and
        reported."""
        name = raw_name.decode("utf-8", "surrogateescape")
        info = self._sensors.get(name)
        if info is None:
            self._stats.unknown_sensor_updates += 1
            self._problems.log("unknown-sensor", "%s: update for unknown sensor %s",
                               self._client.address, printable(name))
            self._on_unknown(name)
            return
        if self._current_factory() is Sensor:
            code = int(self._kind_of(info).sensor_type)
            self.records[raw_name] = (code, timestamp, _STATUS_CODE[raw_status],
                                      self._decoders[code](raw_value))
            return
        try:
            self.sensor(info.name)
        except Exception:
            self._stats.callback_errors += 1
            self._problems.log(("factory", name), "%s: sensor_factory failed for %s",
                               self._client.address, printable(name), exc_info=True)
            return
        self.targets[raw_name].update_from_wire(timestamp, raw_status, raw_value)

    def apply(self, sensor: Any, name: str, timestamp: bytes | float, status: Any,
              value: Any) -> bool:
        """Apply one reading to ``sensor`` (the object of ``name``) as if the device had sent
        it: each part in wire form (``bytes``) or as a Python value. False if ``name`` has
        no object (any more)."""
        raw_name = name.encode("utf-8", "surrogateescape")
        target = self.targets.get(raw_name)
        if target is None:
            return False
        ts = float(timestamp) / (self.ticks_per_second if isinstance(timestamp, bytes) else 1)
        try:
            target.update_from_wire(
                ts, status if isinstance(status, bytes) else
                kattypes.STATUS_TO_WIRE[SensorStatus(status)],
                value if isinstance(value, bytes) else kattypes.encode_value(
                    sensor.sensor_type, value))
        except (KeyError, ValueError) as exc:
            self.bad_update(raw_name, exc)
        return True

    def bad_update(self, name: bytes, exc: BaseException) -> None:
        self._stats.bad_updates += 1
        self._problems.log(("bad-update", name), "%s: bad update for sensor %s (%s); skipped",
                           self._client.address, printable(name), repr(exc))

    # ------------------------------------------------------------------ sensor objects

    def reading(self, name: str) -> Reading | None:
        """The latest reading of sensor ``name``, from its object or its record; None if it
        has neither (no reading yet, and no object asked for)."""
        sensor = self.objects.get(name)
        if sensor is not None:
            reading: Reading = sensor.read()
            return reading
        record = self.records.get(name.encode("utf-8", "surrogateescape"))
        if record is None:
            return None
        return Reading(record[1], _STATUSES[record[2]], record[3])

    def sensor(self, name: str) -> Any:
        """The cached object of the model's sensor ``name``, made by the client's factory if
        there is none yet, with the sensor's latest reading (``KeyError`` for a name the
        model does not know). From then on readings go to the object."""
        sensor = self.objects.get(name)
        if sensor is not None:
            return sensor
        # The model's plain fields, not a SensorInfo: a sync may ask for ten thousand objects.
        fields = self._sensors.raw[name]
        name = fields[0]  # the model's string, not the caller's copy: one per sensor is held
        kind = self._kind_of(fields)
        raw_name = name.encode("utf-8", "surrogateescape")
        record = self.records.get(raw_name)
        factory = self._current_factory()
        if factory is Sensor:  # the default
            sensor = Sensor.from_model(
                name, fields[1], fields[2], kind, self._setter,
                None if record is None else (record[1], _STATUSES[record[2]], record[3]))
        else:
            sensor = self._made_by(factory, SensorInfo(*fields), kind)
            if record is not None:
                sensor.set(record[1], _STATUSES[record[2]], record[3])
        if record is not None:
            del self.records[raw_name]
        self.objects[name] = sensor
        self.targets[raw_name] = self._target(sensor, kind.sensor_type)
        return sensor

    def _target(self, sensor: Any, stype: SensorType) -> Target:
        """Where readings of ``sensor`` (of type ``stype`` in the model) go: straight into our
        own :class:`Sensor`, or decoded here for objects from other factories, and for
        timestamp-typed values from a KATCP v4 device (milliseconds)."""
        v5 = self.ticks_per_second == 1.0
        if sensor.__class__ is Sensor and (v5 or stype is not _TIMESTAMP):
            return sensor  # the default, nearly always: nothing more to ask
        own = getattr(sensor, "sensor_type", None)
        if isinstance(own, SensorType):
            stype = own
        if isinstance(sensor, Sensor) and (v5 or stype is not _TIMESTAMP):
            return sensor
        return _Decoding(sensor, kattypes.value_decoder(stype, major=5 if v5 else 4))

    def _made_by(self, factory: Callable[..., Any], info: SensorInfo, kind: SensorKind) -> Any:
        if factory is not self._factory:
            self._factory = factory
            self._factory_takes_setter = _names_strategy_setter(factory)
        extra = {"strategy_setter": self._setter} if self._factory_takes_setter else {}
        sensor = factory(name=info.name, sensor_type=kind.sensor_type,
                         description=info.description, units=info.units,
                         params=list(kind.params), **extra)
        if not extra and isinstance(sensor, Sensor):
            sensor.strategy_setter = self._setter  # the factory has katcp-python's signature
        return sensor

    def _kind_of(self, fields: SensorFields) -> SensorKind:
        """The kind of a sensor from its model fields (plain, or a :class:`SensorInfo`)."""
        kind = self._kinds.get(fields[3:])  # (type name, parameters)
        return kind if kind is not None else self._kind(SensorInfo(*fields))

    def _kind(self, info: SensorInfo) -> SensorKind:
        """The kind of ``#sensor-list`` type name and parameters as ``info`` has them, kept:
        thousands of sensors share a few kinds. Problems are logged (once per kind) and kept
        as a string sensor, or without the parameters."""
        stype, known = kattypes.type_from_name(info.type_name)
        if not known:
            self._problems.log(("type", info.type_name), "%s: sensor %s has unknown type %r; "
                               "kept as a string sensor", self._client.address,
                               printable(info.name), info.type_name)
        try:
            params = tuple(kattypes.parse_params(stype, info.params))
        except ValueError:
            self._problems.log("params", "%s: sensor %s has unparsable params %r; ignored",
                               self._client.address, printable(info.name), info.params)
            params = ()
        kind = SensorKind.of(stype, params)
        if len(self._kinds) < MAX_KINDS:
            self._kinds[info.type_name, info.params] = kind
        return kind

    def changed(self, name: str) -> None:
        """Sensor ``name`` was removed or modified: drop its object or record; a modified one
        gets a new object (B2), with the observers the user attached to the old one."""
        raw_name = name.encode("utf-8", "surrogateescape")
        self.records.pop(raw_name, None)
        self.targets.pop(raw_name, None)
        old = self.objects.pop(name, None)
        if old is not None and name in self._sensors:
            new = self.sensor(name)
            for observer in getattr(old, "observers", ()):
                new.attach(observer)
