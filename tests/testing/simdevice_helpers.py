"""Helpers for the simulated-device tests: fixed test sensors, and a raw line client
(asyncio streams, not our DeviceClient) to see exactly what the device sends."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import pytest

from katcp_inspect.kattypes import Address, SensorType
from katcp_inspect.testing import SimulatedDevice, SimulatedSensor

TIMEOUT = 2.0
TS = 1000.5  # the timestamp of every test sensor's reading: 1000.5 on v5, 1000500 on v4


def make_sensors() -> list[SimulatedSensor]:
    """One sensor of each type, with fixed readings, so that lines can be compared exactly."""
    t = SensorType
    return [
        SimulatedSensor(t.INTEGER, "an.int", "An integer.", "count", [0, 100], value=5,
                        timestamp=TS),
        SimulatedSensor(t.FLOAT, "a.float", "A float\nover two lines.", "V", [-1.0, 1.0],
                        value=0.25, timestamp=TS),
        SimulatedSensor(t.BOOLEAN, "a.bool", "A boolean.", "", value=True, timestamp=TS),
        SimulatedSensor(t.LRU, "an.lru", "An lru.", "", value=0, timestamp=TS),
        SimulatedSensor(t.DISCRETE, "a.discrete", "A discrete.", "", ["one", "two"],
                        value="two", timestamp=TS),
        SimulatedSensor(t.STRING, "a.string", "A string.", "", value="hello world",
                        timestamp=TS),
        SimulatedSensor(t.TIMESTAMP, "a.timestamp", "A timestamp.", "s", value=1234.5,
                        timestamp=TS),
        SimulatedSensor(t.ADDRESS, "an.address", "An address.", "",
                        value=Address("10.0.0.1", 7147), timestamp=TS),
    ]


class RawClient:
    """A KATCP client that is only a socket: send lines, read lines (without the newline)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, line: bytes | str) -> None:
        data = line.encode() if isinstance(line, str) else line
        self.writer.write(data + b"\n")

    async def readline(self, timeout: float = TIMEOUT) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise EOFError("the device closed the connection")
        return line.rstrip(b"\n")

    async def readlines(self, count: int, timeout: float = TIMEOUT) -> list[bytes]:
        return [await self.readline(timeout) for _ in range(count)]

    async def read_until(self, prefix: bytes | str, timeout: float = TIMEOUT) -> list[bytes]:
        """Lines up to and including the first one that starts with ``prefix``."""
        want = prefix.encode() if isinstance(prefix, str) else prefix
        lines = []
        while True:
            lines.append(await self.readline(timeout))
            if lines[-1].startswith(want):
                return lines

    async def request(self, line: bytes | str, timeout: float = TIMEOUT) -> list[bytes]:
        """Send a request line; return the lines up to and including its reply."""
        data = line.encode() if isinstance(line, str) else line
        name = data.split(b" ")[0][1:].split(b"[")[0]  # the reply may lack the id (v4)
        self.send(data)
        return await self.read_until(b"!" + name, timeout)

    async def barrier(self) -> list[bytes]:
        """Lines that arrive before the reply to a ``?watchdog`` sent now (reply excluded)."""
        return (await self.request("?watchdog"))[:-1]

    async def expect_silence(self, duration: float = 0.1) -> None:
        try:
            line = await self.readline(duration)
        except asyncio.TimeoutError:
            return
        pytest.fail(f"unexpected line {line!r}")

    async def expect_closed(self, timeout: float = TIMEOUT) -> None:
        """The device closed the connection: a FIN, or a reset when it closed with our last
        lines still unread in its socket (TCP resets then; which happens depends on timing)."""
        try:
            data = await asyncio.wait_for(self.reader.read(), timeout)
        except ConnectionResetError:
            return
        assert isinstance(data, bytes)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


StartDevice = Callable[..., Awaitable[SimulatedDevice]]
Connect = Callable[..., Awaitable[RawClient]]
