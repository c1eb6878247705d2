"""Test helpers: a third-party (aiokatcp) device server, and the scripted raw KATCP peers of
:mod:`katcp_inspect.testing.harness` under the names the tests import.

No ``from __future__ import annotations`` here: aiokatcp reads handler annotations at run time.
"""


import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiokatcp

from katcp_inspect.testing.harness.probes import wait_until
from katcp_inspect.testing.harness.scripted import (
    GREETING_V5,
    PeerConnection,
    Responder,
    ScriptedDevice,
    ScriptedServer,
    help_list,
    listing,
    scripted_device,
    scripted_server,
    sensor_list,
)

__all__ = ["GREETING_V5", "PeerConnection", "Responder", "ScriptedDevice", "ScriptedServer",
           "ThirdPartyDevice", "help_list", "listing", "port_of", "scripted_device",
           "scripted_server", "sensor_list", "third_party_device", "wait_until"]


class ThirdPartyDevice(aiokatcp.DeviceServer):  # type: ignore[misc]
    """aiokatcp's DeviceServer: a real, independent KATCP implementation to test against."""

    VERSION = "third-party-1.0"
    BUILD_STATE = "third-party-1.0.0"

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        nominal = aiokatcp.Sensor.Status.NOMINAL
        self.sensors.add(aiokatcp.Sensor(float, "temperature", "Temperature", "degC",
                                         default=21.5, initial_status=nominal))
        self.sensors.add(aiokatcp.Sensor(int, "counter", "A counter", "", default=7,
                                         initial_status=nominal))

    async def request_slow(self, ctx: Any, delay: float) -> None:
        """Reply after a delay (seconds)."""
        await asyncio.sleep(delay)

    async def request_echo(self, ctx: Any, *args: bytes) -> tuple[bytes, ...]:
        """Reply with the arguments."""
        return args


@contextlib.asynccontextmanager
async def third_party_device(port: int = 0) -> AsyncIterator[ThirdPartyDevice]:
    server = ThirdPartyDevice("127.0.0.1", port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def port_of(server: ThirdPartyDevice) -> int:
    return int(server.sockets[0].getsockname()[1])
