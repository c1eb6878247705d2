"""A lease worker in a process of its own, for the takeover tests: prints ``acquire NAME`` and
``release NAME`` lines (names as repr) as its coordinator gains and loses devices. It renews
from a thread, as a fleet's worker does.

    python -m tests.mirror.worker_process URL WORKER_ID LEASE NAME...
"""

from __future__ import annotations

import asyncio
import sys

from katcp_inspect.mirror import Coordinator, connect, connect_blocking


def report(what: str, name: str) -> None:
    print(what, repr(name), flush=True)


async def main(url: str, worker: str, lease: float, devices: list[str]) -> None:
    redis = connect(url)
    coordinator = Coordinator(redis, worker, devices, lease=lease,
                              blocking=lambda: connect_blocking(url, None, lease / 3),
                              on_acquire=lambda n: report("acquire", n),
                              on_release=lambda n: report("release", n))
    coordinator.start()
    print("started", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
