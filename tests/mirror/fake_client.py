"""A stand-in for an inspecting client, with whatever names a test wants (the mirror uses
only the public model API of :class:`~katcp_inspect.InspectingClientAsync`)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from katcp_inspect import RequestType, Sensor
from katcp_inspect.sync_states import SYNCED, State


def _done(value: Any) -> asyncio.Future[Any]:
    future = asyncio.get_running_loop().create_future()
    future.set_result(value)
    return future


class FakeClient:
    def __init__(self, sensors: list[Sensor], requests: list[str] = ()) -> None:  # type: ignore[assignment]
        self.objects = {s.name: s for s in sensors}
        self.request_objects = {n: RequestType(n, f"Request {n!r}.", 2.5) for n in requests}
        self.state: State = SYNCED
        self.katcp_client = SimpleNamespace(protocol_flags=None)
        self.callback: Any = None

    @property
    def sensors(self) -> list[str]:
        return list(self.objects)

    @property
    def requests(self) -> list[str]:
        return list(self.request_objects)

    def future_get_sensor(self, name: str) -> asyncio.Future[Any]:
        return _done(self.objects.get(name))

    def future_get_request(self, name: str) -> asyncio.Future[Any]:
        return _done(self.request_objects.get(name))

    def set_state_callback(self, callback: Any) -> None:
        self.callback = callback

    def report(self, state: State = SYNCED, changes: Any = None) -> None:
        self.state = state
        self.callback(state, changes)
