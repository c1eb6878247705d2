"""``FleetView``: reading the mirrored fleet from Redis, without connecting to any device.

Whole models only: a device's state, model and readings are read in one ``MULTI``, and every
commit replaces them in one script, so what :meth:`FleetView.snapshot` returns is one
generation's model with that generation's readings. :meth:`FleetView.follow` is in
:mod:`~katcp_inspect.mirror.follow`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Union

import attrs
import redis.asyncio as aioredis

from ..errors import WaitTimeoutError
from ..kattypes import value_decoder
from ..sensor import Reading
from ..stats import OnceLogger
from .schema import (
    DEFAULT_PREFIX,
    Keys,
    RequestModel,
    SensorModel,
    decode_reading,
    decode_request,
    decode_sensor,
    raw,
    text,
)
from .worker import connect

if TYPE_CHECKING:
    from .follow import Gap, Update

logger = logging.getLogger("katcp_inspect.mirror.view")
_problems = OnceLogger(logger)

Condition = Union[Any, Callable[[Reading], bool]]


@attrs.frozen
class DeviceStatus:
    """A mirrored device's state hash."""

    name: str
    #: ``connecting``, ``syncing``, ``synced``, ``disconnected`` or ``stopped``.
    state: str
    #: KATCP version and flags of the connection (``""`` before the first).
    protocol: str
    last_error: str
    #: When the device entered :attr:`state` (``time.time()`` of the writer).
    since: float
    #: The generation of the model and readings in Redis (0: none committed).
    generation: int
    #: The worker that committed it.
    owner: str
    #: Readings the writers left out of the stream (Redis too slow); their latest values
    #: still reached the readings.
    dropped: int
    #: Sensors in the model committed.
    sensors: int = 0

    @classmethod
    def from_hash(cls, name: str, fields: Mapping[bytes, bytes]) -> DeviceStatus:
        def get(key: str, default: str = "") -> str:
            return text(fields.get(key.encode(), default.encode()))
        return cls(name, get("state", "unknown"), get("protocol"), get("last_error"),
                   float(get("since", "0")), int(get("generation", "0")), get("owner"),
                   int(get("dropped", "0")), int(get("sensors", "0")))


class DeviceSnapshot(NamedTuple):
    """One device as mirrored: state, model and readings, all of one generation."""

    status: DeviceStatus
    sensors: dict[str, SensorModel]
    requests: dict[str, RequestModel]
    readings: dict[str, Reading]

    @property
    def generation(self) -> int:
        return self.status.generation


def exact(name: str) -> str:
    """A pattern that matches ``name`` only (for :meth:`FleetView.follow`)."""
    return "^" + re.escape(name) + r"\Z"


def decode_model(fields: Mapping[bytes, bytes]) -> dict[str, SensorModel]:
    sensors = {}
    for key, data in fields.items():
        name = text(key)
        try:
            sensors[name] = decode_sensor(name, data)
        except (ValueError, KeyError, TypeError) as exc:
            _problems.log("model", "Bad model entry for sensor %r (%r); skipped", name, exc)
    return sensors


def decode_readings(fields: Mapping[bytes, bytes], sensors: Mapping[str, SensorModel]
                    ) -> dict[str, Reading]:
    readings = {}
    for key, data in fields.items():
        name = text(key)
        model = sensors.get(name)
        if model is None:
            continue
        try:
            readings[name] = decode_reading(data, value_decoder(model.type)).reading
        except (ValueError, KeyError, TypeError) as exc:
            _problems.log("reading", "Bad reading of sensor %r (%r); skipped", name, exc)
    return readings


class FleetView:
    """Reads a fleet mirrored in Redis at ``url`` (or through the client ``redis``) under
    ``prefix``."""

    def __init__(self, url: str | None = None, *, redis: aioredis.Redis | None = None,
                 prefix: str = DEFAULT_PREFIX, block: float = 1.0,
                 redis_options: Mapping[str, Any] | None = None) -> None:
        if redis is None:
            if url is None:
                raise ValueError("FleetView needs a url or a redis client")
            options = {"socket_timeout": block + 10.0, **(redis_options or {})}
            redis = connect(url, options)
            self._owns_redis = True
        else:
            self._owns_redis = False
        self.redis = redis
        self.keys = Keys(prefix)
        #: Seconds a follower waits on the streams before it looks for new devices.
        self.block = block

    async def close(self) -> None:
        if self._owns_redis:
            await self.redis.aclose()

    async def __aenter__(self) -> FleetView:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ reading

    async def devices(self) -> list[str]:
        """The names of the mirrored devices, sorted."""
        names: set[bytes] = await self.redis.smembers(self.keys.devices)  # type: ignore[assignment]
        return sorted(text(n) for n in names)

    async def status(self, name: str) -> DeviceStatus | None:
        fields: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
            self.keys.device(name, "state"))
        return DeviceStatus.from_hash(name, fields) if fields else None

    async def statuses(self) -> dict[str, DeviceStatus]:
        """Every mirrored device's status, by name."""
        names = await self.devices()
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.device(name, "state"))
        results = await pipe.execute()
        return {name: DeviceStatus.from_hash(name, fields)
                for name, fields in zip(names, results) if fields}

    async def snapshot(self, name: str) -> DeviceSnapshot | None:
        """Device ``name``'s state, model and readings, of one generation (None if it is not
        mirrored)."""
        state, sensors, requests, readings = await self._read(
            name, ("state", "sensors", "requests", "readings"))
        if not state:
            return None
        model = decode_model(sensors)
        return DeviceSnapshot(
            DeviceStatus.from_hash(name, state), model,
            {text(k): decode_request(text(k), v) for k, v in requests.items()},
            decode_readings(readings, model))

    async def readings(self, name: str) -> dict[str, Reading]:
        """Device ``name``'s latest readings (all of one generation)."""
        _, sensors, readings = await self._read(name, ("state", "sensors", "readings"))
        return decode_readings(readings, decode_model(sensors))

    async def reading(self, name: str, sensor: str) -> Reading | None:
        """The latest reading of one sensor, or None."""
        model, data = await self._pipeline([
            ("hget", self.keys.device(name, "sensors"), raw(sensor)),
            ("hget", self.keys.device(name, "readings"), raw(sensor))])
        if model is None or data is None:
            return None
        decoded = decode_reading(data, value_decoder(decode_sensor(sensor, model).type))
        return decoded.reading

    async def _read(self, name: str, parts: tuple[str, ...]) -> list[Any]:
        """Hashes of one device read in one transaction (one generation)."""
        return await self._pipeline([("hgetall", self.keys.device(name, part))
                                     for part in parts], transaction=True)

    async def _pipeline(self, commands: list[tuple[Any, ...]], *,
                        transaction: bool = True) -> list[Any]:
        pipe = self.redis.pipeline(transaction=transaction)
        for command, *args in commands:
            getattr(pipe, command)(*args)
        return list(await pipe.execute())

    # ------------------------------------------------------------------ following

    def follow(self, device: str = ".*", sensor: str = ".*", *,
               initial: bool = False) -> AsyncIterator[Update | Gap]:
        """Updates of the sensors matching ``sensor`` (``re.search``) of the devices matching
        ``device``, as they reach Redis: :class:`~katcp_inspect.mirror.Update` s, and a
        :class:`~katcp_inspect.mirror.Gap` (with the latest readings) wherever some may be
        missing. ``initial``: start with a ``Gap`` holding each device's readings."""
        from .follow import Follower  # follow imports this module

        return Follower(self, device, sensor, initial).run()

    async def wait(self, device: str, sensor: str, condition: Condition,
                   timeout: float | None = None) -> Reading:
        """The first reading of ``device``'s ``sensor`` equal to ``condition`` (a value) or
        meeting it (a predicate over the :class:`~katcp_inspect.sensor.Reading`); at once if
        the latest one does. ``WaitTimeoutError`` after ``timeout`` seconds."""
        check = condition if callable(condition) else (lambda r: r.value == condition)
        updates = self.follow(exact(device), exact(sensor), initial=True)
        try:
            return await asyncio.wait_for(self._first(updates, sensor, check), timeout)
        except asyncio.TimeoutError:
            raise WaitTimeoutError(f"{device!r} {sensor!r}: condition not met within "
                                   f"{timeout} s") from None
        finally:
            await updates.aclose()  # type: ignore[attr-defined]

    @staticmethod
    async def _first(updates: AsyncIterator[Any], sensor: str,
                     check: Callable[[Reading], bool]) -> Reading:
        async for item in updates:
            readings: dict[str, Reading] | None = getattr(item, "readings", None)
            reading: Reading | None = (readings.get(sensor) if readings is not None
                                       else item.reading)
            if reading is not None and check(reading):
                return reading
        raise WaitTimeoutError("the updates ended")  # a follower never ends by itself


__all__ = ["DeviceSnapshot", "DeviceStatus", "FleetView", "exact"]
