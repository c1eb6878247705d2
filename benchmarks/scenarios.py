"""What one benchmark process does for each metric, and checks, against flood devices.

Each scenario runs in a fresh process (see :func:`child_main`) and returns a plain dict: the
measurement, ``problem`` (``None`` when every check passed) and, when profiled, the profile rows.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import tracemalloc
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import ceiling
import scale
import ways
import wire
from clients import CLIENTS, BenchClient, CountingObserver, FreshObserver, Tally
from measure import Section, rss_bytes

HOST = "127.0.0.1"
#: Bound on every single wait inside a scenario, in seconds.
WAIT = 60.0

Result = dict[str, Any]


def _generation_problem(client: BenchClient, sensors: int) -> tuple[int, str | None]:
    """The device generation the cached values come from, and what is wrong with the cache
    (sensors missing, or values not all from one generation)."""
    names = wire.sensor_names(sensors)
    if sorted(client.sensor_names()) != names:
        return 0, f"{len(client.sensor_names())} sensors cached, {sensors} expected"
    generation = int(client.value(names[0]) // wire.GENERATION_STEP)
    wrong = [name for j, name in enumerate(names)
             if client.value(name) != wire.generation_value(generation, j)]
    if wrong:
        return generation, f"{len(wrong)} sensors without their current value, e.g. {wrong[0]}"
    return generation, None


def _flood_problem(client: BenchClient, sensors: int, updates: int,
                   observers: dict[str, CountingObserver]) -> str | None:
    """Whether every update of a flood reached the observers and the last values are cached."""
    counts = wire.flood_counts(sensors, updates)
    short = [name for name, count in counts.items() if observers[name].count != count]
    if short:
        return (f"{len(short)} sensors saw the wrong number of updates, e.g. {short[0]}: "
                f"{observers[short[0]].count} of {counts[short[0]]}")
    stale = [name for name, value in wire.flood_last_values(sensors, updates).items()
             if client.value(name) != value]
    if stale:
        return f"{len(stale)} sensors lack their last value, e.g. {stale[0]}"
    return None


def _attach_counters(client: BenchClient, tally: Tally) -> dict[str, CountingObserver]:
    observers = {name: CountingObserver(tally) for name in client.sensor_names()}
    for name, observer in observers.items():
        client.attach(name, observer)
    return observers


async def throughput(client_name: str, port: int, sensors: int, updates: int,
                     profile: bool = False) -> Result:
    """(a) Sync, attach one counting observer per sensor, then time a flood of ``updates``
    from the ``?flood`` request until the last update has reached its observer."""
    client = CLIENTS[client_name](HOST, port)
    client.start()
    await client.until_synced(WAIT)
    tally = Tally(updates)
    observers = _attach_counters(client, tally)
    gc.collect()
    with Section(profile) as section:
        await client.request("flood", WAIT)
        await asyncio.wait_for(tally.done, WAIT)
    problem = _flood_problem(client, sensors, updates, observers)
    await client.close(WAIT)
    return {"rate": updates / section.seconds, "seconds": section.seconds, "problem": problem,
            "profile": section.profile_rows()}


async def sync(client_name: str, port: int, sensors: int, profile: bool = False) -> Result:
    """(b) Time from creating the client until it is synced with every sensor sampled and
    its value cached; also the growth of the resident set (after ``gc``) while doing so."""
    gc.collect()
    rss_before = rss_bytes()
    with Section(profile) as section:
        client = CLIENTS[client_name](HOST, port)
        client.start()
        await client.until_synced(WAIT)
    _, problem = _generation_problem(client, sensors)
    gc.collect()
    rss_growth = rss_bytes() - rss_before
    await client.close(WAIT)
    return {"seconds": section.seconds, "rss_per_sensor": rss_growth / sensors,
            "problem": problem, "profile": section.profile_rows()}


async def memory(client_name: str, port: int, sensors: int) -> Result:
    """(c) Python heap held by a client synced with ``sensors`` sensors: ``tracemalloc``'s
    traced size after ``gc`` once synced, minus the same before the client was created."""
    tracemalloc.start()
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    client = CLIENTS[client_name](HOST, port)
    client.start()
    await client.until_synced(WAIT)
    _, problem = _generation_problem(client, sensors)
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    await client.close(WAIT)
    return {"per_sensor": (held - before) / sensors, "peak_per_sensor": (peak - before) / sensors,
            "problem": problem}


async def restart(client_name: str, port: int, sensors: int, restarts: int) -> Result:
    """(d) Sync, then ``restarts`` times: ask the device to restart and time from the moment
    it closed until the client is synced again with every sensor holding its fresh value."""
    client = CLIENTS[client_name](HOST, port)
    client.start()
    await client.until_synced(WAIT)
    generation, problem = _generation_problem(client, sensors)
    observers = {name: FreshObserver() for name in client.sensor_names()}
    for name, observer in observers.items():
        client.attach(name, observer)
    samples = []
    for _ in range(restarts if problem is None else 0):
        generation += 1
        tally = Tally(sensors)
        for observer in observers.values():
            observer.expect(wire.generation_value(generation, 0), tally)
        closed_at = float((await client.request("restart", WAIT))[0])
        await client.until_not_synced(WAIT)
        await asyncio.wait_for(tally.done, WAIT)
        await client.until_synced(WAIT)
        samples.append(time.monotonic() - closed_at)
        _, problem = _generation_problem(client, sensors)
        if problem is not None:
            break
    await client.close(WAIT)
    return {"samples": samples, "problem": problem}


async def fleet(client_name: str, ports: list[int], sensors: int, updates: int) -> Result:
    """(e) One client per device, all in this process: time until all are synced (with
    values), then time a flood from every device at once until every update is observed."""
    with Section() as syncing:
        clients = [CLIENTS[client_name](HOST, port) for port in ports]
        for client in clients:
            client.start()
        await asyncio.gather(*(client.until_synced(WAIT) for client in clients))
    problems = [_generation_problem(client, sensors)[1] for client in clients]
    tally = Tally(updates * len(clients))
    observers = [_attach_counters(client, tally) for client in clients]
    gc.collect()
    with Section() as flooding:
        await asyncio.gather(*(client.request("flood", WAIT) for client in clients))
        await asyncio.wait_for(tally.done, WAIT)
    problems += [_flood_problem(client, sensors, updates, counters)
                 for client, counters in zip(clients, observers)]
    await asyncio.gather(*(client.close(WAIT) for client in clients))
    total = updates * len(clients)
    return {"sync_seconds": syncing.seconds, "rate": total / flooding.seconds,
            "problem": next((p for p in problems if p is not None), None)}


SCENARIOS: dict[str, Callable[..., Coroutine[Any, Any, Result]]] = {
    "throughput": throughput,
    "sync": sync,
    "memory": memory,
    "restart": restart,
    "fleet": fleet,
    "ceiling-socket": ceiling.over_socket,
    "fleet-sync": scale.fleet_sync,
    "fleet-memory": scale.fleet_memory,
    "fleet-flow": scale.fleet_flow,
}


def child_main(scenario: str, kwargs: dict[str, Any], results: Connection) -> None:
    """Entry point of a benchmark process: run one scenario, send back its result."""
    logging.basicConfig(level=logging.CRITICAL)  # reconnect warnings are expected here
    try:
        if scenario == "ceiling":
            result = ceiling.in_process(**kwargs)
        elif scenario == "way":
            result = ways.measure(**kwargs)
        else:
            result = asyncio.run(SCENARIOS[scenario](**kwargs))
    except Exception as exc:
        result = {"problem": f"{type(exc).__name__}: {exc}"}
    results.send(result)
    results.close()
