"""InspectingClientAsync against aiokatcp's DeviceServer: the sync loop and the model cache."""

from __future__ import annotations

import asyncio
from typing import Any

import aiokatcp
import pytest
from tornado import gen

from katcp_inspect import (
    InspectingClientAsync,
    InspectingClientStateType,
    Message,
    Sensor,
    SensorStatus,
)
from katcp_inspect.inspecting_client import (
    DATA_SYNCED_CHANGED,
    DISCONNECTED,
    SYNCED,
    SYNCING,
)
from katcp_inspect.model import AttrDict

from .support import port_of, third_party_device, wait_until

State = InspectingClientStateType


class Recorder:
    """A state callback that records what it is told (and can be told to raise)."""

    def __init__(self, raise_on: State | None = None) -> None:
        self.calls: list[tuple[State, AttrDict | None]] = []
        self.raise_on = raise_on

    def __call__(self, state: State, changes: AttrDict | None) -> None:
        self.calls.append((state, changes))
        if state == self.raise_on:
            raise RuntimeError("callback bug")

    @property
    def states(self) -> list[State]:
        return [s for s, _ in self.calls]


def make_client(port: int, **kwargs: Any) -> InspectingClientAsync:
    client = InspectingClientAsync("127.0.0.1", port, **kwargs)
    client.katcp_client.reconnect_backoff.delay_initial = 0.01
    client.katcp_client.reconnect_backoff.success()
    return client


async def synced_client(port: int, recorder: Recorder | None = None,
                        **kwargs: Any) -> tuple[InspectingClientAsync, Recorder]:
    """A client, connected and synced, whose state callback records into ``recorder``."""
    client = make_client(port, **kwargs)
    recorder = recorder or Recorder()
    client.set_state_callback(recorder)
    await client.connect()
    await client.until_synced(timeout=5)
    return client, recorder


async def test_first_sync_reports_the_whole_model_once(io_loop: Any) -> None:
    async with third_party_device() as server:
        client, recorder = await synced_client(port_of(server))
        assert recorder.states == [DISCONNECTED, SYNCING, DATA_SYNCED_CHANGED, SYNCED]
        changes = recorder.calls[2][1]
        assert changes is not None
        assert changes.sensors.added == {"temperature", "counter"}
        assert changes["sensors"]["removed"] == set()
        assert {"help", "slow", "echo"} <= changes.requests.added
        assert str(SYNCED) == "[connected synced !model_changed data_synced]"
        await client.stop()
        await client.until_stopped(timeout=5)
        assert recorder.states[-1] == DISCONNECTED
        assert client.state == DISCONNECTED


def test_documented_coroutine_style(io_loop: Any) -> None:
    """The katcp-python idiom: ``yield`` the futures inside a ``tornado.gen.coroutine``."""

    @gen.coroutine
    def scenario() -> Any:
        with_server = third_party_device()
        server = yield with_server.__aenter__()
        try:
            client = make_client(port_of(server), auto_sampling="auto")
            yield client.connect()
            yield client.until_synced(timeout=5)
            sensor = yield client.future_get_sensor("temperature")
            assert sensor.read().value == 21.5
            reply, informs = yield client.simple_request("help", "echo")
            assert reply.reply_ok() and len(informs) == 1
            yield client.stop()
        finally:
            yield with_server.__aexit__(None, None, None)

    io_loop.run_sync(scenario, timeout=20)


async def test_lookups_return_cached_objects_and_none_for_unknown(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        await client.connect()
        await client.until_synced(timeout=5)
        sensor = await client.future_get_sensor("temperature")
        assert isinstance(sensor, Sensor)
        assert sensor is await client.future_get_sensor("temperature")
        assert sensor.sensor_type is Sensor.FLOAT and sensor.units == "degC"
        # Unknown names: None, however the device words its refusal (B4: aiokatcp says
        # "request X is not known", which katcp-python did not recognise).
        assert await client.future_get_sensor("no-such-sensor") is None
        assert await client.future_get_request("no-such-request") is None
        request = await client.future_get_request("slow")
        assert request.name == "slow" and request.timeout_hint is None
        assert await client.future_check_sensor("counter")
        await client.stop()
        # Cached names are still answered at once while disconnected.
        await client.until_stopped(timeout=5)
        assert await client.future_get_sensor("temperature") is sensor


async def test_sampling_keeps_the_cache_live_and_marks_unreachable(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server), auto_sampling="auto")
        await client.connect()
        await client.until_synced(timeout=5)
        sensor = await client.future_get_sensor("counter")
        seen: list[Any] = []

        class Observer:
            def update(self, s: Sensor, reading: Any) -> None:
                seen.append(reading.value)

        sensor.attach(Observer())
        server.sensors["counter"].value = 42
        await wait_until(lambda: 42 in seen, what="the update")
        assert sensor.value() == 42
    await wait_until(lambda: sensor.status() == SensorStatus.UNREACHABLE, what="unreachable")
    assert sensor.value() == 42
    await client.stop()


async def test_strategies_are_reapplied_after_a_restart(io_loop: Any) -> None:
    async with third_party_device() as server:
        port = port_of(server)
        client = make_client(port)
        await client.connect()
        await client.until_synced(timeout=5)
        reply, _ = await client.set_sampling_strategy("counter", "event")
        assert reply.reply_ok()
    async with third_party_device(port) as server:
        await wait_until(lambda: client.state == SYNCED, timeout=10, what="resync")
        sensor = await client.future_get_sensor("counter")
        server.sensors["counter"].value = 99
        await wait_until(lambda: sensor.value() == 99, what="an update after the restart")
        await client.stop()


async def test_interface_changed_with_a_name_inspects_just_that(io_loop: Any) -> None:
    async with third_party_device() as server:
        client, recorder = await synced_client(port_of(server))
        sent: list[Message] = []
        original = client.katcp_client.request_arguments  # what inspections send with

        def spy(name: str, *args: Any, **kwargs: Any) -> Any:
            sent.append(Message.request(name, *args))
            return original(name, *args, **kwargs)

        client.katcp_client.request_arguments = spy  # type: ignore[method-assign]
        server.sensors.add(aiokatcp.Sensor(int, "new-one", "New", ""))
        server.mass_inform("interface-changed", "sensor", "new-one", "added")
        await wait_until(lambda: "new-one" in client.sensors, what="the new sensor")
        await client.until_synced(timeout=5)
        assert [(m.name, m.arguments) for m in sent] == [("sensor-list", [b"new-one"])]
        assert recorder.calls[-2][1] == {"sensors": {"added": {"new-one"}, "removed": set()}}
        await client.stop()


async def test_a_raising_callback_loses_neither_loop_nor_changes(io_loop: Any) -> None:
    """B8: katcp-python disconnected (or died) and forgot the model changes."""
    async with third_party_device() as server:
        raising = Recorder(raise_on=DATA_SYNCED_CHANGED)
        client, recorder = await synced_client(port_of(server), recorder=raising)
        assert recorder.states[-2:] == [DATA_SYNCED_CHANGED, SYNCED]
        assert client.stats.callback_errors == 1
        assert client.katcp_client.stats.disconnects == 0
        await client.stop()


async def test_simple_request_failures_are_reply_typed(io_loop: Any) -> None:
    client = make_client(1)
    reply, informs = await client.simple_request("watchdog")
    assert reply.mtype is Message.REPLY and not reply.reply_ok()  # B7
    assert reply.arguments[0] == b"fail" and informs == []
    with pytest.raises(ValueError):  # noqa: PT011 (a bad name raises at once, as before)
        client.simple_request("bad_name")


async def test_many_concurrent_waiters_all_wake(io_loop: Any) -> None:
    """B1: katcp-python lost some of several concurrent waiters."""
    async with third_party_device() as server:
        client = make_client(port_of(server))
        waiters = [client.until_data_synced() for _ in range(20)]
        waiters += [client.future_get_sensor("temperature") for _ in range(20)]
        await client.connect()
        results = await asyncio.wait_for(asyncio.gather(*waiters), 5)
        assert all(r is not None for r in results[20:])
        await client.stop()


async def test_v4_device_timestamps_are_milliseconds(io_loop: Any) -> None:
    from .support import scripted_device, sensor_list

    async with scripted_device(b"#version d-4\n#build-state d-4.0\n",
                               {"sensor-list": sensor_list(b"t T s timestamp",
                                                           b"n N \\@ integer 0 9")}) as device:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        n = await client.future_get_sensor("n")
        t = await client.future_get_sensor("t")
        device.all[-1].send(b"#sensor-status 1500000000250 1 n nominal 4\n"
                            b"#sensor-status 1500000000000 1 t nominal 1500000001500\n")
        await wait_until(lambda: t.value() != 0.0)
        assert n.read() == (1500000000.25, SensorStatus.NOMINAL, 4)
        assert t.value() == 1500000001.5
        await client.stop()


async def test_without_auto_reconnect_the_loop_ends_with_the_connection(io_loop: Any) -> None:
    async with third_party_device() as server:
        client, recorder = await synced_client(port_of(server), auto_reconnect=False)
    await client.until_stopped(timeout=5)
    assert recorder.states[-1] == DISCONNECTED
    assert not client.katcp_client.running


async def test_ten_thousand_sensors_sync_sampled_with_values(io_loop: Any) -> None:
    """Correctness at scale only; timings belong to the benchmarks."""
    async with third_party_device() as server:
        for i in range(10_000):
            server.sensors.add(aiokatcp.Sensor(float, f"bulk.{i:05d}", "bulk", "V",
                                               default=i / 2,
                                               initial_status=aiokatcp.Sensor.Status.WARN))
        client = make_client(port_of(server), auto_sampling="auto")
        await client.connect()
        await client.until_synced(timeout=60)
        assert len(client.sensors) == 10_002
        sensors = [await client.future_get_sensor(f"bulk.{i:05d}") for i in range(10_000)]
        assert [s.read()[1:] for s in sensors] == [
            (SensorStatus.WARN, i / 2) for i in range(10_000)]
        await client.stop()
