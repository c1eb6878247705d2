"""The simulated device's values are plausible: counters only grow and stay in range, and
the control address is the one it listens on (``katcp-inspect sim``, the demo)."""

from __future__ import annotations

import time

import pytest

from katcp_inspect.kattypes import Address
from katcp_inspect.testing import SimulatedDevice, ValueGenerator, demo_sensors


def test_counters_grow_and_stay_in_range() -> None:
    sensors = {s.name: s for s in demo_sensors(16)}
    generator = ValueGenerator(lambda: sensors.values(), rate=10)
    seen: dict[str, list[int]] = {"device.uptime": [], "rx.packet-count": []}
    for _ in range(60):
        generator.update_once()
        for name, values in seen.items():
            values.append(sensors[name].value)
    for name, values in seen.items():
        assert values == sorted(values), name
        assert values[-1] > values[0] or name == "device.uptime", name
        low, high = sensors[name].params
        assert all(low <= v <= high for v in values), name
        assert all(sensors[name].status.name == "NOMINAL" for _ in values)


def test_uptime_counts_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = next(s for s in demo_sensors(16) if s.name == "device.uptime")
    later = time.monotonic() + 90.5
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert sensor.counted(1) == 90


async def test_served_address_is_the_real_one(io_loop: object) -> None:
    from katcp_inspect.testing.runner import start_simulator

    device = await start_simulator("127.0.0.1", 0, 16, 0.0, "5.1")
    try:
        assert device.sensors["device.address"].value == Address("127.0.0.1", device.port)
    finally:
        await device.stop()
    assert isinstance(device, SimulatedDevice)
