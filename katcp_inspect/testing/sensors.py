"""The simulated device's sensors: the server-side sensor model, a demo set and a value generator.

A :class:`SimulatedSensor` holds one reading at a time and tells its observers (the sampling
strategies of each connection, see :mod:`katcp_inspect.testing.sampling`) about every new one.
Values are checked and encoded with :mod:`katcp_inspect.kattypes`, so what the device sends is
exactly what a client's decoder accepts.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import attrs

from ..kattypes import (
    LRU_ERROR,
    LRU_NOMINAL,
    STATUS_TO_WIRE,
    Address,
    SensorStatus,
    SensorType,
    check_value,
    default_value,
    encode_timestamp,
    encode_value,
)
from ..message import Message

#: KATCP 5.1's sensor-name characters; a comma would also break bulk ``?sensor-sampling``.
_SENSOR_NAME_RE = re.compile(r"[A-Za-z0-9._-]+\Z")


@attrs.frozen
class SensorReading:
    """One reading: when it was taken (seconds since the epoch), its status and its value."""

    timestamp: float
    status: SensorStatus
    value: Any


SensorObserver = Callable[["SimulatedSensor", SensorReading], None]


def to_status(status: SensorStatus | str | bytes) -> SensorStatus:
    """A :class:`SensorStatus` from the enum itself or its wire name (``"nominal"``)."""
    if isinstance(status, SensorStatus):
        return status
    text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
    try:
        return SensorStatus[text.upper()]
    except KeyError:
        raise ValueError(f"unknown sensor status {status!r}") from None


def to_type(stype: SensorType | str) -> SensorType:
    """A :class:`SensorType` from the enum itself or its wire name (``"integer"``)."""
    if isinstance(stype, SensorType):
        return stype
    try:
        return SensorType[stype.upper()]
    except KeyError:
        raise ValueError(f"unknown sensor type {stype!r}") from None


class SimulatedSensor:
    """A sensor on the simulated device.

    ``params`` are the ``#sensor-list`` parameters as Python values: for integer and float
    sensors ``[nominal-min, nominal-max[, warn-min, warn-max]]`` (KATCP 4 clients expect a
    ``min max`` pair), for discrete sensors the allowed values, nothing for the other types.
    Without an initial ``value`` the sensor starts at the type's default with status
    ``unknown``, as a real sensor that has not been read yet.

    ``counter`` makes an integer sensor a counter for :func:`generated_reading`: ``"events"``
    (packets, errors) grows by a few each step, ``"seconds"`` (an uptime) counts the seconds
    since the sensor was made, from its initial value; neither ever goes down or past the
    nominal maximum.
    """

    def __init__(
        self,
        stype: SensorType | str,
        name: str,
        description: str = "",
        units: str = "",
        params: Sequence[Any] = (),
        *,
        value: Any = None,
        status: SensorStatus | str | None = None,
        timestamp: float | None = None,
        counter: Literal["events", "seconds"] | None = None,
    ) -> None:
        if not _SENSOR_NAME_RE.match(name):
            raise ValueError(f"invalid sensor name {name!r} (allowed: A-Z a-z 0-9 . - _)")
        self.stype = to_type(stype)
        self.name = name
        self.description = description
        self.units = units
        self.params = list(params)
        if self.stype == SensorType.DISCRETE:
            self.params = [str(p) for p in self.params]
        self._observers: dict[SensorObserver, None] = {}
        self._lines: dict[int, bytes] = {}
        if value is None:
            value = default_value(self.stype, self.params)
            default_status = SensorStatus.UNKNOWN
        else:
            default_status = SensorStatus.NOMINAL
        check_value(self.stype, value, self.params)
        if counter is not None and self.stype != SensorType.INTEGER:
            raise ValueError(f"only an integer sensor can be a counter, not {name!r}")
        self.counter = counter
        self._made = time.monotonic()
        self._origin = value
        self._reading = SensorReading(
            time.time() if timestamp is None else float(timestamp),
            default_status if status is None else to_status(status),
            value,
        )

    def counted(self, step: int) -> int:
        """A counter's next value (see ``counter``): never lower, never past the maximum."""
        if self.counter == "seconds":
            value = int(self._origin + time.monotonic() - self._made)
        else:
            value = int(self.value) + 1 + (step * 37 + len(self.name)) % 50
        bounds = _in_range(self)
        if bounds is not None:
            value = min(value, int(bounds[1]))
        return max(value, int(self.value))

    def __repr__(self) -> str:
        return f"<SimulatedSensor {self.stype.wire_name} {self.name} {self._reading}>"

    # -- the reading ---------------------------------------------------------------------------

    @property
    def reading(self) -> SensorReading:
        return self._reading

    @property
    def value(self) -> Any:
        return self._reading.value

    @property
    def status(self) -> SensorStatus:
        return self._reading.status

    @property
    def timestamp(self) -> float:
        return self._reading.timestamp

    def set_value(self, value: Any, status: SensorStatus | str | None = None,
                  timestamp: float | None = None) -> None:
        """Record a new reading (status ``nominal`` and the current time unless given) and
        tell every observer. Raises :class:`ValueError` for a value that does not fit the type."""
        check_value(self.stype, value, self.params)
        self._reading = SensorReading(
            time.time() if timestamp is None else float(timestamp),
            SensorStatus.NOMINAL if status is None else to_status(status),
            value,
        )
        self._lines.clear()
        for observer in list(self._observers):
            observer(self, self._reading)

    def set_status(self, status: SensorStatus | str, timestamp: float | None = None) -> None:
        """A new reading with the same value and another status."""
        self.set_value(self._reading.value, status, timestamp)

    # -- observers -----------------------------------------------------------------------------

    def attach(self, observer: SensorObserver) -> None:
        """Call ``observer(sensor, reading)`` after every new reading."""
        self._observers[observer] = None

    def detach(self, observer: SensorObserver) -> None:
        self._observers.pop(observer, None)

    @property
    def observer_count(self) -> int:
        return len(self._observers)

    # -- the wire form -------------------------------------------------------------------------

    def list_arguments(self) -> list[Any]:
        """The arguments of this sensor's ``#sensor-list`` inform."""
        return [self.name, self.description, self.units, self.stype.wire_name, *self.params]

    def reading_arguments(self, major: int = 5) -> list[bytes]:
        """``timestamp 1 name status value`` as in ``#sensor-status`` and ``#sensor-value``;
        timestamps (and timestamp-typed values) are milliseconds for KATCP 4."""
        reading = self._reading
        return [
            encode_timestamp(reading.timestamp, major=major),
            b"1",
            self.name.encode("ascii"),
            STATUS_TO_WIRE[reading.status],
            encode_value(self.stype, reading.value, major=major),
        ]

    def status_line(self, major: int = 5) -> bytes:
        """The encoded ``#sensor-status`` line of the current reading, cached until it changes
        (so a reading sent to many clients, or again by a ``period`` strategy, is encoded once)."""
        line = self._lines.get(major)
        if line is None:
            line = Message.inform("sensor-status", *self.reading_arguments(major)).encode()
            self._lines[major] = line
        return line


# -- generated values ---------------------------------------------------------------------------


def _in_range(sensor: SimulatedSensor) -> tuple[float, float] | None:
    if len(sensor.params) >= 2:
        low, high = float(sensor.params[0]), float(sensor.params[1])
        if low <= high:
            return low, high
    return None


def generated_reading(sensor: SimulatedSensor, step: int) -> tuple[Any, SensorStatus]:
    """A plausible, changing value for ``sensor`` at ``step`` (0, 1, 2...), and its status.

    Deterministic (given the step and the current value), so that tests can predict it:
    numbers follow a wave across the nominal range (or around zero without one), reaching a
    little beyond it (status ``warn``), and integers always change; booleans toggle, lru
    sensors fail every tenth step, discrete values cycle, strings count, timestamps give the
    current time and addresses change port. Counters (see :class:`SimulatedSensor`) grow.
    """
    stype = sensor.stype
    status = SensorStatus.NOMINAL
    if sensor.counter is not None:
        return sensor.counted(step), status
    if stype in (SensorType.INTEGER, SensorType.FLOAT):
        bounds = _in_range(sensor)
        low, high = bounds if bounds is not None else (-100.0, 100.0)
        middle, half = (low + high) / 2, (high - low) / 2
        # Reach a little beyond the nominal range now and then, to produce warn readings.
        number = middle + 1.1 * half * math.sin(step * 0.3 + len(sensor.name))
        if bounds is not None and not low <= number <= high:
            status = SensorStatus.WARN
        if stype == SensorType.INTEGER:
            integer = round(number)
            # A slow wave may round to the same integer twice: step on, so it always changes.
            return (integer + 1 if integer == sensor.value else integer), status
        return round(number, 3), status
    if stype == SensorType.BOOLEAN:
        return step % 2 == 1, status
    if stype == SensorType.LRU:
        failed = step % 10 == 9
        return (LRU_ERROR if failed else LRU_NOMINAL), (
            SensorStatus.ERROR if failed else SensorStatus.NOMINAL)
    if stype == SensorType.DISCRETE:
        values = sensor.params or ["unknown"]
        return values[step % len(values)], status
    if stype == SensorType.STRING:
        return f"update {step}", status
    if stype == SensorType.TIMESTAMP:
        return time.time(), status
    return Address("127.0.0.1", 1024 + step % 64000), status


class ValueGenerator:
    """Gives every selected sensor a new, type-appropriate reading ``rate`` times a second.

    ``select`` returns the sensors to update; it is called again after :meth:`invalidate` (the
    device calls that when its sensors change), so a pattern also covers sensors added later.
    The generator is a timer on the running loop, not a task: :meth:`stop` leaves nothing.
    """

    def __init__(self, select: Callable[[], Iterable[SimulatedSensor]], rate: float) -> None:
        if not rate > 0 or not math.isfinite(rate):
            raise ValueError(f"the update rate must be positive, not {rate!r}")
        self.rate = float(rate)
        self.step = 0
        self._select = select
        self._sensors: list[SimulatedSensor] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._next_time = 0.0

    @property
    def running(self) -> bool:
        return self._handle is not None

    @property
    def sensors(self) -> list[SimulatedSensor]:
        if self._sensors is None:
            self._sensors = list(self._select())
        return self._sensors

    def invalidate(self) -> None:
        """Select the sensors again before the next update."""
        self._sensors = None

    def start(self) -> None:
        """Start updating (the first update comes one period from now), on the running loop."""
        if self._handle is None:
            loop = asyncio.get_running_loop()
            self._next_time = loop.time() + 1 / self.rate
            self._handle = loop.call_at(self._next_time, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def update_once(self) -> None:
        """Update every selected sensor once (what each tick does)."""
        step = self.step
        self.step += 1
        for sensor in self.sensors:
            value, status = generated_reading(sensor, step)
            sensor.set_value(value, status)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        # Keep to the schedule without bursts: if the loop fell behind, skip the missed ticks.
        self._next_time = max(self._next_time + 1 / self.rate, loop.time())
        self._handle = loop.call_at(self._next_time, self._tick)
        self.update_once()


# -- the demo sensor set ------------------------------------------------------------------------

#: Demo sensors whose names match this pattern change when the demo generator runs.
DEMO_CHANGING = r"^(sim\.|cpu\.|device\.uptime|device\.last-update|rx\.)"


def _demo_base() -> list[SimulatedSensor]:
    t = SensorType
    now = time.time()
    return [
        SimulatedSensor(t.INTEGER, "device.uptime", "Seconds since the device started.", "s",
                        [0, 10**9], value=0, counter="seconds"),
        SimulatedSensor(t.INTEGER, "rx.packet-count", "Packets received.", "", [0, 2**31 - 1],
                        value=0, counter="events"),
        SimulatedSensor(t.FLOAT, "cpu.temperature", "CPU temperature.", "degC",
                        [10.0, 70.0, 0.0, 90.0], value=42.5),
        SimulatedSensor(t.FLOAT, "rx.power", "Received power\nat the input.", "dBm",
                        [-60.0, -10.0], value=-30.0),
        SimulatedSensor(t.BOOLEAN, "device.locked", "Whether the clock is locked.", "",
                        value=True),
        SimulatedSensor(t.BOOLEAN, "rx.enabled", "Receiver enabled.", "", value=False),
        SimulatedSensor(t.LRU, "device.lru-ok", "Line replaceable unit state.", "",
                        value=LRU_NOMINAL),
        SimulatedSensor(t.LRU, "rx.lru-ok", "Receiver LRU state.", "", value=LRU_NOMINAL),
        SimulatedSensor(t.DISCRETE, "device.mode", "Operating mode.", "",
                        ["idle", "observing", "maintenance"], value="idle"),
        SimulatedSensor(t.DISCRETE, "rx.band", "Selected band.", "", ["l", "s", "uhf"],
                        value="l"),
        SimulatedSensor(t.STRING, "device.serial", "Serial number.", "", value="SN 0001"),
        SimulatedSensor(t.STRING, "device.message", "Last message from the device.", "",
                        value="all good"),
        SimulatedSensor(t.TIMESTAMP, "device.boot-time", "When the device booted.", "s",
                        value=round(now, 3)),
        SimulatedSensor(t.TIMESTAMP, "device.last-update", "When anything last changed.", "s",
                        value=round(now, 3)),
        SimulatedSensor(t.ADDRESS, "device.address", "Control address.", "",
                        value=Address("127.0.0.1", 7147)),
        SimulatedSensor(t.ADDRESS, "rx.destination", "Where data is sent.", "",
                        value=Address("::1", 7148)),
    ]


def demo_sensors(count: int = 40) -> list[SimulatedSensor]:
    """``count`` demo sensors of every type: sixteen named ones (two per type), then
    ``sim.<type>-NNN`` sensors up to ``count``. All start with a nominal reading."""
    sensors = _demo_base()[:count]
    types = list(SensorType)
    for index in range(len(sensors), count):
        stype = types[index % len(types)]
        name = f"sim.{stype.wire_name}-{index:03d}"
        params: list[Any] = []
        if stype == SensorType.INTEGER:
            params = [-1000, 1000]
        elif stype == SensorType.FLOAT:
            params = [-1.0, 1.0]
        elif stype == SensorType.DISCRETE:
            params = ["red", "amber", "green"]
        sensor = SimulatedSensor(stype, name, f"Simulated {stype.wire_name} sensor {index}.",
                                 "", params)
        value, _ = generated_reading(sensor, 0)
        sensor.set_value(value)
        sensors.append(sensor)
    return sensors
