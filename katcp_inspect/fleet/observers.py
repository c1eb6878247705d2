"""Fleet-wide sensor observers: ``observer(device_name, sensor, reading)`` for every update of
the sensors whose device and sensor names match the patterns it was attached with.

Patterns are matched once per sensor, when the observer is attached and when a device's model
gains the sensor, never per update. Each matching sensor gets an :class:`Adapter` among its
observers, whose ``update`` is ``functools.partial(observer, device_name)``: an update costs
the sensor one more observer call, made by a C partial straight into the user's function,
and nothing else (no future, no task, no lookup).
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable
from typing import Any, Callable, Protocol

from ..sensor import Reading, Sensor
from ..stats import OnceLogger
from ..text import printable

#: What the fleet calls on every update of a matching sensor.
FleetObserver = Callable[[str, Sensor, Reading], Any]

_problems = OnceLogger(logging.getLogger("katcp_inspect.fleet"))


class Device(Protocol):
    """What observers need of a fleet's device."""

    name: str

    def sensor_names(self) -> Iterable[str]: ...

    def sensor(self, name: str) -> Any | None: ...


class Adapter:
    """One observer on one sensor: the sensor calls ``update(sensor, reading)``."""

    __slots__ = ("observer", "sensor", "update")

    def __init__(self, observer: FleetObserver, device: str, sensor: Any) -> None:
        self.observer = observer
        self.sensor = sensor
        self.update = functools.partial(observer, device)

    def move_to(self, sensor: Any) -> None:
        """Observe ``sensor``, the object that replaced the one observed (a model change)."""
        if sensor is not self.sensor:
            self.sensor.detach(self)
            self.sensor = sensor
        sensor.attach(self)  # does nothing if the new object took the observers over

    def __repr__(self) -> str:
        return f"<fleet observer {self.observer!r}>"


def _compiled(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as exc:
        raise ValueError(f"bad {what} pattern {pattern!r}: {exc}") from None


class _Subscription:
    """One observer: its (device, sensor) pattern pairs, and where it is attached."""

    def __init__(self, observer: FleetObserver) -> None:
        self.observer = observer
        self.patterns: list[tuple[re.Pattern[str], re.Pattern[str]]] = []
        #: Device name → sensor name → adapter.
        self.adapters: dict[str, dict[str, Adapter]] = {}

    def sensor_patterns(self, device: str) -> list[re.Pattern[str]]:
        return [sensor for dev, sensor in self.patterns if dev.search(device)]


class FleetObservers:
    """The fleet's observers, and the adapters they have on its devices' sensors."""

    def __init__(self) -> None:
        self._subscriptions: dict[FleetObserver, _Subscription] = {}

    def __len__(self) -> int:
        return len(self._subscriptions)

    def attach(self, observer: FleetObserver, device: str, sensor: str,
               devices: Iterable[Device]) -> None:
        device_pattern = _compiled(device, "device")
        sensor_pattern = _compiled(sensor, "sensor")
        subscription = self._subscriptions.get(observer)
        if subscription is None:
            subscription = self._subscriptions[observer] = _Subscription(observer)
        subscription.patterns.append((device_pattern, sensor_pattern))
        for member in devices:
            if device_pattern.search(member.name):
                self._cover(subscription, member, member.sensor_names(), [sensor_pattern])

    def detach(self, observer: FleetObserver) -> None:
        subscription = self._subscriptions.pop(observer, None)
        if subscription is not None:
            for adapters in subscription.adapters.values():
                for adapter in adapters.values():
                    adapter.sensor.detach(adapter)

    def sensors_changed(self, member: Device, added: Iterable[str],
                        removed: Iterable[str]) -> None:
        """``member``'s model changed: new sensors are observed, replaced ones observed anew
        (a modified sensor is in both sets), and removed ones forgotten."""
        added = set(added)
        for subscription in self._subscriptions.values():
            adapters = subscription.adapters.get(member.name, {})
            for name in set(removed) - added:
                adapter = adapters.pop(name, None)
                if adapter is not None:
                    adapter.sensor.detach(adapter)
            patterns = subscription.sensor_patterns(member.name)
            if patterns:
                self._cover(subscription, member, added, patterns)

    def device_removed(self, name: str) -> None:
        for subscription in self._subscriptions.values():
            for adapter in subscription.adapters.pop(name, {}).values():
                adapter.sensor.detach(adapter)

    @staticmethod
    def _cover(subscription: _Subscription, member: Device, names: Iterable[str],
               patterns: list[re.Pattern[str]]) -> None:
        adapters = subscription.adapters.setdefault(member.name, {})
        for name in names:
            if not any(pattern.search(name) for pattern in patterns):
                continue
            sensor = member.sensor(name)
            if sensor is None:
                continue
            if not callable(getattr(sensor, "attach", None)):
                _problems.log(("no-attach", member.name), "%s: sensor %s (made by the "
                              "sensor_factory) has no attach(); not observed",
                              printable(member.name), printable(name))
                continue
            adapter = adapters.get(name)
            if adapter is None:
                adapters[name] = adapter = Adapter(subscription.observer, member.name, sensor)
            adapter.move_to(sensor)


__all__ = ["Adapter", "FleetObserver", "FleetObservers"]
