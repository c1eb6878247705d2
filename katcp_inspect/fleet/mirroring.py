"""A fleet's side of the Redis mirror: a :class:`~katcp_inspect.mirror.RedisMirror` fed with
the fleet's members. Imported only when a fleet is given a Redis URL (it needs the
``redis`` extra).

The member owns its client's state callback, so the fleet forwards each report here
(:meth:`FleetMirror.reported`) and its own view of each device's state
(:meth:`FleetMirror.status`). In workers mode the fleet runs only the devices whose lease it
holds: the coordinator's ``on_acquire`` starts a member, ``on_release`` stops it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Callable, Mapping

from ..inspecting_client import InspectingClientStateType
from ..mirror import RedisMirror
from ..mirror.schema import DEFAULT_PREFIX
from ..mirror.worker import default_worker_id
from ..model import AttrDict
from .config import RedisConfig
from .member import Member

# Fleets of one process are distinct workers: the first is host:pid, the next host:pid#2 ...
_fleets = itertools.count(1)


class FleetMirror:
    """Mirrors the fleet's ``members`` (the fleet's own dict: devices added later too) into
    Redis as ``config`` says; with ``workers``, shares them with other fleets by leases and
    starts a member (after up to ``spread`` seconds) only while it holds its lease.
    ``running()`` says whether the fleet runs."""

    def __init__(self, members: Mapping[str, Member], config: RedisConfig, *, workers: bool,
                 spread: float, running: Callable[[], bool]) -> None:
        self.config = config
        self.workers = workers
        self.redis: RedisMirror | None = None
        number = next(_fleets)
        self.worker_id = default_worker_id() + (f"#{number}" if number > 1 else "")
        self._members = members
        self._spread = spread
        self._running = running

    @property
    def owned(self) -> frozenset[str]:
        return frozenset() if self.redis is None else self.redis.owned

    async def start(self) -> None:
        """A new :class:`RedisMirror` (a stopped one has closed its connection), fed every
        member; returns at once (Redis may be unreachable: it retries)."""
        workers = self.workers
        self.redis = RedisMirror(
            self.config.url, self._members, worker_id=self.worker_id,
            prefix=self.config.prefix or DEFAULT_PREFIX, lease=self.config.lease, fair=workers,
            on_acquire=self._acquired if workers else None,
            on_release=self._released if workers else None)
        for member in self._members.values():
            self._add(self.redis, member)
        await self.redis.start()

    async def stop(self) -> None:
        """Write what is pending, give the leases back (stopping the members run for them)."""
        redis, self.redis = self.redis, None
        if redis is not None:
            await redis.stop()

    def add(self, member: Member) -> None:
        if self.redis is not None:
            self.redis.set_devices(self._members)
            self._add(self.redis, member)

    async def remove(self, name: str) -> None:
        """Forget device ``name``, in Redis too (if this fleet holds its lease)."""
        if self.redis is not None:
            self.redis.set_devices(self._members)
            await self.redis.remove(name, forget=True)

    def _add(self, redis: RedisMirror, member: Member) -> None:
        redis.add(member.name, member.client, follow_state=False)
        self.status(member)

    # ------------------------------------------------------------------ told by the fleet

    def reported(self, member: Member, state: InspectingClientStateType,
                 changes: AttrDict | None) -> None:
        mirror = None if self.redis is None else self.redis.mirror(member.name)
        if mirror is not None:
            mirror.state_changed(state, changes)
            # The fleet's view wins over the client's (e.g. "disconnected" with its error).
            mirror.set_status(member.state, member.last_error)

    def status(self, member: Member) -> None:
        mirror = None if self.redis is None else self.redis.mirror(member.name)
        if mirror is not None:
            mirror.set_status(member.state, member.last_error)

    # ------------------------------------------------------------------ leases

    def _acquired(self, name: str) -> None:
        member = self._members.get(name)
        if member is not None and self._running():
            member.start(random.uniform(0, self._spread) if self._spread > 0 else 0.0)

    def _released(self, name: str) -> asyncio.Future[None] | None:
        member = self._members.get(name)
        return None if member is None else member.stop()

    def __repr__(self) -> str:  # the URL may hold a password
        return f"<FleetMirror workers={self.workers} owned={len(self.owned)}>"


__all__ = ["FleetMirror"]
