"""katcp_inspect.fleet.Fleet against simulated devices of every protocol version (issue 14):
syncing, restarts, devices added and removed at run time, sampling rules, waits, observers,
states, stopping with nothing left running."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import pytest

from katcp_inspect import ClientClosedError, ConnectionState, WaitTimeoutError
from katcp_inspect.fleet import DeviceConfig, Fleet
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor

from .support import wait_until

PROTOCOLS = ("5.1", "5.0", "4")
#: Fast reconnects, so that a restart is followed within a fraction of a second.
FAST = {"reconnect_delay": 0.01, "reconnect_delay_max": 0.1, "sync_timeout": 5.0}


@contextlib.asynccontextmanager
async def simulated(count: int, sensors: int = 8) -> AsyncIterator[list[SimulatedDevice]]:
    """``count`` devices on free ports of 127.0.0.1, protocols 5.1, 5.0 and 4 in turn."""
    devices = [SimulatedDevice.with_demo_sensors(sensors, rate=None,
                                                 protocol=PROTOCOLS[i % len(PROTOCOLS)])
               for i in range(count)]
    try:
        for device in devices:
            await device.start("127.0.0.1", 0)
        yield devices
    finally:
        for device in devices:
            await device.stop()


def addresses(devices: Sequence[SimulatedDevice], prefix: str = "d") -> dict[str, str]:
    return {f"{prefix}{i:02d}": f"127.0.0.1:{device.port}" for i, device in enumerate(devices)}


def own_rule(i: int) -> str:
    """Device ``i``'s own strategy as the device has it: KATCP 4 counts milliseconds."""
    return "period 500" if PROTOCOLS[i % len(PROTOCOLS)] == "4" else "period 0.5"


def device_strategy(device: SimulatedDevice, sensor: str) -> str:
    """The strategy the device has for ``sensor`` on its (only) client connection."""
    (connection,) = device.connections
    strategy = connection.sampling.strategy(sensor)
    return " ".join([strategy.strategy.value, *(p.decode() for p in strategy.params)])


async def restart(devices: Sequence[SimulatedDevice], value: float) -> None:
    """Stop the devices together, give them a new temperature, and start them again on their
    ports, as a rack that lost its power."""
    await asyncio.gather(*(device.stop() for device in devices))
    for device in devices:
        device.set_value("cpu.temperature", value)
    await asyncio.gather(*(device.start() for device in devices))


def fleet_tasks(before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since ``before`` that are still pending, but the test's own."""
    return [task for task in asyncio.all_tasks() - before
            if not task.done() and task is not asyncio.current_task()]


async def test_fifty_devices_of_mixed_protocols(io_loop: Any) -> None:
    async with simulated(52) as devices:
        specs: dict[str, str | DeviceConfig] = dict(addresses(devices[:50]))
        for name in list(specs)[::5]:  # every fifth device has a rule of its own
            specs[name] = DeviceConfig(str(specs[name]), sampling={r"^cpu\.": "period 0.5"})
        before = asyncio.all_tasks()
        fleet = Fleet(specs, sampling={r"^cpu\.": "event", r"^rx\.power$": "auto"},
                      client_options=FAST, max_syncing=8, connect_spread=0.2)
        try:
            await fleet.start()
            await _follow_a_fleet(fleet, devices)
        finally:
            clients = [fleet[name] for name in fleet.names]
            await fleet.stop()
        assert all(client.katcp_client.state is ConnectionState.CLOSED for client in clients)
        await wait_until(lambda: not any(device.connections for device in devices))
        assert fleet_tasks(before) == []
        assert fleet.summary()["counts"]["stopped"] == 50


async def _follow_a_fleet(fleet: Fleet, devices: list[SimulatedDevice]) -> None:
    await fleet.until_synced(timeout=20)
    assert fleet.summary()["counts"]["synced"] == 50
    protocols = {fleet.state(name).protocol for name in fleet.names}
    assert protocols == {"5.1-MIBT", "5.0-MI", "4.0"}
    for i, name in enumerate(fleet.names):
        assert device_strategy(devices[i], "cpu.temperature") == (
            own_rule(i) if i % 5 == 0 else "event"), name
        assert device_strategy(devices[i], "rx.power") == "auto"
        assert device_strategy(devices[i], "device.uptime") == "none"
        assert fleet.state(name).sensors == 8

    # A third restart at once, with new values: followed, resynced, the rules applied again.
    third = list(range(0, 50, 3))
    await restart([devices[i] for i in third], 99.5)
    await asyncio.gather(*(fleet.wait(fleet.names[i], "cpu.temperature", 99.5, timeout=20)
                           for i in third))
    await fleet.until_synced(timeout=20)
    for i in third:
        client = fleet[fleet.names[i]]
        assert client.katcp_client.stats.connections == 2
        assert fleet.state(fleet.names[i]).last_error is not None
        assert device_strategy(devices[i], "cpu.temperature") == (
            own_rule(i) if i % 5 == 0 else "event")

    # Devices added and removed at run time.
    fleet.add_device("extra-1", f"127.0.0.1:{devices[50].port}")
    fleet.add_device("extra-2", DeviceConfig(f"127.0.0.1:{devices[51].port}",
                                             sampling={r"^rx\.": "event"}))
    await fleet.until_synced(timeout=10, devices=["extra-1", "extra-2"])
    assert device_strategy(devices[51], "rx.power") == "event"  # its rule won
    assert device_strategy(devices[50], "rx.power") == "auto"
    await fleet.remove_device(fleet.names[1])
    await fleet.remove_device("extra-1")
    assert len(fleet) == 50 and "extra-1" not in fleet and "d01" not in fleet
    await wait_until(lambda: not devices[1].connections and not devices[50].connections)


async def test_observers_across_devices(io_loop: Any) -> None:
    calls: list[tuple[str, Any, float]] = []
    everything: list[tuple[str, str]] = []

    def observer(device: str, sensor: Any, reading: Any) -> None:
        calls.append((device, sensor, reading.value))

    async with simulated(4) as devices:
        names = addresses(devices[:3])
        fleet = Fleet(names, sampling={".": "event"}, client_options=FAST, connect_spread=0)
        fleet.attach(observer, device="^d0[01]$", sensor=r"^cpu\.temperature$")
        fleet.attach(lambda d, s, r: everything.append((d, s.name)))
        async with fleet:
            await fleet.until_synced(timeout=10)
            for device in devices[:3]:
                device.set_value("cpu.temperature", 61.0)
            await wait_until(lambda: {d for d, _, v in calls if v == 61.0} == {"d00", "d01"})
            assert ("d02", "cpu.temperature") in everything
            assert all(sensor.name == "cpu.temperature" for _, sensor, _ in calls)

            # A device added later, that the pattern covers.
            fleet.add_device("d01-spare", f"127.0.0.1:{devices[3].port}")
            fleet.attach(observer, device="^d01-spare$", sensor=r"^rx\.power$")
            await fleet.until_synced(timeout=10)
            devices[3].set_value("rx.power", -3.5)
            await wait_until(lambda: ("d01-spare", -3.5) in [(d, v) for d, _, v in calls])

            # The device replaces the sensor: the client makes a new object, still observed.
            old = await fleet["d00"].future_get_sensor("cpu.temperature")
            devices[0].add_sensor(SimulatedSensor("float", "cpu.temperature", "replaced",
                                                  "degC", value=1.0))
            await wait_until(lambda: fleet["d00"]._model.sensors["cpu.temperature"]
                             .description == "replaced")
            await fleet.until_synced(timeout=10)
            new = await fleet["d00"].future_get_sensor("cpu.temperature")
            assert new is not old
            devices[0].set_value("cpu.temperature", 62.5)
            await wait_until(lambda: ("d00", new, 62.5) in calls)

            # Detached: the other observer still hears the update that this one does not.
            fleet.detach(observer)
            count = len(calls)
            devices[1].set_value("cpu.temperature", 63.0)
            await wait_until(lambda: everything.count(("d01", "cpu.temperature")) >= 3)
            assert len(calls) == count
            assert len(new.observers) == 1  # the other observer's only


async def test_waits_across_devices(io_loop: Any) -> None:
    async with simulated(3) as devices:
        fleet = Fleet(addresses(devices), client_options=FAST, connect_spread=0)
        async with fleet:
            waits = [fleet.wait("d00", "cpu.temperature", 70.0, timeout=10),
                     fleet.wait("d02", "rx.power", lambda r: r.value < -50, timeout=10)]
            await fleet.until_synced(timeout=10)
            devices[0].set_value("cpu.temperature", 70.0)
            devices[2].set_value("rx.power", -60.0)
            first, second = await asyncio.gather(*waits)
            assert (first.value, second.value) == (70.0, -60.0)
            with pytest.raises(WaitTimeoutError):
                await fleet.wait("d01", "cpu.temperature", 1e9, timeout=0.2)
            with pytest.raises(KeyError):
                fleet.wait("nope", "cpu.temperature", 1.0)
            pending = fleet.wait("d01", "cpu.temperature", 1e9)
        with pytest.raises(ClientClosedError):
            await pending


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port of 127.0.0.1 that refuses connections (bound, not listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


async def test_until_synced_for_some_a_quorum_and_its_endings(io_loop: Any) -> None:
    async with simulated(2) as devices:
        with closed_port() as port:
            fleet = Fleet({**addresses(devices), "gone": f"127.0.0.1:{port}"},
                          client_options=FAST, connect_spread=0)
            early = fleet.until_synced(devices=["d00"])  # made before start: waits for it
            await fleet.start()
            await early
            await fleet.until_synced(timeout=10, quorum=2)
            await fleet.until_synced(timeout=10, devices=["d00", "d01"])
            with pytest.raises(WaitTimeoutError):
                await fleet.until_synced(timeout=0.3)
            await wait_until(lambda: fleet.state("gone").state == "disconnected")
            assert fleet.state("gone").last_error == "Connection refused"
        with pytest.raises(ValueError, match="quorum"):
            fleet.until_synced(quorum=4)
        with pytest.raises(KeyError):
            fleet.until_synced(devices=["nope"])
        removed = fleet.until_synced(devices=["gone"])
        await fleet.remove_device("gone")
        with pytest.raises(KeyError, match="removed"):
            await removed
        await fleet.until_synced(devices=["d00"], quorum=0)
        await fleet.start()  # running already: nothing happens
        await fleet.until_synced(timeout=10)

        await devices[0].stop()
        await wait_until(lambda: fleet.state("d00").state != "synced")
        never = fleet.until_synced()
        await fleet.stop()
        with pytest.raises(ClientClosedError):
            await never
        with pytest.raises(ClientClosedError):
            await fleet.until_synced()
