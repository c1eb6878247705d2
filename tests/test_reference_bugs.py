"""One test per bug of katcp-python's inspecting client (B1-B16, see the reference notes),
each of which katcp-python 0.9.3 fails and katcp-inspect must pass."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any
from unittest import mock

import pytest

from katcp_inspect import (
    InspectingClientAsync,
    InspectingClientStateType,
    Message,
    ProtocolError,
    Sensor,
    SensorType,
)
from katcp_inspect.inspecting_client import DATA_SYNCED_CHANGED, DISCONNECTED, SYNCED, SYNCING

from .support import (
    help_list,
    port_of,
    scripted_device,
    sensor_list,
    third_party_device,
    wait_until,
)
from .test_inspecting_client import Recorder, make_client

GREETING_T = b"#version-connect katcp-protocol 5.1-MIT\n"
SENSORS = (b"a.float A\\_float degC float -10 10", b"an.int An\\_int count integer 0 5")


def fast(client: InspectingClientAsync, resync: float = 0.01) -> InspectingClientAsync:
    client.initial_resync_timeout = resync
    client.max_resync_timeout = resync * 4
    return client


async def test_b1_concurrent_lookups_during_sync_all_complete(io_loop: Any) -> None:
    async with scripted_device(responses={"sensor-list": sensor_list(*SENSORS)}) as device:
        client = make_client(device.port)
        lookups = [client.future_get_sensor(n) for n in ("a.float", "an.int")] * 10
        lookups += [client.until_data_synced() for _ in range(10)]
        lookups += [client.until_not_synced() for _ in range(10)]  # already true: at once
        await client.connect()
        results = await asyncio.wait_for(asyncio.gather(*lookups), 5)
        assert all(isinstance(r, Sensor) for r in results[:20])
        await client.stop()


async def test_b2_b3_modified_items_get_fresh_objects(io_loop: Any) -> None:
    old = (b"s old\\_description u integer 0 5",)
    async with scripted_device(responses={
            "sensor-list": sensor_list(*old),
            "help": help_list(b"req Old\\_help.")}) as device:
        factory = mock.Mock(side_effect=lambda **kw: ("request", kw))
        client = make_client(device.port)
        client.request_factory = factory
        await client.connect()
        await client.until_synced(timeout=5)
        sensor = await client.future_get_sensor("s")
        observer = mock.Mock()
        sensor.attach(observer)
        device.responses["sensor-list"] = sensor_list(b"s new\\_description u float 0 1")
        device.responses["help"] = help_list(b"req New\\_help.")
        device.all[-1].send(b"#interface-changed\n")
        await client.until_not_synced(timeout=5)
        await client.until_synced(timeout=5)
        fresh = await client.future_get_sensor("s")
        assert fresh is not sensor
        assert (fresh.description, fresh.sensor_type) == ("new description", SensorType.FLOAT)
        assert observer in fresh.observers  # what the user attached is not lost
        request = await client.future_get_request("req")
        # B3: the factory only ever gets the three documented keywords.
        assert factory.call_args.kwargs == {"name": "req", "description": "New help.",
                                            "timeout_hint": None}
        assert request[1]["description"] == "New help."
        await client.stop()


async def test_b4_unknown_request_lookup_against_a_timeout_hint_device(io_loop: Any) -> None:
    async with scripted_device(GREETING_T, responses={
            "help": help_list(b"known Known."),
            "request-timeout-hint": lambda r: (
                [b"!request-timeout-hint fail Unknown\\_request"] if r.arguments else
                [b"#request-timeout-hint known 2.5", b"!request-timeout-hint ok 1"]),
    }) as device:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        assert (await client.future_get_request("known")).timeout_hint == 2.5
        assert client.katcp_client.timeout_hints == {"known": 2.5}
        assert await client.future_get_request("nope") is None
        await client.stop()


async def test_b4b_unknown_request_lookup_against_aiokatcp(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        await client.connect()
        await client.until_synced(timeout=5)
        assert await client.future_get_request("nope") is None
        assert await client.future_check_request("nope") is False
        await client.stop()


async def test_b5_resync_backoff_resets_after_success(io_loop: Any) -> None:
    failing = {"help": lambda r: [b"!help fail broken"]}
    async with scripted_device(responses=failing) as device:
        client = fast(make_client(device.port))
        await client.connect()
        await wait_until(lambda: client.stats.failed_syncs >= 3, timeout=5)
        assert client.resync_delay is not None
        assert client.resync_delay._base_delay > client.initial_resync_timeout
        del device.responses["help"]
        await client.until_synced(timeout=5)
        assert client.resync_delay._base_delay == client.initial_resync_timeout
        await client.stop()


async def test_b6_device_back_with_other_flags_is_followed(io_loop: Any) -> None:
    async with scripted_device(b"#version-connect katcp-protocol 5.0-MI\n",
                               {"sensor-list": sensor_list(*SENSORS)}) as device:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        device.greeting = b"#version device-4\n#build-state device-4.0\n"
        device.all[-1].close()
        await wait_until(lambda: client.katcp_client.stats.connections == 2, timeout=5)
        await client.until_synced(timeout=5)
        assert client.katcp_client.protocol_flags.major == 4
        await client.stop()


async def test_b7_synthesised_failures_are_replies(io_loop: Any) -> None:
    client = make_client(1)
    reply, _ = await client.simple_request("watchdog", mid=5)
    assert reply.mtype is Message.REPLY
    assert str(reply).startswith("!watchdog[5] fail")
    reply, _ = await client.katcp_client.future_request(Message.request("help"))
    assert reply.mtype is Message.REPLY and reply.arguments[0] == b"fail"


async def test_b8_callback_raising_on_first_emission_does_not_kill_the_loop(
        io_loop: Any) -> None:
    async with scripted_device(responses={"sensor-list": sensor_list(*SENSORS)}) as device:
        client = make_client(device.port)
        recorder = Recorder(raise_on=DISCONNECTED)
        client.set_state_callback(recorder)
        await client.connect()
        await client.until_synced(timeout=5)
        assert recorder.states == [DISCONNECTED, SYNCING, DATA_SYNCED_CHANGED, SYNCED]
        await client.stop()


async def test_b9_state_is_true_during_the_resync_backoff(io_loop: Any) -> None:
    async with scripted_device(responses={"help": lambda r: [b"!help fail broken"]}) as device:
        client = fast(make_client(device.port), resync=30)  # a long sleep after the failure
        recorder = Recorder()
        client.set_state_callback(recorder)
        await client.connect()
        await wait_until(lambda: client.stats.failed_syncs == 1)
        device.all[-1].close()
        await client.until_state(DISCONNECTED, timeout=2)  # not 30 s later
        assert client.state == DISCONNECTED
        await client.stop()


async def test_b10_stop_while_unreachable_ends_and_frees(io_loop: Any) -> None:
    async with scripted_device() as device:
        device.stop_listening()
        client = make_client(device.port)
        await client.connect()
        stats = client.katcp_client.stats
        await wait_until(lambda: stats.connect_failures >= 1)
        ref = weakref.ref(client)
        await client.stop()
        await client.until_stopped(timeout=2)
        del client
        gc.collect()
        assert ref() is None


async def test_b11_failed_connect_with_timeout_can_be_retried(io_loop: Any) -> None:
    async with scripted_device(b"") as device:  # TCP accepts, but no greeting yet
        client = make_client(device.port)
        client.katcp_client.greeting_timeout = 30
        with pytest.raises(TimeoutError):
            await client.connect(timeout=0.1)
        device.greeting = b"#version-connect katcp-protocol 5.1-MI\n"
        await client.connect(timeout=5)
        await client.until_synced(timeout=5)
        await client.stop()


async def test_b12_bad_updates_are_counted_and_do_not_stop_others(io_loop: Any) -> None:
    async with scripted_device(responses={"sensor-list": sensor_list(*SENSORS)}) as device:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        good = await client.future_get_sensor("an.int")
        device.all[-1].send(
            b"#sensor-status 10.0 1 an.int bogus-status 1\n"  # unknown status
            b"#sensor-status 10.0 1 an.int nominal not-a-number\n"  # bad value
            b"#sensor-status 10.0 2 an.int nominal 1\n"  # wrong count
            b"#sensor-status 10.0 2 an.int nominal 3 a.float nominal 1.5\n")
        await wait_until(lambda: good.value() == 3)
        assert client.stats.bad_updates == 3
        assert (await client.future_get_sensor("a.float")).value() == 1.5
        await client.stop()


async def test_b13_failed_inspection_changes_nothing(io_loop: Any) -> None:
    async with scripted_device(responses={
            "help": help_list(b"one One."),
            "sensor-list": lambda r: [b"!sensor-list fail broken"]}) as device:
        client = fast(make_client(device.port))
        recorder = Recorder()
        client.set_state_callback(recorder)
        await client.connect()
        await wait_until(lambda: client.stats.failed_syncs >= 2)
        assert client.requests == []  # ?help succeeded, but nothing was applied
        assert all(not s.data_synced for s in recorder.states)
        device.responses["sensor-list"] = sensor_list(*SENSORS)
        await client.until_synced(timeout=5)
        assert client.requests == ["one"]
        await client.stop()


async def test_b14_lookups_that_change_the_model_are_reported(io_loop: Any) -> None:
    async with scripted_device(responses={"sensor-list": sensor_list(*SENSORS)}) as device:
        client = make_client(device.port)
        recorder = Recorder()
        client.set_state_callback(recorder)
        await client.connect()
        await client.until_synced(timeout=5)
        device.responses["sensor-list"] = sensor_list(*SENSORS, b"late one u integer")
        assert await client.future_get_sensor("late") is not None  # no #interface-changed
        await wait_until(lambda: recorder.states[-1] == SYNCED
                         and len(recorder.calls) > 4, what="the report")
        assert recorder.calls[-2] == (DATA_SYNCED_CHANGED,
                                      {"sensors": {"added": {"late"}, "removed": set()}})
        await client.stop()


async def test_b15_invalid_protocol_flags_do_not_hang(io_loop: Any) -> None:
    async with scripted_device(b"#version-connect katcp-protocol 4.0-T\n") as device:
        client = make_client(device.port)
        errors: list[BaseException] = []
        client.katcp_client.add_failed_connect_callback(errors.append)
        await client.connect()
        await wait_until(lambda: errors, what="the failed attempt")
        assert isinstance(errors[0], ProtocolError)
        assert client.state == DISCONNECTED
        await client.stop()
        await client.until_stopped(timeout=2)


async def test_b16_real_devices_odd_but_valid_sensor_lists(io_loop: Any) -> None:
    odd = (b"ts a\\_time s timestamp", b"d a\\_discrete \\@ discrete",
           b"r float\\_range \\@ integer 0.0 10.0", b"x mystery \\@ quaternion 1 2 3 4")
    async with scripted_device(responses={"sensor-list": sensor_list(*odd)}) as device:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        ts, d, r, x = [await client.future_get_sensor(n) for n in ("ts", "d", "r", "x")]
        assert (ts.sensor_type, ts.units) == (SensorType.TIMESTAMP, "s")
        assert (d.sensor_type, d.params) == (SensorType.DISCRETE, [])
        assert (r.sensor_type, r.params) == (SensorType.INTEGER, [0, 10])
        assert x.sensor_type == SensorType.STRING
        device.all[-1].send(b"#sensor-status 5.0 1 x nominal 1\\_2\n")
        await wait_until(lambda: x.value() == "1 2")
        await client.stop()


def test_state_type_is_katcp_pythons() -> None:
    state = InspectingClientStateType(True, False, True, True)
    assert state._fields == ("connected", "synced", "model_changed", "data_synced")
    assert str(state) == "[connected !synced model_changed data_synced]"
