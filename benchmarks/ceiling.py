"""The ceiling for update throughput: katcp-codec's public ``Parser.append`` feeding a plain
dict of raw readings (no type decoding, no sensor objects, no observers), on the flood's bytes.

:func:`in_process` feeds the pre-built flood to the parser in ``CHUNK``-byte slices, as a
socket read of that size would deliver it; :func:`over_socket` reads the same flood from the
device through a bare asyncio ``BufferedProtocol``. ``in_process(core=True)`` uses
katcp-codec's private Rust core parser (``katcp_codec._lib``, which skips the public wrapper's
per-message dataclass) instead: katcp-inspect uses that core when it passes a self-test, so
this is the floor for what katcp-inspect does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import katcp_codec
import wire
from katcp_codec import _lib
from measure import Section

#: Bytes per read: what both clients ask for (katcp-inspect's and aiokatcp's buffers).
CHUNK = 256 * 1024
LIMIT = 16 * 1024 * 1024
#: Bound on the wait for the flood, in seconds.
WAIT = 60.0

Cache = dict[bytes, tuple[bytes, bytes, bytes]]


class _Sink:
    """Parses chunks into the cache of ``name → (timestamp, status, value)``."""

    def __init__(self, core: bool = False) -> None:
        self.parser: Any = (_lib.Parser if core else katcp_codec.Parser)(LIMIT)
        self.cache: Cache = {}
        self.count = 0

    def feed(self, chunk: memoryview) -> None:
        cache = self.cache
        count = 0
        for message in self.parser.append(chunk):
            if isinstance(message, ValueError) or message.name != b"sensor-status":
                continue
            args = message.arguments
            timestamp = args[0]
            for i in range(2, len(args), 3):
                cache[args[i]] = (timestamp, args[i + 1], args[i + 2])
                count += 1
        self.count += count

    def problem(self, sensors: int, updates: int) -> str | None:
        if self.count != updates:
            return f"{self.count} of {updates} updates parsed"
        cached = {name.decode(): float(value) for name, (_, _, value) in self.cache.items()}
        if cached != wire.flood_last_values(sensors, updates):
            return "wrong last values"
        return None


def in_process(sensors: int, updates: int, core: bool = False) -> dict[str, Any]:
    view = memoryview(wire.flood_buffer(sensors, updates))
    sink = _Sink(core)
    with Section() as section:
        for start in range(0, len(view), CHUNK):
            sink.feed(view[start:start + CHUNK])
    return {"rate": updates / section.seconds, "seconds": section.seconds,
            "problem": sink.problem(sensors, updates)}


class _Reader(asyncio.BufferedProtocol):
    def __init__(self, sink: _Sink, expected: int) -> None:
        self._sink = sink
        self._expected = expected
        self._view = memoryview(bytearray(CHUNK))
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self._sink.feed(self._view[:nbytes])
        if self._sink.count >= self._expected and not self.done.done():
            self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"connection lost: {exc}"))


async def over_socket(port: int, sensors: int, updates: int) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    sink = _Sink()
    transport, reader = await loop.create_connection(lambda: _Reader(sink, updates),
                                                     "127.0.0.1", port)
    with Section() as section:
        transport.write(b"?flood[1]\n")
        await asyncio.wait_for(reader.done, WAIT)
    transport.close()
    return {"rate": updates / section.seconds, "seconds": section.seconds,
            "problem": sink.problem(sensors, updates)}
