"""The sensor-update path: ``#sensor-status`` readings into the cached sensor objects and
their observers, and the cache of sensor objects that path feeds.

This is the product's hot path. A reading of the usual one-reading inform costs one dict
lookup (the raw name to an updater made once per sensor and connection) and one call; no
future, task or coroutine is made per update. Bad readings are counted, logged once per kind
and skipped. Names the model does not know are reported to the sync loop, which looks them
up. May import ``kattypes``, ``model``, ``sensor``, ``stats``, ``text`` and (for its types)
``client``.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from . import kattypes
from .kattypes import STATUS_FROM_WIRE, SensorStatus
from .model import SensorInfo
from .sensor import Sensor, StrategySetter
from .stats import InspectingStats, OnceLogger
from .text import printable

if TYPE_CHECKING:
    from .client import DeviceClient

#: Sensor kinds (type name and parameters) remembered: a device could make every sensor a
#: kind of its own (a discrete sensor's values, say), and a peer must not grow this unbounded.
MAX_KINDS = 1024
#: Applies one wire reading (timestamp in seconds, raw status, raw value) to one sensor.
SensorUpdater = Callable[[float, bytes, bytes], None]


def _names_strategy_setter(factory: Callable[..., Any]) -> bool:
    """Whether ``factory`` takes a ``strategy_setter`` keyword: factories with katcp-python's
    signature are called with exactly its keywords."""
    try:
        return "strategy_setter" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


class SensorUpdates:
    """The sensor objects of one inspecting client, made on first use by its factory, and the
    readings that reach them."""

    def __init__(self, sensors: Mapping[str, SensorInfo], client: DeviceClient,
                 factory: Callable[[], Callable[..., Any]], strategy_setter: StrategySetter,
                 stats: InspectingStats, problems: OnceLogger,
                 on_unknown: Callable[[str], None]) -> None:
        self.objects: dict[str, Any] = {}
        #: By the name as it comes on the wire.
        self.updaters: dict[bytes, SensorUpdater] = {}
        #: Wire timestamp units per second (KATCP 4: milliseconds); dividing by it is exact
        #: for whole milliseconds, where multiplying by 0.001 is not.
        self.ticks_per_second = 1.0
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
        #: ``#sensor-list`` (type name, parameters) → (type, parsed parameters).
        self._kinds: dict[tuple[str, tuple[str, ...]], tuple[kattypes.SensorType,
                                                             tuple[Any, ...]]] = {}

    def connected(self, major: int) -> None:
        """A new connection speaks KATCP ``major``: another version decodes anew."""
        ticks = 1000.0 if major < 5 else 1.0
        if ticks != self.ticks_per_second:
            self.ticks_per_second = ticks
            self.updaters.clear()

    def disconnected(self) -> None:
        """Every cached sensor keeps its value, now with the status ``unreachable``."""
        now = time.time()
        for sensor in self.objects.values():
            try:
                sensor.set(now, SensorStatus.UNREACHABLE, sensor.read().value)
            except Exception:
                self._stats.callback_errors += 1
                self._problems.logger.exception("Marking %r unreachable failed", sensor)

    # ------------------------------------------------------------------ the hot path

    def on_sensor_status(self, args: list[bytes]) -> None:
        """``#sensor-status timestamp n (name status value)*n``."""
        if len(args) == 5 and args[1] == b"1":  # what devices send, nearly always
            updater = self.updaters.get(args[2]) or self.updater_for(args[2])
            if updater is not None:  # None: an unknown name, already counted and reported
                try:
                    updater(float(args[0]) / self.ticks_per_second, args[3], args[4])
                except (KeyError, ValueError) as exc:
                    self.bad_update(args[2], exc)
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
        updaters = self.updaters
        for i in range(2, len(args), 3):
            name = args[i]
            updater = updaters.get(name) or self.updater_for(name)
            if updater is None:
                continue
            try:
                updater(timestamp, args[i + 1], args[i + 2])
            except (KeyError, ValueError) as exc:
                self.bad_update(name, exc)

    def apply(self, sensor: Any, name: str, timestamp: bytes | float, status: Any,
              value: Any) -> bool:
        """Apply one reading to ``sensor`` (the object of ``name``) as if the device had sent
        it: each part in wire form (``bytes``) or as a Python value. False if no updater
        could be made for it."""
        raw_name = name.encode("utf-8", "surrogateescape")
        updater = self.updaters.get(raw_name) or self.updater_for(raw_name)
        if updater is None:
            return False
        ts = float(timestamp) / (self.ticks_per_second if isinstance(timestamp, bytes) else 1)
        try:
            updater(ts, status if isinstance(status, bytes) else
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

    def updater_for(self, raw_name: bytes) -> SensorUpdater | None:
        """The updater of a sensor seen for the first time on this connection (made and
        kept), or None for a name the model does not know (counted, logged, reported)."""
        name = raw_name.decode("utf-8", "surrogateescape")
        info = self._sensors.get(name)
        if info is None:
            self._stats.unknown_sensor_updates += 1
            self._problems.log("unknown-sensor", "%s: update for unknown sensor %s",
                               self._client.address, printable(name))
            self._on_unknown(name)
            return None
        try:
            sensor = self.sensor(info.name)
        except Exception:
            self._stats.callback_errors += 1
            self._problems.log(("factory", name), "%s: sensor_factory failed for %s",
                               self._client.address, printable(name), exc_info=True)
            return None
        stype = getattr(sensor, "sensor_type", None)
        if not isinstance(stype, kattypes.SensorType):
            stype = kattypes.type_from_name(info.type_name)[0]
        updater = self.updaters[raw_name] = self._make_updater(sensor, stype)
        return updater

    def _make_updater(self, sensor: Any, stype: kattypes.SensorType) -> SensorUpdater:
        """How wire readings reach ``sensor``: straight into our own :class:`Sensor`, or
        decoded here for objects from other factories, and for timestamp-typed values from a
        KATCP v4 device (milliseconds)."""
        major = 5 if self.ticks_per_second == 1.0 else 4
        if isinstance(sensor, Sensor) and (stype != kattypes.SensorType.TIMESTAMP or major >= 5):
            return sensor.update_from_wire
        decode = kattypes.value_decoder(stype, major=major)

        def updater(timestamp: float, raw_status: bytes, raw_value: bytes) -> None:
            sensor.set(timestamp, STATUS_FROM_WIRE[raw_status], decode(raw_value))
        return updater

    # ------------------------------------------------------------------ sensor objects

    def sensor(self, name: str) -> Any:
        """The cached object of the model's sensor ``name``, made by the client's factory if
        there is none yet (``KeyError`` for a name the model does not know)."""
        sensor = self.objects.get(name)
        if sensor is not None:
            return sensor
        info = self._sensors[name]
        kind = self._kinds.get((info.type_name, info.params))
        stype, params = kind if kind is not None else self._kind(info)
        factory = self._current_factory()
        if factory is Sensor:  # the default
            sensor = Sensor.from_model(info.name, stype, info.description, info.units, params,
                                       self._setter)
        else:
            sensor = self._made_by(factory, info, stype, params)
        self.objects[info.name] = sensor
        return sensor

    def _made_by(self, factory: Callable[..., Any], info: SensorInfo,
                 stype: kattypes.SensorType, params: tuple[Any, ...]) -> Any:
        if factory is not self._factory:
            self._factory = factory
            self._factory_takes_setter = _names_strategy_setter(factory)
        extra = {"strategy_setter": self._setter} if self._factory_takes_setter else {}
        sensor = factory(name=info.name, sensor_type=stype, description=info.description,
                         units=info.units, params=list(params), **extra)
        if not extra and isinstance(sensor, Sensor):
            sensor.strategy_setter = self._setter  # the factory has katcp-python's signature
        return sensor

    def _kind(self, info: SensorInfo) -> tuple[kattypes.SensorType, tuple[Any, ...]]:
        """The type and parsed parameters of ``#sensor-list`` type name and parameters as
        ``info`` has them, kept: thousands of sensors share a few kinds. Problems are logged
        (once per kind) and kept as a string sensor, or without the parameters."""
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
        if len(self._kinds) < MAX_KINDS:
            self._kinds[info.type_name, info.params] = stype, params
        return stype, params

    def changed(self, name: str) -> None:
        """Sensor ``name`` was removed or modified: drop its object and updater; a modified
        one gets a new object (B2), with the observers the user attached to the old one."""
        old = self.objects.pop(name, None)
        self.updaters.pop(name.encode("utf-8", "surrogateescape"), None)
        if old is not None and name in self._sensors:
            new = self.sensor(name)
            for observer in getattr(old, "observers", ()):
                new.attach(observer)
