"""SyncGate (issue 14): at most N holders, first come first served, and inspecting clients that
share one take turns to sync, reporting SYNCING while they wait, and stop at once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from katcp_inspect import InspectingClientAsync
from katcp_inspect.inspecting_client import SYNCED, SYNCING
from katcp_inspect.sync_gate import SyncGate
from katcp_inspect.testing import SimulatedDevice

from .support import wait_until


async def test_places_are_handed_on_in_order(io_loop: Any) -> None:
    gate = SyncGate(2)
    first, second = gate.enter(), gate.enter()
    assert first.done() and second.done() and gate.holders == 2
    third, fourth, fifth = gate.enter(), gate.enter(), gate.enter()
    assert not third.done() and gate.waiting == 3
    fourth.cancel()  # gives up: leaves the queue at once
    await asyncio.sleep(0)
    assert gate.waiting == 2
    gate.leave()
    assert third.done() and not fifth.done() and gate.holders == 2
    gate.leave()
    assert fifth.done() and gate.waiting == 0
    gate.leave()
    gate.leave()
    assert gate.holders == 0
    gate.leave()  # one too many changes nothing
    assert gate.holders == 0


@pytest.mark.parametrize("limit", [0, -1, 1.5, True, None])
def test_a_limit_is_a_whole_number_from_one(limit: Any) -> None:
    with pytest.raises(ValueError, match="limit"):
        SyncGate(limit)


def gated_client(port: int, gate: SyncGate) -> InspectingClientAsync:
    client = InspectingClientAsync("127.0.0.1", port, sync_gate=gate)
    client.katcp_client.reconnect_backoff.delay_initial = 0.01
    client.katcp_client.reconnect_backoff.success()
    return client


async def test_clients_take_turns_and_a_waiting_one_stops_at_once(io_loop: Any) -> None:
    gate = SyncGate(1)
    async with SimulatedDevice.with_demo_sensors(4, rate=None) as slow, \
            SimulatedDevice.with_demo_sensors(4, rate=None) as quick:
        slow.set_delay("sensor-list", 30)  # holds the gate for its whole sync
        holder, waiter = gated_client(slow.port, gate), gated_client(quick.port, gate)
        states: list[Any] = []
        waiter.set_state_callback(lambda state, changes: states.append(state))
        await holder.connect()
        await wait_until(lambda: gate.holders == 1)
        await waiter.connect()
        await wait_until(lambda: gate.waiting == 1)
        assert waiter.state == SYNCING  # it knows its model is not there yet
        await asyncio.sleep(0.2)  # the waiter does not go past the gate
        assert SYNCED not in states and waiter.sensors == []
        loop = asyncio.get_running_loop()
        start = loop.time()
        await waiter.stop()
        assert loop.time() - start < 1.0
        assert gate.waiting == 0 and gate.holders == 1
        await waiter.connect()  # and again: now it gets its turn once the holder is gone
        await wait_until(lambda: gate.waiting == 1)
        await holder.stop()
        await waiter.until_synced(timeout=10)
        await waiter.stop()
        assert (gate.holders, gate.waiting) == (0, 0)


async def test_a_lost_connection_gives_the_place_back(io_loop: Any) -> None:
    gate = SyncGate(1)
    async with SimulatedDevice.with_demo_sensors(4, rate=None) as device:
        device.set_delay("sensor-list", 30)
        client = gated_client(device.port, gate)
        async with client:
            await wait_until(lambda: gate.holders == 1)
            # Undelayed before the drop: the next connection may ask at once. The request in
            # flight keeps its delay, so the place is held until the connection is lost.
            device.set_delay("sensor-list", None)
            device.drop_clients()
            await wait_until(lambda: client.katcp_client.stats.connections == 2)
            await client.until_synced(timeout=10)
        assert (gate.holders, gate.waiting) == (0, 0)
