"""The soak run shared by test 7 and ``scripts/soak.py``.

A SimulatedDevice with ``sensors`` demo sensors, all of them changing ``rate`` times a
second, drops every client every 2-5 s (at random). One inspecting client samples every
sensor with ``auto``. After each resync (a steady point) a sample is taken: RSS, the loop's
tasks, timers (live and all) and ready callbacks, objects tracked by the garbage collector,
and the sizes of the client's own tables (waiters, hooks, callbacks, pending requests, cached
objects). None of them may grow: the first sample after the warm-up is the reference.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Callable

import attrs

from ...inspecting_client import SYNCED, InspectingClientAsync
from ...kattypes import SensorStatus
from ..device import SimulatedDevice
from .probes import fast_client, leak_probe, rss_mib


def client_tables(client: InspectingClientAsync) -> dict[str, int]:
    kc = client.katcp_client
    return {
        "state_waiters": len(client._states.waiters),
        "wake_waiters": len(client._sync.wake),
        "connect_waiters": len(kc._connect_waiters),
        "connected_flag_waiters": len(kc._connected_flag),
        "closing_tasks": len(kc._closing_tasks),
        "pending_requests": len(kc._requests.by_mid)
        + sum(len(q) for q in kc._requests.by_name.values()),
        "inform_hooks": kc._informs.hook_count(),
        "callbacks": len(kc.connected_callbacks._items) + len(kc.disconnected_callbacks._items)
        + len(kc.failed_connect_callbacks._items),
        "sensor_objects": len(client._updates.objects),
        "targets": len(client._updates.targets),
        "records": len(client._updates.records),
        "observers": sum(len(getattr(s, "observers", ())) for s in
                         client._updates.objects.values()),
        "unknown_asked": len(client._sync.unknown_asked),
    }


@attrs.define
class Sample:
    elapsed: float
    rss: float
    loop: dict[str, int]
    tables: dict[str, int]
    scheduled_all: int


@attrs.define
class SoakResult:
    duration: float
    sensors: int
    drops: int
    resyncs: int
    updates: int
    samples: list[Sample]
    warmup: int

    @property
    def reference(self) -> Sample:
        return self.samples[min(self.warmup, len(self.samples) - 1)]

    @property
    def last(self) -> Sample:
        return self.samples[-1]

    def growth(self) -> dict[str, float]:
        """What grew from the reference sample to the last (RSS in MiB; counts)."""
        ref, last = self.reference, self.last
        out: dict[str, float] = {"rss_mib": round(last.rss - ref.rss, 2)}
        for table in ("loop", "tables"):
            before, after = getattr(ref, table), getattr(last, table)
            out.update({k: after[k] - before[k] for k in after if after[k] != before[k]})
        return out

    def summary(self) -> str:
        ref, last = self.reference, self.last
        rss = [s.rss for s in self.samples[self.warmup:]] or [last.rss]
        return (f"{self.duration:.0f} s, {self.sensors} sensors sampled (auto), "
                f"{self.drops} drops, {self.resyncs} resyncs, ~{self.updates:,} updates; "
                f"RSS {ref.rss:.1f} -> {last.rss:.1f} MiB (range after warm-up "
                f"{min(rss):.1f}-{max(rss):.1f}); tasks {ref.loop['tasks']} -> "
                f"{last.loop['tasks']}; live timers {ref.loop['timers']} -> "
                f"{last.loop['timers']}; loop._scheduled {ref.scheduled_all} -> "
                f"{last.scheduled_all}; gc objects {ref.loop['gc_objects']} -> "
                f"{last.loop['gc_objects']}; client tables unchanged: "
                f"{ref.tables == last.tables}")


class _Counter:
    def __init__(self) -> None:
        self.count = 0

    def update(self, sensor: Any, reading: Any) -> None:
        if reading.status is not SensorStatus.UNREACHABLE:  # not the marks on disconnection
            self.count += 1


async def run_soak(duration: float = 30.0, *, sensors: int = 1000, rate: float = 1.0,
                   drop_every: tuple[float, float] = (2.0, 5.0), warmup: int = 1,
                   seed: int = 7, progress: Callable[[Sample], None] | None = None
                   ) -> SoakResult:
    rng = random.Random(seed)
    device = SimulatedDevice.with_demo_sensors(sensors, rate=None)
    device.start_generator("/.*/", rate)
    await device.start("127.0.0.1", 0)
    client = fast_client(device.port, reconnect=0.05, auto_sampling="auto")
    loop = asyncio.get_running_loop()
    synced = asyncio.Event()
    client.set_state_callback(lambda state, changes: synced.set() if state == SYNCED else None)
    counter = _Counter()
    samples: list[Sample] = []
    drops = 0
    start = time.monotonic()
    try:
        await client.connect()
        await asyncio.wait_for(synced.wait(), 30)
        # Count updates through one observer on one sensor (it follows rebuilt objects).
        sensor = await client.future_get_sensor(next(iter(device.sensors)))
        if sensor is None:
            raise RuntimeError("the client's model lacks the device's first sensor")
        sensor.attach(counter)
        while True:
            left = duration - (time.monotonic() - start)
            if left <= 0:
                break
            await asyncio.sleep(min(left, rng.uniform(*drop_every)))
            if time.monotonic() - start >= duration:
                break
            synced.clear()
            device.drop_clients()
            drops += 1
            await asyncio.wait_for(synced.wait(), 30)
            await asyncio.sleep(0.05)  # let the first updates after the sync through
            sample = Sample(time.monotonic() - start, rss_mib(), leak_probe(),
                            client_tables(client), len(getattr(loop, "_scheduled", [])))
            samples.append(sample)
            if progress is not None:
                progress(sample)
        return SoakResult(time.monotonic() - start, sensors, drops, client.stats.syncs - 1,
                          counter.count * sensors, samples, warmup)
    finally:
        await client.stop()
        await device.stop()
