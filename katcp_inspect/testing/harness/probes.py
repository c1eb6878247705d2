"""Clients with short delays, polling for conditions that have no event, and leak probes
(RSS, the loop's tasks and timers, objects tracked by the garbage collector).

May import the library; nothing else of the testing toolkit.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable
from typing import Any

from ...inspecting_client import InspectingClientAsync


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


async def wait_until(predicate: Callable[[], object], timeout: float = 2.0,
                     what: str | None = None) -> None:
    """Poll a condition that has no event of its own (e.g. a counter), yielding to the loop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await asyncio.sleep(0.001)


def rss_mib() -> float:
    """This process's resident set size now, in MiB (peak RSS where /proc is missing)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource  # Unix only, and only needed where /proc is missing

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
