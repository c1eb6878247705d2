"""Fixtures for the simulated-device tests: devices started on 127.0.0.1:0 and raw clients."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from simdevice_helpers import Connect, RawClient, StartDevice, make_sensors
from tornado.ioloop import IOLoop

from katcp_inspect.testing import SimulatedDevice


@pytest.fixture
def start_device(io_loop: IOLoop) -> Iterator[StartDevice]:
    """``await start_device(**kwargs)``: a running device with :func:`make_sensors` (unless
    ``sensors=`` is given), stopped after the test."""
    devices: list[SimulatedDevice] = []

    async def start(**kwargs: Any) -> SimulatedDevice:
        kwargs.setdefault("sensors", make_sensors())
        device = SimulatedDevice(**kwargs)
        await device.start("127.0.0.1", 0)
        devices.append(device)
        return device

    yield start
    for device in devices:
        io_loop.run_sync(device.stop)


@pytest.fixture
def connect(io_loop: IOLoop) -> Iterator[Connect]:
    """``await connect(device, greeting=3)``: a raw client that has read the greeting lines."""
    clients: list[RawClient] = []

    async def open_client(device: SimulatedDevice, greeting: int | None = None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", device.port,
                                                       limit=2**22)
        client = RawClient(reader, writer)
        clients.append(client)
        if greeting is None:
            greeting = 3 if device.protocol_flags.major >= 5 else 2
        await client.readlines(greeting)
        return client

    yield open_client
    for client in clients:
        io_loop.run_sync(client.close)
