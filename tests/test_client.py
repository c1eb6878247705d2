"""DeviceClient against a real third-party server (aiokatcp) and a scripted raw peer."""

from __future__ import annotations

import asyncio
import gc
import math
import socket
from typing import Any

import pytest

from katcp_inspect import (
    KATCP_V4,
    ClientClosedError,
    ConnectionLostError,
    ConnectionState,
    DeviceClient,
    ExponentialRandomBackoff,
    Message,
    NotConnectedError,
    ProtocolError,
    ProtocolFlags,
    RequestFailedError,
    RequestInvalidError,
    RequestTimeoutError,
)
from katcp_inspect.connection import Keepalive

from .support import (
    GREETING_V5,
    port_of,
    scripted_server,
    third_party_device,
    wait_until,
)


def fast_client(port: int, **kwargs: Any) -> DeviceClient:
    kwargs.setdefault("reconnect_backoff", ExponentialRandomBackoff(0.01, 0.05, 2.0, 0.5))
    kwargs.setdefault("greeting_timeout", 1.0)
    return DeviceClient("127.0.0.1", port, **kwargs)


async def connected_client(port: int, **kwargs: Any) -> DeviceClient:
    client = fast_client(port, **kwargs)
    client.start()
    await client.until_connected(timeout=5)
    return client


# --------------------------------------------------------------------- against aiokatcp


async def test_negotiates_and_requests_against_aiokatcp(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = await connected_client(port_of(server))
        assert client.protocol_flags == ProtocolFlags(5, 1, "MIB")
        assert client.versions["katcp-device"] == ("third-party-1.0", "third-party-1.0.0")
        reply, informs = await client.request("help")
        assert reply.reply_ok()
        assert int(reply.arguments[1]) == len(informs)
        assert {"help", "sensor-value", "slow"} <= {i.format_argument(0) for i in informs}
        assert all(i.mid == reply.mid for i in informs)

        reply, informs = await client.request("sensor-value", "temperature")
        assert [i.arguments[2:] for i in informs] == [[b"temperature", b"nominal", b"21.5"]]
        check_closes_cleanly = client.close()
        await check_closes_cleanly
        client.check_invariants()
        assert client.state is ConnectionState.CLOSED


async def test_request_arguments_gives_each_inform_as_a_tuple_of_its_arguments(
        io_loop: Any) -> None:
    async with third_party_device() as server:
        client = await connected_client(port_of(server))
        reply, informs = await client.request_raw("help")
        same_reply, arguments = await client.request_arguments("help")
        assert same_reply.arguments == reply.arguments
        assert arguments == [tuple(inform.arguments) for inform in informs]
        assert all(type(inform) is tuple for inform in arguments)
        gc.collect()
        # What a listing of a thousand sensors holds while it streams in is then nothing the
        # collector tracks: Message objects would fill its oldest generation.
        assert not any(gc.is_tracked(inform) for inform in arguments)
        await client.close()


async def test_slow_request_times_out_and_late_reply_is_counted(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = await connected_client(port_of(server))
        with pytest.raises(RequestTimeoutError) as info:
            await client.request("slow", 0.3, timeout=0.05)
        assert isinstance(info.value, TimeoutError)  # what tornado.gen.TimeoutError is
        await wait_until(lambda: client.stats.unmatched_replies == 1, what="the late reply")
        assert client.stats.request_timeouts == 1
        reply, _ = await client.request("echo", "still", "alive")  # the connection goes on
        assert reply.arguments == [b"ok", b"still", b"alive"]
        await client.close()


async def test_fail_and_invalid_replies_raise_distinct_errors(io_loop: Any) -> None:
    async with third_party_device() as server:
        client = await connected_client(port_of(server))
        with pytest.raises(RequestInvalidError, match="unknown request"):
            await client.request("no-such-request")
        with pytest.raises(RequestFailedError) as info:
            await client.request("sensor-value", "no-such-sensor")
        assert "no-such-sensor" in info.value.reason
        assert not info.value.reply.reply_ok()
        reply, _ = await client.request_raw("sensor-value", "no-such-sensor")
        assert reply.mtype is Message.REPLY
        assert reply.arguments[0] == b"fail"
        await client.close()


async def test_follows_server_restart_on_same_port(io_loop: Any) -> None:
    async with third_party_device() as server:
        port = port_of(server)
        client = fast_client(port)
        lost: list[None] = []
        client.add_disconnected_callback(lambda: lost.append(None))
        client.start()
        await client.until_connected(timeout=5)
        pending = client.request_raw("slow", 10)
    # The server has stopped: the pending request fails at once, the client keeps retrying.
    with pytest.raises(ConnectionLostError):
        await pending
    assert lost == [None]
    await wait_until(lambda: client.stats.connect_failures >= 1, what="a refused attempt")
    assert client.state in (ConnectionState.SLEEPING, ConnectionState.CONNECTING)
    async with third_party_device(port):
        await client.until_connected(timeout=5)
        reply, _ = await client.request("watchdog")
        assert reply.reply_ok()
        assert client.stats.connections == 2
    await client.close()


# --------------------------------------------------------------------- negotiation


async def test_v4_greeting_is_detected(io_loop: Any) -> None:
    async with scripted_server(b"#version device-4.1\n#build-state device-4.1.2\n") as server:
        client = await connected_client(server.port)
        assert client.protocol_flags == KATCP_V4
        assert client.protocol_flags.timestamp_scale == 0.001
        await wait_until(lambda: "build-state" in client.versions)
        assert client.versions["version"] == ("device-4.1",)
        await client.close()


async def test_silent_device_falls_back_after_greeting_timeout(io_loop: Any) -> None:
    async with scripted_server(b"") as server:
        client = await connected_client(server.port, greeting_timeout=0.05)
        assert client.protocol_flags == KATCP_V4
        await client.close()


async def test_silent_device_without_fallback_is_a_failed_attempt(io_loop: Any) -> None:
    async with scripted_server(b"") as server:
        client = fast_client(server.port, greeting_timeout=0.05, greeting_fallback=None)
        client.start()
        with pytest.raises(ProtocolError, match="no protocol greeting"):
            await client.when_connected(fail_after_failures=1)
        assert client.stats.connect_failures >= 1
        await client.close()


async def test_preset_flags_skip_the_wait(io_loop: Any) -> None:
    async with scripted_server(b"") as server:
        preset = ProtocolFlags(5, 0, "I")
        client = fast_client(server.port, preset_flags=preset, greeting_timeout=30)
        client.start()
        await client.until_connected(timeout=1)
        assert client.protocol_flags == preset
        await client.close()


@pytest.mark.parametrize("version", [b"4.0-T", b"garbage", b"5.0-B"])
async def test_bad_protocol_greeting_fails_the_attempt_without_hanging(
        io_loop: Any, version: bytes) -> None:
    """B15: katcp-python raised inside its inform handler and then waited forever."""
    async with scripted_server(b"#version-connect katcp-protocol " + version + b"\n") as server:
        client = fast_client(server.port)
        errors: list[BaseException] = []
        client.add_failed_connect_callback(errors.append)
        client.start()
        with pytest.raises(ProtocolError):
            await client.when_connected(fail_after_failures=1)
        assert isinstance(errors[0], ProtocolError)
        await client.close()
        client.check_invariants()


async def test_new_flags_on_reconnect_are_renegotiated(io_loop: Any) -> None:
    """B6: a device that comes back with another version is normal, not fatal."""
    async with scripted_server(b"#version-connect katcp-protocol 5.0-MI\n") as server:
        client = await connected_client(server.port)
        assert client.protocol_flags == ProtocolFlags(5, 0, "MI")
        server.greeting = b"#version-connect katcp-protocol 5.1-MIBT\n"
        (await server.next_connection()).close()
        await wait_until(lambda: client.stats.connections == 2, timeout=5)
        assert client.protocol_flags == ProtocolFlags(5, 1, "MIBT")
        assert client.is_connected
        await client.close()


# --------------------------------------------------------------------- requests and replies


async def test_without_message_ids_same_name_requests_are_serialised(io_loop: Any) -> None:
    async with scripted_server(b"#version-connect katcp-protocol 5.0-M\n") as server:
        client = await connected_client(server.port)
        peer = await server.next_connection()
        first = client.request_raw("sensor-value", "a")
        second = client.request_raw("sensor-value", "b")
        other = client.request_raw("watchdog")
        received = [await peer.read_message(), await peer.read_message()]
        assert [(m.name, m.arguments, m.mid) for m in received] == [
            ("sensor-value", [b"a"], None), ("watchdog", [], None)]
        peer.send(b"#sensor-value 1.5 1 a nominal 3\n!sensor-value ok 1\n!watchdog ok\n")
        reply, informs = await first
        assert reply.arguments == [b"ok", b"1"]
        assert informs[0].arguments[2] == b"a"
        assert (await other)[0].reply_ok()
        # Only now is the second request of that name sent.
        assert (await peer.read_message()).arguments == [b"b"]
        assert not second.done()
        peer.send(b"!sensor-value fail unknown\n")
        assert (await second)[0].arguments == [b"fail", b"unknown"]
        await client.close()


async def test_replies_are_matched_by_message_id_in_any_order(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port)
        peer = await server.next_connection()
        futures = [client.request_raw("echo", i) for i in range(3)]
        mids = [(await peer.read_message()).mid for _ in range(3)]
        assert len(set(mids)) == 3
        assert None not in mids
        for i, mid in reversed(list(enumerate(mids))):
            peer.send(b"#echo[%d] inform-%d\n!echo[%d] ok %d\n" % (mid, i, mid, i))
        for i, future in enumerate(futures):
            reply, informs = await future
            assert reply.arguments == [b"ok", str(i).encode()]
            assert [m.arguments for m in informs] == [[f"inform-{i}".encode()]]
        await client.close()


async def test_explicit_mid_and_use_mid(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port)
        peer = await server.next_connection()
        explicit = client.request_raw("help", mid=555)
        assert (await peer.read_message()).mid == 555
        without = client.request_raw("watchdog", use_mid=False)
        assert (await peer.read_message()).mid is None
        peer.send(b"!watchdog ok\n!help[555] ok 0\n")
        assert (await explicit)[0].mid == 555
        assert (await without)[0].reply_ok()
        await client.close()


async def test_explicit_mid_to_device_without_ids_is_refused(io_loop: Any) -> None:
    async with scripted_server(b"#version-connect katcp-protocol 5.0-M\n") as server:
        client = await connected_client(server.port)
        with pytest.raises(ProtocolError, match="message ids"):
            await client.request_raw("help", mid=3)
        await client.close()


async def test_request_while_not_connected_fails_with_reply_free_error(io_loop: Any) -> None:
    client = fast_client(1)
    with pytest.raises(NotConnectedError):
        await client.request_raw("help")


async def test_lost_connection_fails_every_pending_request_at_once(io_loop: Any) -> None:
    async with scripted_server(b"#version-connect katcp-protocol 5.0-M\n") as server:
        client = await connected_client(server.port)
        peer = await server.next_connection()
        futures = [client.request_raw("a"), client.request_raw("a"), client.request_raw("b")]
        await peer.read_message()
        peer.close()
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert all(isinstance(r, ConnectionLostError) for r in results)
        await client.close()


async def test_close_fails_pending_with_client_closed_and_leaves_nothing(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port, watchdog_interval=10)
        pending = client.request_raw("slow", timeout=math.inf)
        waiter = client.when_connected()  # connected: resolves at once
        await waiter
        await client.close()
        with pytest.raises(ClientClosedError):
            await pending
        client.check_invariants()
        assert not client._closing_tasks
        with pytest.raises(ClientClosedError):
            await client.when_connected()


# --------------------------------------------------------------------- bad input


async def test_malformed_lines_are_counted_and_skipped(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port)
        peer = await server.next_connection()
        pending = client.request_raw("watchdog")
        mid = (await peer.read_message()).mid
        peer.send(b"#bad\\qescape x\n garbage\n?request-from-device\n!nobody[77] ok\n"
                  b"!watchdog[%d] ok\n" % mid)
        assert (await pending)[0].reply_ok()
        assert client.stats.bad_lines == 2
        assert client.stats.unexpected_requests == 1
        assert client.stats.unmatched_replies == 1
        assert client.stats.connections == 1  # the same connection went on
        await client.close()


async def test_line_over_the_maximum_resets_the_connection(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port, max_line_length=1000)
        peer = await server.next_connection()
        peer.send(b"#log " + b"x" * 5000)  # no newline yet: known to be too long already
        await wait_until(lambda: client.stats.disconnects == 1, what="the reset")
        assert client.stats.long_lines == 1  # detected before its end, and counted
        await client.until_connected(timeout=5)  # and a fresh connection follows
        await client.close()


async def test_hooks_see_informs_and_a_raising_hook_does_not_stop_others(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = fast_client(server.port)
        seen: list[Message] = []
        raw: list[list[bytes]] = []
        unhandled: list[Message] = []

        def broken(msg: Message) -> None:
            raise RuntimeError("user bug")

        client.hook_inform("sensor-status", broken)
        client.hook_inform("sensor-status", seen.append)
        client.hook_inform("sensor-status", seen.append)  # a duplicate is ignored
        client.hook_inform_arguments("sensor-status", raw.append)
        client.hook_unhandled_inform(unhandled.append)
        client.start()
        await client.until_connected(timeout=5)
        peer = await server.next_connection()
        peer.send(b"#sensor-status 1.0 1 a nominal 1\n#mystery x\n")
        await wait_until(lambda: unhandled, what="the unhandled inform")
        assert [m.arguments for m in seen] == [[b"1.0", b"1", b"a", b"nominal", b"1"]]
        assert raw == [[b"1.0", b"1", b"a", b"nominal", b"1"]]
        assert [m.name for m in unhandled] == ["mystery"]
        assert client.stats.callback_errors == 1
        await client.close()


async def test_device_disconnect_inform_drops_the_connection(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port)
        peer = await server.next_connection()
        peer.send(b"#disconnect new\\_client\\_connected\n")
        await wait_until(lambda: client.stats.disconnects == 1)
        assert "new client connected" in str(client.last_error)
        await client.close()


# --------------------------------------------------------------------- reconnect and liveness


async def test_when_connected_counts_failures_after_the_call(io_loop: Any) -> None:
    async with scripted_server() as server:
        server.stop_listening()
        client = fast_client(server.port)
        failures: list[BaseException] = []
        client.add_failed_connect_callback(failures.append)
        client.start()
        await wait_until(lambda: len(failures) >= 2, what="two refused attempts")
        before = len(failures)
        with pytest.raises(ConnectionRefusedError):
            await client.when_connected(fail_after_failures=3)
        assert len(failures) >= before + 3
        patient = client.when_connected()
        server.listen_now()
        await patient
        assert client.is_connected
        await client.close()


async def test_reconnect_backoff_is_reset_only_once_a_connection_proved_healthy(
        io_loop: Any) -> None:
    async with scripted_server(b"") as server:
        backoff = ExponentialRandomBackoff(0.01, 1.0, 2.0, 0.5)
        client = fast_client(server.port, greeting_timeout=0.02, greeting_fallback=None,
                             reconnect_backoff=backoff, healthy_after=0.5)
        client.start()
        # TCP connects each time, yet it backs off (the delay doubles as each attempt sleeps).
        await wait_until(lambda: backoff._base_delay >= 0.08, timeout=5)
        assert client.stats.connect_failures >= 3
        server.greeting = GREETING_V5
        await client.until_connected(timeout=5)
        assert backoff._base_delay >= 0.08  # negotiated, but not yet proved healthy
        await wait_until(lambda: backoff._base_delay == 0.01, what="the reset")
        await client.close()


async def test_watchdog_declares_a_silent_device_dead(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port, watchdog_interval=0.02, watchdog_timeout=0.05)
        peer = await server.next_connection()
        assert (await peer.read_message()).name == "watchdog"  # and it never answers
        await wait_until(lambda: client.stats.liveness_failures == 1, timeout=5)
        assert "watchdog" in str(client.last_error) or client.is_connected
        await client.close()


async def test_keepalive_is_set_on_the_socket(io_loop: Any) -> None:
    async with scripted_server() as server:
        keepalive = Keepalive(idle=7, interval=3, count=2)
        client = await connected_client(server.port, keepalive=keepalive)
        assert client._connection is not None
        sock = client._connection.stream.socket
        assert sock is not None
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        if hasattr(socket, "TCP_KEEPIDLE"):
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 7
        await client.close()


async def test_no_auto_reconnect_ends_closed(io_loop: Any) -> None:
    async with scripted_server() as server:
        client = await connected_client(server.port, auto_reconnect=False)
        (await server.next_connection()).close()
        await client.until_closed()
        assert client.state is ConnectionState.CLOSED
        client.check_invariants()
        client.start()  # and it can be started again
        await client.until_connected(timeout=5)
        await client.close()
