"""The two clients under test behind one small interface, and the observers the benchmarks
attach to their sensors.

Both mirror every sensor of the device with the ``auto`` strategy: katcp-inspect through
``InspectingClientAsync(auto_sampling="auto")``, aiokatcp through its ``Client`` and a
``SensorWatcher`` (which always samples with ``auto``). Observers do the same small amount of
work for both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol, Union

from aiokatcp.client import Client, SensorWatcher, SyncState

from katcp_inspect import InspectingClientAsync


class Tally:
    """Counts down observer calls; :attr:`done` resolves when ``expected`` have arrived."""

    def __init__(self, expected: int) -> None:
        self.remaining = expected
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if expected <= 0:
            self.done.set_result(None)


class CountingObserver:
    """Counts the readings of one sensor."""

    __slots__ = ("count", "tally")

    def __init__(self, tally: Tally) -> None:
        self.count = 0
        self.tally = tally

    def update(self, sensor: Any, reading: Any) -> None:
        self.count += 1
        tally = self.tally
        tally.remaining -= 1
        if not tally.remaining:
            tally.done.set_result(None)


class FreshObserver:
    """Notes when one sensor first holds a value of at least ``threshold``."""

    __slots__ = ("fresh", "tally", "threshold")

    def __init__(self) -> None:
        self.fresh = True
        self.threshold = 0.0
        self.tally: Tally | None = None

    def expect(self, threshold: float, tally: Tally) -> None:
        self.fresh = False
        self.threshold = threshold
        self.tally = tally

    def update(self, sensor: Any, reading: Any) -> None:
        if not self.fresh and reading.value >= self.threshold:
            self.fresh = True
            assert self.tally is not None
            self.tally.remaining -= 1
            if not self.tally.remaining:
                self.tally.done.set_result(None)


Observer = Union[CountingObserver, FreshObserver]


class BenchClient(Protocol):
    """What the benchmarks need from a client; every wait is bounded by ``timeout``."""

    def start(self) -> None: ...
    async def until_synced(self, timeout: float) -> None: ...
    async def until_not_synced(self, timeout: float) -> None: ...
    def sensor_names(self) -> list[str]: ...
    def value(self, name: str) -> Any: ...
    def attach(self, name: str, observer: Observer) -> None: ...
    async def request(self, name: str, timeout: float) -> list[bytes]: ...
    async def close(self, timeout: float) -> None: ...


class KatcpInspect:
    label = "katcp-inspect"

    def __init__(self, host: str, port: int) -> None:
        self.ic = InspectingClientAsync(host, port, auto_sampling="auto")

    def start(self) -> None:
        self.ic.connect()

    async def until_synced(self, timeout: float) -> None:
        await self.ic.until_synced(timeout)

    async def until_not_synced(self, timeout: float) -> None:
        await self.ic.until_not_synced(timeout)

    def sensor_names(self) -> list[str]:
        return self.ic.sensors

    def _sensor(self, name: str) -> Any:
        return self.ic.future_get_sensor(name).result()  # done at once: the name is cached

    def value(self, name: str) -> Any:
        return self._sensor(name).value()

    def attach(self, name: str, observer: Observer) -> None:
        self._sensor(name).attach(observer)

    async def request(self, name: str, timeout: float) -> list[bytes]:
        reply, _ = await self.ic.katcp_client.request(name, timeout=timeout)
        return reply.arguments[1:]

    async def close(self, timeout: float) -> None:
        await self.ic.stop(timeout)


class _StateWatcher(SensorWatcher):
    """aiokatcp's ``SensorWatcher`` whose :attr:`left_synced` is set iff it is not ``SYNCED``."""

    def __init__(self, client: Client) -> None:
        super().__init__(client)
        self.left_synced = asyncio.Event()

    def state_updated(self, state: SyncState) -> None:
        super().state_updated(state)
        if state == SyncState.SYNCED:
            self.left_synced.clear()
        else:
            self.left_synced.set()


class Aiokatcp:
    label = "aiokatcp"

    def __init__(self, host: str, port: int) -> None:
        self._address = host, port
        self.client: Client | None = None
        self.watcher: _StateWatcher | None = None

    def start(self) -> None:
        self.client = Client(*self._address)  # starts connecting at once
        self.watcher = _StateWatcher(self.client)
        self.client.add_sensor_watcher(self.watcher)

    def _watcher(self) -> _StateWatcher:
        assert self.watcher is not None
        return self.watcher

    async def until_synced(self, timeout: float) -> None:
        await asyncio.wait_for(self._watcher().synced.wait(), timeout)

    async def until_not_synced(self, timeout: float) -> None:
        await asyncio.wait_for(self._watcher().left_synced.wait(), timeout)

    def sensor_names(self) -> list[str]:
        return list(self._watcher().sensors)

    def value(self, name: str) -> Any:
        return self._watcher().sensors[name].value

    def attach(self, name: str, observer: Observer) -> None:
        self._watcher().sensors[name].attach(observer.update)

    async def request(self, name: str, timeout: float) -> list[bytes]:
        assert self.client is not None
        reply, _ = await asyncio.wait_for(self.client.request(name), timeout)
        return list(reply)

    async def close(self, timeout: float) -> None:
        assert self.client is not None
        self.client.close()
        await asyncio.wait_for(self.client.wait_closed(), timeout)


CLIENTS: dict[str, Callable[[str, int], BenchClient]] = {
    KatcpInspect.label: KatcpInspect,
    Aiokatcp.label: Aiokatcp,
}
