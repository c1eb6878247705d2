"""Many simulated devices in one process, and the fleet configuration that lists them:
``katcp-inspect sim --devices N [--protocols 5.1,5.0,4] [--write-config FILE]``."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..fleet import FleetConfig
from ..signals import on_stop_signals
from .device import SimulatedDevice
from .runner import start_simulator

#: The rule a written configuration samples every sensor with, so that a fleet shows live
#: values at once.
SAMPLING = {".": "event"}


async def start_simulators(host: str, port: int, count: int, sensors: int, rate: float,
                           protocols: Sequence[str]) -> list[SimulatedDevice]:
    """``count`` started devices, on ports ``port``, ``port + 1``... (free ports if ``port``
    is 0), speaking ``protocols`` in turn; all stopped again if one cannot start."""
    if count < 1:
        raise ValueError("--devices needs at least 1 device")
    if port and port + count - 1 > 65535:
        raise ValueError(f"{count} consecutive ports from {port} go past 65535")
    devices: list[SimulatedDevice] = []
    try:
        for i in range(count):
            devices.append(await start_simulator(host, port + i if port else 0, sensors, rate,
                                                 protocols[i % len(protocols)]))
    except BaseException:
        await asyncio.gather(*(device.stop() for device in devices))
        raise
    return devices


def fleet_config(devices: Sequence[SimulatedDevice]) -> FleetConfig:
    """A configuration with the devices as ``sim000``, ``sim001``..., every sensor sampled
    with ``event``."""
    width = max(3, len(str(len(devices) - 1)))
    addresses = {}
    for i, device in enumerate(devices):
        host = "127.0.0.1" if device.host in ("", "0.0.0.0") else device.host
        host = "::1" if host == "::" else host
        addresses[f"sim{i:0{width}d}"] = (f"[{host}]" if ":" in host else host) + \
            f":{device.port}"
    return FleetConfig.of(addresses, sampling=SAMPLING)


def _ports(devices: Sequence[SimulatedDevice]) -> str:
    ports = [device.port for device in devices]
    if ports == list(range(ports[0], ports[0] + len(ports))):
        return f"port {ports[0]}" if len(ports) == 1 else f"ports {ports[0]}-{ports[-1]}"
    shown = ", ".join(str(port) for port in ports[:10])
    return f"ports {shown}" + (f" and {len(ports) - 10} more" if len(ports) > 10 else "")


async def serve_simulators(host: str, port: int, count: int, sensors: int, rate: float,
                           protocols: Sequence[str], write_config: str | None = None, *,
                           out: TextIO | None = None) -> None:
    """Run the devices (see :func:`start_simulators`) until SIGINT or SIGTERM, or until every
    one has been halted (``?halt``); write their fleet configuration first, if asked."""
    devices = await start_simulators(host, port, count, sensors, rate, protocols)
    try:
        if write_config is not None:
            Path(write_config).write_text(fleet_config(devices).to_toml(), encoding="utf-8")
        written = f"; fleet configuration in {write_config}" if write_config else ""
        print(f"{count} simulated KATCP devices listening on {devices[0].host}, "
              f"{_ports(devices)} (KATCP {', '.join(dict.fromkeys(protocols))}, {sensors} "
              f"sensors each, updates at {rate:g} Hz){written}; Ctrl-C to stop",
              file=out or sys.stdout, flush=True)
        await _until_stopped(devices)
    finally:
        await asyncio.gather(*(device.stop() for device in devices))


async def _until_stopped(devices: Sequence[SimulatedDevice]) -> None:
    stop = asyncio.Event()
    waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()),
               asyncio.ensure_future(asyncio.gather(*(device.join() for device in devices)))]
    with on_stop_signals(stop.set):
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)


def run_simulators(host: str, port: int, count: int, sensors: int, rate: float,
                   protocols: Sequence[str], write_config: str | None = None) -> None:
    """Run the devices until interrupted (see :func:`serve_simulators`); blocks."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_simulators(host, port, count, sensors, rate, protocols, write_config))


__all__ = ["fleet_config", "run_simulators", "serve_simulators", "start_simulators"]
