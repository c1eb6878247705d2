"""pytest fixtures for testing code that talks to KATCP devices.

Opt in from a test module or the root ``conftest.py``::

    pytest_plugins = ["katcp_inspect.testing.pytest_plugin"]

Two fixtures give the same running device, one per async test plugin:

- ``simulated_device`` for pytest-tornasync (it uses its ``io_loop`` fixture);
- ``asyncio_simulated_device`` for pytest-asyncio, in strict and in auto mode (defined only
  when pytest-asyncio is installed, so the plugin works without it).

With any runner, ``async with SimulatedDevice(...) as device:`` inside the test does the same.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from tornado.ioloop import IOLoop

from .device import SimulatedDevice

#: How many demo sensors the fixtures' device has: two of each type.
FIXTURE_SENSORS = 16


def fixture_device() -> SimulatedDevice:
    """The fixtures' device, not started: sixteen demo sensors (two of each type) whose values
    do not change unless the test changes them."""
    return SimulatedDevice.with_demo_sensors(FIXTURE_SENSORS, rate=None)


@pytest.fixture
def simulated_device(io_loop: IOLoop) -> Iterator[SimulatedDevice]:
    """A running :class:`SimulatedDevice` on 127.0.0.1 and a free port (``device.port``),
    speaking KATCP 5.1 with sixteen demo sensors (two of each type) whose values do not change
    unless the test changes them; stopped after the test. For pytest-tornasync."""
    device = fixture_device()
    io_loop.run_sync(lambda: device.start("127.0.0.1", 0))
    try:
        yield device
    finally:
        io_loop.run_sync(device.stop)


def _asyncio_fixture() -> Callable[..., Any] | None:
    """``asyncio_simulated_device``, or ``None`` without pytest-asyncio.

    Strict mode runs only async fixtures declared with ``pytest_asyncio.fixture`` (auto mode
    runs those too), so the import cannot be avoided; made here, it stays optional.
    """
    try:
        import pytest_asyncio
    except ImportError:
        return None

    @pytest_asyncio.fixture
    async def asyncio_simulated_device() -> AsyncIterator[SimulatedDevice]:
        """The device of ``simulated_device``, on pytest-asyncio's event loop (the loop scope
        is the project's ``asyncio_default_fixture_loop_scope``)."""
        async with fixture_device() as device:
            yield device

    return asyncio_simulated_device


asyncio_simulated_device = _asyncio_fixture()
