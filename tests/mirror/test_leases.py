"""Leases: each device owned by exactly one worker; a stopped or killed worker's devices are
taken over within the lease time; a worker that lost a lease cannot write."""

from __future__ import annotations

import ast
import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror import Coordinator, RedisMirror, connect
from katcp_inspect.mirror.calls import call
from katcp_inspect.mirror.schema import Keys

from .fake_client import FakeClient
from .helpers import eventually
from .redis_server import RedisServer

DEVICES = [f"d{i}" for i in range(8)]
ROOT = Path(__file__).resolve().parents[2]


class Owners:
    """Who owns what, by the coordinators' own callbacks; fails on any overlap."""

    def __init__(self) -> None:
        self.owned: dict[str, set[str]] = {}
        self.changed = asyncio.Event()

    def callbacks(self, worker: str) -> dict[str, Any]:
        self.owned[worker] = set()

        def acquire(name: str) -> None:
            others = [w for w, names in self.owned.items() if w != worker and name in names]
            assert not others, f"{name} acquired by {worker} while {others} own it"
            self.owned[worker].add(name)
            self.changed.set()

        def release(name: str) -> None:
            self.owned[worker].discard(name)
            self.changed.set()
        return {"on_acquire": acquire, "on_release": release}

    async def until(self, predicate: Any, timeout: float = 10.0) -> None:
        async def wait() -> None:
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout)


async def test_two_workers_split_the_devices_and_one_takes_over(
        io_loop: Any, redis_server: RedisServer) -> None:
    owners = Owners()
    redis = connect(redis_server.url)
    first = Coordinator(redis, "w1", DEVICES, lease=0.6, **owners.callbacks("w1"))
    second = Coordinator(redis, "w2", DEVICES, lease=0.6, **owners.callbacks("w2"))
    try:
        first.start()
        await owners.until(lambda: len(owners.owned["w1"]) == len(DEVICES))
        second.start()  # joins: the first gives half back, the second takes it
        await owners.until(lambda: len(owners.owned["w1"]) == len(owners.owned["w2"]) == 4)
        assert owners.owned["w1"] | owners.owned["w2"] == set(DEVICES)
        for name in DEVICES:
            holder = await redis.get(Keys().device(name, "lease"))
            owner = "w1" if name in owners.owned["w1"] else "w2"
            assert holder.decode().startswith(owner + ":")
        await first.stop()
        assert owners.owned["w1"] == set()
        await owners.until(lambda: len(owners.owned["w2"]) == len(DEVICES), timeout=3.0)
    finally:
        await first.stop()
        await second.stop()
        await redis.aclose()


async def read_lines(stream: asyncio.StreamReader, into: dict[str, set[str]],
                     owners: Owners) -> None:
    """What the worker process says it owns, into ``into["owned"]``."""
    while True:
        line = await stream.readline()
        if not line:
            return
        what, _, name = line.decode().strip().partition(" ")
        if what == "acquire":
            into.setdefault("owned", set()).add(ast.literal_eval(name))
        elif what == "release":
            into.setdefault("owned", set()).discard(ast.literal_eval(name))
        owners.changed.set()


async def test_a_killed_worker_is_taken_over_within_the_lease(
        io_loop: Any, redis_server: RedisServer) -> None:
    lease = 1.0
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.mirror.worker_process", redis_server.url, "killed",
        str(lease), *DEVICES, cwd=ROOT, stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 20)).strip() == b"started"
    child: dict[str, set[str]] = {"owned": set()}
    owners = Owners()
    reader = asyncio.ensure_future(read_lines(process.stdout, child, owners))
    redis = connect(redis_server.url)
    survivor = Coordinator(redis, "survivor", DEVICES, lease=lease,
                           **owners.callbacks("survivor"))
    try:
        await owners.until(lambda: len(child["owned"]) == len(DEVICES))
        survivor.start()
        await owners.until(lambda: len(owners.owned["survivor"]) == len(DEVICES) // 2)
        assert not owners.owned["survivor"] & child["owned"]
        await asyncio.sleep(2 * lease)  # a steady split: nobody takes anything more
        assert len(owners.owned["survivor"]) == len(DEVICES) // 2
        assert not owners.owned["survivor"] & child["owned"]

        process.send_signal(signal.SIGKILL)
        killed_at = asyncio.get_running_loop().time()
        await owners.until(lambda: len(owners.owned["survivor"]) == len(DEVICES), timeout=5)
        takeover = asyncio.get_running_loop().time() - killed_at
        assert takeover < 2 * lease + 0.5, f"takeover took {takeover:.2f} s"
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
        await reader
        await survivor.stop()
        await redis.aclose()


async def test_the_fence_refuses_a_write_with_another_token(
        io_loop: Any, redis_server: RedisServer) -> None:
    redis = connect(redis_server.url)
    keys = Keys()
    lease, state = keys.device("dev", "lease"), keys.device("dev", "state")
    try:
        await redis.set(lease, "new-owner")
        assert await call(redis, "status", [lease, state], ["old-owner", "state", "x"]) == -1
        await redis.delete(lease)
        assert await call(redis, "status", [lease, state], ["old-owner", "state", "x"]) == -3
        assert await redis.exists(state) == 0
        await redis.set(lease, "old-owner")
        assert await call(redis, "status", [lease, state], ["old-owner", "state", "x"]) == 1
        assert await redis.hget(state, "state") == b"x"
    finally:
        await redis.aclose()


@pytest.mark.parametrize("lease", [0.0, -1.0])
def test_a_lease_must_be_positive(lease: float) -> None:
    with pytest.raises(ValueError, match="lease"):
        Coordinator(None, "w", [], lease=lease)  # type: ignore[arg-type]


async def test_the_mirror_writes_only_what_it_owns(
        io_loop: Any, redis_server: RedisServer) -> None:
    """A one-process mirror of a device another worker holds writes nothing of it."""
    redis = connect(redis_server.url)
    await redis.set(Keys().device("taken", "lease"), "someone-else", px=60_000)
    mirror = RedisMirror(redis=redis, devices=["taken", "free"], fair=False, lease=0.6)
    for name in ("taken", "free"):
        mirror.add(name, FakeClient([Sensor(SensorType.INTEGER, "s")]))  # type: ignore[arg-type]
    await mirror.start()
    try:
        async def free_written() -> bool:
            return bool(await redis.exists(Keys().device("free", "state")))
        await eventually(free_written)
        assert mirror.owned == {"free"}
        assert await redis.exists(Keys().device("taken", "state")) == 0
    finally:
        await mirror.stop()
        await redis.aclose()
