"""Test 8: ``stop()`` called in every state of the sync loop and of the connection, from
inside the state callback, and at random times under load, ends cleanly: the client reports
DISCONNECTED, the low-level client is CLOSED, and no task or timer of the client is left
(the conftest check adds: no "never retrieved" exception, no destroyed pending task)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from katcp_inspect import InspectingClientAsync
from katcp_inspect.client import ConnectionState
from katcp_inspect.inspecting_client import (
    DATA_SYNCED_CHANGED,
    DISCONNECTED,
    SYNCED,
    SYNCING,
    InspectingClientStateType,
)
from katcp_inspect.testing import SimulatedDevice, demo_sensors

from ..support import scripted_device
from .helpers import fast_client, fault_proxy, running_device, wait_until

_CLIENT_MODULES = ("katcp_inspect.client", "katcp_inspect.inspecting_client",
                   "katcp_inspect.connection", "katcp_inspect.waiting")


def _ours(obj: Any) -> bool:
    """Whether a task's coroutine or a timer's callback belongs to the client's modules."""
    target = getattr(obj, "__self__", None)
    module = getattr(type(target), "__module__", "") if target is not None else ""
    code = getattr(obj, "cr_code", None) or getattr(obj, "__code__", None)
    filename = getattr(code, "co_filename", "")
    return module.startswith(_CLIENT_MODULES) or any(
        f"katcp_inspect/{m.split('.')[-1]}.py" in filename for m in _CLIENT_MODULES)


def leftovers() -> list[str]:
    loop = asyncio.get_running_loop()
    found = [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()
             and not t.done() and _ours(t.get_coro())]
    found += [repr(h) for h in getattr(loop, "_scheduled", [])
              if not h.cancelled() and _ours(h._callback)]
    return found


async def assert_stopped_cleanly(client: InspectingClientAsync,
                                 stop: Awaitable[Any] | None = None) -> float:
    """Wait for the stop (started already, or now); check that nothing is left."""
    start = time.monotonic()
    await asyncio.wait_for(stop if stop is not None else client.stop(), 5)
    took = time.monotonic() - start
    await asyncio.wait_for(client.until_stopped(), 5)
    assert client.state == DISCONNECTED
    assert client.katcp_client.state is ConnectionState.CLOSED
    client.katcp_client.check_invariants()
    try:
        await wait_until(lambda: not leftovers(), timeout=2)
    except AssertionError:
        raise AssertionError(f"left running after stop(): {leftovers()}") from None
    return took


Scenario = Callable[[], AsyncIterator[InspectingClientAsync]]


async def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_stop_before_connect(io_loop: Any) -> None:
    client = fast_client(await free_port())
    await assert_stopped_cleanly(client)


async def test_stop_while_connecting_and_sleeping(io_loop: Any) -> None:
    port = await free_port()  # nothing listens: refused, then SLEEPING
    client = fast_client(port, reconnect=0.5)
    connecting = client.connect()
    await assert_stopped_cleanly(client)  # stop() in the same loop iteration as connect()
    await connecting
    client = fast_client(port, reconnect=0.5)
    connecting = client.connect()
    await asyncio.sleep(0)
    assert client.katcp_client.state is ConnectionState.CONNECTING
    await assert_stopped_cleanly(client)
    await connecting
    client = fast_client(port, reconnect=0.5)
    await client.connect()
    await wait_until(lambda: client.katcp_client.state is ConnectionState.SLEEPING)
    await assert_stopped_cleanly(client)


async def test_stop_while_negotiating(io_loop: Any) -> None:
    async with running_device(SimulatedDevice(sensors=demo_sensors(4))) as device, \
            fault_proxy(device.port) as proxy:
        proxy.to_client.stall()
        client = fast_client(proxy.port)
        await client.connect()
        await wait_until(lambda: client.katcp_client.state is ConnectionState.NEGOTIATING)
        await assert_stopped_cleanly(client)


@pytest.mark.parametrize("where", ["inspection", "sampling", "synced", "disconnecting"])
async def test_stop_in_each_phase(io_loop: Any, where: str) -> None:
    device = SimulatedDevice(sensors=demo_sensors(12))
    if where == "inspection":
        device.set_delay("sensor-list", 5)
    elif where == "sampling":
        device.set_delay("sensor-sampling", 5)
    async with running_device(device):
        client = fast_client(device.port, auto_sampling="auto")
        await client.connect()
        if where == "inspection":
            await wait_until(lambda: client.state == SYNCING)
        elif where == "sampling":
            await wait_until(lambda: client.state == DATA_SYNCED_CHANGED)
        else:
            await client.until_synced(timeout=10)
        if where == "disconnecting":
            client.katcp_client.disconnect()
            assert client.katcp_client.state is ConnectionState.DISCONNECTING
        await assert_stopped_cleanly(client)


async def test_stop_during_the_resync_backoff(io_loop: Any) -> None:
    async with scripted_device(responses={"help": lambda r: [b"!help fail broken"]}) as device:
        client = fast_client(device.port, resync=2.0)
        await client.connect()
        await wait_until(lambda: client.stats.failed_syncs >= 1, timeout=5)
        await assert_stopped_cleanly(client)


@pytest.mark.parametrize("coroutine", [False, True], ids=["plain", "coroutine"])
@pytest.mark.parametrize("state", [DISCONNECTED, SYNCING, DATA_SYNCED_CHANGED, SYNCED],
                         ids=["disconnected", "syncing", "data-synced", "synced"])
async def test_stop_from_the_state_callback(io_loop: Any, state: InspectingClientStateType,
                                            coroutine: bool) -> None:
    async with running_device(SimulatedDevice(sensors=demo_sensors(12))) as device:
        client = fast_client(device.port, auto_sampling="auto")
        stopping: list[asyncio.Future[None]] = []

        def plain(reported: InspectingClientStateType, changes: Any) -> None:
            if reported == state and not stopping:
                stopping.append(client.stop())

        async def coro(reported: InspectingClientStateType, changes: Any) -> None:
            plain(reported, changes)
            await asyncio.sleep(0)

        client.set_state_callback(coro if coroutine else plain)
        await client.connect()
        await wait_until(lambda: bool(stopping), timeout=10)
        await assert_stopped_cleanly(client, stopping[0])


async def test_stop_at_random_times_under_load(io_loop: Any, figures: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(1000, rate=None)
    device.start_generator("/.*/", rate=10)  # 10 000 updates/s
    rng = random.Random(6)
    times = []
    async with running_device(device):
        for _ in range(10):
            client = fast_client(device.port, auto_sampling="auto")
            await client.connect()
            await asyncio.sleep(rng.uniform(0, 0.4))
            state = client.state
            times.append((await assert_stopped_cleanly(client), state))
    figures(f"stop() at random times under 10 000 updates/s: {len(times)} stops, clean, "
            f"slowest {max(t for t, _ in times) * 1000:.1f} ms; states hit: "
            f"{sorted({str(s) for _, s in times})}")


async def test_stop_ends_the_waiters(io_loop: Any) -> None:
    """Regression (found by this suite): waiters issued before stop() stayed pending (a
    lookup for sync_timeout, until_synced() for ever)."""
    device = SimulatedDevice(sensors=demo_sensors(12))
    device.set_delay("sensor-list", 5)
    async with running_device(device):
        client = fast_client(device.port)
        await client.connect()
        await client.until_connected(timeout=5)
        waiters = [client.future_get_sensor("cpu.temperature"), client.until_synced(),
                   client.until_data_synced(timeout=30)]
        await asyncio.sleep(0.05)
        await client.stop()
        try:
            _, pending = await asyncio.wait(waiters, timeout=1)
            assert not pending, f"{len(pending)} waiters still pending after stop()"
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
