"""Per-sensor strategy calls of one event-loop turn go to the device together: bulk requests
with flag ``B``, a bounded number of single requests without it; each caller gets its own
sensor's answer, and every future ends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from katcp_inspect import InspectingClientAsync
from katcp_inspect.client import Reply
from katcp_inspect.message import Message
from katcp_inspect.sampling import BULK_SAMPLING_CHUNK, MAX_SINGLES_IN_FLIGHT
from katcp_inspect.testing import SimulatedDevice

from .test_inspecting_client import make_client


class SentRequests:
    """The ``?sensor-sampling`` requests a client sends, and how many were in flight at most."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.in_flight = 0
        self.most_in_flight = 0


@contextmanager
def recording(client: InspectingClientAsync) -> Iterator[SentRequests]:
    record = SentRequests()
    katcp_client = client.katcp_client
    original = katcp_client.request_raw

    def request_raw(name: str, *args: Any, **kwargs: Any) -> asyncio.Future[Reply]:
        future = original(name, *args, **kwargs)
        if name == "sensor-sampling":
            record.sent.append(Message.request(name, *args))
            record.in_flight += 1
            record.most_in_flight = max(record.most_in_flight, record.in_flight)

            def done(_: object) -> None:
                record.in_flight -= 1
            future.add_done_callback(done)
        return future

    katcp_client.request_raw = request_raw  # type: ignore[method-assign]
    try:
        yield record
    finally:
        katcp_client.request_raw = original  # type: ignore[method-assign]


@asynccontextmanager
async def synced(device: SimulatedDevice) -> AsyncIterator[InspectingClientAsync]:
    """The device started and a client synced to it; both stopped on leaving."""
    await device.start("127.0.0.1", 0)
    client = make_client(device.port)
    try:
        await client.connect()
        await client.until_synced(timeout=10)
        yield client
    finally:
        await client.stop()
        await device.stop()


def own_answer(reply: Reply, name: str, *strategy: bytes) -> bool:
    """``reply`` says ``ok`` to ``strategy`` for ``name``: the reply to a request for it alone,
    or to a bulk request that named it among others."""
    message = reply[0]
    return (message.reply_ok() and len(message.arguments) >= 2
            and name.encode() in message.arguments[1].split(b",")
            and message.arguments[2:] == list(strategy))


async def test_one_turn_of_calls_goes_as_bulk_chunks_each_answered_for_itself(
        io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(1200, rate=None, protocol="5.1")
    async with synced(device) as client:
        sensors = [await client.future_get_sensor(name) for name in client.sensors]
        with recording(client) as record:
            replies = await asyncio.gather(*(s.set_strategy("event") for s in sensors))
        names = [s.name for s in sensors]
        assert all(own_answer(reply, name, b"event") for reply, name in zip(replies, names))
        assert len(record.sent) == -(-len(names) // BULK_SAMPLING_CHUNK)
        assert sorted(n for m in record.sent for n in m.arguments[0].decode().split(",")) == \
            sorted(names)
        (conn,) = device.connections
        assert {conn.sampling.strategy(name).strategy.value for name in names} == {"event"}
        # Asked again, nothing needs sending: answered at once, still each for itself.
        with recording(client) as record:
            replies = await asyncio.gather(*(client.set_sampling_strategy(n, "event")
                                             for n in names[:10]))
        assert record.sent == []
        assert all(own_answer(reply, n, b"event") for reply, n in zip(replies, names))


async def test_a_full_chunk_is_sent_while_the_caller_is_still_calling(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(1200, rate=None, protocol="5.1")
    async with synced(device) as client:
        sensors = [await client.future_get_sensor(name) for name in sorted(client.sensors)]
        with recording(client) as record:
            futures = [s.set_strategy("event") for s in sensors[:BULK_SAMPLING_CHUNK]]
            assert len(record.sent) == 1  # before this event-loop turn ends
            requests = client.katcp_client.stats.requests
            futures += [s.set_strategy("event") for s in sensors[BULK_SAMPLING_CHUNK:]]
            assert len(record.sent) == 2 and client.katcp_client.stats.requests == requests + 1
            replies = await asyncio.gather(*futures)
        assert len(record.sent) == 3
        assert all(own_answer(r, s.name, b"event") for r, s in zip(replies, sensors))


async def test_a_timeout_that_is_not_one_fails_the_calls_and_says_so(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol="5.1")
    async with synced(device) as client:
        client.sync_timeout = float("nan")
        names = sorted(client.sensors)[:3]
        replies = await asyncio.wait_for(asyncio.gather(
            *(client.set_sampling_strategy(name, "event") for name in names),
            client.set_sampling_strategies(names, "auto")), 10)
        for reply, _ in replies:
            assert reply.arguments[0] == b"fail" and b"timeout" in reply.arguments[1]


async def test_a_refusal_fails_only_its_own_sensor(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol="5.1")
    async with synced(device) as client:
        good = sorted(client.sensors)[:5]
        replies = await asyncio.gather(
            *(client.set_sampling_strategy(name, "period", 0.5) for name in good),
            client.set_sampling_strategy("no.such.sensor", "period", 0.5))
        assert all(own_answer(r, n, b"period", b"0.5") for r, n in zip(replies, good))
        refused = replies[-1][0]
        assert refused.arguments[0] == b"fail"
        assert client.stats.strategy_failures == 1


async def test_the_last_call_for_a_sensor_in_a_turn_wins(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol="5.1")
    async with synced(device) as client:
        name = sorted(client.sensors)[0]
        with recording(client) as record:
            first, last = await asyncio.gather(client.set_sampling_strategy(name, "event"),
                                               client.set_sampling_strategy(name, "auto"))
        assert own_answer(first, name, b"auto") and own_answer(last, name, b"auto")
        assert len(record.sent) == 1
        (conn,) = device.connections
        assert conn.sampling.strategy(name).strategy.value == "auto"


@pytest.mark.parametrize("protocol", ["5.0", "4"])
async def test_without_bulk_sampling_requests_in_flight_are_bounded(io_loop: Any,
                                                                    protocol: str) -> None:
    device = SimulatedDevice.with_demo_sensors(400, rate=None, protocol=protocol)
    async with synced(device) as client:
        device.set_delay("sensor-sampling", 0.002)
        names = sorted(client.sensors)
        with recording(client) as record:
            replies = await asyncio.gather(*(client.set_sampling_strategy(n, "event")
                                             for n in names))
        assert all(own_answer(reply, n, b"event") for reply, n in zip(replies, names))
        assert len(record.sent) == len(names)
        assert record.most_in_flight == MAX_SINGLES_IN_FLIGHT


async def test_every_call_ends_when_the_client_stops_with_requests_queued(
        io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(400, rate=None, protocol="5.0")
    async with synced(device) as client:
        device.set_delay("sensor-sampling", 0.05)
        futures = [client.set_sampling_strategy(n, "event") for n in sorted(client.sensors)]
        await asyncio.sleep(0)  # the turn ends: the first requests are sent, the rest queued
        await client.stop()
        replies = await asyncio.wait_for(asyncio.gather(*futures), 10)
        assert {reply[0].arguments[0] for reply in replies} == {b"fail"}


async def test_a_known_sensor_comes_back_at_once_and_the_same(io_loop: Any) -> None:
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol="5.1")
    async with synced(device) as client:
        name = sorted(client.sensors)[0]
        first = client.future_get_sensor(name)
        assert first.done()
        second = client.future_get_sensor(name)
        assert second.done() and second.result() is first.result()


async def test_a_sensor_object_holds_the_models_name_not_the_callers(io_loop: Any) -> None:
    """Ten thousand lookups with names the caller built must not keep ten thousand copies."""
    device = SimulatedDevice.with_demo_sensors(rate=None, protocol="5.1")
    async with synced(device) as client:
        model_name = sorted(client.sensors)[0]
        copy = "".join(list(model_name))
        assert copy is not model_name
        sensor = await client.future_get_sensor(copy)
        assert sensor is not None and sensor.name is model_name
