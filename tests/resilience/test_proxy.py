"""The fault proxy itself, against a scripted peer and a raw asyncio client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from katcp_inspect.testing.proxy import GARBAGE_LINE, FaultEvent, FaultProxy

from ..support import PeerConnection, ScriptedServer, scripted_server


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def read_all(self, timeout: float = 2.0) -> bytes:
        """Everything until the proxy closes the connection."""
        return await asyncio.wait_for(self.reader.read(), timeout)

    async def read_exactly(self, n: int, timeout: float = 2.0) -> bytes:
        return await asyncio.wait_for(self.reader.readexactly(n), timeout)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


@contextlib.asynccontextmanager
async def setup(greeting: bytes = b"") -> AsyncIterator[tuple[ScriptedServer, FaultProxy]]:
    async with scripted_server(greeting) as server:
        proxy = FaultProxy("127.0.0.1", server.port)
        await proxy.start()
        try:
            yield server, proxy
        finally:
            await proxy.stop()
            assert not proxy._tasks and not proxy.connections


async def connect(proxy: FaultProxy, server: ScriptedServer) -> tuple[Raw, PeerConnection]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    peer = await server.next_connection()
    return Raw(reader, writer), peer


async def test_forwards_both_ways_and_counts(io_loop: Any) -> None:
    async with setup(b"#hello\n") as (server, proxy):
        client, peer = await connect(proxy, server)
        assert await client.read_exactly(7) == b"#hello\n"
        client.writer.write(b"?watchdog\n?help\r")
        assert (await peer.read_message()).name == "watchdog"
        assert (await peer.read_message()).name == "help"
        assert proxy.to_client.lines == 1 and proxy.to_device.lines == 2
        assert proxy.connections[0].forwarded("to_device") == (16, 2)
        await client.close()


async def test_cut_after_lines_is_exact_and_once(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        events: list[FaultEvent] = []
        proxy.add_fault_callback(events.append)
        proxy.to_client.cut_after(lines=2)
        client, peer = await connect(proxy, server)
        peer.send(b"#one\n\n#two\r\n#three\n")
        assert await client.read_all() == b"#one\n\n#two\r"
        assert [e.kind for e in events] == ["cut"] and proxy.to_client.cuts == 1
        assert proxy.to_client.armed == 0
        again, peer = await connect(proxy, server)  # the next connection is not cut
        peer.send(b"#one\n#two\n#three\n")
        assert await again.read_exactly(17) == b"#one\n#two\n#three\n"
        await client.close()
        await again.close()


async def test_cut_after_zero_lines_and_bytes(io_loop: Any) -> None:
    async with setup(b"#greeting\n") as (server, proxy):
        proxy.to_client.cut_after(lines=0)
        client, _ = await connect(proxy, server)
        assert await client.read_all() == b""
        proxy.to_client.cut_after(nbytes=4, reset=False)
        client, _ = await connect(proxy, server)
        assert await client.read_all() == b"#gre"
        await client.close()


async def test_cut_every_connection_towards_the_device(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        proxy.to_device.cut_after(lines=1, once=False)
        for _ in range(2):
            client, peer = await connect(proxy, server)
            client.writer.write(b"?a\n?b\n")
            assert (await peer.read_message()).name == "a"
            assert await client.read_all() == b""
            await client.close()
        assert proxy.to_device.cuts == 2 and proxy.to_device.armed == 1
        with pytest.raises(ValueError, match="out of range"):
            proxy.to_device.cut_after(lines=0, once=False)


async def test_stall_holds_data_until_resumed(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        client, peer = await connect(proxy, server)
        proxy.to_client.stall()
        peer.send(b"#held\n")
        with pytest.raises(asyncio.TimeoutError):
            await client.read_exactly(6, timeout=0.1)
        proxy.to_client.resume()
        assert await client.read_exactly(6) == b"#held\n"
        proxy.to_client.stall_after(lines=1, duration=0.1)
        peer.send(b"#a\n#b\n")
        assert await client.read_exactly(3) == b"#a\n"
        stalled_then = proxy.to_client.stalled
        assert await client.read_exactly(3, timeout=1.0) == b"#b\n"  # after 0.1 s
        assert (stalled_then, proxy.to_client.stalled) == (True, False)
        await client.close()


async def test_a_stalled_connection_still_closes(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        client, peer = await connect(proxy, server)
        proxy.to_client.stall()
        peer.send(b"#never\n")
        await asyncio.sleep(0.05)
        await client.close()
        # stop() (in setup) must not wait for the stall: the connection is gone.


async def test_fragment_and_delay_deliver_everything(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        client, peer = await connect(proxy, server)
        proxy.to_client.fragment = True
        proxy.to_client.delay = 0.01
        data = b"#sensor-status 1.0 1 a nominal 5\n" * 5
        peer.send(data)
        assert await client.read_exactly(len(data)) == data
        assert proxy.to_client.lines == 5
        await client.close()


async def test_injection_goes_between_lines(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        client, peer = await connect(proxy, server)
        peer.send(b"#partial ")
        assert await client.read_exactly(9) == b"#partial "
        proxy.to_client.inject_garbage()
        proxy.to_client.inject_long_line(100)
        peer.send(b"line\n")
        expected = b"line\n" + GARBAGE_LINE
        got = await client.read_exactly(len(expected) + 102)
        assert got.startswith(expected) and got.endswith(b"x\n") and len(got) > len(expected)
        assert proxy.to_client.lines == 1  # injected lines are not counted
        proxy.to_client.inject(b"#now\n")  # at a boundary, idle: at once
        assert await client.read_exactly(5) == b"#now\n"
        await client.close()


async def test_drop_and_refused_target(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        client, _ = await connect(proxy, server)
        proxy.drop_connections(reset=True)
        with contextlib.suppress(ConnectionError):
            assert await client.read_all() == b""
        assert not proxy.connections
        server.stop_listening()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), 2) == b""  # the target refused
        writer.close()
        await client.close()


def test_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        FaultProxy("127.0.0.1", 1, host="0.0.0.0")


async def test_a_stall_takes_effect_between_fragments(io_loop: Any) -> None:
    async with setup() as (server, proxy):
        client, peer = await connect(proxy, server)
        proxy.to_client.fragment = True
        proxy.to_client.delay = 0.0
        data = b"#x " + b"y" * 4000 + b"\n"
        peer.send(data)
        first = await client.read_exactly(10)
        proxy.to_client.stall()
        await asyncio.sleep(0.05)
        held_at = proxy.to_client.bytes
        await asyncio.sleep(0.05)
        assert proxy.to_client.bytes == held_at < len(data)  # nothing more while stalled
        proxy.to_client.resume()
        rest = await client.read_exactly(len(data) - 10)
        assert first + rest == data
        await client.close()
