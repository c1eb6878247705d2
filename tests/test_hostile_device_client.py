"""DeviceClient against devices written byte by byte to misbehave (issue 11).

Each device here is a :class:`~katcp_inspect.testing.raw_device.RawDevice`, which runs in a
thread of its own, so that a flood is as fast as the socket allows whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest

from katcp_inspect import (
    ConnectionState,
    DeviceClient,
    ExponentialRandomBackoff,
    Message,
    ProtocolFlags,
    ReplyTooLargeError,
    RequestTimeoutError,
    SensorStatus,
)
from katcp_inspect.connection import Connection
from katcp_inspect.testing.raw_device import (
    GREETING_V5,
    RawDevice,
    accept_then_close,
    answering,
    flood_process,
    greet_then_drop,
    scripted,
)

from .support import scripted_device, sensor_list, wait_until

UPDATE = b"#sensor-status 1700000000.5 1 flood.sensor nominal 12345.678\n"


def fast_backoff() -> ExponentialRandomBackoff:
    return ExponentialRandomBackoff(0.01, 0.05, 2.0, 0.5)


def client_for(device: RawDevice, **kwargs: Any) -> DeviceClient:
    kwargs.setdefault("reconnect_backoff", fast_backoff())
    kwargs.setdefault("greeting_timeout", 2.0)
    return DeviceClient("127.0.0.1", device.port, **kwargs)


async def started(device: RawDevice, **kwargs: Any) -> DeviceClient:
    client = client_for(device, **kwargs)
    client.start()
    await client.until_connected(timeout=5)
    return client


def ok_to_everything(request: Message) -> Iterator[bytes]:
    mid = b"" if request.mid is None else b"[%d]" % request.mid
    yield b"!" + request.name.encode() + mid + b" ok\n"


# --------------------------------------------------------------------- 1. accept then close


async def test_accept_then_close_is_a_failed_attempt_and_the_client_retries(io_loop: Any
                                                                            ) -> None:
    async with RawDevice(accept_then_close()) as device:
        client = client_for(device)
        client.start()
        await device.wait_accepted(20)
        await wait_until(lambda: client.stats.connect_failures + client.stats.disconnects >= 15,
                         what="the attempts to be counted as failures")
        assert client.running
        assert client.state is not ConnectionState.CLOSED
        await client.close()
        client.check_invariants()


async def test_a_bug_while_setting_up_a_connection_ends_that_attempt_only(
        io_loop: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    real_start = Connection.start
    calls = []

    def start_once_broken(self: Connection) -> asyncio.Future[None]:
        calls.append(self)
        if len(calls) == 1:
            raise RuntimeError("a bug in the connection set-up")
        return real_start(self)

    monkeypatch.setattr(Connection, "start", start_once_broken)
    async with RawDevice(answering(ok_to_everything)) as device:
        client = await started(device)
        assert len(calls) == 2
        assert client.stats.connection_attempts == 2
        assert "a bug in the connection set-up" in caplog.text
        assert any(r.exc_info for r in caplog.records if r.name == client.logger.name)
        await client.request("watchdog", timeout=2)
        await client.close()
        client.check_invariants()


async def test_a_bug_in_message_handling_resets_the_connection(
        io_loop: Any, caplog: pytest.LogCaptureFixture) -> None:
    async with RawDevice(answering(ok_to_everything)) as device:
        client = await started(device)
        real_handle = client._requests.take_reply

        def broken_once(raw: Any) -> None:
            # A bug in the client's own dispatch (users' hooks are contained elsewhere).
            if client.stats.connections == 1:
                raise RuntimeError("dispatch bug")
            real_handle(raw)
        client._requests.take_reply = broken_once  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await client.request("watchdog", timeout=2)
        await client.until_connected(timeout=5)
        assert client.stats.connections == 2
        assert "dispatch bug" in caplog.text
        await client.request("watchdog", timeout=2)
        await client.close()


# --------------------------------------------------------------------- 2. flood


async def _lateness_during(seconds: float, interval: float = 0.05) -> float:
    """The worst lateness of an ``interval`` timer over ``seconds`` of loop time."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    end = loop.time() + seconds
    while loop.time() < end:
        asked = loop.time()
        await asyncio.sleep(interval)
        worst = max(worst, loop.time() - asked - interval)
    return worst


def count_updates(client: DeviceClient) -> list[int]:
    counter = [0]

    def hook(arguments: list[bytes]) -> None:
        counter[0] += 1
    client.hook_inform_arguments("sensor-status", hook)
    return counter


async def _request_lateness_during(client: DeviceClient, seconds: float) -> float:
    """The worst lateness of 0.2 s request timeouts, one after another, over ``seconds``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    await client.until_connected(timeout=5)
    worst = 0.0
    while loop.time() < end:
        start = loop.time()
        with pytest.raises(RequestTimeoutError):
            await client.request("never-answered", timeout=0.2)
        worst = max(worst, loop.time() - start - 0.2)
    return worst


@pytest.mark.parametrize("devices", [1, 3])
async def test_a_flood_does_not_freeze_the_loop(io_loop: Any, devices: int) -> None:
    async with contextlib.AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(flood_process(UPDATE, seconds=2.5))
                 for _ in range(devices)]
        clients = [DeviceClient("127.0.0.1", port) for port in ports]
        counters = [count_updates(client) for client in clients]
        for client in clients:
            client.start()
            stack.push_async_callback(client.close)
        worst, *request_worst = await asyncio.gather(
            _lateness_during(2.0), *(_request_lateness_during(c, 1.5) for c in clients))
        counts = [c[0] for c in counters]
    assert worst < 0.5, f"a 50 ms timer was {worst:.3f} s late during the flood"
    assert max(request_worst) < 0.5, f"0.2 s request timeouts fired {request_worst} s late"
    assert min(counts) > 10_000, counts  # the flood was real, and reached every client
    assert min(counts) > max(counts) / 5, counts  # and they shared the loop


async def test_the_watchdog_fires_during_a_flood(io_loop: Any) -> None:
    async with flood_process(UPDATE, seconds=5.0) as port:
        client = DeviceClient("127.0.0.1", port, watchdog_interval=0.1, watchdog_timeout=0.3,
                              reconnect_backoff=fast_backoff())
        count_updates(client)
        client.start()
        await client.until_connected(timeout=5)
        await asyncio.sleep(2.5)  # each connection floods for 5 s: count the watchdog's verdicts
        failures = client.stats.liveness_failures
        await client.close()
    # One verdict about every 0.45 s (0.1 s + 0.3 s, and a reconnection); a frozen loop gives
    # at most one before the flood ends.
    assert failures >= 3, failures


# --------------------------------------------------------------------- 3. greet then drop


class CountingBackoff(ExponentialRandomBackoff):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.successes = 0
        super().__init__(*args, **kwargs)

    def success(self) -> None:
        self.successes += 1
        super().success()


async def test_greet_then_drop_backs_off_and_warns(io_loop: Any,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    backoff = CountingBackoff(delay_initial=0.1, delay_max=30.0, exp_fac=2.0, randomicity=0.9)
    async with RawDevice(greet_then_drop()) as device:
        client = client_for(device, reconnect_backoff=backoff)
        client.start()
        await asyncio.sleep(1.5)  # to prove that the rate stays low
        accepted = len(device.accepted)
        await client.close()
    # Each delay at least doubles (from 0.01 s at the very least): at most ~8 in 1.5 s, where
    # a backoff reset by every negotiation gave about 25.
    assert 2 <= accepted <= 10, accepted
    assert backoff.successes == 0
    warnings = [r for r in caplog.records
                if r.name == client.logger.name and r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "ended 0.0" in warnings[0].getMessage()


async def test_backoff_resets_once_a_connection_proved_healthy(io_loop: Any) -> None:
    backoff = CountingBackoff(0.01, 0.05, 2.0, 0.5)
    async with RawDevice(greet_then_drop(after=0.4)) as device:
        client = client_for(device, reconnect_backoff=backoff, healthy_after=0.1)
        client.start()
        await device.wait_accepted(2)
        assert backoff.successes >= 1
        await client.close()


# --------------------------------------------------------------------- 5. timeouts


@pytest.mark.parametrize("bad", [math.nan, -1.0, -math.inf])
async def test_bad_request_timeouts_are_rejected(io_loop: Any, bad: float) -> None:
    async with RawDevice(answering(ok_to_everything)) as device:
        client = await started(device)
        with pytest.raises(ValueError, match="timeout"):
            client.request_raw("watchdog", timeout=bad)
        with pytest.raises(ValueError, match="timeout"):
            await client.request("watchdog", timeout=bad)
        assert not client._requests.by_mid
        reply, _ = await client.request("watchdog", timeout=math.inf)  # inf: no timeout
        assert reply.reply_ok()
        await client.close()


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.5])
async def test_bad_wait_timeouts_are_rejected(io_loop: Any, bad: float) -> None:
    client = DeviceClient("127.0.0.1", 1)
    with pytest.raises(ValueError, match="timeout"):
        client.until_connected(timeout=bad)
    await asyncio.sleep(0)  # a cancelled waiter leaves its set in its done callback
    assert len(client._connected_flag) == 0  # the rejected waiter did not stay behind


@pytest.mark.parametrize("keyword", ["connect_timeout", "greeting_timeout", "default_timeout",
                                     "watchdog_timeout", "watchdog_interval", "healthy_after"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_bad_constructor_timeouts_are_rejected(keyword: str, bad: float) -> None:
    with pytest.raises(ValueError, match=keyword):
        DeviceClient("127.0.0.1", 1, **{keyword: bad})


# --------------------------------------------------------------------- 7. mis-addressed informs


def help_with_a_stray_sensor_list(request: Message) -> Iterator[bytes]:
    mid = b"" if request.mid is None else b"[%d]" % request.mid
    if request.name == "help":
        yield b"#sensor-list" + mid + b" x X \\@ integer 0 1\n"
        yield b"#help" + mid + b" watchdog Liveness.\n"
        yield b"!help" + mid + b" ok 1\n"
    else:
        yield from ok_to_everything(request)


async def test_an_inform_with_another_requests_id_is_dropped_and_counted(io_loop: Any) -> None:
    async with RawDevice(answering(help_with_a_stray_sensor_list)) as device:
        client = await started(device)
        _, informs = await client.request("help", timeout=2)
        assert [(i.name, i.arguments[0]) for i in informs] == [("help", b"watchdog")]
        assert client.stats.misaddressed == 1
        await client.close()


# --------------------------------------------------------------------- 8. greeting order


@pytest.mark.parametrize("pause", [0.0, 0.05])
async def test_a_v4_inform_before_the_protocol_greeting_does_not_lock_in_v4(
        io_loop: Any, pause: float) -> None:
    chunks = (b"#build-state dev-1.0\n", b"#version-connect katcp-protocol 5.1-MIB\n")
    async with RawDevice(scripted(*chunks, pause=pause)) as device:
        client = await started(device, v4_grace=0.5)  # a generous grace on a noisy machine
        assert client.protocol_flags == ProtocolFlags(5, 1, "MIB")
        assert client.stats.connections == 1
        await client.close()


async def test_a_v4_device_is_not_kept_waiting_for_the_whole_greeting_timeout(io_loop: Any
                                                                            ) -> None:
    async with RawDevice(scripted(b"#version dev-1.0\n#build-state dev-1.0.1\n")) as device:
        began = time.monotonic()
        client = await started(device, greeting_timeout=5.0)
        assert time.monotonic() - began < 2.0
        assert client.protocol_flags is not None and client.protocol_flags.major == 4
        await client.close()


async def test_a_protocol_greeting_after_the_v4_grace_reconnects_as_v5(io_loop: Any) -> None:
    chunks = (b"#build-state dev-1.0\n", b"#version-connect katcp-protocol 5.1-MIB\n")
    async with RawDevice(scripted(*chunks, pause=0.6)) as device:
        client = client_for(device, v4_grace=0.1)
        client.start()
        await wait_until(lambda: client.protocol_flags == ProtocolFlags(5, 1, "MIB")
                         and client.is_connected, timeout=5, what="a KATCP 5 connection")
        await client.close()


# --------------------------------------------------------------------- 12. endless reply informs


def endless_help(request: Message) -> Iterator[bytes]:
    mid = b"" if request.mid is None else b"[%d]" % request.mid
    if request.name != "help":
        yield from ok_to_everything(request)
        return
    block = (b"#help" + mid + b" some-request Described\\_at\\_length.\n") * 1000
    while True:
        yield block


@pytest.mark.parametrize("cap", [{"max_reply_informs": 5000},
                                 {"max_reply_bytes": 100_000}])
async def test_endless_reply_informs_fail_the_request_and_free_the_memory(
        io_loop: Any, cap: dict[str, int]) -> None:
    async with RawDevice(answering(endless_help)) as device:
        client = await started(device, **cap)
        future = client.request_raw("help", timeout=10)
        with pytest.raises(ReplyTooLargeError):
            await future
        assert all(not p.informs for p in client._requests.by_mid.values())
        assert client.stats.oversized_replies == 1
        await wait_until(lambda: client.stats.overflow_dropped > 1000, what="later informs")
        await client.close()


async def test_a_100k_sensor_list_passes_the_default_caps(io_loop: Any) -> None:
    line = b"#sensor-list[1] bench.sensor.00000 A\\_benchmark\\_sensor. V float -1e9 1e9\n"

    def respond(request: Message) -> Iterator[bytes]:
        mid = b"[%d]" % (request.mid or 0)
        yield line.replace(b"[1]", mid) * 100_000
        yield b"!sensor-list" + mid + b" ok 100000\n"

    async with RawDevice(answering(respond)) as device:
        client = await started(device)
        _, informs = await client.request("sensor-list", timeout=30)
        assert len(informs) == 100_000
        await client.close()


# --------------------------------------------------------------------- smaller


async def test_a_long_line_in_fragments_is_counted(io_loop: Any) -> None:
    async with RawDevice(scripted(GREETING_V5, b"#x " + b"a" * 700, b"a" * 700,
                                  pause=0.05)) as device:
        client = client_for(device, max_line_length=1000)
        client.start()
        await wait_until(lambda: client.stats.long_lines == 1, what="the long line")
        await client.close()


async def test_an_inform_with_an_unknown_message_id_is_counted(io_loop: Any) -> None:
    async with RawDevice(scripted(GREETING_V5, b"#log[77] warn 1.0 x y\n")) as device:
        client = client_for(device)
        client.start()
        await wait_until(lambda: client.stats.unmatched_informs == 1, what="the count")
        await client.close()


async def test_v4_timestamps_are_divided_by_1000(io_loop: Any) -> None:
    from katcp_inspect import InspectingClientAsync

    async with scripted_device(b"#version d-4\n#build-state d-4.0\n",
                               {"sensor-list": sensor_list(b"n N \\@ integer 0 9")}) as device:
        client = InspectingClientAsync("127.0.0.1", device.port)
        await client.connect()
        await client.until_synced(timeout=5)
        n = await client.future_get_sensor("n")
        device.all[-1].send(b"#sensor-status 1700000000123 1 n nominal 4\n")
        await wait_until(lambda: n.value() == 4)
        assert n.read() == (1700000000.123, SensorStatus.NOMINAL, 4)
        await client.stop()



# --------------------------------------------------------------------- the periodic summary


def test_once_logger_warns_once_then_summarises_each_period(
        caplog: pytest.LogCaptureFixture) -> None:
    from katcp_inspect.stats import OnceLogger

    caplog.set_level(logging.DEBUG, logger="test.summary")
    now = [0.0]
    once = OnceLogger(logging.getLogger("test.summary"), period=60.0, clock=lambda: now[0])
    for second in range(0, 150, 10):  # 15 occurrences, 10 s apart
        now[0] = float(second)
        once.log("drop", "dropped %d", second)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert warnings[0].startswith("dropped 0 (further occurrences")
    assert warnings[1] == "dropped 60 (6 more like this since the warning 60 s ago)"
    assert warnings[2] == "dropped 120 (6 more like this since the warning 60 s ago)"
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 12


def test_once_logger_counts_kinds_past_its_limit_together(
        caplog: pytest.LogCaptureFixture) -> None:
    from katcp_inspect.stats import OnceLogger

    caplog.set_level(logging.DEBUG, logger="test.kinds")
    once = OnceLogger(logging.getLogger("test.kinds"))
    for i in range(OnceLogger.MAX_KINDS + 50):
        once.log(("unknown", i), "unknown sensor %d", i)
    assert len(once._seen) == OnceLogger.MAX_KINDS + 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == OnceLogger.MAX_KINDS + 2  # each kind, the notice, the first other
