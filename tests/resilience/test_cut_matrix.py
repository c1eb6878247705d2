"""Test 1: cut the device → client stream at every message boundary of a full sync.

For each boundary k (after the k-th line: the greeting, every ``#help``, the timeout hints,
every ``#sensor-list``, every sampling reply and first ``#sensor-status``), a fresh client
syncs through a proxy that cuts its first connection there. After the client recovers, its
model must equal the device's, every waiter issued before (and during) the cut must have
completed, and ``synced`` must never have been reported for a model that did not match.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from katcp_inspect import InspectingClientAsync, Sensor
from katcp_inspect.errors import KatcpInspectError
from katcp_inspect.testing import SimulatedDevice, demo_sensors
from katcp_inspect.testing.harness.model_check import SyncAudit, model_differences
from katcp_inspect.testing.proxy import DirectionName, FaultEvent, FaultProxy

from .helpers import fast_client, fault_proxy, running_device, wait_until
from .test_restart import model_b

KNOWN_SENSOR = "cpu.temperature"


def small_device(protocol: str) -> SimulatedDevice:
    device = SimulatedDevice(sensors=demo_sensors(12), protocol=protocol)
    device.add_request("calibrate", lambda ctx: None, help="Calibrate (slow).",
                       timeout_hint=12.5)
    return device


class Waiters:
    """Lookups and until_synced issued now and at every state report."""

    def __init__(self, client: InspectingClientAsync) -> None:
        self.client = client
        self.futures: list[tuple[str, asyncio.Future[Any]]] = []
        self.active = True

    def issue(self, *_: Any) -> None:
        if not self.active:
            return
        client = self.client
        self.futures += [("sensor", client.future_get_sensor(KNOWN_SENSOR)),
                         ("request", client.future_get_request("calibrate")),
                         ("unknown", client.future_get_sensor("no.such.sensor")),
                         ("synced", client.until_synced(timeout=20))]

    async def check(self, timeout: float = 20) -> tuple[list[str], int]:
        """Problems with the results, and how many unknown-name lookups failed (rather than
        giving None) because the connection went away under them."""
        self.active = False
        results = await asyncio.wait_for(asyncio.gather(
            *(f for _, f in self.futures), return_exceptions=True), timeout)
        problems = []
        unknown_errors = 0
        for (kind, _), result in zip(self.futures, results):
            if kind == "sensor":
                ok = isinstance(result, Sensor) and result.name == KNOWN_SENSOR
            elif kind == "request":
                ok = getattr(result, "name", None) == "calibrate"
            elif kind == "unknown":
                ok = result is None or isinstance(result, KatcpInspectError)
                unknown_errors += isinstance(result, BaseException)
            else:
                ok = result is None
            if not ok:
                problems.append(f"{kind} waiter gave {result!r}")
        return problems, unknown_errors


async def sync_through(proxy: FaultProxy, device: SimulatedDevice, cut_at: int | None,
                       fragment: bool = False,
                       direction: DirectionName = "to_client") -> dict[str, Any]:
    client = fast_client(proxy.port, auto_sampling="auto")
    audit = SyncAudit(client, device)
    waiters = Waiters(client)
    audit.hooks.append(waiters.issue)
    client.set_state_callback(audit)
    waiters.issue()
    accepted = proxy.accepted
    faults = proxy.direction(direction)
    if cut_at is not None:
        faults.cut_after(lines=cut_at)
    proxy.to_client.fragment = proxy.to_device.fragment = fragment
    try:
        await client.connect()
        if cut_at is not None:
            await wait_until(lambda: faults.armed == 0, timeout=10,
                             what=f"the cut after line {cut_at}")
            await proxy.until_accepted(accepted + 2, timeout=10)
        await client.until_synced(timeout=20)
        diffs = model_differences(client, device)
        for part, names in (("sensors", device.sensors), ("requests", device.requests)):
            if audit.names_from_changes(part) != set(names):
                diffs.append(f"the reported model changes do not add up to the {part}")
        problems, unknown_errors = await waiters.check()
        lines = proxy.connections[-1].forwarded(direction)[1] if proxy.connections else 0
        client.katcp_client.check_invariants()
    finally:
        waiters.active = False
        await client.stop()
        proxy.to_client.clear()
        proxy.to_device.clear()
    return {"diffs": diffs, "problems": problems, "unknown_errors": unknown_errors,
            "false_synced": audit.false_synced, "synced_reports": audit.synced_reports,
            "lines": lines}


@pytest.mark.parametrize(("protocol", "direction"), [
    ("5.1", "to_client"), ("5.0", "to_client"), ("4", "to_client"),
    ("5.1", "to_device"), ("4", "to_device")])
async def test_cut_at_every_boundary_of_a_sync(io_loop: Any, protocol: str,
                                               direction: DirectionName,
                                               figures: Any) -> None:
    async with running_device(small_device(protocol)) as device, \
            fault_proxy(device.port) as proxy:
        # A clean sync first, to count its lines: every boundary will be cut once.
        clean = await sync_through(proxy, device, None, direction=direction)
        assert not clean["diffs"] and not clean["problems"] and not clean["false_synced"]
        total = clean["lines"]
        assert total >= (2 * len(device.sensors) if direction == "to_client" else 3)
        start = time.monotonic()
        failures = []
        false_synced = unknown_errors = 0
        for k in range(total + 1):
            outcome = await sync_through(proxy, device, k, direction=direction)
            false_synced += len(outcome["false_synced"])
            unknown_errors += outcome["unknown_errors"]
            if outcome["diffs"] or outcome["problems"] or outcome["false_synced"]:
                failures.append((k, outcome))
        what = "device->client" if direction == "to_client" else "client->device"
        figures(f"KATCP {protocol}, {what}: cut after each of lines 0..{total} of a sync "
                f"({total + 1} boundaries) in {time.monotonic() - start:.1f} s: "
                f"{len(failures)} failed, false-synced reports: {false_synced}, "
                f"unknown-name lookups failed by the cut (not lost): {unknown_errors}")
        assert not failures, failures[:3]
        assert false_synced == 0


@pytest.mark.parametrize("protocol", ["5.1", "4"])
async def test_sync_with_every_byte_fragmented(io_loop: Any, protocol: str) -> None:
    async with running_device(small_device(protocol)) as device, \
            fault_proxy(device.port) as proxy:
        outcome = await sync_through(proxy, device, None, fragment=True)
        assert not outcome["diffs"] and not outcome["problems"]
        assert not outcome["false_synced"] and outcome["synced_reports"] >= 1


async def test_cut_then_another_device_at_every_boundary(io_loop: Any, figures: Any) -> None:
    """Cut at each boundary of a sync with device A (5.1); the client reconnects to device B
    (KATCP 4, another model) on the same address. Every SYNCED report must match A or B
    entirely, and the client must end with B's model, the reported changes adding up."""
    async with running_device(small_device("5.1")) as a, \
            running_device(model_b()) as b, fault_proxy(a.port) as proxy:
        counting = fast_client(proxy.port, auto_sampling="auto")
        await counting.connect()
        await counting.until_synced(timeout=10)
        total = proxy.connections[-1].forwarded("to_client")[1]
        await counting.stop()
        start = time.monotonic()
        failures = []
        false_synced = 0
        for k in range(total + 1):
            proxy.target_port = a.port
            client = fast_client(proxy.port, auto_sampling="auto")
            audit = SyncAudit(client, [a, b])
            client.set_state_callback(audit)

            def switch(event: FaultEvent) -> None:
                if event.kind == "cut":
                    proxy.target_port = b.port

            proxy.add_fault_callback(switch)
            proxy.to_client.cut_after(lines=k)
            try:
                await client.connect()
                await wait_until(lambda: proxy.to_client.armed == 0, timeout=10,
                                 what=f"the cut after line {k}")
                await wait_until(lambda c=client: not model_differences(c, b), timeout=10,
                                 what=f"B's model after a cut at line {k}")
                await client.until_synced(timeout=10)
                problems = model_differences(client, b)
                for part, names in (("sensors", b.sensors), ("requests", b.requests)):
                    if audit.names_from_changes(part) != set(names):
                        problems.append(f"reported {part} changes do not add up")
                if problems or audit.false_synced:
                    failures.append((k, problems, audit.false_synced))
                false_synced += len(audit.false_synced)
            finally:
                proxy.remove_fault_callback(switch)
                await client.stop()
                proxy.to_client.clear()
        figures(f"cut after each of lines 0..{total} of a 5.1 sync, then a KATCP 4 device with "
                f"another model: {total + 1} boundaries in {time.monotonic() - start:.1f} s, "
                f"{len(failures)} failed, false-synced reports: {false_synced}")
        assert not failures, failures[:3]
