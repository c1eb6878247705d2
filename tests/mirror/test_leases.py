"""Leases: each device owned by exactly one worker; a stopped or killed worker's devices are
taken over within the lease time; a worker that lost a lease cannot write."""

from __future__ import annotations

import ast
import asyncio
import functools
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror import Coordinator, RedisMirror, connect, connect_blocking
from katcp_inspect.mirror.calls import call
from katcp_inspect.mirror.renewal import RoundPlan
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


def blocking(url: str, lease: float) -> Any:
    """What a :class:`RedisMirror` made from ``url`` gives its coordinator: renewals from a
    thread."""
    return functools.partial(connect_blocking, url, None, lease / 3)


@pytest.mark.parametrize("thread", [False, True], ids=["renewed-on-the-loop", "thread"])
async def test_two_workers_split_the_devices_and_one_takes_over(
        io_loop: Any, redis_server: RedisServer, thread: bool) -> None:
    owners = Owners()
    redis = connect(redis_server.url)
    renewal = blocking(redis_server.url, 0.6) if thread else None
    first = Coordinator(redis, "w1", DEVICES, lease=0.6, blocking=renewal,
                        **owners.callbacks("w1"))
    second = Coordinator(redis, "w2", DEVICES, lease=0.6, blocking=renewal,
                         **owners.callbacks("w2"))
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


async def test_workers_started_together_split_without_handing_devices_over(
        io_loop: Any, redis_server: RedisServer) -> None:
    released: list[str] = []
    owners = Owners()
    redis = connect(redis_server.url)
    workers = []
    for worker in ("w1", "w2"):
        callbacks = owners.callbacks(worker)

        def release(name: str, forward: Any = callbacks["on_release"]) -> None:
            released.append(name)
            forward(name)
        workers.append(Coordinator(redis, worker, DEVICES, lease=0.6,
                                   on_acquire=callbacks["on_acquire"], on_release=release))
    try:
        for coordinator in workers:
            coordinator.start()
        await owners.until(lambda: len(owners.owned["w1"]) == len(owners.owned["w2"]) == 4)
        assert released == []  # each took its share at once: none taken and given back
    finally:
        for coordinator in workers:
            await coordinator.stop()
        await redis.aclose()


async def _hold_the_loop(seconds: float, each: float) -> None:
    """Keep the event loop busy for ``seconds``: callbacks of ``each`` seconds, one per turn."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(each)
        await asyncio.sleep(0)


async def test_a_busy_event_loop_keeps_its_leases(io_loop: Any,
                                                  redis_server: RedisServer) -> None:
    """Each turn of the loop takes longer than a renewal round may: renewed from the thread,
    the leases are kept all the same."""
    owners = Owners()
    redis = connect(redis_server.url)
    lease = 0.6
    worker = Coordinator(redis, "busy", DEVICES, lease=lease, fair=False,
                         blocking=blocking(redis_server.url, lease), **owners.callbacks("busy"))
    try:
        worker.start()
        await owners.until(lambda: len(owners.owned["busy"]) == len(DEVICES))
        tokens = {name: worker.token(name) for name in DEVICES}
        await _hold_the_loop(4 * lease, 0.75 * lease)
        assert owners.owned["busy"] == set(DEVICES)
        assert {name: worker.token(name) for name in DEVICES} == tokens
        for name, token in tokens.items():
            assert (await redis.get(Keys().device(name, "lease"))).decode() == token
    finally:
        await worker.stop()
        await redis.aclose()


async def test_the_renewal_thread_outlives_an_unexpected_error(
        io_loop: Any, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a round (here: the answer cannot be read) is logged; the next round, on a new
    connection, renews as before."""
    owners = Owners()
    redis = connect(redis_server.url)
    lease = 0.6
    worker = Coordinator(redis, "w", DEVICES, lease=lease, fair=False,
                         blocking=blocking(redis_server.url, lease), **owners.callbacks("w"))
    failures = []
    result = RoundPlan.result

    def fails_twice(self: RoundPlan, *args: Any) -> Any:
        if len(failures) < 2:
            failures.append(args)
            raise RuntimeError("a bug")
        return result(self, *args)
    monkeypatch.setattr(RoundPlan, "result", fails_twice)
    try:
        worker.start()
        await owners.until(lambda: len(owners.owned["w"]) == len(DEVICES))
        await _hold_the_loop(3 * lease, lease / 4)
        assert len(failures) == 2
        assert owners.owned["w"] == set(DEVICES)
    finally:
        await worker.stop()
        await redis.aclose()


async def test_a_stuck_event_loop_lets_its_leases_lapse(io_loop: Any,
                                                        redis_server: RedisServer) -> None:
    """The thread renews only while the loop runs: a process whose loop is stuck gives its
    devices up to other workers (within twice the lease time)."""
    owners = Owners()
    redis = connect(redis_server.url)
    lease = 0.6
    worker = Coordinator(redis, "stuck", DEVICES, lease=lease, fair=False,
                         blocking=blocking(redis_server.url, lease), **owners.callbacks("stuck"))
    check = connect_blocking(redis_server.url, None, 1.0)
    try:
        worker.start()
        await owners.until(lambda: len(owners.owned["stuck"]) == len(DEVICES))
        time.sleep(2 * lease + 0.3)  # the loop is stuck: nothing on it runs
        assert check.mget([Keys().device(name, "lease") for name in DEVICES]) == [
            None] * len(DEVICES)
    finally:
        check.close()
        await worker.stop()
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
