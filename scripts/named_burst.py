#!/usr/bin/env python
"""Cost of a burst of named ``#interface-changed`` informs (issue 11, item 13).

A raw KATCP 5.1 device with N integer sensors runs in a subprocess (so that its own work does
not count). Once the client has synced, the device sends N ``#interface-changed sensor sK
modified`` informs in one write, then ``#burst-done``. Measured in the client's process, from
the burst until the client is synced again with nothing left to do: the CPU time spent, the
wall time, and the longest time the event loop was blocked (lateness of a 5 ms ticker).

Usage::

    python scripts/named_burst.py                  # N = 5000, 10000, 20000
    python scripts/named_burst.py 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from katcp_inspect import InspectingClientAsync, Message
from katcp_inspect.inspecting_client import SYNCED


def _sensor_line(index: int) -> bytes:
    return b"#sensor-list s%d A\\_sensor count integer 0 100" % index


async def _serve(count: int) -> None:
    """The device: answers ?help, ?sensor-list (full or named), ?sensor-sampling, and
    ?burst, which triggers the burst."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"#version-connect katcp-protocol 5.1-MIB\n")
        while line := await reader.readline():
            request = Message.parse(line)
            mid = b"" if request.mid is None else b"[%d]" % request.mid
            name = request.name.encode()
            out: list[bytes] = []
            if request.name == "sensor-list":
                if request.arguments:
                    index = int(request.arguments[0][1:])
                    out.append(_sensor_line(index).replace(b" ", mid + b" ", 1))
                else:
                    out.extend(_sensor_line(i).replace(b" ", mid + b" ", 1)
                               for i in range(count))
                out.append(b"!sensor-list%s ok %d" % (mid, len(out)))
            elif request.name == "help":
                out.append(b"#help%s burst Send\\_the\\_burst." % mid)
                out.append(b"!help%s ok 1" % mid)
            else:
                out.append(b"!" + name + mid + b" ok")
            writer.write(b"\n".join(out) + b"\n")
            if request.name == "burst":
                writer.write(b"".join(b"#interface-changed sensor s%d modified\n" % i
                                      for i in range(count)) + b"#burst-done\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()


class _Ticker:
    """Measures the event loop's longest block: a 5 ms sleep that comes back late."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - before - 0.005)

    def stop(self) -> None:
        self._task.cancel()


async def _measure(count: int) -> tuple[float, float, float]:
    device = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", str(count),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert device.stdout is not None and device.stdin is not None
    port = int(await device.stdout.readline())
    client = InspectingClientAsync("127.0.0.1", port)
    done = asyncio.get_running_loop().create_future()
    client.katcp_client.hook_inform("burst-done", lambda m: done.set_result(None))
    try:
        await client.connect()
        await client.until_synced(timeout=60)
        ticker = _Ticker()
        cpu, wall = time.process_time(), time.perf_counter()
        await client.simple_request("burst")
        await asyncio.wait_for(done, 60)
        while not (client.state == SYNCED and not client._sync.work):
            await client.until_synced(timeout=120)
            await asyncio.sleep(0)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        ticker.stop()
        assert len(client.sensors) == count
        return cpu, wall, ticker.worst
    finally:
        await client.stop()
        device.stdin.close()
        await device.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("counts", type=int, nargs="*", default=[5000, 10000, 20000])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return 0
    logging.basicConfig(level=logging.ERROR)
    for count in args.counts:
        for _ in range(args.repeat):
            cpu, wall, worst = asyncio.run(_measure(count))
            print(f"N={count:6d}: client CPU {cpu:6.3f} s, wall {wall:6.3f} s, "
                  f"longest loop block {worst * 1000:7.1f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
