"""Renewing a worker's leases: the heartbeat and the renewals of one round, sent either from
the event loop or from a thread of their own (:class:`RenewalThread`).

A worker's event loop can be busy for seconds at a time: five hundred devices syncing at
once, each listing a thousand sensors. Renewals sent from that loop then wait behind the
work, the leases lapse although the worker is alive and serving its devices, another worker
takes them over, and both pay for syncs that help nobody; under load the workers thrash.
So, like Kafka's consumers since KIP-62 and ZooKeeper's clients, a worker that can open a
connection of its own renews from a thread that does nothing else. The thread renews only
while the event loop shows that it runs (:meth:`RenewalThread.tick` within the lease time):
a process whose loop is stuck lets its leases lapse, and another worker takes the devices
over.

The thread owns none of the coordinator's state: it renews the snapshot of leases it was
last given (:attr:`RenewalThread.leases`, replaced whole), hands each round's
:class:`Renewal` to the loop with ``call_soon_threadsafe``, and says when it last renewed each
token (:attr:`RenewalThread.renewed`, replaced whole), which the loop reads when it checks its
deadlines: a report still queued behind a long turn of the loop does not make it give a
renewed lease up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from redis.exceptions import NoScriptError, RedisError

from ..stats import OnceLogger
from .calls import queue
from .scripts import SCRIPTS

if TYPE_CHECKING:
    import redis

    from .schema import Keys

logger = logging.getLogger("katcp_inspect.mirror.lease")
_problems = OnceLogger(logger)

#: A device's lease as the worker holds it: its name and token.
Lease = tuple[str, str]


class Renewal:
    """What one round of renewals found."""

    __slots__ = ("error", "leases", "results", "sent", "workers")

    def __init__(self, sent: float, leases: tuple[Lease, ...], workers: int = 0,
                 results: tuple[int, ...] = (), error: BaseException | None = None) -> None:
        #: When the round was sent (``time.monotonic()``): a renewed lease counts from then.
        self.sent = sent
        self.leases = leases
        #: Live workers, this one included, by the heartbeat.
        self.workers = workers
        #: Per lease: 1 renewed, 2 claimed again (the key was gone), 0 held by another worker.
        self.results = results
        #: Why the round failed (the leases' state is then unknown).
        self.error = error


class RoundPlan(NamedTuple):
    """The commands of a round, queued on a pipeline by :meth:`queue`."""

    keys: Keys
    worker_id: str
    lease: float

    def queue(self, pipe: Any, leases: tuple[Lease, ...]) -> None:
        milliseconds = int(self.lease * 1000)
        queue(pipe, "heartbeat", [self.keys.workers], [self.worker_id, milliseconds])
        if leases:
            queue(pipe, "renew", [self.keys.device(name, "lease") for name, _ in leases],
                  [milliseconds, *(token for _, token in leases)])

    def result(self, sent: float, leases: tuple[Lease, ...], replies: list[Any]) -> Renewal:
        results = tuple(int(r) for r in replies[1]) if leases else ()
        return Renewal(sent, leases, int(replies[0]), results)


def _closed(client: redis.Redis | None) -> None:
    if client is not None:
        with contextlib.suppress(Exception):  # closing a broken connection may fail too
            client.close()


def _load_scripts(client: redis.Redis) -> None:
    with contextlib.suppress(RedisError, OSError):  # unreachable: the round will say so
        for script in SCRIPTS.values():
            client.script_load(script.source)


class RenewalThread:
    """Sends ``plan``'s rounds every ``period`` seconds through a blocking client made by
    ``connect()``, reporting each to ``report`` on ``loop``."""

    def __init__(self, plan: RoundPlan, connect: Callable[[], redis.Redis], period: float,
                 loop: asyncio.AbstractEventLoop, report: Callable[[Renewal], None]) -> None:
        #: The leases to renew (a snapshot, replaced whole by the loop).
        self.leases: tuple[Lease, ...] = ()
        #: When the event loop last showed it runs.
        self.ticked = time.monotonic()
        #: Token → when the last round that renewed it was sent (replaced whole per round).
        self.renewed: dict[str, float] = {}
        self._plan = plan
        self._connect = connect
        self._period = period
        self._loop = loop
        self._report = report
        self._stopping = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"katcp-inspect leases of {plan.worker_id}")

    def start(self) -> None:
        self._thread.start()

    def renew_soon(self) -> None:
        """Start the next round now (new leases, called from the loop)."""
        self._wake.set()

    def tick(self) -> None:
        """The event loop runs (called from it)."""
        self.ticked = time.monotonic()

    async def stop(self, timeout: float) -> None:
        """End the thread (waiting at most ``timeout`` seconds for its last round)."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, timeout)

    def _run(self) -> None:
        client: redis.Redis | None = None
        while not self._stopping:
            sent = time.monotonic()
            if sent - self.ticked <= self._plan.lease:
                try:
                    if client is None:
                        client = self._connect()
                        _load_scripts(client)
                    renewal = self._round(client, sent)
                except Exception as exc:  # a bug must not end the renewals for good
                    _problems.log(("thread", type(exc)), "The lease renewal thread failed "
                                  "(%r); it starts again with a new connection", exc,
                                  exc_info=True)
                    _closed(client)
                    client = None
                    renewal = Renewal(sent, self.leases, error=exc)
                if renewal.error is None:
                    self.renewed = {token: sent for (_, token), result
                                    in zip(renewal.leases, renewal.results) if result}
                self._post(renewal)
            self._wake.wait(max(self._period - (time.monotonic() - sent), 0.01))
            self._wake.clear()
        _closed(client)

    def _round(self, client: redis.Redis, sent: float) -> Renewal:
        leases = self.leases
        pipe = client.pipeline(transaction=False)
        self._plan.queue(pipe, leases)
        try:
            return self._plan.result(sent, leases, pipe.execute())
        except NoScriptError as exc:  # Redis restarted: its script cache is empty
            _load_scripts(client)
            return Renewal(sent, leases, error=exc)
        except (RedisError, OSError, ValueError, TypeError, IndexError) as exc:
            return Renewal(sent, leases, error=exc)

    def _post(self, renewal: Renewal) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody to tell
            self._loop.call_soon_threadsafe(self._report, renewal)


__all__ = ["Lease", "Renewal", "RenewalThread", "RoundPlan"]
