"""Following a mirrored fleet: the readings of matching devices and sensors as they reach
Redis, with gap detection.

Each stream entry carries ``q``, the device's entry sequence number (kept in its state hash,
incremented by the same script that appends the entry). A follower expects ``q`` to grow by
one; when it does not (the follower fell behind and the bounded stream lost the entries it
had not read, or Redis restarted), when an entry says the writer dropped readings (``x``),
and when a new generation was committed (kind ``s``: a new model), it re-reads the device's
latest readings in one transaction with the stream's position, yields them as a
:class:`Gap`, and goes on from there. After a lost connection it does the same for every
device it follows.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

import attrs
from redis.exceptions import RedisError

from ..backoff import ExponentialRandomBackoff
from ..kattypes import value_decoder
from ..sensor import Reading
from ..stats import OnceLogger
from .schema import decode_reading, text, unpack_records
from .view import DeviceStatus, decode_model, decode_readings

if TYPE_CHECKING:
    from .view import FleetView

logger = logging.getLogger("katcp_inspect.mirror.follow")

#: Entries read per stream and call.
COUNT = 1000


@attrs.frozen
class Update:
    """A new reading of ``device``'s ``sensor``, of model ``generation``."""

    device: str
    sensor: str
    reading: Reading
    generation: int


@attrs.frozen
class Gap:
    """Updates of ``device`` may be missing before this point (``reason``: ``start`` or
    ``added`` for a device seen for the first time, ``behind`` when the follower fell behind
    the bounded stream, ``dropped`` when the writer dropped readings, ``sync`` for a new
    model, ``reconnect`` after a lost connection): here are its latest readings (of the
    sensors followed), all of ``generation``."""

    device: str
    generation: int
    readings: dict[str, Reading]
    reason: str


class _Cursor:
    """Where a follower is in one device's stream."""

    __slots__ = ("decoders", "generation", "last_id", "name", "seq")

    def __init__(self, name: str) -> None:
        self.name = name
        self.last_id: bytes = b"0-0"
        self.seq = 0
        self.generation = 0
        self.decoders: dict[bytes, Any] = {}


class Follower:
    """One :meth:`FleetView.follow` iteration."""

    def __init__(self, view: FleetView, device: str, sensor: str, initial: bool) -> None:
        self._view = view
        self._device = re.compile(device)
        self._sensor = re.compile(sensor)
        self._initial = initial
        self._problems = OnceLogger(logger)
        self._backoff = ExponentialRandomBackoff(0.05, 5.0)
        #: Devices followed when the connection was lost, not seen again since.
        self._lost: set[str] = set()
        self._followed: set[str] = set()

    async def run(self) -> AsyncIterator[Update | Gap]:
        reason = "start"
        while True:
            try:
                async for item in self._session(reason):
                    yield item
                    self._backoff.success()
            except (RedisError, OSError) as exc:
                self._problems.log(("lost", type(exc)), "Following the mirror: Redis "
                                   "unreachable (%r); retrying", exc)
                await asyncio.sleep(self._backoff.delay)
                self._backoff.failed()
                reason = "reconnect"
                self._lost |= self._followed

    async def _session(self, reason: str) -> AsyncIterator[Update | Gap]:
        cursors: dict[bytes, _Cursor] = {}
        loop = asyncio.get_running_loop()
        block = self._view.block
        listed = None
        while True:
            if listed is None or loop.time() - listed >= block:
                async for gap in self._refresh(cursors, reason):
                    yield gap
                listed = loop.time()
                reason = "added"
            if not cursors:
                await asyncio.sleep(block)
                continue
            streams: dict[Any, Any] = {key: cursor.last_id for key, cursor in cursors.items()}
            response = await self._view.redis.xread(streams, count=COUNT,
                                                    block=max(int(block * 1000), 1))
            for key, entries in _items(response):
                cursor = cursors.get(key)
                if cursor is not None:
                    async for item in self._entries(cursor, entries):
                        yield item

    async def _refresh(self, cursors: dict[bytes, _Cursor],
                       reason: str) -> AsyncIterator[Gap]:
        """Follow devices new in the set, forget those gone."""
        names = [n for n in await self._view.devices() if self._device.search(n)]
        keys = {self._view.keys.device(n, "stream").encode(): n for n in names}
        for key in [k for k in cursors if k not in keys]:
            self._followed.discard(cursors.pop(key).name)
        for key, name in keys.items():
            if key not in cursors:
                cursors[key] = cursor = _Cursor(name)
                self._followed.add(name)
                why = "reconnect" if name in self._lost else reason
                self._lost.discard(name)
                gap = await self._resync(cursor, why)
                if why != "start" or self._initial:
                    yield gap

    async def _entries(self, cursor: _Cursor,
                       entries: list[tuple[bytes, Mapping[bytes, bytes]]]
                       ) -> AsyncIterator[Update | Gap]:
        for entry_id, fields in entries:
            try:
                seq, kind = int(fields[b"q"]), fields[b"k"]
                generation, dropped = int(fields[b"g"]), int(fields.get(b"x", b"0"))
            except (KeyError, ValueError):
                self._problems.log("entry", "%s: malformed stream entry %r; skipped",
                                   cursor.name, entry_id)
                cursor.last_id = entry_id
                continue
            reason = ("behind" if seq != cursor.seq + 1 else "sync" if kind == b"s"
                      or generation != cursor.generation else "dropped" if dropped else None)
            if reason is not None:
                yield await self._resync(cursor, reason)
                return  # the resync read everything up to the stream's end
            cursor.last_id, cursor.seq = entry_id, seq
            for item in self._updates(cursor, fields.get(b"d", b"")):
                yield item

    def _updates(self, cursor: _Cursor, blob: bytes) -> list[Update]:
        updates = []
        decoders = cursor.decoders
        try:
            records = list(unpack_records(blob))
        except ValueError as exc:
            self._problems.log("blob", "%s: malformed stream payload (%r); skipped",
                               cursor.name, exc)
            return []
        for name, data in records:
            decode = decoders.get(name)
            if decode is None:
                continue
            try:
                reading = decode_reading(data, decode).reading
            except (ValueError, KeyError) as exc:
                self._problems.log("reading", "%s: bad reading of %r (%r); skipped",
                                   cursor.name, name, exc)
                continue
            updates.append(Update(cursor.name, text(name), reading, cursor.generation))
        return updates

    async def _resync(self, cursor: _Cursor, reason: str) -> Gap:
        """Read the device's model, readings and stream position in one transaction."""
        keys = self._view.keys
        pipe = self._view.redis.pipeline(transaction=True)
        for part in ("state", "sensors", "readings"):
            pipe.hgetall(keys.device(cursor.name, part))
        pipe.xrevrange(keys.device(cursor.name, "stream"), count=1)
        state, sensors, readings, newest = await pipe.execute()
        status = DeviceStatus.from_hash(cursor.name, state)
        seq = state.get(b"seq")
        cursor.seq = int(seq) if seq is not None else 0
        cursor.last_id = newest[0][0] if newest else b"0-0"
        cursor.generation = status.generation
        model = {name: info for name, info in decode_model(sensors).items()
                 if self._sensor.search(name)}
        cursor.decoders = {name.encode("utf-8", "surrogateescape"): value_decoder(info.type)
                           for name, info in model.items()}
        return Gap(cursor.name, status.generation, decode_readings(readings, model), reason)


def _items(response: Any) -> list[tuple[bytes, list[Any]]]:
    """XREAD's answer as (stream, entries) pairs (RESP2 gives a list, RESP3 a map)."""
    if not response:
        return []
    if isinstance(response, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in response.items()]
    return [(k, v) for k, v in response]


__all__ = ["Follower", "Gap", "Update"]
