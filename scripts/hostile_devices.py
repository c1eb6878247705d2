#!/usr/bin/env python
"""Figures for DeviceClient against hostile devices (issue 11; docs/reliability.md).

- ``flood``: the worst and 99th-percentile lateness of a 50 ms timer in the client's event
  loop while 1 and then N devices (each in a process of its own) flood their clients with
  ``#sensor-status`` lines as fast as the socket takes them, and the updates each client got.
- ``greet``: connections per second against a device that greets and drops at once, with the
  default reconnect backoff, and the WARNING lines the client logged.
- ``informs``: a device that answers ``?help`` with endless reply informs and never replies:
  how long until the request fails with ``ReplyTooLargeError`` under the default caps, and
  the growth of the resident set.

Usage::

    python scripts/hostile_devices.py                    # all three
    python scripts/hostile_devices.py flood --devices 4 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import statistics
import time
from collections.abc import Iterator

from katcp_inspect import DeviceClient, Message
from katcp_inspect.errors import ReplyTooLargeError
from katcp_inspect.testing.raw_device import RawDevice, answering, flood_process, greet_then_drop

UPDATE = b"#sensor-status 1700000000.5 1 flood.sensor nominal 12345.678\n"


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


async def timer_lateness(seconds: float, interval: float = 0.05) -> list[float]:
    loop = asyncio.get_running_loop()
    lateness = []
    end = loop.time() + seconds
    while loop.time() < end:
        asked = loop.time()
        await asyncio.sleep(interval)
        lateness.append(loop.time() - asked - interval)
    return lateness


async def measure_flood(devices: int, seconds: float) -> None:
    async with contextlib.AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(flood_process(UPDATE, seconds=seconds + 1))
                 for _ in range(devices)]
        clients = [DeviceClient("127.0.0.1", port) for port in ports]
        counts = [0] * devices
        for i, client in enumerate(clients):
            def count(arguments: list[bytes], i: int = i) -> None:
                counts[i] += 1
            client.hook_inform_arguments("sensor-status", count)
            client.start()
            stack.push_async_callback(client.close)
        for client in clients:
            await client.until_connected(timeout=10)
        lateness = sorted(await timer_lateness(seconds))
    p99 = lateness[int(len(lateness) * 0.99)]
    rates = ", ".join(f"{c / seconds / 1e3:.0f}k" for c in counts)
    print(f"flood, {devices} device(s), {seconds:g} s: 50 ms timer late by worst "
          f"{lateness[-1] * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms, median "
          f"{statistics.median(lateness) * 1e3:.1f} ms; updates/s per client: {rates}")


class WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


async def measure_greet_then_drop(seconds: float) -> None:
    warnings = WarningCounter()
    logger = logging.getLogger("katcp_inspect.client")
    logger.addHandler(warnings)
    logger.setLevel(logging.WARNING)
    try:
        async with RawDevice(greet_then_drop()) as device:
            client = DeviceClient("127.0.0.1", device.port)
            client.start()
            await asyncio.sleep(seconds)
            await client.close()
    finally:
        logger.removeHandler(warnings)
        logger.setLevel(logging.NOTSET)
    accepted = device.accepted
    first, last = accepted[0], accepted[-1]
    print(f"greet-then-drop, {seconds:g} s: {len(accepted)} connections "
          f"({len(accepted) / seconds:.2f}/s; in the last half "
          f"{sum(t > first + seconds / 2 for t in accepted)}), last gap "
          f"{(last - accepted[-2]) if len(accepted) > 1 else 0:.2f} s; "
          f"{len(warnings.lines)} WARNING line(s): {warnings.lines[:1]}")


def endless_help(request: Message) -> Iterator[bytes]:
    mid = b"" if request.mid is None else b"[%d]" % request.mid
    block = (b"#help" + mid + b" some-request Described\\_at\\_length.\n") * 1000
    while True:
        yield block


async def overflow_once(client: DeviceClient) -> float:
    began = time.monotonic()
    try:
        await client.request("help", timeout=600)
    except ReplyTooLargeError:
        return time.monotonic() - began
    raise AssertionError("the endless reply ended")


async def measure_endless_informs() -> None:
    async with RawDevice(answering(endless_help)) as first, \
            RawDevice(answering(endless_help)) as second:
        clients = [DeviceClient("127.0.0.1", device.port) for device in (first, second)]
        for client in clients:
            client.start()
            await client.until_connected(timeout=10)
        gc.collect()
        before = rss_mib()
        took = await overflow_once(clients[0])
        gc.collect()
        after_first = rss_mib()
        await overflow_once(clients[1])  # reuses the memory the first one released
        gc.collect()
        after_second = rss_mib()
        for client in clients:
            await client.close()
    print(f"endless reply informs, default caps ({clients[0].max_reply_informs} informs, "
          f"{clients[0].max_reply_bytes >> 20} MiB): ReplyTooLargeError after {took:.1f} s; "
          f"RSS +{after_first - before:.0f} MiB after it (freed memory the allocator keeps), "
          f"+{after_second - before:.0f} MiB after a second client's; "
          f"{clients[0].stats.overflow_dropped} later informs dropped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="*", help="flood, greet and/or informs (default: all)")
    parser.add_argument("--devices", type=int, default=4, help="flooding devices at once")
    parser.add_argument("--seconds", type=float, default=5.0, help="of flood")
    parser.add_argument("--greet-seconds", type=float, default=10.0)
    args = parser.parse_args()
    what = args.what or ["flood", "greet", "informs"]
    if not set(what) <= {"flood", "greet", "informs"}:
        parser.error(f"unknown measurement in {what}")
    logging.basicConfig(level=logging.ERROR)
    if "flood" in what:
        asyncio.run(measure_flood(1, args.seconds))
        asyncio.run(measure_flood(args.devices, args.seconds))
    if "greet" in what:
        asyncio.run(measure_greet_then_drop(args.greet_seconds))
    if "informs" in what:
        asyncio.run(measure_endless_informs())


if __name__ == "__main__":
    main()
