"""Where the per-sensor and per-name ways of metric (f) spend their time, phase by phase; with
``--model``, the model phase of a sync against the device's.

    python benchmarks/sampling_phases.py [--rounds 2]
    python benchmarks/sampling_phases.py --model [--rounds 8]

Against one aiokatcp device of 10,000 sensors (``aiokatcp_device.py``, in a process of its
own), each way in turn on a freshly synced client: ``calls`` is when the caller has made its
last call (for per-sensor: when its gather of every sensor object is done, before the first
``set_strategy``), ``replies`` when every call's future is done, ``total`` when the caller's
gather is done and every sensor has its object.

``--model`` alternates, ``rounds`` times each, the device's floor for the model phase (a client
that sends ``?help`` and ``?sensor-list`` together and reads until ``!sensor-list``, parsing
nothing) and an ``auto_sampling`` sync, timed from creating the client until its first
``?sensor-sampling`` is sent: the model phase, and the step from the model to sampling.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import aiokatcp_device
import processes
import ways

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


async def floor_model(port: int) -> float:
    start = time.perf_counter()
    _, writer, _ = await ways.list_all(port)
    seconds = time.perf_counter() - start
    writer.close()
    return seconds


async def model_phase(port: int) -> float:
    """Seconds from creating an ``auto_sampling`` client until its first ``?sensor-sampling``."""
    start = time.perf_counter()
    client = InspectingClientAsync("127.0.0.1", port, auto_sampling="auto")
    sent: list[float] = []
    request = client.katcp_client.request_raw

    def timed(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "sensor-sampling" and not sent:
            sent.append(time.perf_counter() - start)
        return request(name, *args, **kwargs)

    client.katcp_client.request_raw = timed  # type: ignore[method-assign]
    client.connect()
    await client.until_synced(60)
    await client.stop()
    return sent[0]


async def measure_model(port: int, rounds: int) -> None:
    floors, ours = [], []
    for _ in range(rounds):
        floors.append(await floor_model(port))
        await asyncio.sleep(0.5)
        ours.append(await model_phase(port))
        await asyncio.sleep(0.5)
    print(f"device floor, ?help and ?sensor-list read: {statistics.median(floors):.3f} s; "
          f"katcp-inspect, first ?sensor-sampling sent: {statistics.median(ours):.3f} s "
          f"(medians of {rounds})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--model", action="store_true", help="the model phase against the floor")
    args = parser.parse_args()
    with processes.Devices([(10_000, 0)], serve=aiokatcp_device.serve) as device:
        if args.model:
            asyncio.run(measure_model(device.ports[0], args.rounds or 8))
        else:
            asyncio.run(measure(device.ports[0], args.rounds or 2))


if __name__ == "__main__":
    main()
