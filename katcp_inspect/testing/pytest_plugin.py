"""pytest fixtures for testing code that talks to KATCP devices.

Opt in from a test module or the root ``conftest.py``::

    pytest_plugins = ["katcp_inspect.testing.pytest_plugin"]

The fixtures need pytest-tornasync (its ``io_loop`` fixture); write the tests as ``async def``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tornado.ioloop import IOLoop

from .device import SimulatedDevice

#: How many demo sensors the ``simulated_device`` fixture has: two of each type.
FIXTURE_SENSORS = 16


@pytest.fixture
def simulated_device(io_loop: IOLoop) -> Iterator[SimulatedDevice]:
    """A running :class:`SimulatedDevice` on 127.0.0.1 and a free port (``device.port``),
    speaking KATCP 5.1 with sixteen demo sensors (two of each type) whose values do not change
    unless the test changes them; stopped after the test."""
    device = SimulatedDevice.with_demo_sensors(FIXTURE_SENSORS, rate=None)
    io_loop.run_sync(lambda: device.start("127.0.0.1", 0))
    try:
        yield device
    finally:
        io_loop.run_sync(device.stop)
