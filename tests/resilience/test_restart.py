"""Test 2: the device restarts on the same port with another model and another protocol
version (5.1 → 4 → 5.0); the client follows, reports exactly the right added / removed /
modified sets, and re-applies the user's sampling strategies (with times in the units of
each version). Also: the model checker sees differences when there are some."""

from __future__ import annotations

import re
import time
from typing import Any

from katcp_inspect import InspectingClientAsync
from katcp_inspect.inspecting_client import DATA_SYNCED_CHANGED
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor, demo_sensors
from katcp_inspect.testing.harness.model_check import SyncAudit, expected_model, model_differences

from .helpers import fast_client, running_device, wait_until

EVENT_PATTERN = r"^cpu\.|^rx\.p"  # cpu.temperature, rx.power, rx.packet-count
EXPLICIT = "device.locked"
PERIODIC = "device.uptime"  # period 0.5 s: sent as 0.5 to KATCP 5 and as 500 (ms) to KATCP 4


def model_a() -> SimulatedDevice:
    device = SimulatedDevice(sensors=demo_sensors(12), protocol="5.1")
    device.add_sensor(SimulatedSensor("float", "only.a", "Only on A.", "V", [0.0, 1.0],
                                      value=0.5))
    device.add_request("calibrate", lambda ctx: None, help="Calibrate.", timeout_hint=12.5)
    return device


def model_b() -> SimulatedDevice:
    device = SimulatedDevice(sensors=demo_sensors(10), protocol="4")  # no device.serial/message
    device.add_sensor(SimulatedSensor("integer", "only.b", "Only on B.", "", [0, 9], value=3))
    device.add_sensor(SimulatedSensor("float", "cpu.temperature", "CPU temperature (B).", "K",
                                      [280.0, 350.0], value=300.25))
    device.add_request("calibrate", lambda ctx: None, help="Calibrate.")  # no hints in v4
    device.add_request("reboot", lambda ctx: None, help="Reboot.")
    return device


def model_c() -> SimulatedDevice:
    device = SimulatedDevice(sensors=demo_sensors(12), protocol="5.0")
    device.add_sensor(SimulatedSensor("string", "device.mode", "Mode, now free text.", "",
                                      value="free"))
    device.add_request("calibrate", lambda ctx: None, help="Calibrate, version C.")
    return device


def check_strategies(client: InspectingClientAsync, device: SimulatedDevice) -> list[str]:
    """The device-side strategies of the client's connection are what the user asked for."""
    (conn,) = device.connections
    wrong = []
    for name in device.sensors:
        want = "event" if re.search(EVENT_PATTERN, name) or name == EXPLICIT else "none"
        if name == PERIODIC:
            want = "period"
        strategy = conn.sampling.strategy(name)
        have = strategy.strategy.value
        if have != want:
            wrong.append(f"{name}: {have} (wanted {want})")
        elif have == "period" and strategy.longest != 0.5:
            wrong.append(f"{name}: period of {strategy.longest} s (wanted 0.5 s)")
    return wrong


async def test_restart_into_other_models_and_versions(io_loop: Any, figures: Any) -> None:
    device = model_a()
    await device.start("127.0.0.1", 0)
    port = device.port
    client = fast_client(port)
    audit = SyncAudit(client, device, readings=False)
    client.set_state_callback(audit)
    lines = []
    try:
        await client.connect()
        await client.until_synced(timeout=10)
        assert model_differences(client, device, readings=False) == []
        await client.set_sampling_strategies(EVENT_PATTERN, "event")
        await client.set_sampling_strategy(EXPLICIT, "event")
        await client.set_sampling_strategy(PERIODIC, "period", 0.5)
        assert check_strategies(client, device) == []
        temperature = await client.future_get_sensor("cpu.temperature")
        seen: list[Any] = []

        class Observer:
            def update(self, sensor: Any, reading: Any) -> None:
                seen.append(reading.value)

        temperature.attach(Observer())
        for make in (model_b, model_c):
            before = expected_model(device)
            mark = len(audit.calls)
            await device.stop()
            await client.until_not_synced(timeout=10)
            stopped = time.monotonic()
            device = make()
            audit.device = device
            await device.start("127.0.0.1", port)
            await client.until_synced(timeout=10)
            took = time.monotonic() - stopped
            flags = client.katcp_client.protocol_flags
            assert flags is not None
            assert (flags.major, flags.minor) == (device.protocol_flags.major,
                                                  device.protocol_flags.minor)
            assert model_differences(client, device, readings=False) == []
            want = before.changes_to(expected_model(device))
            reports = [c for s, c in audit.calls[mark:] if s == DATA_SYNCED_CHANGED]
            assert len(reports) == 1, reports
            assert reports[0] is not None
            got = {part: (set(diff.added), set(diff.removed))
                   for part, diff in reports[0].items()}
            assert got == want
            assert check_strategies(client, device) == []
            # The user's observer moved to a rebuilt object, and values flow again.
            temperature = await client.future_get_sensor("cpu.temperature")
            device.set_value("cpu.temperature", 333.5 if make is model_b else 44.25)
            await wait_until(lambda t=temperature: t.value() in (333.5, 44.25), timeout=5)
            assert seen[-1] == temperature.value()
            lines.append(f"-> KATCP {device.protocol} in {took:.2f} s: "
                         + "; ".join(f"{part} +{sorted(a)} -{sorted(r)}"
                                     for part, (a, r) in sorted(got.items())))
        assert audit.false_synced == []
        figures("restart 5.1 -> 4 -> 5.0, changes reported as expected, strategies re-applied: "
                + " | ".join(lines))
    finally:
        await client.stop()
        await device.stop()


async def test_model_check_sees_every_kind_of_difference(io_loop: Any) -> None:
    device = SimulatedDevice(sensors=demo_sensors(12), interface_changed=None)
    async with running_device(device):
        client = fast_client(device.port, auto_sampling="auto")
        await client.connect()
        await client.until_synced(timeout=10)
        assert model_differences(client, device) == []
        device.add_sensor(SimulatedSensor("integer", "cpu.temperature", "Changed.", "K",
                                          value=1))
        device.add_sensor(SimulatedSensor("integer", "new.one", "New.", "", value=1))
        device.remove_sensor("rx.power")
        device.add_request("new-request", lambda ctx: None, help="New.")
        device.set_value("device.uptime", 12345)  # checked before the update can arrive
        diffs = "\n".join(model_differences(client, device))
        await client.stop()
        for text in ("sensors missing from the client: new.one",
                     "sensors the device does not have: rx.power",
                     "sensor cpu.temperature: device", "requests missing from the client: "
                     "new-request", "sensor device.uptime: reading"):
            assert text in diffs
