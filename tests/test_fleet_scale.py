"""How a fleet behaves at scale (issue 14): the syncs in flight are bounded, when devices
start and when they restart together; a flooding device costs its own client, not the others'
syncs; what each device's state says."""

from __future__ import annotations

import asyncio
from typing import Any

from katcp_inspect.fleet import Fleet
from katcp_inspect.testing.raw_device import flood_process

from .support import wait_until
from .test_fleet import FAST, addresses, closed_port, restart, simulated

UPDATE = b"#sensor-status 1700000000.5 1 flood.sensor nominal 12345.678\n"


async def peak_syncing(fleet: Fleet, until: asyncio.Future[Any]) -> int:
    """The most devices seen syncing at once (sampled every few milliseconds) until ``until``."""
    peak = 0
    while not until.done():
        peak = max(peak, fleet.syncing)
        await asyncio.sleep(0.005)
    await until
    return peak


async def test_at_most_max_syncing_devices_sync_at_once(io_loop: Any) -> None:
    async with simulated(6) as devices:
        for device in devices:
            device.set_delay("sensor-list", 0.3)  # each sync takes 0.3 s at least
        fleet = Fleet(addresses(devices), client_options=FAST, max_syncing=2, connect_spread=0)
        loop = asyncio.get_running_loop()
        async with fleet:
            start = loop.time()
            peak = await peak_syncing(fleet, fleet.until_synced(timeout=20))
            assert loop.time() - start >= 3 * 0.3  # three turns of two
            assert peak == 2
            # All restart together: the resyncs are bounded the same way.
            await restart(devices, 12.5)
            await wait_until(lambda: fleet.summary()["counts"]["synced"] == 0)
            start = loop.time()
            peak = await peak_syncing(fleet, fleet.until_synced(timeout=20))
            assert loop.time() - start >= 3 * 0.3
            assert peak == 2


async def synced_in(fleet: Fleet, names: list[str]) -> float:
    loop = asyncio.get_running_loop()
    start = loop.time()
    await fleet.start()
    await fleet.until_synced(timeout=30, devices=names)
    return loop.time() - start


async def test_a_flooding_device_does_not_hold_up_the_others(io_loop: Any) -> None:
    async with simulated(10, sensors=40) as devices:
        names = addresses(devices)
        quiet = Fleet(names, client_options=FAST, connect_spread=0)
        try:
            alone = await synced_in(quiet, list(names))
        finally:
            await quiet.stop()
        async with flood_process(UPDATE) as port:
            fleet = Fleet({**names, "flood": f"127.0.0.1:{port}"}, client_options=FAST,
                          connect_spread=0)
            try:
                flooded = await synced_in(fleet, list(names))
                await wait_until(lambda: fleet.state("flood").updates_per_second > 1000,
                                 timeout=5)
                assert fleet.state("flood").state == "syncing"  # it never answers
            finally:
                await fleet.stop()
    # Sharing the loop with a flood costs the others some time, not their syncs.
    assert flooded < 3 * alone + 1.0, (alone, flooded)


async def test_device_states(io_loop: Any) -> None:
    changes: list[tuple[str, str]] = []
    async with simulated(1) as devices:
        with closed_port() as port:
            fleet = Fleet({"up": f"127.0.0.1:{devices[0].port}", "refused": f"127.0.0.1:{port}",
                           "one-shot": f"127.0.0.1:{port}"}, client_options=FAST,
                          connect_spread=0)
            fleet.add_device("one-shot-2", "127.0.0.1:1")
            await fleet.remove_device("one-shot-2")
            fleet.add_state_listener(lambda name, state: changes.append((name, state.state)))
            assert {state.state for state in fleet.states()} == {"stopped"}
            async with fleet:
                await fleet.until_synced(timeout=10, devices=["up"])
                await wait_until(lambda: fleet.state("refused").state == "disconnected")
                up = fleet.state("up")
                assert (up.protocol, up.sensors, up.last_error) == ("5.1-MIBT", 8, None)
                refused = fleet.state("refused")
                assert (refused.protocol, refused.last_error) == (None, "Connection refused")
                assert refused.since >= up.since - 10
            assert ("up", "connecting") in changes and ("up", "synced") in changes
            assert ("refused", "disconnected") in changes
            assert fleet.summary()["counts"] == {"connecting": 0, "syncing": 0, "synced": 0,
                                                 "disconnected": 0, "stopped": 3}


async def test_a_client_closed_for_good_is_stopped(io_loop: Any) -> None:
    with closed_port() as port:
        options = {**FAST, "auto_reconnect": False}
        fleet = Fleet({"once": f"127.0.0.1:{port}"}, client_options=options, connect_spread=0)
        async with fleet:
            await wait_until(lambda: fleet.state("once").state == "stopped")
            assert fleet.state("once").last_error == "Connection refused"
