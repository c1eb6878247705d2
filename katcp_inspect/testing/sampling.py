"""Sensor sampling strategies (``?sensor-sampling``) for one client connection.

A strategy is per sensor and per connection: a new connection starts with every sensor at
``none`` and its strategies vanish with it. :func:`parse_strategy` turns the request's
arguments into a :class:`SamplingStrategy` (or raises :class:`StrategyError`, whose text is the
``fail`` reason); a :class:`Sampler` applies one strategy to one sensor; a
:class:`ConnectionSampling` holds all the samplers of one connection.

Every strategy is expressed with four knobs (always, difference, shortest, longest), after
aiokatcp's design:

- ``auto``: send every update;
- ``event``: send when the value or the status changes;
- ``differential d``: send when ``|Δvalue| > d`` or the status changes;
- ``period p``: send the current reading every ``p`` seconds, whatever happens;
- ``event-rate s l``: as ``event``, but at most once per ``s`` and at least once per ``l``
  seconds;
- ``differential-rate d s l``: as ``differential d``, with the same limits.

Samplers use timers on the running loop (never tasks), so closing them leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import enum
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import attrs

from ..kattypes import SensorStatus, SensorType
from ..strategies import STRATEGIES
from .sensors import SensorReading, SimulatedSensor


class StrategyError(ValueError):
    """The strategy or its parameters do not suit the sensor; the text is the reason sent."""


class StrategyName(enum.Enum):
    """The KATCP sampling strategies by their wire names: those of the library's table,
    :data:`katcp_inspect.strategies.STRATEGIES`."""

    NONE = "none"
    AUTO = "auto"
    PERIOD = "period"
    EVENT = "event"
    DIFFERENTIAL = "differential"
    EVENT_RATE = "event-rate"
    DIFFERENTIAL_RATE = "differential-rate"


#: The name :class:`StrategyName` had before (it collided with
#: :data:`katcp_inspect.sampling.Strategy`); kept for code that imports it.
Strategy = StrategyName


_NUMERIC = (SensorType.INTEGER, SensorType.FLOAT)
_DIFFERENTIAL = (StrategyName.DIFFERENTIAL, StrategyName.DIFFERENTIAL_RATE)


@attrs.frozen
class SamplingStrategy:
    """A parsed, checked strategy.

    ``params`` are the parameters as the client sent them (echoed in replies and queries);
    the other fields say what the sampler does, with times in seconds.
    """

    strategy: StrategyName
    params: tuple[bytes, ...] = ()
    #: Send on every update, changed or not.
    always: bool = False
    #: React to updates at all (``period`` does not).
    on_change: bool = False
    #: Minimum change in value that counts (``None``: any change).
    difference: float | None = None
    #: Minimum time between updates sent.
    shortest: float = 0.0
    #: Maximum time between updates sent (``None``: no maximum).
    longest: float | None = None

    def reply_arguments(self) -> list[bytes]:
        """``strategy params...`` as in the reply to ``?sensor-sampling``."""
        return [self.strategy.value.encode("ascii"), *self.params]


NONE = SamplingStrategy(StrategyName.NONE)


def _number(raw: bytes, what: str) -> float:
    try:
        number = float(raw.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise StrategyError(f"bad {what} {raw.decode('ascii', 'replace')!r}") from None
    if not math.isfinite(number) or number < 0:
        raise StrategyError(f"the {what} must be a non-negative number, not {number!r}")
    return number


def parse_strategy(name: bytes | str, params: Sequence[bytes], stype: SensorType, *,
                   major: int = 5) -> SamplingStrategy:
    """Check ``?sensor-sampling``'s strategy and parameters for a sensor of type ``stype``.

    ``major`` is the device's KATCP major version: KATCP 4 has no ``event-rate`` or
    ``differential-rate`` and gives the ``period`` in milliseconds.
    """
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    info = STRATEGIES.get(text)
    if info is None:
        raise StrategyError(f"Unknown strategy {text}")
    if not info.allowed(major):
        raise StrategyError(f"Strategy {text} not allowed for version {major} of katcp")
    strategy = StrategyName(text)
    names = info.params
    if len(params) != len(names):
        wanted = " ".join(names) if names else "no parameters"
        raise StrategyError(f"Strategy {text} takes {wanted}; got {len(params)} parameter(s)")
    if strategy in _DIFFERENTIAL and stype not in _NUMERIC:
        raise StrategyError(
            f"Strategy {text} is only for integer and float sensors, not {stype.wire_name}")
    values = dict(zip(names, (_number(raw, what) for raw, what in zip(params, names))))
    raw = tuple(params)
    if strategy is StrategyName.NONE:
        return NONE
    if strategy is StrategyName.AUTO:
        return SamplingStrategy(strategy, raw, always=True, on_change=True)
    if strategy is StrategyName.EVENT:
        return SamplingStrategy(strategy, raw, on_change=True)
    if strategy is StrategyName.DIFFERENTIAL:
        return SamplingStrategy(strategy, raw, on_change=True, difference=values["difference"])
    if strategy is StrategyName.PERIOD:
        period = values["period"] / 1000 if major < 5 else values["period"]
        if period <= 0:
            raise StrategyError("the period must be positive")
        return SamplingStrategy(strategy, raw, longest=period)
    shortest, longest = values["shortest"], values["longest"]
    if longest <= 0:
        raise StrategyError("the longest period must be positive")
    if shortest > longest:
        raise StrategyError("the shortest period must not exceed the longest")
    return SamplingStrategy(strategy, raw, on_change=True, difference=values.get("difference"),
                            shortest=shortest, longest=longest)


SendUpdate = Callable[[SimulatedSensor], None]


class Sampler:
    """Applies one strategy to one sensor for one connection.

    ``send(sensor)`` is called with the sensor whenever its current reading is due to go out:
    once at once (the specification's update right after setting a strategy), then as the
    strategy says.
    """

    def __init__(self, sensor: SimulatedSensor, strategy: SamplingStrategy, send: SendUpdate,
                 ) -> None:
        if strategy.strategy is StrategyName.NONE:
            raise ValueError("the none strategy needs no sampler")
        self.sensor = sensor
        self.strategy = strategy
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._pending = False
        self._last_time = 0.0
        self._last_value: Any = None
        self._last_status: SensorStatus | None = None
        self._closed = False
        if strategy.on_change:
            sensor.attach(self._on_update)
        self._send_now(self._loop.time())

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.sensor.detach(self._on_update)
            self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _changed(self, reading: SensorReading) -> bool:
        strategy = self.strategy
        if strategy.always or reading.status != self._last_status:
            return True
        if strategy.difference is None:
            return bool(reading.value != self._last_value)
        return bool(abs(reading.value - self._last_value) > strategy.difference)

    def _on_update(self, sensor: SimulatedSensor, reading: SensorReading) -> None:
        if self._pending or not self._changed(reading):
            return  # unchanged, or an update is already due once the shortest period is over
        now = self._loop.time()
        due = self._last_time + self.strategy.shortest
        if now >= due:
            self._send_now(now)
        else:
            self._pending = True
            self._cancel_timer()
            self._timer = self._loop.call_at(due, self._send_now, due)

    def _send_now(self, when: float) -> None:
        """Send the current reading; ``when`` is the time it was due (to keep periods even)."""
        self._cancel_timer()  # the longest-period timer, or the one that is calling us
        self._pending = False
        reading = self.sensor.reading
        self._send(self.sensor)
        self._last_time = when
        self._last_value = reading.value
        self._last_status = reading.status
        if self.strategy.longest is not None:
            due = max(self._loop.time(), when + self.strategy.longest)
            self._timer = self._loop.call_at(due, self._send_now, due)


class ConnectionSampling:
    """The sampling strategies of one connection, by sensor name."""

    def __init__(self, send: SendUpdate) -> None:
        self._send = send
        self._samplers: dict[str, Sampler] = {}

    def strategy(self, name: str) -> SamplingStrategy:
        """The strategy set on the sensor ``name`` (``none`` if none was)."""
        sampler = self._samplers.get(name)
        return NONE if sampler is None else sampler.strategy

    def set(self, sensor: SimulatedSensor, strategy: SamplingStrategy) -> None:
        """Replace the sensor's strategy; any strategy but ``none`` sends one update at once."""
        self.discard(sensor.name)
        if strategy.strategy is not StrategyName.NONE:
            self._samplers[sensor.name] = Sampler(sensor, strategy, self._send)

    def discard(self, name: str) -> None:
        """Forget the strategy on ``name`` (when it is set to none, or the sensor goes away)."""
        sampler = self._samplers.pop(name, None)
        if sampler is not None:
            sampler.close()

    def close(self) -> None:
        """Stop every sampler (the connection has gone)."""
        for sampler in self._samplers.values():
            sampler.close()
        self._samplers.clear()

    def __len__(self) -> int:
        return len(self._samplers)

    def __contains__(self, name: object) -> bool:
        return name in self._samplers

    def __iter__(self) -> Iterator[str]:
        return iter(self._samplers)
