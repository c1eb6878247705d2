"""Test 4: a device that stops answering mid-sync and mid-request. Requests time out, the
liveness check (``?watchdog``) declares the connection dead, and the client recovers once the
device answers again, with a model that matches."""

from __future__ import annotations

import time
from typing import Any

from katcp_inspect import InspectingClientAsync
from katcp_inspect.inspecting_client import SYNCED
from katcp_inspect.testing import SimulatedDevice, demo_sensors
from katcp_inspect.testing.harness.model_check import SyncAudit, model_differences

from .helpers import fast_client, fault_proxy, running_device, wait_until

STALL = 1.5  # seconds the device stays silent


def impatient(port: int) -> InspectingClientAsync:
    """A client with short request timeouts and a liveness check, that treats a missing
    greeting as a failed attempt."""
    client = fast_client(port, auto_sampling="auto")
    client.sync_timeout = 0.4
    kc = client.katcp_client
    kc.watchdog_interval = 0.2
    kc.watchdog_timeout = 0.4
    kc.greeting_timeout = 0.4
    kc.greeting_fallback = None
    return client


def small_device() -> SimulatedDevice:
    device = SimulatedDevice(sensors=demo_sensors(12))
    device.add_request("calibrate", lambda ctx: None, help="Calibrate.", timeout_hint=12.5)
    return device


async def test_stall_mid_sync(io_loop: Any, figures: Any) -> None:
    async with running_device(small_device()) as device, fault_proxy(device.port) as proxy:
        client = impatient(proxy.port)
        audit = SyncAudit(client, device)
        client.set_state_callback(audit)
        proxy.to_client.stall_after(lines=7)  # the greeting, then the first four #help
        try:
            await client.connect()
            await wait_until(lambda: proxy.to_client.stalled, timeout=5)
            stalled = time.monotonic()
            stats = client.katcp_client.stats
            await wait_until(lambda: stats.liveness_failures >= 1, timeout=5,
                             what="the liveness check")
            dead_after = time.monotonic() - stalled
            assert SYNCED not in audit.states
            await wait_until(lambda: time.monotonic() - stalled > STALL, timeout=5)
            proxy.to_client.resume()
            resumed = time.monotonic()
            await client.until_synced(timeout=10)
            recovered = time.monotonic() - resumed
            assert stats.request_timeouts >= 1
            assert client.stats.failed_syncs >= 1
            assert model_differences(client, device) == []
            assert audit.false_synced == []
            figures(f"stall mid-sync: declared dead {dead_after:.2f} s after the stall "
                    f"(watchdog 0.2 s / 0.4 s), synced {recovered:.2f} s after the device "
                    f"answered again; request timeouts {stats.request_timeouts}, failed syncs "
                    f"{client.stats.failed_syncs}, failed connects while stalled "
                    f"{stats.connect_failures}")
        finally:
            await client.stop()


async def test_stall_mid_request(io_loop: Any, figures: Any) -> None:
    async with running_device(small_device()) as device:
        client = impatient(device.port)
        audit = SyncAudit(client, device)
        client.set_state_callback(audit)
        try:
            await client.connect()
            await client.until_synced(timeout=10)
            stats = client.katcp_client.stats
            device.stall()
            stalled = time.monotonic()
            reply, _ = await client.simple_request("watchdog", timeout=0.3)
            assert not reply.reply_ok() and b"timed out" in reply.arguments[1]
            assert stats.request_timeouts >= 1
            await client.until_not_synced(timeout=5)
            await wait_until(lambda: stats.liveness_failures >= 1, timeout=5)
            dead_after = time.monotonic() - stalled
            await wait_until(lambda: time.monotonic() - stalled > STALL, timeout=5)
            device.resume()
            resumed = time.monotonic()
            await client.until_synced(timeout=10)
            recovered = time.monotonic() - resumed
            reply, _ = await client.simple_request("watchdog")
            assert reply.reply_ok()
            assert model_differences(client, device) == []
            assert audit.false_synced == []
            figures(f"stall mid-request: request failed after its 0.3 s timeout, connection "
                    f"declared dead {dead_after:.2f} s after the stall, synced "
                    f"{recovered:.2f} s after the device answered again")
        finally:
            await client.stop()


async def test_late_reply_is_counted_and_harmless(io_loop: Any) -> None:
    device = small_device()
    device.add_request("slow", lambda ctx: None, help="Slow.")
    device.set_delay("slow", 0.3)
    async with running_device(device):
        client = fast_client(device.port)
        try:
            await client.connect()
            await client.until_synced(timeout=10)
            reply, _ = await client.simple_request("slow", timeout=0.1)
            assert not reply.reply_ok()
            stats = client.katcp_client.stats
            await wait_until(lambda: stats.unmatched_replies == 1, timeout=5)
            assert client.synced
            reply, _ = await client.simple_request("watchdog")
            assert reply.reply_ok()
        finally:
            await client.stop()


async def test_late_v5_greeting_after_the_v4_fallback(io_loop: Any) -> None:
    """The default fallback: a device that is silent past the greeting timeout, then greets
    with 5.1. The client must not report synced with a model built on the wrong version.
    Regression (found by this suite): the late greeting was only logged, and the client
    reported synced with every timestamp divided by 1000."""
    async with running_device(small_device()) as device:
        device.stall()
        client = fast_client(device.port, auto_sampling="auto")
        client.katcp_client.greeting_timeout = 0.3
        client.sync_timeout = 0.5
        audit = SyncAudit(client, device)
        client.set_state_callback(audit)
        try:
            await client.connect()
            await client.until_connected(timeout=5)  # on the assumed v4
            device.resume()
            await client.until_synced(timeout=10)
            await wait_until(lambda: audit.synced_reports >= 1, timeout=5)
            flags = client.katcp_client.protocol_flags
            assert flags is not None and flags.major == 5
            assert audit.false_synced == []
        finally:
            await client.stop()
