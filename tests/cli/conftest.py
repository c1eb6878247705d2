"""Fixtures for the command's tests: simulated devices on 127.0.0.1, stopped afterwards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from katcp_inspect.testing import SimulatedDevice

StartDevice = Callable[..., Awaitable[SimulatedDevice]]


@pytest.fixture
def start_device(io_loop: IOLoop) -> Iterator[StartDevice]:
    """``await start_device(device)``: start it on 127.0.0.1 and a free port; it is stopped
    after the test (a device given as keyword arguments is built with them)."""
    devices: list[SimulatedDevice] = []

    async def start(device: SimulatedDevice | None = None, **kwargs: Any) -> SimulatedDevice:
        if device is None:
            device = SimulatedDevice(**kwargs)
        await device.start("127.0.0.1", 0)
        devices.append(device)
        return device

    yield start
    for device in devices:
        io_loop.run_sync(device.stop)
