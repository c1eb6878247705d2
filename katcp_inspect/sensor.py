"""``Sensor`` and ``Reading``: the cached view of one device sensor, compatible with
katcp-python's ``katcp.Sensor`` so that users' observers and factories keep working."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, Union

from . import kattypes
from .kattypes import STATUS_FROM_WIRE, SensorStatus, SensorType
from .stats import OnceLogger
from .text import printable

if TYPE_CHECKING:
    import asyncio

    from .client import Reply


#: Builds a Reading without the generated ``__new__`` (a third of the cost on the hot path).
_new_reading = tuple.__new__

_observer_problems = OnceLogger(logging.getLogger("katcp_inspect.sensor"))


class Reading(NamedTuple):
    """One sensor reading: timestamp in seconds since the epoch, status, Python value."""

    timestamp: float
    status: SensorStatus
    value: Any


class SensorKind(NamedTuple):
    """What the sensors of one type and parameters share, worked out once for them all by
    :meth:`of`: a device's ten thousand sensors are of a handful of kinds."""

    sensor_type: SensorType
    #: Parsed, as :func:`kattypes.parse_params` gives them.
    params: tuple[Any, ...]
    #: The KATCP type name (``Sensor.stype``).
    type_name: str
    #: A KATCP v5 wire value to its Python value.
    decode: Callable[[bytes], Any]
    #: The value before the first reading.
    default: Any

    @classmethod
    def of(cls, sensor_type: SensorType, params: Sequence[Any] = ()) -> SensorKind:
        params = tuple(params)
        return cls(sensor_type, params, kattypes.TYPE_NAMES[sensor_type],
                   kattypes.V5_DECODERS[sensor_type],
                   kattypes.default_value(sensor_type, params))


class SensorObserver(Protocol):
    def update(self, sensor: Sensor, reading: Reading) -> None: ...


class StrategySetter(Protocol):
    def set_sampling_strategy(self, name: str, strategy: str,
                              *params: Any) -> asyncio.Future[Reply]: ...


_PYTHON_TYPES: dict[type, SensorType] = {
    bool: SensorType.BOOLEAN,
    int: SensorType.INTEGER,
    float: SensorType.FLOAT,
    str: SensorType.STRING,
}

SensorTypeLike = Union[SensorType, int, type]


def _sensor_type(value: SensorTypeLike) -> SensorType:
    if value.__class__ is SensorType:  # what the client passes: the enum call costs more
        return value
    if isinstance(value, type):
        try:
            return _PYTHON_TYPES[value]
        except KeyError:
            raise ValueError(f"no KATCP sensor type for Python type {value.__name__}") from None
    return SensorType(value)


class Sensor:
    """A sensor of the device model, with its latest reading and its observers.

    The constructor, constants and methods are those of katcp-python's ``katcp.Sensor``
    (``read()``, ``value()``, ``status()``, ``set()``, ``set_value()``, ``set_formatted()``,
    ``attach()`` / ``detach()`` of observers with ``update(sensor, reading)``). Observers are
    called synchronously, in the order they were attached, each time a reading is set.

    ``strategy_setter`` (keyword only, new) is what :meth:`set_strategy` asks: the inspecting
    client that made the sensor passes itself, or, for a ``sensor_factory`` with katcp-python's
    signature (which cannot take it), sets :attr:`strategy_setter` on what the factory made.
    """

    __slots__ = (
        "_observers",
        "_params",
        "_reading",
        "_strategy_setter",
        "decode",
        "description",
        "name",
        "sensor_type",
        "stype",
        "units",
    )

    INTEGER = SensorType.INTEGER
    FLOAT = SensorType.FLOAT
    BOOLEAN = SensorType.BOOLEAN
    LRU = SensorType.LRU
    DISCRETE = SensorType.DISCRETE
    STRING = SensorType.STRING
    TIMESTAMP = SensorType.TIMESTAMP
    ADDRESS = SensorType.ADDRESS

    UNKNOWN = SensorStatus.UNKNOWN
    NOMINAL = SensorStatus.NOMINAL
    WARN = SensorStatus.WARN
    ERROR = SensorStatus.ERROR
    FAILURE = SensorStatus.FAILURE
    UNREACHABLE = SensorStatus.UNREACHABLE
    INACTIVE = SensorStatus.INACTIVE

    LRU_NOMINAL = kattypes.LRU_NOMINAL
    LRU_ERROR = kattypes.LRU_ERROR

    STATUSES = {s.value: s.wire_name for s in SensorStatus}
    STATUS_NAMES = {s.wire_name: s.value for s in SensorStatus}
    SENSOR_TYPE_LOOKUP = {t.value: t.wire_name for t in SensorType}

    def __init__(self, sensor_type: SensorTypeLike, name: str,
                 description: str | None = None, units: str | None = None,
                 params: Sequence[Any] | None = None, default: Any = None,
                 initial_status: SensorStatus | None = None, *,
                 strategy_setter: StrategySetter | None = None) -> None:
        self.sensor_type = _sensor_type(sensor_type)
        self.name = name
        self.units = units or ""
        self._params: tuple[Any, ...] | list[Any] = tuple(params) if params is not None else ()
        self.stype = self.sensor_type.wire_name
        self.description = description if description is not None else (
            f"{self.stype.capitalize()} sensor {name!r} "
            + (f"in unit {self.units}" if self.units else "with no unit"))
        self.decode = kattypes.value_decoder(self.sensor_type)
        if default is None:
            default = kattypes.default_value(self.sensor_type, self._params)
        status = SensorStatus.UNKNOWN if initial_status is None else SensorStatus(initial_status)
        self._reading = _new_reading(Reading, (time.time(), status, default))
        # A tuple, replaced on attach/detach: most cached sensors have no observer, and the
        # empty tuple is shared.
        self._observers: tuple[SensorObserver, ...] = ()
        self._strategy_setter = strategy_setter

    @classmethod
    def from_model(cls, name: str, description: str, units: str, kind: SensorKind,
                   strategy_setter: StrategySetter | None,
                   reading: tuple[float, SensorStatus, Any] | None = None) -> Sensor:
        """A sensor as the inspecting client makes it from its model: the same object as the
        constructor's, without re-checking what the model already checked, and with what
        sensors of its ``kind`` share worked out once for them all, since a sync may make
        tens of thousands. ``reading``: its latest, if it has had one."""
        sensor = cls.__new__(cls)
        sensor.sensor_type = kind.sensor_type
        sensor.name = name
        sensor.units = units
        sensor._params = kind.params
        sensor.stype = kind.type_name
        sensor.description = description
        sensor.decode = kind.decode
        sensor._reading = _new_reading(Reading, reading if reading is not None else (
            time.time(), SensorStatus.UNKNOWN, kind.default))
        sensor._observers = ()
        sensor._strategy_setter = strategy_setter
        return sensor

    @property
    def params(self) -> list[Any]:
        """The type's parameters (a list, as katcp-python's): made when first read, since most
        of a fleet's sensors are never asked, and a list is one more object the collector
        scans (an empty tuple is one shared object it does not)."""
        if isinstance(self._params, tuple):
            self._params = list(self._params)
        return self._params

    @params.setter
    def params(self, params: list[Any]) -> None:
        self._params = params

    @property
    def type(self) -> str:
        """The KATCP type name (``"integer"``, ``"float"``, ...)."""
        return self.stype

    @classmethod
    def parse_type(cls, type_string: str | bytes) -> SensorType:
        """The type for a ``#sensor-list`` type name; unknown names are string sensors."""
        return kattypes.type_from_name(type_string)[0]

    @classmethod
    def parse_params(cls, sensor_type: SensorTypeLike,
                     formatted_params: Sequence[bytes | str], major: int = 5) -> list[Any]:
        return kattypes.parse_params(_sensor_type(sensor_type), formatted_params)

    # -------------------------------------------------------------- reading

    def read(self) -> Reading:
        return self._reading

    def value(self) -> Any:
        return self._reading.value

    def status(self) -> SensorStatus:
        return self._reading.status

    def timestamp(self) -> float:
        return self._reading.timestamp

    # -------------------------------------------------------------- writing

    def set(self, timestamp: float, status: SensorStatus, value: Any) -> None:
        """Store a reading as given and tell the observers."""
        reading = self._reading = _new_reading(Reading, (timestamp, status, value))
        for observer in self._observers:
            try:
                observer.update(self, reading)
            except Exception:
                self._observer_failed(observer)

    def update_from_wire(self, timestamp: float, raw_status: bytes, raw_value: bytes) -> None:
        """Set a reading from a ``#sensor-status`` (timestamp already in seconds). Raises
        ``KeyError`` or ``ValueError``, changing nothing, if the status or value is bad.

        This is the last step of the hot path, so it repeats :meth:`set` rather than call it.
        """
        reading = self._reading = _new_reading(
            Reading, (timestamp, STATUS_FROM_WIRE[raw_status], self.decode(raw_value)))
        for observer in self._observers:
            try:
                observer.update(self, reading)
            except Exception:
                self._observer_failed(observer)

    def _observer_failed(self, observer: SensorObserver) -> None:
        # One broken observer must not starve the others of updates.
        _observer_problems.log((self.name, id(observer)), "Observer %r of sensor %s raised",
                               observer, printable(self.name), exc_info=True)

    def set_value(self, value: Any, status: SensorStatus = SensorStatus.NOMINAL,
                  timestamp: float | None = None, major: int = 5) -> None:
        """Check ``value`` against the type, then set it (now, unless a time is given)."""
        kattypes.check_value(self.sensor_type, value, self.params)
        self.set(time.time() if timestamp is None else timestamp, SensorStatus(status), value)

    def set_formatted(self, raw_timestamp: bytes, raw_status: bytes, raw_value: bytes,
                      major: int = 5) -> None:
        """Set a reading from its wire form. Raises ``ValueError`` (or ``KeyError`` for an
        unknown status) without changing anything if a part does not decode."""
        self.set(kattypes.decode_timestamp(raw_timestamp, major=major),
                 STATUS_FROM_WIRE[raw_status],
                 kattypes.decode_value(self.sensor_type, raw_value, major=major))

    def parse_value(self, raw_value: bytes, major: int = 5) -> Any:
        return kattypes.decode_value(self.sensor_type, raw_value, major=major)

    def format_reading(self, reading: Reading, major: int = 5) -> tuple[bytes, bytes, bytes]:
        return (kattypes.encode_timestamp(reading.timestamp, major=major),
                kattypes.STATUS_TO_WIRE[SensorStatus(reading.status)],
                kattypes.encode_value(self.sensor_type, reading.value, major=major))

    def read_formatted(self, major: int = 5) -> tuple[bytes, bytes, bytes]:
        return self.format_reading(self._reading, major)

    # -------------------------------------------------------------- observers

    def attach(self, observer: SensorObserver) -> None:
        """Call ``observer.update(sensor, reading)`` on every new reading (once per observer)."""
        if observer not in self._observers:
            self._observers = (*self._observers, observer)

    def detach(self, observer: SensorObserver) -> None:
        self._observers = tuple(o for o in self._observers if o is not observer)

    @property
    def observers(self) -> tuple[SensorObserver, ...]:
        return self._observers

    # -------------------------------------------------------------- sampling

    @property
    def strategy_setter(self) -> StrategySetter | None:
        """What :meth:`set_strategy` asks (the inspecting client), or ``None``."""
        return self._strategy_setter

    @strategy_setter.setter
    def strategy_setter(self, setter: StrategySetter | None) -> None:
        self._strategy_setter = setter

    def set_strategy(self, strategy: str, *params: Any) -> asyncio.Future[Reply]:
        """Ask the device to sample this sensor with ``strategy``; the inspecting client that
        made the sensor remembers the choice and applies it again after every reconnect."""
        if self._strategy_setter is None:
            raise RuntimeError(f"sensor {self.name!r} does not belong to an inspecting client")
        return self._strategy_setter.set_sampling_strategy(self.name, strategy, *params)

    def __repr__(self) -> str:
        return f"<Sensor {printable(self.name)} ({self.stype}) {self._reading}>"
