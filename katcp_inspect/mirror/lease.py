"""``Coordinator``: which devices of a shared configuration this worker owns, by leases in
Redis.

Each device has a lease key (``{prefix}v1:dev:{name}:lease``) holding the token of the one
worker that owns it, set with ``SET NX PX`` and renewed every third of the lease time. Every
mirror write compares that key with the writer's token on the server (see
:mod:`~katcp_inspect.mirror.scripts`), so a worker that lost a lease cannot write, however
late its commands arrive.

Locally a lease counts as held until a margin before the server can let it expire: measured
from when the last successful renewal was *sent*, so a worker cut off from Redis gives its
devices up (``on_release``) before any other worker can take them. Workers announce
themselves in a sorted set scored by the server's clock; each takes at most its fair share
(the devices divided by the live workers, rounded up), preferring devices by rendezvous
hashing so that assignments are stable, and gives back what exceeds its share when workers
join. A worker takes its first devices one round after it announced itself, so that workers
started together see each other first rather than one taking every device and giving half
back. The renewals go from a thread of their own when the coordinator can open a connection
(see :mod:`~katcp_inspect.mirror.renewal`), else from the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import math
import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from redis.exceptions import RedisError

from ..backoff import ExponentialRandomBackoff
from ..stats import OnceLogger
from ..text import printable
from .calls import execute, load_scripts, queue
from .renewal import Lease, Renewal, RenewalThread, RoundPlan
from .schema import Keys

if TYPE_CHECKING:
    import redis
    from redis.asyncio import Redis

logger = logging.getLogger("katcp_inspect.mirror.lease")

#: The share of the lease time a lease counts as held locally after its renewal was sent: the
#: rest covers a renewal round that takes up to a third of the lease before it gives up.
LOCAL_SHARE = 0.6

DeviceCallback = Callable[[str], Any]


def _preference(worker: str, device: str) -> int:
    """Rendezvous hashing: each worker ranks the devices its own way, the same every time."""
    digest = hashlib.sha1(f"{worker}\0{device}".encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big")


class Coordinator:
    """Owns devices of ``devices`` for worker ``worker_id`` through leases of ``lease``
    seconds. ``on_acquire(name)`` is called when this worker gains a device,
    ``on_release(name)`` when it loses or gives one up (either may return an awaitable; it
    is run as a task, never awaited by the lease loop). ``fair=False`` takes every device it
    can (one process mirroring a whole fleet). With ``blocking`` (a function that opens a
    blocking :class:`redis.Redis` connection), the renewals go from a thread of their own."""

    def __init__(self, redis: Redis, worker_id: str, devices: Iterable[str], *,
                 keys: Keys | None = None, lease: float = 5.0, fair: bool = True,
                 on_acquire: DeviceCallback | None = None,
                 on_release: DeviceCallback | None = None,
                 blocking: Callable[[], redis.Redis] | None = None) -> None:
        if not lease > 0:
            raise ValueError(f"lease must be positive, not {lease!r}")
        self.worker_id = worker_id
        self.lease = lease
        self.fair = fair
        self.on_acquire = on_acquire
        self.on_release = on_release
        #: Live workers at the last heartbeat (this one included).
        self.workers = 0
        self._redis = redis
        self._keys = keys or Keys()
        self._devices = dict.fromkeys(devices)
        #: Owned device → (token, local deadline on the ``time.monotonic()`` clock).
        self._owned: dict[str, tuple[str, float]] = {}
        self._plan = RoundPlan(self._keys, worker_id, lease)
        self._blocking = blocking
        self._thread: RenewalThread | None = None
        #: Leases the renewal thread claimed again after this worker had given them up.
        self._strays: list[Lease] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        #: Set to start the next round at once (stopping, or the thread's first report).
        self._poke: asyncio.Event | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._backoff = ExponentialRandomBackoff(min(0.1, lease / 10), lease / 3)
        self._problems = OnceLogger(logger)

    @property
    def period(self) -> float:
        """Seconds between two lease rounds (renew, then acquire or give back)."""
        return self.lease / 3

    @property
    def owned(self) -> frozenset[str]:
        return frozenset(self._owned)

    @property
    def devices(self) -> list[str]:
        return list(self._devices)

    def token(self, name: str) -> str | None:
        """The token of this worker's lease on device ``name``, or None."""
        held = self._owned.get(name)
        return None if held is None else held[0]

    def set_devices(self, devices: Iterable[str]) -> None:
        """The configuration's devices now; those owned and no longer in it are given up at
        the next round."""
        self._devices = dict.fromkeys(devices)

    def lost(self, name: str) -> None:
        """A write for ``name`` was refused: another worker holds its lease."""
        if name in self._owned:
            self._lose(name)
            self._publish()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the lease loop (it never waits for Redis: it retries with backoff)."""
        if self._task is None:
            self._stopping = False
            self._poke = asyncio.Event()
            self._task = asyncio.ensure_future(self._run(self._poke))
            if self._blocking is not None:
                self._thread = RenewalThread(self._plan, self._blocking, self.period,
                                             asyncio.get_running_loop(), self._renewed)
                self._thread.start()

    async def stop(self, timeout: float = 2.0) -> None:
        """Give every lease up (``on_release`` first, then the keys deleted, for at most
        ``timeout`` seconds) and leave the workers' set."""
        task, self._task = self._task, None
        if task is not None and self._poke is not None:
            self._stopping = True
            self._poke.set()
            await asyncio.gather(task, return_exceptions=True)
        thread, self._thread = self._thread, None
        if thread is not None:
            await thread.stop(timeout)
        owned = list(self._owned.items())
        for name in list(self._owned):
            self._lose(name)
        try:
            await asyncio.wait_for(self._leave(owned), timeout)
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            self._problems.log("leave", "Giving the leases back failed (%r); they expire "
                               "within %g s", exc, self.lease)
        pending = list(self._pending)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _leave(self, owned: list[tuple[str, tuple[str, float]]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for name, (token, _) in owned:
            queue(pipe, "release", [self._keys.device(name, "lease")], [token])
        queue(pipe, "heartbeat", [self._keys.workers], [self.worker_id, 0])
        await execute(self._redis, pipe)

    # ------------------------------------------------------------------ the loop

    async def _run(self, poke: asyncio.Event) -> None:
        settled = time.monotonic() + (self.period if self.fair else 0.0)
        with contextlib.suppress(RedisError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(load_scripts(self._redis), self.period)
        while not self._stopping:
            sent = time.monotonic()
            if self._thread is not None:
                self._thread.tick()
            # Renewed from the thread, a round only balances: a busy loop may take longer.
            limit = self.period if self._thread is None else self.lease
            try:
                await asyncio.wait_for(self._round(sent, sent >= settled), limit)
            except (RedisError, OSError, asyncio.TimeoutError) as exc:
                self._problems.log(("round", type(exc)), "Lease round failed (%r); retrying; "
                                   "devices are given up %g s after their last renewal",
                                   exc, self.lease * LOCAL_SHARE)
                delay = self._backoff.delay
                self._backoff.failed()
            else:
                self._backoff.success()
                delay = self.period - (time.monotonic() - sent)
            self._expire(time.monotonic())
            self._publish()
            if self._owned:
                nearest = min(deadline for _, deadline in self._owned.values())
                delay = min(delay, nearest - time.monotonic())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(poke.wait(), max(delay, 0.01))
            poke.clear()

    def _expire(self, now: float) -> None:
        # What the thread renewed counts even if its report is still queued behind the
        # loop's work (the order of a thread's callbacks and the loop's timers after a long
        # turn differs between Python versions).
        renewed = {} if self._thread is None else self._thread.renewed
        for name, (token, deadline) in list(self._owned.items()):
            sent = renewed.get(token)
            if sent is not None and sent + self.lease * LOCAL_SHARE > deadline:
                deadline = sent + self.lease * LOCAL_SHARE
                self._owned[name] = (token, deadline)
            if deadline <= now:
                self._problems.log("expired", "%s: lease not renewed in time; given up",
                                   printable(name))
                self._lose(name)

    async def _round(self, sent: float, acquire: bool) -> None:
        if self._thread is None:
            leases = self._leases()
            pipe = self._redis.pipeline(transaction=False)
            self._plan.queue(pipe, leases)
            self._renewed(self._plan.result(sent, leases, await execute(self._redis, pipe)))
        elif not self.workers:
            return  # the thread has not heard from Redis yet: the share is unknown
        strays, self._strays = self._strays, []
        if strays:
            await self._release(strays)
        share = self._share()
        unwanted = [n for n in self._owned if n not in self._devices]
        excess = len(self._owned) - share
        if excess > 0 or unwanted:
            await self._give_back(unwanted, excess)
        elif excess < 0 and acquire:
            await self._acquire(-excess)

    def _share(self) -> int:
        if not self.fair:
            return len(self._devices)
        return math.ceil(len(self._devices) / max(self.workers, 1))

    def _renewed(self, renewal: Renewal) -> None:
        """A round's outcome (from the thread, or from :meth:`_round`)."""
        if self._thread is not None:
            self._thread.tick()
        if renewal.error is not None:
            self._problems.log(("renew", type(renewal.error)), "Renewing the leases failed "
                               "(%r); retrying; devices are given up %g s after their last "
                               "renewal", renewal.error, self.lease * LOCAL_SHARE)
            return
        if not self.workers and self._poke is not None:
            self._poke.set()  # the share is known now: no need to wait for the next round
        self.workers = renewal.workers
        deadline = renewal.sent + self.lease * LOCAL_SHARE
        for (name, token), result in zip(renewal.leases, renewal.results):
            held = self._owned.get(name)
            if held is None or held[0] != token:  # given up since the round was sent
                if result == 2:
                    self._strays.append((name, token))
            elif result:
                self._owned[name] = (token, max(deadline, held[1]))
            else:
                self._lose(name)
        self._publish()

    def _leases(self) -> tuple[Lease, ...]:
        return tuple((name, token) for name, (token, _) in self._owned.items())

    def _publish(self) -> None:
        """Give the renewal thread the leases held now."""
        if self._thread is not None:
            self._thread.leases = self._leases()

    async def _give_back(self, unwanted: list[str], excess: int) -> None:
        ranked = sorted((n for n in self._owned if n not in unwanted),
                        key=lambda n: _preference(self.worker_id, n))
        names = unwanted + ranked[:max(excess - len(unwanted), 0)]
        tokens = [(name, self._owned[name][0]) for name in names]
        for name in names:
            self._lose(name)  # stop writing before anyone else can start
        self._publish()
        await self._release(tokens)

    async def _release(self, leases: list[Lease]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for name, token in leases:
            queue(pipe, "release", [self._keys.device(name, "lease")], [token])
        await execute(self._redis, pipe)

    async def _acquire(self, wanted: int) -> None:
        candidates = sorted((n for n in self._devices if n not in self._owned),
                            key=lambda n: -_preference(self.worker_id, n))
        if not candidates:
            return
        holders = await self._redis.mget([self._keys.device(n, "lease") for n in candidates])
        free = [n for n, holder in zip(candidates, holders) if holder is None][:wanted]
        if not free:
            return
        tokens = {name: f"{self.worker_id}:{secrets.token_hex(8)}" for name in free}
        pipe = self._redis.pipeline(transaction=False)
        for name, token in tokens.items():
            pipe.set(self._keys.device(name, "lease"), token, nx=True,
                     px=int(self.lease * 1000))
        deadline = time.monotonic() + self.lease * LOCAL_SHARE
        results = await execute(self._redis, pipe)
        for (name, token), result in zip(tokens.items(), results):
            if result and name in self._devices and self._task is not None:
                self._owned[name] = (token, deadline)
                self._call(self.on_acquire, name)
        self._publish()
        if self._thread is not None and any(results):
            self._thread.renew_soon()  # a busy loop may have taken long to get here

    def _lose(self, name: str) -> None:
        self._owned.pop(name, None)
        self._call(self.on_release, name)

    def _call(self, callback: DeviceCallback | None, name: str) -> None:
        if callback is None:
            return
        try:
            result = callback(name)
        except Exception:
            logger.exception("Lease callback %r failed for %s", callback, printable(name))
            return
        if inspect.isawaitable(result):
            future = asyncio.ensure_future(result)
            self._pending.add(future)
            future.add_done_callback(self._done)

    def _done(self, future: asyncio.Future[Any]) -> None:
        self._pending.discard(future)
        if not future.cancelled() and future.exception() is not None:
            logger.error("A lease callback failed", exc_info=future.exception())


__all__ = ["LOCAL_SHARE", "Coordinator"]
