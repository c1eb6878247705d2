"""The flood run shared by the resilience suite's test 3 and ``scripts/flood.py``.

``sensors`` integer sensors on a SimulatedDevice; each round gives every sensor the next
value (1, 2, 3...), so per sensor the values a client sees must increase. Most sensors are
sampled with ``auto`` (every update must arrive), a tenth with ``event-rate`` (updates may be
dropped, but the last one must arrive). Observers on the client's sensors count updates and
watch the order. Two ways to produce updates:

- ``mode="device"``: ``SimulatedSensor.set_value`` for every update, through the device's
  samplers (the realistic path, about 70 000 updates/s on one core);
- ``mode="raw"``: pre-encoded ``#sensor-status`` lines written to the client's connection on
  the device (all sensors ``auto``), then the device's sensors set to the final values: this
  measures the client alone.

The producer never runs more than ``window`` rounds ahead of what the client has received,
so memory stays bounded by the window, not the run length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import attrs

from ...inspecting_client import InspectingClientAsync
from ...kattypes import SensorStatus
from ..device import SimulatedDevice
from ..sensors import SimulatedSensor
from .model_check import model_differences
from .probes import fast_client, leak_probe, rss_mib, wait_until

LOSSY_STRATEGY = ("event-rate", 0.02, 1.0)
#: ``progress(round, seconds)`` is called ten times during a run.
Progress = Callable[[int, float], None]


class OrderObserver:
    """Counts the updates of one sensor and every time a value did not increase."""

    __slots__ = ("count", "last", "reordered")

    def __init__(self) -> None:
        self.count = 0
        self.last = 0
        self.reordered = 0

    def update(self, sensor: Any, reading: Any) -> None:
        value = reading.value
        if reading.status is SensorStatus.UNREACHABLE:
            return
        if value <= self.last:
            self.reordered += 1
        self.last = value
        self.count += 1


@attrs.define
class FloodResult:
    mode: str
    sensors: int
    rounds: int
    updates_sent: int
    seconds: float
    rss_before: float
    rss_peak: float
    rss_after: float
    lost_auto: int  # updates of auto-sampled sensors that never arrived
    lossy_received: int  # of the updates of event-rate sensors
    lossy_sent: int
    reordered: int
    not_last: list[str]
    diffs: list[str]
    tasks_before: int
    tasks_after: int
    bad_updates: int

    @property
    def rate(self) -> float:
        return self.updates_sent / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (f"{self.updates_sent} updates ({self.sensors} sensors x {self.rounds} rounds, "
                f"{self.mode} mode) in {self.seconds:.1f} s = {self.rate:,.0f}/s; "
                f"lost (auto): {self.lost_auto}; event-rate sensors got {self.lossy_received} "
                f"of {self.lossy_sent}; reordered: {self.reordered}; not on the last value: "
                f"{len(self.not_last)}; RSS {self.rss_before:.1f} -> peak "
                f"{self.rss_peak:.1f} -> {self.rss_after:.1f} MiB; tasks "
                f"{self.tasks_before} -> {self.tasks_after}")


def flood_device(sensors: int) -> SimulatedDevice:
    return SimulatedDevice(sensors=[
        SimulatedSensor("integer", f"flood.s{i:05d}", f"Flood sensor {i}.", "",
                        [0, 2**62], value=0, timestamp=1.0) for i in range(sensors)])


def _status_lines(names: list[bytes], value: int, timestamp: float) -> bytes:
    ts = repr(timestamp).encode()
    tail = b" nominal %d\n" % value
    return b"".join(b"#sensor-status " + ts + b" 1 " + name + tail for name in names)


@attrs.define
class _Watch:
    """The client's side of a flood: an observer per sensor, by how each is sampled."""

    observers: dict[str, OrderObserver]
    auto: list[str]
    lossy: list[str]


def _is_nominal(sensor: Any) -> Callable[[], bool]:
    return lambda: bool(sensor.read().status is SensorStatus.NOMINAL)


async def _watch(client: InspectingClientAsync, names: list[str], lossy_every: int,
                 mode: str) -> _Watch:
    """Set the strategies and attach an observer to every sensor once it has its reading."""
    lossy = [] if mode == "raw" else names[::lossy_every]
    lossy_set = set(lossy)
    auto = [n for n in names if n not in lossy_set]
    await client.set_sampling_strategies(auto, "auto")
    if lossy:
        await client.set_sampling_strategies(sorted(lossy), *LOSSY_STRATEGY)
    observers: dict[str, OrderObserver] = {}
    for name in names:
        sensor = await client.future_get_sensor(name)
        if sensor is None:
            raise RuntimeError(f"the client's model lacks sensor {name!r}")
        await wait_until(_is_nominal(sensor), timeout=10)
        observers[name] = observer = OrderObserver()
        sensor.attach(observer)
    return _Watch(observers, auto, lossy)


async def _produce(device: SimulatedDevice, watch: _Watch, rounds: int, mode: str,
                   window: int, progress: Progress | None) -> float:
    """Send ``rounds`` rounds of updates, never more than ``window`` rounds ahead of the
    client; returns the peak RSS seen (MiB)."""
    names = list(watch.observers)
    sim = [device.get_sensor(n) for n in names]
    wire_names = [n.encode() for n in names]
    last_auto = watch.observers[watch.auto[-1]]
    (conn,) = device.connections
    rss_peak = rss_mib()
    start = time.perf_counter()
    for value in range(1, rounds + 1):
        if mode == "raw":
            conn.send(_status_lines(wire_names, value, 1.0 + value))
        else:
            for s in sim:
                s.set_value(value, timestamp=1.0 + value)
        if value % 5 == 0 or value == rounds:
            # Let the client catch up to within `window` rounds (bounded memory).
            while last_auto.last < value - window:
                await asyncio.sleep(0.001)
            rss_peak = max(rss_peak, rss_mib())
            if progress is not None and value % max(1, rounds // 10) == 0:
                progress(value, time.perf_counter() - start)
        else:
            await asyncio.sleep(0)
    if mode == "raw":  # the device's own model ends where the flood did
        for s in sim:
            s._reading = attrs.evolve(s.reading, value=rounds, timestamp=1.0 + rounds,
                                      status=SensorStatus.NOMINAL)
    return rss_peak


async def run_flood(sensors: int = 1000, rounds: int = 100, *, mode: str = "device",
                    window: int = 20, lossy_every: int = 10,
                    progress: Progress | None = None) -> FloodResult:
    """Flood a client with ``sensors * rounds`` updates (see the module's docstring)."""
    device = flood_device(sensors)
    await device.start("127.0.0.1", 0)
    client: InspectingClientAsync = fast_client(device.port)
    try:
        await client.connect()
        await client.until_synced(timeout=30)
        watch = await _watch(client, list(device.sensors), lossy_every, mode)
        observers = watch.observers
        tasks_before = len(asyncio.all_tasks())
        rss_before = rss_mib()
        start = time.perf_counter()
        rss_peak = await _produce(device, watch, rounds, mode, window, progress)
        await wait_until(lambda: all(o.last == rounds for o in observers.values()),
                         timeout=60, what="every sensor on its last value")
        seconds = time.perf_counter() - start
        rss_after = rss_mib()
        probe = leak_probe()
        return FloodResult(
            mode=mode, sensors=sensors, rounds=rounds, updates_sent=sensors * rounds,
            seconds=seconds, rss_before=rss_before, rss_peak=max(rss_peak, rss_after),
            rss_after=rss_after,
            lost_auto=sum(rounds - observers[n].count for n in watch.auto),
            lossy_received=sum(observers[n].count for n in watch.lossy),
            lossy_sent=rounds * len(watch.lossy),
            reordered=sum(o.reordered for o in observers.values()),
            not_last=[n for n, o in observers.items() if o.last != rounds],
            diffs=model_differences(client, device),
            tasks_before=tasks_before, tasks_after=probe["tasks"],
            bad_updates=client.stats.bad_updates)
    finally:
        await client.stop()
        await device.stop()
