"""(f) Every documented way to a synced model, against a device built on aiokatcp, beside that
device's own floor and aiokatcp; (g) looking up every sensor once synced.

The ways: ``auto`` (``InspectingClientAsync(auto_sampling=...)``), ``bulk`` (one
``set_sampling_strategies`` call with every name), ``per-sensor`` (katcp-python style: every
sensor object, then ``sensor.set_strategy`` for each, gathered) and ``per-name``
(``set_sampling_strategy(name, ...)`` for each name, gathered). Each is timed from creating the
client until every sensor is sampled, its value cached and its object made (aiokatcp's
watcher, too, makes one per sensor), in a fresh process, with the growth
of the resident set (after ``gc``) and of its peak. The floor is a client that does only what
the device must do for such a sync: ``?help`` and ``?sensor-list`` together, then one bulk
``?sensor-sampling`` of every name (or ``floor-chunked``: requests of 500 names, all sent at
once, as katcp-inspect sends them), counting lines and parsing nothing but the names.
"""

from __future__ import annotations

import asyncio
import gc
import re
import tracemalloc
from typing import Any

import wire
from clients import Aiokatcp
from measure import Section, peak_rss_bytes, reset_peak_rss, rss_bytes

from katcp_inspect import InspectingClientAsync
from katcp_inspect.sampling import BULK_SAMPLING_CHUNK

HOST = "127.0.0.1"
WAIT = 60.0
STRATEGY = "auto"
WAYS = ("auto", "bulk", "per-sensor", "per-name")
#: A way's name with this suffix measures its memory (``tracemalloc``) instead of its time.
TRACED = " (traced)"
READ_SIZE = 1 << 18
#: Seconds between two measurements in one process: the device drops the last connection's
#: ten thousand samplers meanwhile, which would otherwise be charged to the next one.
SETTLE = 0.5
_LISTED = re.compile(rb"^#sensor-list\[2\] (\S+)", re.MULTILINE)

Result = dict[str, Any]


class _Memory:
    """Growth of the resident set over a section (after ``gc``), and of its peak."""

    def __enter__(self) -> _Memory:
        gc.collect()
        reset_peak_rss()
        self._before = rss_bytes()
        self.growth = self.peak = 0
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.peak = peak_rss_bytes() - self._before
        gc.collect()
        self.growth = rss_bytes() - self._before


async def _read_until(reader: asyncio.StreamReader, marker: bytes) -> bytes:
    """Everything up to and including the line that starts with ``marker``."""
    chunks: list[bytes] = []
    tail = b""
    while True:
        chunk = await reader.read(READ_SIZE)
        if not chunk:
            raise ConnectionError("the device closed the connection")
        chunks.append(chunk)
        if b"\n" + marker in tail + chunk:
            return b"".join(chunks)
        tail = chunk[-len(marker) - 1:]


async def list_all(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """The floor's model phase: ``?help`` and ``?sensor-list`` sent together, read until
    ``!sensor-list``; the connection and what was read."""
    reader, writer = await asyncio.open_connection(HOST, port, limit=READ_SIZE)
    writer.write(b"?help[1]\n?sensor-list[2]\n")
    listed = await asyncio.wait_for(_read_until(reader, b"!sensor-list[2]"), WAIT)
    return reader, writer, listed


async def floor(port: int, sensors: int, chunk: int | None = None) -> Result:
    """The device's time for the sync: what no client can beat against it. The names go in
    one bulk request, or (``chunk``) in requests of that many names, all sent at once."""
    with _Memory(), Section() as section:
        reader, writer, listed = await list_all(port)
        names = _LISTED.findall(listed)
        step = chunk or len(names)
        chunks = [names[start:start + step] for start in range(0, len(names), step)]
        writer.write(b"".join(b"?sensor-sampling[%d] %s %s\n" % (3 + i, b",".join(part),
                                                                 STRATEGY.encode())
                              for i, part in enumerate(chunks)))
        last = b"!sensor-sampling[%d] ok" % (2 + len(chunks))
        sampled = await asyncio.wait_for(_read_until(reader, last), WAIT)
    writer.close()
    statuses = sampled.count(b"#sensor-status ")
    problem = None
    if len(names) != sensors or statuses != sensors:
        problem = f"{len(names)} sensors listed and {statuses} values sent, {sensors} expected"
    return {"seconds": section.seconds, "problem": problem}


async def _sample(ic: InspectingClientAsync, way: str) -> list[Any]:
    """Sample every sensor of a synced client ``way`` (``auto``: sampled by the sync), ending
    with every sensor's object made, as a sync "with objects" means (the per-sensor way makes
    them first; the others ask for each once sampled); the replies."""
    names = ic.sensors
    if way == "per-sensor":
        sensors = await asyncio.gather(*(ic.future_get_sensor(name) for name in names))
        return list(await asyncio.gather(*(sensor.set_strategy(STRATEGY)
                                            for sensor in sensors if sensor is not None)))
    if way == "bulk":
        replies = [await ic.set_sampling_strategies(names, STRATEGY)]
    elif way == "per-name":
        replies = list(await asyncio.gather(*(ic.set_sampling_strategy(name, STRATEGY)
                                              for name in names)))
    else:
        replies = []
    for name in names:
        ic.future_get_sensor(name).result()
    return replies


def _cache_problem(ic: InspectingClientAsync, sensors: int) -> str | None:
    names = wire.sensor_names(sensors)
    if sorted(ic.sensors) != names:
        return f"{len(ic.sensors)} sensors in the model, {sensors} expected"
    wrong = [name for j, name in enumerate(names)
             if ic.future_get_sensor(name).result().value() != wire.generation_value(0, j)]
    return f"{len(wrong)} sensors without their value, e.g. {wrong[0]}" if wrong else None


def _lookups(ic: InspectingClientAsync) -> tuple[float, float, float]:
    """Seconds to look up every sensor object with ``future_get_sensor`` (each future's
    result taken); the same names in a plain dict (the floor of any lookup); and a plain
    dict plus one done future each (the floor of a lookup that returns a future)."""
    names = ic.sensors
    with Section() as lookups:
        for name in names:
            ic.future_get_sensor(name).result()
    table = dict.fromkeys(names)
    with Section() as plain:
        for name in names:
            table[name]  # the lookup is what is timed
    loop = asyncio.get_running_loop()
    with Section() as futures:
        for name in names:
            future = loop.create_future()
            future.set_result(table[name])
            future.result()
    return lookups.seconds, plain.seconds, futures.seconds


async def traced_way(port: int, sensors: int, way: str) -> Result:
    """The Python heap a sync through ``way`` holds once done (``tracemalloc`` after ``gc``,
    what the caller kept dropped and the event loop one turn on), and its peak meanwhile."""
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    ic = InspectingClientAsync(HOST, port, auto_sampling=STRATEGY if way == "auto" else None)
    ic.connect()
    await ic.until_synced(WAIT)
    replies = await _sample(ic, way)
    del replies
    await asyncio.sleep(0)  # the step that awaited the replies holds them until it ends
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    own = await _callers_own_peak(sensors) if way == "per-sensor" else 0
    tracemalloc.stop()
    problem = _cache_problem(ic, sensors)
    await ic.stop(WAIT)
    return {"held": held - before, "peak": peak - before, "callers_own_peak": own,
            "problem": problem}


async def katcp_inspect_way(port: int, sensors: int, way: str) -> Result:
    """Sync through ``way``, check every value, then time the lookups (g)."""
    with _Memory() as memory:
        with Section() as section:
            ic = InspectingClientAsync(HOST, port,
                                       auto_sampling=STRATEGY if way == "auto" else None)
            ic.connect()
            await ic.until_synced(WAIT)
            replies = await _sample(ic, way)
        # What the way holds, not what its caller kept: the replies are checked and dropped.
        refused = [reply for reply, _ in replies if not reply.reply_ok()]
        del replies
    problem = (f"{len(refused)} refusals, e.g. {refused[0]}" if refused
               else _cache_problem(ic, sensors))
    lookup, plain, futures = _lookups(ic)
    await ic.stop(WAIT)
    return {"seconds": section.seconds, "rss": memory.growth, "peak_rss": memory.peak,
            "lookup": lookup, "dict_lookup": plain, "future_lookup": futures,
            "callers_own": await _callers_own(way, sensors), "problem": problem}


async def _callers_own(way: str, sensors: int) -> float:
    """Seconds of the asyncio work that the per-sensor way's caller does with any library
    (see :func:`_callers_work`); 0 for the other ways."""
    if way != "per-sensor":
        return 0.0
    gc.collect()
    with Section() as section:
        await _callers_work(sensors)
    return section.seconds


async def _callers_own_peak(sensors: int) -> int:
    """The Python heap's peak growth over :func:`_callers_work` (``tracemalloc``)."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    await _callers_work(sensors)
    return tracemalloc.get_traced_memory()[1] - before


async def _callers_work(sensors: int) -> None:
    """What the per-sensor way's caller does with any library: gathering one done future per
    sensor (the objects), then making one future per sensor and gathering them as they are
    resolved 500 at a time (the strategy calls). The futures hold ``None``: the library's
    part (objects, requests, replies) is left out."""
    loop = asyncio.get_running_loop()
    done = []
    for _ in range(sensors):
        future = loop.create_future()
        future.set_result(None)
        done.append(future)
    await asyncio.gather(*done)
    pending = [loop.create_future() for _ in range(sensors)]
    gathered = asyncio.gather(*pending)
    for start in range(0, sensors, BULK_SAMPLING_CHUNK):
        for future in pending[start:start + BULK_SAMPLING_CHUNK]:
            future.set_result(None)
        await asyncio.sleep(0)
    await gathered


async def aiokatcp_sync(port: int, sensors: int) -> Result:
    """aiokatcp's ``Client`` and ``SensorWatcher``, synced; then its lookups, from the
    watcher's dict of sensors."""
    with _Memory() as memory, Section() as section:
        client = Aiokatcp(HOST, port)
        client.start()
        await client.until_synced(WAIT)
    names = wire.sensor_names(sensors)
    wrong = [name for j, name in enumerate(names)
             if client.value(name) != wire.generation_value(0, j)]
    watched = client._watcher().sensors
    with Section() as lookups:
        for name in names:
            watched[name]  # the lookup is what is timed
    await client.close(WAIT)
    return {"seconds": section.seconds, "rss": memory.growth, "peak_rss": memory.peak,
            "lookup": lookups.seconds,
            "problem": f"{len(wrong)} sensors without their value" if wrong else None}


def measure(kind: str, **kwargs: Any) -> Result:
    """Entry point for :mod:`scenarios`: ``aiokatcp`` or a way's name, each timed right after
    the device's floor (both variants) in the same process, so that a ratio to the floor
    compares two measurements seconds apart; or a way's name with :data:`TRACED`."""
    if kind.endswith(TRACED):
        return asyncio.run(traced_way(way=kind[:-len(TRACED)], **kwargs))
    return asyncio.run(_after_floors(kind, **kwargs))


async def _after_floors(kind: str, port: int, sensors: int) -> Result:
    floors = {}
    for label, chunk in (("floor", None), ("floor_chunked", BULK_SAMPLING_CHUNK)):
        result = await floor(port, sensors, chunk)
        if result["problem"] is not None:
            return result
        floors[label] = result["seconds"]
        await asyncio.sleep(SETTLE)
    if kind == "aiokatcp":
        result = await aiokatcp_sync(port, sensors)
    else:
        result = await katcp_inspect_way(port, sensors, kind)
    return {**result, **floors}
