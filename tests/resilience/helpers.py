"""Shared helpers for the resilience tests: running devices and proxies, and (from the
package's harness) clients with short delays and polling."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from katcp_inspect.testing import SimulatedDevice
from katcp_inspect.testing.harness.probes import fast_client, wait_until
from katcp_inspect.testing.proxy import FaultProxy

__all__ = ["fast_client", "fault_proxy", "running_device", "wait_until"]


@contextlib.asynccontextmanager
async def running_device(device: SimulatedDevice, port: int = 0
                         ) -> AsyncIterator[SimulatedDevice]:
    await device.start("127.0.0.1", port)
    try:
        yield device
    finally:
        await device.stop()


@contextlib.asynccontextmanager
async def fault_proxy(port: int) -> AsyncIterator[FaultProxy]:
    proxy = FaultProxy("127.0.0.1", port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
