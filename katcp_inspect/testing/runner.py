"""Running a simulated device as a program: ``python -m katcp_inspect.testing`` and the
function behind ``katcp-inspect sim``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from typing import TextIO

from ..kattypes import Address
from ..signals import on_stop_signals
from .device import SimulatedDevice

DEFAULT_PORT = 7147
#: The KATCP versions the simulated device speaks.
PROTOCOLS = ("5.1", "5.0", "4")


async def serve_simulator(host: str = "127.0.0.1", port: int = DEFAULT_PORT, sensors: int = 40,
                          rate: float = 1.0, protocol: str = "5.1", *,
                          out: TextIO | None = None) -> None:
    """Run a device with ``sensors`` demo sensors (some updated ``rate`` times a second; 0 for
    none) until SIGINT, SIGTERM or ``?halt``; print the bound address once listening."""
    device = await start_simulator(host, port, sensors, rate, protocol)
    print(f"Simulated KATCP device listening on {device.host}:{device.port} "
          f"(KATCP {device.protocol}, {len(device.sensors)} sensors, "
          f"updates at {rate:g} Hz); Ctrl-C to stop", file=out or sys.stdout, flush=True)
    try:
        with on_stop_signals(device.halt):
            await device.join()
    finally:
        await device.stop()


async def start_simulator(host: str, port: int, sensors: int, rate: float,
                          protocol: str) -> SimulatedDevice:
    """A started device with demo sensors; its ``device.address`` is where it listens."""
    device = SimulatedDevice.with_demo_sensors(sensors, rate=rate or None, protocol=protocol)
    await device.start(host, port)
    show_address(device)
    return device


def show_address(device: SimulatedDevice) -> None:
    """Set the demo sensor ``device.address`` (if there is one) to the address listened on."""
    if "device.address" in device.sensors:
        device.set_value("device.address", Address(device.host, device.port))


def run_simulator(host: str = "127.0.0.1", port: int = DEFAULT_PORT, sensors: int = 40,
                  rate: float = 1.0, protocol: str = "5.1") -> None:
    """Run a simulated device until interrupted (see :func:`serve_simulator`); blocks."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve_simulator(host, port, sensors, rate, protocol))


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    # The command's validators; imported here because the command imports this module.
    from ..cli.common import count, port_number, rate

    parser = argparse.ArgumentParser(
        prog=prog, description="Run a simulated KATCP device with demo sensors.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT,
                        help="port to listen on, 0 for any free one (default: %(default)s)")
    parser.add_argument("--sensors", type=count, default=40,
                        help="number of demo sensors (default: %(default)s)")
    parser.add_argument("--rate", type=rate, default=1.0,
                        help="updates per second of the changing sensors, 0 for none "
                             "(default: %(default)s)")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="5.1",
                        help="KATCP version to speak (default: %(default)s)")
    parser.add_argument("--devices", type=count, default=1, metavar="N",
                        help="run N devices, on consecutive ports from --port (or on free "
                             "ports with --port 0) (default: %(default)s)")
    parser.add_argument("--protocols", type=protocol_list, default=None, metavar="LIST",
                        help="KATCP versions of the devices, in turn, e.g. 5.1,5.0,4 "
                             "(default: --protocol for all)")
    parser.add_argument("--write-config", default=None, metavar="FILE",
                        help="write a fleet configuration of the devices to FILE, for "
                             "'katcp-inspect fleet FILE'")
    return parser


def protocol_list(text: str) -> list[str]:
    """``"5.1,5.0,4"`` → the versions, each one the device speaks (an argparse type)."""
    versions = [part.strip() for part in text.split(",") if part.strip()]
    for version in versions:
        if version not in PROTOCOLS:
            raise argparse.ArgumentTypeError(
                f"unknown KATCP version {version!r} (use {', '.join(PROTOCOLS)})")
    if not versions:
        raise argparse.ArgumentTypeError("no KATCP version given")
    return versions


def run_from_arguments(args: argparse.Namespace) -> None:
    """Run what the parser's ``args`` ask for: one device, or several (``--devices``,
    ``--protocols``, ``--write-config``); blocks until interrupted."""
    if args.devices == 1 and args.protocols is None and args.write_config is None:
        run_simulator(args.host, args.port, args.sensors, args.rate, args.protocol)
        return
    from .fleet_runner import run_simulators

    run_simulators(args.host, args.port, args.devices, args.sensors, args.rate,
                   args.protocols or [args.protocol], args.write_config)


def main(argv: Sequence[str] | None = None) -> int:
    run_from_arguments(build_parser("python -m katcp_inspect.testing").parse_args(argv))
    return 0
