"""``Writer``: the one task of a worker that writes its device mirrors to Redis.

Mirrors with something to write mark themselves (once per batch, not per update); the writer
wakes, takes every marked mirror's operations and sends them as one pipeline (no
transaction: each operation is one atomic script), so a batch costs one round trip whatever
the number of devices. While a pipeline is on its way, new readings accumulate in the
mirrors' bounded buffers: the slower Redis is, the larger (and fewer) the batches. A failed
pipeline (Redis unreachable, restarted) makes each of its mirrors write its whole state
again, after a randomised exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from redis.exceptions import NoScriptError, RedisError

from ..backoff import ExponentialRandomBackoff
from ..stats import OnceLogger
from .calls import load_scripts, queue

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from .device import DeviceMirror, Op

logger = logging.getLogger("katcp_inspect.mirror")

#: Script arguments per pipeline, past which the remaining mirrors wait for the next one
#: (bounds the memory and the time Redis spends on one batch).
MAX_ARGS = 200_000


class Writer:
    """Writes the operations of the mirrors that mark themselves, one pipeline at a time."""

    def __init__(self, redis: Redis, *, timeout: float = 10.0,
                 max_args: int = MAX_ARGS) -> None:
        self._redis = redis
        self._timeout = timeout
        self._max_args = max_args
        self._dirty: dict[DeviceMirror, None] = {}
        #: The task waits on this future for something to write (made per wait, not per
        #: update, on the loop it runs on).
        self._wake: asyncio.Future[None] | None = None
        self._idle_waiters: list[asyncio.Future[None]] = []
        self._task: asyncio.Task[None] | None = None
        self._to_retry: set[DeviceMirror] = set()
        self._retry_handle: asyncio.TimerHandle | None = None
        self._backoff = ExponentialRandomBackoff(0.05, 5.0)
        self._problems = OnceLogger(logger)
        self._closing = False
        #: Pipelines sent, and those that failed.
        self.pipelines = 0
        self.failed_pipelines = 0

    def mark(self, mirror: DeviceMirror) -> None:
        """``mirror`` has something to write."""
        self._dirty[mirror] = None
        self._wake_up()

    def _wake_up(self) -> None:
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self, timeout: float = 2.0) -> None:
        """Write what is pending (for at most ``timeout`` seconds), then end the task."""
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake_up()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except asyncio.TimeoutError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def until_idle(self) -> None:
        """Resolves once nothing is marked and no pipeline is on its way (for tests and
        benchmarks)."""
        if self._dirty or self._wake is None or self._wake.done():
            waiter = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(waiter)
            await waiter

    # ------------------------------------------------------------------ the task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        await self._load_scripts()  # else a fresh Redis refuses the first batch
        while True:
            if not self._dirty:
                if self._closing:
                    return
                self._idle()
                self._wake = loop.create_future()
                await self._wake
                continue
            await self._send(self._collect())

    def _idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _collect(self) -> list[tuple[DeviceMirror, Op]]:
        batch: list[tuple[DeviceMirror, Op]] = []
        size = 0
        while self._dirty and size < self._max_args:
            mirror = next(iter(self._dirty))
            del self._dirty[mirror]
            for op in mirror.take():
                batch.append((mirror, op))
                size += len(op.args) + len(op.keys)
        return batch

    async def _send(self, batch: list[tuple[DeviceMirror, Op]]) -> None:
        if not batch:
            return
        pipe = self._redis.pipeline(transaction=False)
        for _, op in batch:
            queue(pipe, op.script, op.keys, op.args)
        self.pipelines += 1
        try:
            results = await asyncio.wait_for(pipe.execute(raise_on_error=False), self._timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._lost(batch, exc)
            return
        if any(isinstance(r, NoScriptError) for r in results):
            await self._load_scripts()
        retry = {mirror for (mirror, op), result in zip(batch, results)
                 if mirror.done(op, result)}
        if retry:
            self._retry(retry)
        else:
            self._backoff.success()

    def _lost(self, batch: list[tuple[DeviceMirror, Op]], error: BaseException) -> None:
        self.failed_pipelines += 1
        self._problems.log(("lost", type(error)), "Writing to Redis failed (%r); retrying "
                           "with backoff, then writing each device's whole state", error)
        mirrors = {mirror for mirror, _ in batch}
        for mirror in mirrors:
            mirror.failed(error)
        self._retry(mirrors)

    async def _load_scripts(self) -> None:
        try:
            await asyncio.wait_for(load_scripts(self._redis), self._timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._problems.log("load", "Loading the mirror's scripts failed (%r)", exc)

    def _retry(self, mirrors: set[DeviceMirror]) -> None:
        """Mark ``mirrors`` again after the backoff's delay."""
        if self._closing:
            return
        self._to_retry.update(mirrors)
        if self._retry_handle is None:
            self._retry_handle = asyncio.get_running_loop().call_later(
                self._backoff.delay, self._retry_now)
            self._backoff.failed()

    def _retry_now(self) -> None:
        self._retry_handle = None
        mirrors, self._to_retry = self._to_retry, set()
        for mirror in mirrors:
            if mirror.active:
                self.mark(mirror)


__all__ = ["MAX_ARGS", "Writer"]
