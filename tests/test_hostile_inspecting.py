"""Issue 11, the inspecting client's items: racing callers (4), a true model against devices
that announce changes mid-sync (6), duplicate their replies (9), use commas in sensor names
(10), describe requests differently in each form of ``?help`` (11), and send bursts of named
changes (13)."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from katcp_inspect import ClientClosedError, InspectingClientAsync, Message
from katcp_inspect.inspecting_client import (
    DISCONNECTED,
    SYNCED,
    SYNCING,
    InspectingClientStateType,
)
from katcp_inspect.model import AttrDict

from .raw_peer_inspecting import GREETING_V4, documented_device, raw_device, with_mid
from .support import GREETING_V5, Responder, port_of, third_party_device, wait_until
from .test_inspecting_client import make_client

State = InspectingClientStateType


def state_loops(client: InspectingClientAsync) -> int:
    """How many state-loop tasks of ``client`` are running."""
    count = 0
    for task in asyncio.all_tasks():
        coro: Any = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        if (not task.done() and getattr(coro, "__qualname__", "").endswith("._state_loop")
                and frame is not None and frame.f_locals.get("self") is client._runs):
            count += 1
    return count


class LoopCounter:
    """Samples :func:`state_loops` on every loop iteration until stopped."""

    def __init__(self, client: InspectingClientAsync) -> None:
        self.client = client
        self.most = 0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.most = max(self.most, state_loops(self.client))
            await asyncio.sleep(0)

    async def stop(self) -> int:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.most


class Snapshots:
    """A state callback that records, with each state, the model's names at that moment."""

    def __init__(self, client: InspectingClientAsync) -> None:
        self.client = client
        self.calls: list[tuple[State, AttrDict | None, list[str], list[str]]] = []
        client.set_state_callback(self)

    def __call__(self, state: State, changes: AttrDict | None) -> None:
        self.calls.append((state, changes, list(self.client.sensors),
                           list(self.client.requests)))

    def synced_sensors(self) -> list[set[str]]:
        return [set(sensors) for state, _, sensors, _ in self.calls if state == SYNCED]

    def count(self, state: State) -> int:
        return sum(1 for s, *_ in self.calls if s == state)


def fast(client: InspectingClientAsync) -> InspectingClientAsync:
    client.initial_resync_timeout = 0.02
    client.max_resync_timeout = 0.1
    return client


# ------------------------------------------------------------------ item 4: stop() and connect()


async def test_connect_at_once_after_stop_restarts_with_one_state_loop(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        await client.connect()
        await client.until_synced(timeout=5)
        counter = LoopCounter(client)
        stopping = client.stop()
        connecting = client.connect()
        await asyncio.wait_for(stopping, 5)
        await asyncio.wait_for(connecting, 5)
        await client.until_synced(timeout=5)
        await asyncio.sleep(0.1)  # an old loop still around would close the client now
        assert await counter.stop() == 1
        assert client.state == SYNCED and client.katcp_client.running
        await asyncio.wait_for(client.stop(), 5)
        assert state_loops(client) == 0


async def test_connect_during_an_awaited_stop_lets_the_stop_end(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        await client.connect()
        await client.until_synced(timeout=5)
        stopping = asyncio.ensure_future(client.stop())
        await asyncio.sleep(0)  # the stop is under way: the connection is closing
        connecting = client.connect()
        await asyncio.wait_for(stopping, 5)
        await asyncio.wait_for(connecting, 5)
        await client.until_synced(timeout=5)
        assert state_loops(client) == 1
        await asyncio.wait_for(client.stop(), 5)


async def test_waiters_made_after_stop_fail_at_once(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        await client.connect()
        await client.until_synced(timeout=5)
        await client.stop()
        waits: list[Callable[[], Awaitable[Any]]] = [
            client.until_synced, client.until_connected, client.until_data_synced,
            lambda: client.until_state(SYNCING), lambda: client.until_synced(timeout=30)]
        for wait in waits:
            with pytest.raises(ClientClosedError):
                await asyncio.wait_for(wait(), 1)
        # What is already true of a stopped client still resolves, and so do lookups.
        await asyncio.wait_for(client.until_not_synced(), 1)
        await asyncio.wait_for(client.until_state(DISCONNECTED), 1)
        assert await asyncio.wait_for(client.future_get_sensor("temperature"), 1) is not None
        assert await asyncio.wait_for(client.future_check_sensor("nothing"), 1) is False
        assert await asyncio.wait_for(client.future_get_request("nothing"), 1) is None


async def test_waiters_made_before_the_first_connect_wait_for_it(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        synced = client.until_synced(timeout=10)
        connected = client.until_connected(timeout=10)
        await client.connect()
        await asyncio.wait_for(asyncio.gather(synced, connected), 10)
        await client.stop()


async def test_connect_with_a_timeout_overtaken_by_stop_fails_and_can_be_retried(
        io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        connecting = client.connect(timeout=5)
        stopping = client.stop()
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(connecting, 5)
        await asyncio.wait_for(stopping, 5)
        assert client.state == DISCONNECTED and not client.katcp_client.running
        await asyncio.wait_for(client.connect(timeout=5), 6)
        await client.until_synced(timeout=5)
        await client.stop()


async def test_stop_awaited_by_the_state_callback_ends(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = make_client(port_of(server))
        stopped: list[bool] = []

        async def callback(state: State, changes: Any) -> None:
            if state == SYNCED and not stopped:
                await asyncio.wait_for(client.stop(), 5)
                stopped.append(True)

        client.set_state_callback(callback)
        await client.connect()
        await wait_until(lambda: bool(stopped), timeout=10, what="the stop in the callback")
        await asyncio.wait_for(client.until_stopped(), 5)
        assert client.state == DISCONNECTED and state_loops(client) == 0


async def test_a_bug_in_a_loop_round_is_logged_and_retried(io_loop: Any, caplog: Any) -> None:
    """Whatever raises inside the state loop ends that round, not the loop (and leaves no
    exception unretrieved for stop() to trip on)."""
    async with third_party_device() as server:
        client = fast(make_client(port_of(server), auto_sampling="auto"))
        apply_sampling = client._sampling.apply
        calls = 0

        async def buggy(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ZeroDivisionError("a bug")
            return await apply_sampling(*args)

        client._sampling.apply = buggy  # type: ignore[method-assign,assignment]
        await client.connect()
        await client.until_synced(timeout=5)
        assert calls == 2 and client.stats.failed_syncs == 1
        assert any("state loop failed" in r.getMessage() and r.exc_info
                   for r in caplog.records)
        await asyncio.wait_for(client.stop(), 5)


@pytest.mark.parametrize("seed", range(12))
async def test_any_sequence_of_connect_and_stop_ends_in_the_last_call(io_loop: Any,
                                                                     seed: int) -> None:
    """Random interleavings of connect() (with and without a timeout), stop() (awaited or
    not), waiters and lookups: every future ends, there is never more than one state loop,
    and the client ends as the last connect() or stop() said."""
    rng = random.Random(seed)
    async with third_party_device() as server:
        client = fast(make_client(port_of(server)))
        counter = LoopCounter(client)
        futures: list[asyncio.Future[Any]] = []
        running = False
        for _ in range(10):
            action = rng.choice(["connect", "connect-timeout", "stop", "stop-awaited",
                                 "waiters", "pause", "yield"])
            if action.startswith("connect"):
                future = client.connect(timeout=5 if action == "connect-timeout" else None)
                if running:
                    with pytest.raises(RuntimeError):
                        await future
                    continue
                running = True
                futures.append(future)
            elif action.startswith("stop"):
                running = False
                future = client.stop()
                if action == "stop-awaited":
                    await asyncio.wait_for(future, 5)
                futures.append(future)
            elif action == "waiters":
                futures += [client.until_synced(timeout=5), client.until_connected(timeout=5),
                            client.future_get_sensor("temperature"),
                            client.future_check_request("nothing")]
            elif action == "pause":
                await asyncio.sleep(rng.uniform(0, 0.05))
            else:
                await asyncio.sleep(0)
        done, pending = await asyncio.wait(futures, timeout=10)
        assert not pending, f"{len(pending)} futures never ended"
        for future in done:
            if not future.cancelled():
                future.exception()
        if running:
            await client.until_synced(timeout=5)
            await asyncio.sleep(0.05)
            assert client.state == SYNCED and client.katcp_client.running
        else:
            await asyncio.wait_for(client.stop(), 5)
            assert client.state == DISCONNECTED and not client.katcp_client.running
        assert await counter.stop() <= 1
        await asyncio.wait_for(client.stop(), 5)
        assert state_loops(client) == 0


# ------------------------------------------------------------------ item 6: pending work


def _sensor(name: str) -> bytes:
    return name.encode() + b" A\\_sensor count integer 0 10"


def changing_listing(announce: str) -> Responder:
    """A ``?sensor-list`` responder whose first full answer announces (with
    ``#interface-changed sensor-list``, ``announce`` the reply or after it) that the list has
    changed again: sensor ``b`` appears."""
    names = ["a"]

    def respond(request: Message) -> list[bytes]:
        chosen = [n for n in names if not request.arguments
                  or n.encode() == request.arguments[0]]
        lines = [b"#sensor-list " + _sensor(n) for n in chosen]
        reply = b"!sensor-list ok %d" % len(chosen)
        if request.arguments or "b" in names:
            return [*lines, reply]
        names.append("b")
        change = b"#interface-changed sensor-list"
        return [*lines, change, reply] if announce == "before" else [*lines, reply, change]

    return respond


@pytest.mark.parametrize("announce", ["before", "after"])
async def test_never_synced_while_a_change_is_pending(io_loop: Any, announce: str) -> None:
    async with raw_device(responses={"sensor-list": changing_listing(announce)}) as device:
        client = fast(make_client(device.port))
        seen = Snapshots(client)
        await client.connect()
        await wait_until(lambda: client.state == SYNCED and set(client.sensors) == {"a", "b"},
                         timeout=5, what="the second sensor")
        assert seen.synced_sensors() == [{"a", "b"}], seen.calls
        await client.stop()


async def test_never_synced_while_a_lookup_change_is_unreported(io_loop: Any) -> None:
    """A lookup found a new sensor while the loop was applying strategies: the loop reports
    that change before it reports synced."""
    names = ["a"]
    listing = plain_listing(names)
    held: list[bytes] = []
    lookups: list[asyncio.Future[Any]] = []
    client: InspectingClientAsync

    def sampling(request: Message) -> list[bytes]:
        reply = b"!sensor-sampling ok " + b" ".join(request.arguments)
        if lookups:
            return [reply]
        # The device adds "b", the user looks it up; this reply waits for the lookup's.
        names.append("b")
        lookups.append(client.future_get_sensor("b"))
        held.append(with_mid(reply, request))
        return []

    def sensor_list(request: Message) -> list[bytes]:
        return listing(request) + (held[:1] if request.arguments else [])

    async with raw_device(responses={"sensor-list": sensor_list,
                                     "sensor-sampling": sampling}) as device:
        client = fast(make_client(device.port, auto_sampling="event"))
        seen = Snapshots(client)
        await client.connect()
        await wait_until(lambda: bool(lookups), timeout=5, what="the lookup")
        assert await asyncio.wait_for(lookups[0], 5) is not None
        await wait_until(lambda: client.state == SYNCED and "b" in client._sampling.confirmed,
                         timeout=5)
        reported: set[str] = set()
        for state, changes, sensors, _ in seen.calls:
            if changes is not None and "sensors" in changes:
                reported = (reported - changes.sensors.removed) | changes.sensors.added
            if state == SYNCED:
                assert reported == set(sensors), seen.calls
        await client.stop()


# ------------------------------------------------------------------ item 9: duplicated replies


def plain_listing(names: list[str], copies: int = 1) -> Responder:
    """A ``?sensor-list`` responder for ``names`` that sends each answer ``copies`` times."""

    def respond(request: Message) -> list[bytes]:
        chosen = [n for n in names if not request.arguments
                  or n.encode() == request.arguments[0]]
        if not chosen:
            answer = [b"!sensor-list fail Unknown\\_sensor"]
        else:
            answer = [b"#sensor-list " + _sensor(n) for n in chosen] + [
                b"!sensor-list ok %d" % len(chosen)]
        return answer * copies

    return respond


async def test_a_duplicated_reply_never_alters_the_model_v4(io_loop: Any) -> None:
    names = ["a", "b", "c"]
    async with raw_device(GREETING_V4, {"sensor-list": plain_listing(names, copies=2)}) as device:
        client = fast(make_client(device.port))
        client.katcp_client.greeting_timeout = 0.2
        seen = Snapshots(client)
        await client.connect()
        await client.until_synced(timeout=5)
        assert client.katcp_client.protocol_flags.major == 4
        assert set(client.sensors) == set(names)
        peer = device.all[-1]
        # Two named changes: ?sensor-list b waits for ?sensor-list a's reply, then gets the
        # duplicate of a's answer.
        peer.send(b"#interface-changed sensor a modified\n"
                  b"#interface-changed sensor b modified\n")
        await wait_until(lambda: seen.count(SYNCED) >= 2 and client.state == SYNCED,
                         timeout=5, what="the resync")
        await asyncio.sleep(0.1)  # the duplicates of the last answers come and go
        assert client.state == SYNCED
        assert seen.synced_sensors() == [set(names)] * seen.count(SYNCED), seen.calls
        assert set(client.sensors) == set(names)
        assert client.stats.inconsistent_answers >= 1
        await client.stop()


async def test_a_duplicated_refusal_taken_by_the_next_request_is_undone_v4(
        io_loop: Any) -> None:
    """A duplicated refusal cannot be told from a real one without message ids: ?sensor-list b
    takes the duplicate of the refusal for the unknown "a0" and b leaves the model. b's real
    answer then arrives answering nothing and disagreeing with the model: the client lists
    the sensors again."""
    names = ["a", "b", "c"]
    async with raw_device(GREETING_V4, {"sensor-list": plain_listing(names, copies=2)}) as device:
        client = fast(make_client(device.port))
        client.katcp_client.greeting_timeout = 0.2
        await client.connect()
        await client.until_synced(timeout=5)
        listings = sum(1 for m in device.received if m.name == "sensor-list" and not m.arguments)
        device.all[-1].send(b"#interface-changed sensor a0 removed\n"
                            b"#interface-changed sensor b modified\n")
        await wait_until(lambda: sum(1 for m in device.received if m.name == "sensor-list"
                                     and not m.arguments) > listings
                         and client.state == SYNCED and set(client.sensors) == set(names),
                         timeout=5, what="the relist")
        assert client.stats.inconsistent_answers >= 1
        await asyncio.sleep(0.1)  # the duplicates of the relist agree: nothing more happens
        assert client.state == SYNCED and set(client.sensors) == set(names)
        await client.stop()


async def test_a_listing_whose_count_disagrees_is_not_applied(io_loop: Any) -> None:
    answers = 0

    def respond(request: Message) -> list[bytes]:
        nonlocal answers
        answers += 1
        lines = [b"#sensor-list " + _sensor(n) for n in ("a", "b", "c")]
        if answers == 1:  # an inform lost in transit: the count says 3
            del lines[1]
        return [*lines, b"!sensor-list ok 3"]

    async with raw_device(responses={"sensor-list": respond}) as device:
        client = fast(make_client(device.port))
        seen = Snapshots(client)
        await client.connect()
        await client.until_synced(timeout=5)
        assert seen.synced_sensors() == [{"a", "b", "c"}]
        assert client.stats.failed_syncs == 1 and client.stats.inconsistent_answers == 1
        await client.stop()


# ------------------------------------------------------------------ item 10: commas in names


def sampling_device(bulk: bool, names: list[str], sampled: list[str]) -> Responder:
    """``?sensor-sampling`` as a device reads it: with bulk support the names argument is a
    comma-separated list."""

    def respond(request: Message) -> list[bytes]:
        arg = request.arguments[0].decode()
        asked = arg.split(",") if bulk else [arg]
        if any(n not in names for n in asked):
            return [b"!sensor-sampling fail Unknown\\_sensor"]
        sampled.extend(asked)
        return [b"!sensor-sampling ok " + b" ".join(request.arguments)]

    return respond


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk", "no-bulk"])
async def test_a_comma_in_a_sensor_name_never_samples_other_sensors(io_loop: Any,
                                                                    bulk: bool,
                                                                    caplog: Any) -> None:
    names = ["a", "b,c", "b", "c", "d"]
    sampled: list[str] = []
    greeting = GREETING_V5 if bulk else b"#version-connect katcp-protocol 5.0-MI\n"
    responses = {"sensor-list": plain_listing(names),
                 "sensor-sampling": sampling_device(bulk, names, sampled)}
    async with raw_device(greeting, responses) as device:
        client = make_client(device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        with caplog.at_level(logging.WARNING):
            await client.set_sampling_strategies(["a", "b,c", "d"], "event")
        if bulk:
            assert sorted(sampled) == ["a", "d"]
            assert sorted(client._sampling.confirmed) == ["a", "d"]
            assert client.stats.strategy_failures == 1
            assert any("comma" in r.getMessage() for r in caplog.records)
        else:
            assert sorted(sampled) == ["a", "b,c", "d"]
            assert sorted(client._sampling.confirmed) == ["a", "b,c", "d"]
        await client.stop()


# ------------------------------------------------------------------ item 11: two forms of ?help


async def test_a_no_op_request_change_on_aiokatcp_reports_nothing(io_loop: Any) -> None:
    async with documented_device() as server:
        client = make_client(port_of(server))
        seen = Snapshots(client)
        await client.connect()
        await client.until_synced(timeout=5)
        request = await client.future_get_request("calibrate")
        assert request.description == "Calibrate the receiver."
        for change in (("request", "calibrate", "modified"), ("request-list",)):
            syncs = client.stats.syncs
            before = len(seen.calls)
            server.mass_inform("interface-changed", *change)
            await wait_until(lambda s=syncs: client.stats.syncs > s and client.state == SYNCED,
                             timeout=5, what=f"the inspection after {change}")
            assert not [c for c in seen.calls[before:] if c[1] is not None], seen.calls
            assert (await client.future_get_request("calibrate")) is request
        await client.stop()


# ------------------------------------------------------------------ item 13: bursts


async def test_a_burst_of_named_changes_is_coalesced(io_loop: Any) -> None:
    count = 3000
    names = [f"s{i}" for i in range(count)]
    index = {n.encode(): n for n in names}

    def respond(request: Message) -> list[bytes]:
        chosen = [index[request.arguments[0]]] if request.arguments else names
        return [b"#sensor-list " + _sensor(n) for n in chosen] + [
            b"!sensor-list ok %d" % len(chosen)]

    async with raw_device(responses={"sensor-list": respond}) as device:
        client = make_client(device.port)
        seen = Snapshots(client)
        marker = asyncio.Event()
        client.katcp_client.hook_inform("burst-done", lambda m: marker.set())
        await client.connect()
        await client.until_synced(timeout=10)
        listings = sum(1 for m in device.received if m.name == "sensor-list")
        synced = seen.count(SYNCED)
        device.all[-1].send(b"".join(b"#interface-changed sensor %s modified\n" % n.encode()
                                     for n in names) + b"#burst-done\n")
        await wait_until(lambda: marker.is_set() and seen.count(SYNCED) > synced
                         and client.state == SYNCED, timeout=20, what="the burst's resync")
        asked = [m for m in device.received if m.name == "sensor-list"][listings:]
        assert 1 <= len(asked) <= 2, f"{len(asked)} ?sensor-list requests for one burst"
        assert len(client.sensors) == count
        await client.stop()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
async def test_bad_connect_and_stop_timeouts_are_rejected_at_the_call(io_loop: Any,
                                                                      bad: float) -> None:
    client = InspectingClientAsync("127.0.0.1", 1)
    with pytest.raises(ValueError, match="timeout"):
        client.connect(timeout=bad)
    with pytest.raises(ValueError, match="timeout"):
        client.stop(timeout=bad)
    assert not client.is_connected()
    await client.stop()
