"""(h) The Redis mirror: redis-server's pipelined ceiling, the mirror's write rate as a share
of it, reader lag at a steady rate, and lease takeover after a worker is killed.

    python benchmarks/redis_mirror.py [--quick]      # or: python benchmarks/run.py --metrics h

Each part starts its own ``redis-server`` (loopback, free port, no persistence) and stops it
by its PID. The writer (a :class:`~katcp_inspect.mirror.RedisMirror` of in-process sensors:
no KATCP device, so that only the mirror is measured) and the reader run in processes of
their own; the two cores are shared by redis-server, the writer and the reader.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror import Coordinator, FleetView, RedisMirror, Update, connect
from katcp_inspect.sync_states import SYNCED

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[int]:
    """A fresh redis-server on a free port; stopped by its PID."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="bench-redis-")
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", directory], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), 0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)
        yield port
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)


# ---------------------------------------------------------------------- the ceiling

CEILING_COMMANDS = {
    "SET": ["-t", "set"],
    "HSET": ["-t", "hset"],
    "XADD": ["XADD", "bench:stream", "MAXLEN", "~", "10000", "*", "f", "v"],
}


def ceiling(port: int, requests: int) -> dict[str, float]:
    """redis-benchmark's requests per second, 16 commands per pipeline, one command each."""
    rates = {}
    for name, args in CEILING_COMMANDS.items():
        command = ["redis-benchmark", "-p", str(port), "-P", "16", "-q", "-n", str(requests),
                   *args]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        found = re.findall(r"([\d.]+) requests per second", output.replace("\r", "\n"))
        rates[name] = float(found[-1])
    return rates


# ---------------------------------------------------------------------- the writer

class Client:
    """Just what the mirror reads of an inspecting client: a synced model of sensors."""

    def __init__(self, sensors: list[Sensor]) -> None:
        self.objects = {s.name: s for s in sensors}
        self.state = SYNCED
        self.katcp_client = type("K", (), {"protocol_flags": None})()
        self.requests: list[str] = []

    @property
    def sensors(self) -> list[str]:
        return list(self.objects)

    def future_get_sensor(self, name: str) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        future.set_result(self.objects[name])
        return future

    def set_state_callback(self, callback: Any) -> None:
        pass


def make_fleet(devices: int, sensors: int) -> dict[str, Client]:
    fleet = {}
    for d in range(devices):
        made = []
        for s in range(sensors):
            sensor = Sensor(SensorType.FLOAT, f"sensor.{s:05d}", "A sensor.", "V")
            sensor.set(time.time(), Sensor.NOMINAL, 0.0)
            made.append(sensor)
        fleet[f"m{d:04d}"] = Client(made)
    return fleet


async def mirrored(url: str, fleet: dict[str, Client]) -> tuple[RedisMirror, float]:
    """A one-process mirror of ``fleet``, every model committed; and how long that took."""
    mirror = RedisMirror(url, list(fleet), fair=False, lease=10.0)
    for name, client in fleet.items():
        mirror.add(name, client)  # type: ignore[arg-type]
    started = time.perf_counter()
    await mirror.start()
    while len(mirror.owned) < len(fleet) or any(
            m.stats.commits == 0 for m in map(mirror.mirror, fleet) if m is not None):
        await asyncio.sleep(0.01)
    await mirror.until_written()
    return mirror, time.perf_counter() - started


async def write_rate(url: str, devices: int, sensors: int, updates: int) -> dict[str, float]:
    """Readings a second the mirror writes: ``updates`` readings, set in batches of 5 000
    (each batch one loop turn; which sensors, drawn at random before the clock starts), until
    the writer is idle."""
    fleet = make_fleet(devices, sensors)
    all_sensors = [s for c in fleet.values() for s in c.objects.values()]
    batch = 5_000
    batches = [random.sample(all_sensors, min(batch, updates - done))
               for done in range(0, updates, batch)]
    mirror, commit = await mirrored(url, fleet)
    try:
        value = 0.0
        started = time.perf_counter()
        for chosen in batches:
            now = time.time()
            for sensor in chosen:
                value += 1.0
                sensor.set(now, Sensor.NOMINAL, value)
            await asyncio.sleep(0)
        await mirror.until_written()
        elapsed = time.perf_counter() - started
        dropped = sum(m.stats.dropped for m in map(mirror.mirror, fleet) if m is not None)
    finally:
        await mirror.stop()
    return {"readings_per_second": updates / elapsed, "commit_seconds": commit,
            "sensors": devices * sensors, "dropped": dropped}


async def paced_writer(url: str, devices: int, sensors: int, rate: int, seconds: float
                       ) -> dict[str, float]:
    """Readings at a steady ``rate`` a second (every 10 ms a share), timestamped when set."""
    fleet = make_fleet(devices, sensors)
    all_sensors = [s for c in fleet.values() for s in c.objects.values()]
    mirror, _ = await mirrored(url, fleet)
    per_tick = rate // 100
    try:
        print("ready", flush=True)
        sys.stdin.readline()  # the reader follows: go
        loop = asyncio.get_running_loop()
        start = loop.time()
        for tick in range(int(seconds * 100)):
            await asyncio.sleep(max(0.0, start + tick / 100 - loop.time()))
            now = time.time()
            for sensor in random.sample(all_sensors, per_tick):
                sensor.set(now, Sensor.NOMINAL, now)
        await mirror.until_written()
        behind = loop.time() - start - seconds
    finally:
        await mirror.stop()
    return {"late_seconds": behind}


async def reader(url: str, devices: int, expected: int, timeout: float
                 ) -> dict[str, float]:
    """Follow every device; the lag of each update: arrival minus the time it was set. Says
    ``following`` once it has every device's starting point."""
    lags = []
    gaps = 0
    async with FleetView(url, block=0.05) as view:
        updates = view.follow(initial=True)
        for _ in range(devices):
            await updates.__anext__()  # the start Gaps
        print("following", flush=True)

        async def collect() -> None:
            nonlocal gaps
            async for item in updates:
                if isinstance(item, Update):
                    lags.append(time.time() - item.reading.timestamp)
                    if len(lags) >= expected:
                        return
                else:
                    gaps += 1
        with contextlib.suppress(asyncio.TimeoutError):  # some missing: the gaps say why
            await asyncio.wait_for(collect(), timeout)
        await updates.aclose()  # type: ignore[attr-defined]
    lags.sort()
    return {"p50_ms": 1000 * lags[len(lags) // 2], "p99_ms": 1000 * lags[int(len(lags) * .99)],
            "max_ms": 1000 * lags[-1], "updates": len(lags), "gaps": gaps}


# ---------------------------------------------------------------------- takeover

async def takeover(url: str, lease: float, devices: int) -> float:
    """Seconds from SIGKILL of a worker process until the survivor owns all the devices."""
    names = [f"d{i}" for i in range(devices)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mirror.worker_process", url, "victim", str(lease), *names,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    await process.stdout.readline()
    redis = connect(url)
    owned: set[str] = set()
    survivor = Coordinator(redis, "survivor", names, lease=lease, on_acquire=owned.add,
                           on_release=owned.discard)
    try:
        while len(await redis.keys("katcp:v1:dev:*:lease")) < devices:
            await asyncio.sleep(0.01)
        survivor.start()
        while len(owned) < devices // 2:
            await asyncio.sleep(0.005)
        await asyncio.sleep(lease)
        process.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        while len(owned) < devices:
            await asyncio.sleep(0.005)
        return time.perf_counter() - killed
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
        await survivor.stop()
        await redis.aclose()


# ---------------------------------------------------------------------- the measure

def run_part(*args: str, stdin: Any = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stdin=stdin)


def lag(url: str, devices: int, sensors: int, rate: int, seconds: float) -> dict[str, Any]:
    writer = run_part("--part", "paced", url, str(devices), str(sensors), str(rate),
                      str(seconds), stdin=subprocess.PIPE)
    assert writer.stdout is not None and writer.stdin is not None
    assert writer.stdout.readline().strip() == "ready"
    follower = run_part("--part", "reader", url, str(devices), str(int(rate * seconds)),
                        str(seconds + 30))
    assert follower.stdout is not None
    assert follower.stdout.readline().strip() == "following"
    writer.stdin.write("go\n")
    writer.stdin.flush()
    written = json.loads(writer.stdout.readline())
    read = json.loads(follower.stdout.readline())
    writer.wait(60)
    follower.wait(60)
    return {**read, **written}


def measure(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with redis_server() as port:
        results["ceiling"] = ceiling(port, 100_000 if quick else 500_000)
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        part = run_part("--part", "rate", url, "10" if quick else "100", "1000",
                        str(100_000 if quick else 1_000_000))
        assert part.stdout is not None
        results["write"] = json.loads(part.stdout.readline())
        part.wait(120)
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        results["lag"] = lag(url, 100, 1000, 50_000, 2.0 if quick else 10.0)
    with redis_server() as port:
        url = f"redis://127.0.0.1:{port}/0"
        lease = 2.0
        times = [asyncio.run(takeover(url, lease, 20)) for _ in range(1 if quick else 3)]
        results["takeover"] = {"lease": lease, "seconds": statistics.median(times),
                               "all": times}
    return results


def metric(quick: bool) -> list[tuple[str, str, str, str]]:
    """The rows of (h) for benchmarks/run.py (none but a note without redis-server)."""
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        return [("(h) Redis mirror", "skipped: no redis-server", "", "")]
    return rows(measure(quick))


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(what, measured, target, met) for the benchmark table."""
    ceiling, write, lag_, take = (results[k] for k in ("ceiling", "write", "lag", "takeover"))
    share = write["readings_per_second"] / ceiling["HSET"]
    return [
        ("(h) redis-benchmark -P 16: SET / HSET / XADD per s",
         " / ".join(f"{ceiling[k]:,.0f}" for k in ("SET", "HSET", "XADD")), "", ""),
        ("(h) mirror write rate, readings per s (share of HSET)",
         f"{write['readings_per_second']:,.0f} ({share:.0%})", ">= 50 %",
         "yes" if share >= 0.5 else "NO"),
        (f"(h) first commit of {write['sensors']:,} sensors", f"{write['commit_seconds']:.2f} s",
         "", ""),
        ("(h) reader lag at 50k updates/s, p50 / p99 / max",
         f"{lag_['p50_ms']:.1f} / {lag_['p99_ms']:.1f} / {lag_['max_ms']:.1f} ms",
         "p99 <= 100 ms", "yes" if lag_["p99_ms"] <= 100 else "NO"),
        (f"(h) lease takeover after SIGKILL (lease {take['lease']:g} s)",
         f"{take['seconds']:.2f} s", f"<= {2 * take['lease']:g} s",
         "yes" if take["seconds"] <= 2 * take["lease"] else "NO"),
    ]


def part(args: list[str]) -> None:
    """One process of the measure (``--part NAME ARGS``): prints its result as JSON."""
    name, url, *rest = args
    if name == "rate":
        result = asyncio.run(write_rate(url, *map(int, rest)))
    elif name == "paced":
        devices, sensors, rate = map(int, rest[:3])
        result = asyncio.run(paced_writer(url, devices, sensors, rate, float(rest[3])))
    else:
        result = asyncio.run(reader(url, int(rest[0]), int(rest[1]), float(rest[2])))
    print(json.dumps(result), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller workloads")
    parser.add_argument("--part", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:
        part(args.part)
        return 0
    results = measure(args.quick)
    print(json.dumps(results, indent=1))
    for what, measured, target, met in rows(results):
        print(f"{what:58} {measured:>28} {target:>14} {met}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
