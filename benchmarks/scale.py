"""What a client process does for the fleet-scale metrics (i)-(l): many devices, one process.

A :class:`~katcp_inspect.fleet.Fleet` of one device each, all sampled with ``auto``, started
by :func:`start_fleet`: at most ``window`` syncing at a time. Each scenario returns a plain
dict, with ``problem`` ``None`` when every check passed.
"""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from array import array
from typing import Any

import wire
from clients import CountingObserver, Tally
from measure import rss_bytes

from katcp_inspect import InspectingClientAsync
from katcp_inspect.fleet import Fleet

HOST = "127.0.0.1"
#: Bound on every single wait, in seconds (a sync of a thousand devices included).
WAIT = 180.0
#: Latency histogram: bins of 10 µs up to one second (the last bin holds everything above).
LATENCY_BIN = 1e-5
LATENCY_BINS = 100_000
#: Latency samples of the first part of a stream are left out (connections warming up).
LATENCY_WARMUP = 0.5

Result = dict[str, Any]


async def start_fleet(ports: list[int], window: int) -> Fleet:
    """A :class:`~katcp_inspect.fleet.Fleet` of one device per port, every sensor sampled with
    ``auto``, started and synced: at most ``window`` syncing at a time (its ``max_syncing``);
    the connections start at once (``connect_spread=0``), so the small fleets of the curve are
    not slowed by a spread meant to spare real devices."""
    fleet = Fleet({f"bench{j:04d}": f"{HOST}:{port}" for j, port in enumerate(ports)},
                  client_options={"auto_sampling": "auto", "sync_timeout": WAIT},
                  max_syncing=window, connect_spread=0.0)
    await fleet.start()
    await fleet.until_synced(WAIT)
    return fleet


def clients_of(fleet: Fleet) -> list[InspectingClientAsync]:
    return [fleet[name] for name in fleet.names]


def _value_problem(clients: list[InspectingClientAsync], sensors: int) -> str | None:
    """Whether every client caches every sensor with the device's first-generation value
    (checked after the measurements: it makes every sensor's object)."""
    names = wire.sensor_names(sensors)
    for client in clients:
        if client.sensors != names:
            return f"{client.bind_address_string}: {len(client.sensors)} sensors of {sensors}"
        for j, name in enumerate(names):
            sensor = client.future_get_sensor(name).result()
            if sensor is None or sensor.value() != wire.generation_value(1, j):
                return f"{client.bind_address_string}: {name} lacks its value"
    return None


class CollectorTime:
    """CPU seconds spent in the cyclic garbage collector while installed (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started
            self.collections[info["generation"]] += 1

    def __enter__(self) -> CollectorTime:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self)


async def _timed_sync(ports: list[int], window: int) -> tuple[Fleet, Result]:
    """Start and sync the fleet, timing it: wall and CPU seconds, the collector's share of
    the CPU, and the resident set's growth (after ``gc``)."""
    gc.collect()
    rss_before = rss_bytes()
    with CollectorTime() as collector:
        cpu = time.process_time()
        wall = time.perf_counter()
        fleet = await start_fleet(ports, window)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
    gc.collect()
    return fleet, {"seconds": wall, "cpu_seconds": cpu, "gc_seconds": collector.seconds,
                     "gc_share": collector.seconds / cpu, "collections": collector.collections,
                     "rss_growth": rss_bytes() - rss_before}


async def fleet_sync(ports: list[int], sensors: int, window: int) -> Result:
    """(i) Time until every device's client is synced with every value cached; the share
    of CPU time spent in the collector meanwhile; the resident set's growth per sensor."""
    fleet, result = await _timed_sync(ports, window)
    clients = clients_of(fleet)
    result["rss_per_sensor"] = result.pop("rss_growth") / (sensors * len(ports))
    result["per_sensor"] = result["seconds"] / (sensors * len(ports))
    result["problem"] = _value_problem(clients, sensors)
    await fleet.stop(WAIT)
    return result


async def fleet_memory(ports: list[int], sensors: int, window: int) -> Result:
    """(j) Python heap per cached sensor once synced: ``tracemalloc``'s traced size after
    ``gc``, minus the same before the clients were made (every fixed cost included)."""
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    fleet = await start_fleet(ports, window)
    clients = clients_of(fleet)
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = sensors * len(ports)
    result = {"per_sensor": (held - before) / total, "peak_per_sensor": (peak - before) / total,
              "problem": _value_problem(clients, sensors)}
    await fleet.stop(WAIT)
    return result


class LatencyObserver:
    """Device write → observer call, for readings stamped by :mod:`flood_device`'s
    ``?stream`` with their write time: a histogram of 10 µs bins (bounded storage)."""

    __slots__ = ("bins", "count", "since")

    def __init__(self, since: float) -> None:
        self.bins = array("q", bytes(8 * LATENCY_BINS))
        self.count = 0
        self.since = since

    def update(self, sensor: Any, reading: Any) -> None:
        now = time.time()
        if now < self.since:
            return
        self.count += 1
        self.bins[max(0, min(int((now - reading.timestamp) / LATENCY_BIN), LATENCY_BINS - 1))] += 1

    def percentile(self, fraction: float) -> float | None:
        """The delay below which ``fraction`` of the samples fall (top of its bin)."""
        wanted = fraction * self.count
        seen = 0
        for i, n in enumerate(self.bins):
            seen += n
            if n and seen >= wanted:
                return (i + 1) * LATENCY_BIN
        return None


async def _flood(clients: list[InspectingClientAsync], sensors: int, updates: int) -> Result:
    """(k) Every device floods ``updates`` lines at once: aggregate updates/s into the cache
    and one counting observer per sensor, until the last has been observed."""
    tally = Tally(updates * len(clients))
    counters = []
    for client in clients:
        observers = {name: CountingObserver(tally) for name in client.sensors}
        for name, observer in observers.items():
            client.future_get_sensor(name).result().attach(observer)
        counters.append(observers)
    gc.collect()
    started = time.perf_counter()
    await asyncio.gather(*(client.katcp_client.request("flood", timeout=WAIT)
                           for client in clients))
    await asyncio.wait_for(tally.done, WAIT)
    seconds = time.perf_counter() - started
    expected = wire.flood_counts(sensors, updates)
    short = sum(1 for observers in counters for name, observer in observers.items()
                if observer.count != expected[name])
    for client, observers in zip(clients, counters):
        for name, observer in observers.items():
            client.future_get_sensor(name).result().detach(observer)
    return {"rate": updates * len(clients) / seconds,
            "problem": f"{short} sensors saw the wrong number of updates" if short else None}


async def _stream(clients: list[InspectingClientAsync], per_second: float,
                  seconds: float) -> Result:
    """(l) Every device streams time-stamped updates at ``per_second`` in all (spread
    evenly) for ``seconds``: the delay from the device's write to the observer's call, and
    the CPU time the collector took meanwhile."""
    observer = LatencyObserver(time.time() + LATENCY_WARMUP)
    for client in clients:
        for name in client.sensors:
            client.future_get_sensor(name).result().attach(observer)
    each = per_second / len(clients)
    with CollectorTime() as collector:
        await asyncio.gather(*(client.katcp_client.request("stream", each, seconds,
                                                           timeout=WAIT)
                               for client in clients))
        await asyncio.sleep(seconds + 0.2)
    for client in clients:
        for name in client.sensors:
            client.future_get_sensor(name).result().detach(observer)
    observed = observer.count / max(seconds - LATENCY_WARMUP, 1e-9)
    p50, p99 = observer.percentile(0.5), observer.percentile(0.99)
    return {"p50": p50, "p99": p99, "observed_rate": observed,
            "stream_gc_seconds": collector.seconds,
            "problem": None if p99 is not None and observed > 0.9 * per_second else
            f"{observer.count} readings observed at {observed:,.0f}/s of {per_second:,.0f}/s"}


async def fleet_flow(ports: list[int], sensors: int, window: int, flood_per_device: int,
                     stream_rate: float, stream_seconds: float, freeze: bool = False) -> Result:
    """(i) at full size, then (l) and (k) with the same clients: the sync (timed, with the
    collector's share), a steady stream, a flood from every device at once. ``freeze``: call
    ``gc.freeze()`` once synced, as an application may (see docs/performance.md)."""
    fleet, result = await _timed_sync(ports, window)
    clients = clients_of(fleet)
    result["rss_per_sensor"] = result.pop("rss_growth") / (sensors * len(ports))
    result["per_sensor"] = result["seconds"] / (sensors * len(ports))
    problems = [_value_problem(clients, sensors)]
    if freeze:
        gc.freeze()
    stream = await _stream(clients, stream_rate, stream_seconds)
    flood = await _flood(clients, sensors, flood_per_device)
    await fleet.stop(WAIT)
    problems += [stream.pop("problem"), flood.pop("problem")]
    return {**result, **stream, **flood,
            "problem": "; ".join(p for p in problems if p is not None) or None}
