"""Shared helpers for the resilience tests: clients with short delays, running devices and
proxies, and leak probes (RSS, tasks, timers)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
from collections.abc import AsyncIterator
from typing import Any

from katcp_inspect import InspectingClientAsync
from katcp_inspect.testing import SimulatedDevice
from katcp_inspect.testing.proxy import FaultProxy

from ..support import wait_until

__all__ = ["fast_client", "fault_proxy", "leak_probe", "rss_mib", "running_device",
           "wait_until"]


def fast_client(port: int, *, resync: float = 0.05, reconnect: float = 0.01,
                **kwargs: Any) -> InspectingClientAsync:
    """A client on 127.0.0.1:``port`` that reconnects and resyncs after short delays."""
    client = InspectingClientAsync("127.0.0.1", port, **kwargs)
    client.initial_resync_timeout = resync
    client.max_resync_timeout = resync * 4
    backoff = client.katcp_client.reconnect_backoff
    backoff.delay_initial = reconnect
    backoff.delay_max = max(backoff.delay_max, reconnect)
    backoff.success()
    return client


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


def rss_mib() -> float:
    """This process's resident set size now, in MiB (peak RSS where /proc is missing)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def leak_probe() -> dict[str, int]:
    """Counts that must not grow in a steady state: tasks, live timers and ready callbacks
    of the running loop, and objects tracked by the garbage collector."""
    loop = asyncio.get_running_loop()
    gc.collect()
    scheduled = getattr(loop, "_scheduled", [])
    ready = getattr(loop, "_ready", [])
    return {
        "tasks": len(asyncio.all_tasks(loop)),
        "timers": sum(1 for h in scheduled if not h.cancelled()),
        "ready": len(ready),
        "gc_objects": len(gc.get_objects()),
    }
