"""``RedisMirror``: a worker's side of the Redis mirror, the seam a fleet plugs into.

It holds the Redis connection, the worker's :class:`~katcp_inspect.mirror.lease.Coordinator`
(which devices this worker owns), its :class:`~katcp_inspect.mirror.writer.Writer`, and a
:class:`~katcp_inspect.mirror.device.DeviceMirror` per client it was given. A client's device
is written only while this worker holds its lease.

A fleet uses it in one of two ways:

- **one process, every device** (``fair=False``): the fleet runs all its clients whatever
  Redis does, and :meth:`RedisMirror.add` s each; they are written while leases can be had;
- **workers** (``fair=True``): ``on_acquire(name)`` starts that device's client and adds it,
  ``on_release(name)`` stops it; several workers share one configuration.

The fleet owns its clients' state callbacks: it passes ``follow_state=False`` to :meth:`add`
and forwards each report to :meth:`DeviceMirror.state_changed` (and its own view of the
device to :meth:`DeviceMirror.set_status`).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis
import redis.asyncio as aioredis

from .calls import call
from .device import DeviceMirror
from .lease import Coordinator, DeviceCallback
from .schema import DEFAULT_PREFIX, Keys, raw
from .writer import Writer

if TYPE_CHECKING:
    from ..inspecting_client import InspectingClientAsync

#: Default bound of a device's stream (entries; each holds a batch of readings).
STREAM_MAXLEN = 10_000
#: Default bound of a device's buffer of readings waiting for the writer.
BUFFER = 10_000


def connect(url: str, options: Mapping[str, Any] | None = None) -> aioredis.Redis:
    """A client for ``url`` (``redis://[[user]:password@]host[:port][/db]``, ``rediss://``
    for TLS, ``unix://``), with timeouts so that an unreachable server is noticed."""
    kwargs: dict[str, Any] = {"socket_connect_timeout": 2.0, "socket_timeout": 10.0,
                              "health_check_interval": 5}
    kwargs.update(options or {})
    return aioredis.Redis.from_url(url, **kwargs)


def connect_blocking(url: str, options: Mapping[str, Any] | None, timeout: float
                     ) -> redis.Redis:
    """A blocking client for ``url`` whose every call gives up after ``timeout`` seconds (for
    the lease renewal thread, whose rounds must keep time)."""
    kwargs: dict[str, Any] = {"socket_connect_timeout": timeout, "health_check_interval": 5}
    kwargs.update(options or {})
    kwargs["socket_timeout"] = timeout
    return redis.Redis.from_url(url, **kwargs)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RedisMirror:
    """Mirrors the clients :meth:`add` ed to it into Redis at ``url`` (or through the client
    ``redis``), for worker ``worker_id`` (default ``host:pid``) sharing ``devices``."""

    def __init__(self, url: str | None = None, devices: Iterable[str] = (), *,
                 redis: aioredis.Redis | None = None, worker_id: str | None = None,
                 prefix: str = DEFAULT_PREFIX, lease: float = 5.0, fair: bool = True,
                 on_acquire: DeviceCallback | None = None,
                 on_release: DeviceCallback | None = None,
                 stream_maxlen: int = STREAM_MAXLEN, buffer: int = BUFFER,
                 redis_options: Mapping[str, Any] | None = None) -> None:
        blocking = None
        if redis is None:
            if url is None:
                raise ValueError("RedisMirror needs a url or a redis client")
            redis = connect(url, redis_options)
            blocking = functools.partial(connect_blocking, url, redis_options, lease / 3)
            self._owns_redis = True
        else:
            self._owns_redis = False
        self.redis = redis
        self.worker_id = worker_id or default_worker_id()
        self.keys = Keys(prefix)
        self.on_acquire = on_acquire
        self.on_release = on_release
        self.writer = Writer(redis)
        self.coordinator = Coordinator(redis, self.worker_id, devices, keys=self.keys,
                                       lease=lease, fair=fair, on_acquire=self._acquired,
                                       on_release=self._released, blocking=blocking)
        self._stream_maxlen = stream_maxlen
        self._buffer = buffer
        self._mirrors: dict[str, DeviceMirror] = {}

    @property
    def owned(self) -> frozenset[str]:
        """The devices whose lease this worker holds."""
        return self.coordinator.owned

    def mirror(self, name: str) -> DeviceMirror | None:
        return self._mirrors.get(name)

    def set_devices(self, devices: Iterable[str]) -> None:
        """The shared configuration's devices now."""
        self.coordinator.set_devices(devices)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start writing and taking leases; returns at once (Redis may be unreachable: the
        worker retries with backoff and mirrors once it can)."""
        self.writer.start()
        self.coordinator.start()

    async def stop(self) -> None:
        """Write what is pending (briefly), give the leases back, close the connection."""
        await self.writer.stop()
        await self.coordinator.stop()
        for mirror in self._mirrors.values():
            mirror.close()
        self._mirrors.clear()
        if self._owns_redis:
            await self.redis.aclose()

    async def __aenter__(self) -> RedisMirror:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ clients

    def add(self, name: str, client: InspectingClientAsync, *,
            follow_state: bool = True) -> DeviceMirror:
        """Mirror ``client`` as device ``name`` whenever this worker holds its lease. With
        ``follow_state`` the mirror becomes the client's state callback; otherwise the
        caller forwards the reports to :meth:`DeviceMirror.state_changed`."""
        if name in self._mirrors:
            raise ValueError(f"device {name!r} is mirrored already")
        mirror = DeviceMirror(name, client, self.keys, self.writer.mark, owner=self.worker_id,
                              stream_maxlen=self._stream_maxlen, buffer=self._buffer)
        mirror.on_fenced = self.coordinator.lost
        self._mirrors[name] = mirror
        if follow_state:
            client.set_state_callback(mirror.state_changed)
        mirror.state_changed(client.state, None)
        token = self.coordinator.token(name)
        if token is not None:
            mirror.activate(token)
        return mirror

    async def remove(self, name: str, *, forget: bool = False) -> None:
        """Stop mirroring device ``name``; with ``forget``, also delete it from Redis (if this
        worker holds its lease)."""
        mirror = self._mirrors.pop(name, None)
        token = self.coordinator.token(name)
        if mirror is not None:
            mirror.close()
        if forget and token is not None:
            await self._forget(name, token)

    async def _forget(self, name: str, token: str) -> None:
        keys = [self.keys.device(name, part) for part in
                ("lease", "state", "sensors", "requests", "readings", "stream")]
        await call(self.redis, "forget", [*keys, self.keys.devices], [token, raw(name)])
        self.coordinator.lost(name)

    # ------------------------------------------------------------------ leases

    def _acquired(self, name: str) -> Any:
        result = self.on_acquire(name) if self.on_acquire is not None else None
        mirror = self._mirrors.get(name)
        token = self.coordinator.token(name)
        if mirror is not None and token is not None and mirror.token != token:
            mirror.activate(token)
        return result

    def _released(self, name: str) -> Any:
        mirror = self._mirrors.get(name)
        if mirror is not None:
            mirror.deactivate()
        return self.on_release(name) if self.on_release is not None else None

    async def until_written(self) -> None:
        """Resolves once everything pending has been sent (for tests and benchmarks)."""
        await self.writer.until_idle()


__all__ = ["BUFFER", "STREAM_MAXLEN", "RedisMirror", "connect", "connect_blocking",
           "default_worker_id"]
