"""Where the per-sensor and per-name ways of metric (f) spend their time, phase by phase.

    python benchmarks/sampling_phases.py [--rounds 2]

Against one aiokatcp device of 10,000 sensors (``aiokatcp_device.py``, in a process of its
own), each way in turn on a freshly synced client: ``calls`` is when the caller has made its
last call (for per-sensor: when its gather of every sensor object is done, before the first
``set_strategy``), ``replies`` when every call's future is done, ``total`` when the caller's
gather is done and every sensor has its object.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiokatcp_device
import processes

from katcp_inspect import InspectingClientAsync

WAYS = ("bulk", "per-name", "per-sensor")


async def phases(client: InspectingClientAsync, way: str) -> tuple[float, float, float]:
    names = client.sensors
    start = time.perf_counter()
    if way == "bulk":
        await client.set_sampling_strategies(names, "auto")
        calls = replies = time.perf_counter()
        for name in names:
            client.future_get_sensor(name).result()
    else:
        if way == "per-name":
            futures = [client.set_sampling_strategy(name, "auto") for name in names]
            calls = time.perf_counter()
        else:
            sensors = await asyncio.gather(*(client.future_get_sensor(n) for n in names))
            calls = time.perf_counter()
            futures = [sensor.set_strategy("auto") for sensor in sensors]
        gathered = asyncio.gather(*futures)
        await asyncio.wait(futures)
        replies = time.perf_counter()
        await gathered
        for name in names:
            client.future_get_sensor(name).result()
    end = time.perf_counter()
    return calls - start, replies - start, end - start


async def measure(port: int, rounds: int) -> None:
    for _ in range(rounds):
        for way in WAYS:
            client = InspectingClientAsync("127.0.0.1", port, auto_sampling=None)
            client.connect()
            await client.until_synced(60)
            await asyncio.sleep(0.5)  # the device drops the last client's samplers
            calls, replies, total = await phases(client, way)
            print(f"{way:10}  calls {calls:.3f} s  replies {replies:.3f} s  "
                  f"total {total:.3f} s", flush=True)
            await client.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with processes.Devices([(10_000, 0)], serve=aiokatcp_device.serve) as device:
        asyncio.run(measure(device.ports[0], args.rounds))


if __name__ == "__main__":
    main()
