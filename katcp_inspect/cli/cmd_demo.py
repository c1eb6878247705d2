"""``katcp-inspect demo``: the main job in one command. A simulated device is started in this
process, inspected with :class:`~katcp_inspect.InspectingClientAsync` (showing each step of the
sync), and its requests and live sensors are shown for a few seconds."""

from __future__ import annotations

import argparse
import asyncio

from rich.text import Text

from ..inspecting_client import InspectingClientAsync, InspectingClientStateType
from ..model import AttrDict
from ..testing import FailReply, RequestContext, SimulatedDevice
from ..testing.runner import show_address
from .common import EXIT_OK, stop_on_signals
from .formatting import describe_changes, describe_state, format_message, state_style
from .live import SensorView, show_live
from .render import make_console, requests_table

DEMO_SENSORS = 40
MODES = ("idle", "observing", "maintenance")


def demo_device() -> SimulatedDevice:
    """The demo's device: 40 sensors of all eight types (some changing every second) and the
    standard requests, plus ``?add``, ``?echo`` and ``?set-mode``."""
    device = SimulatedDevice.with_demo_sensors(DEMO_SENSORS, rate=1.0)
    device.set_value("device.message", "fan 2 running slow", status="warn")
    device.set_status("device.serial", "inactive")

    @device.request("add", help="Add two integers.\nReplies with their sum.", timeout_hint=2.0)
    async def add(ctx: RequestContext, a: bytes, b: bytes) -> int:
        return int(a) + int(b)

    @device.request("echo", help="Reply with the arguments given.")
    async def echo(ctx: RequestContext, *args: bytes) -> tuple[bytes, ...]:
        return args

    @device.request("set-mode", help=f"Set the operating mode ({', '.join(MODES)}).")
    async def set_mode(ctx: RequestContext, mode: bytes) -> None:
        text = mode.decode("utf-8", "replace")
        if text not in MODES:
            raise FailReply(f"unknown mode {text}")
        ctx.device.set_value("device.mode", text)

    return device


async def demo(seconds: float | None) -> int:
    console = make_console()
    loop = asyncio.get_running_loop()
    device = demo_device()
    await device.start("127.0.0.1", 0)
    show_address(device)
    address = f"127.0.0.1:{device.port}"
    console.print(Text.assemble(
        "Started a simulated KATCP device on ", (address, "bold"),
        f" (KATCP {device.protocol}, {len(device.sensors)} sensors, "
        f"{len(device.requests)} requests; some sensors change every second)."))
    console.print(Text.assemble(
        "Inspecting it with ", ("InspectingClientAsync", "bold"),
        "; each state the client reports:"))
    client = InspectingClientAsync("127.0.0.1", device.port, auto_sampling="event")
    started = loop.time()

    stop = asyncio.Event()

    def progress(state: InspectingClientStateType, changes: AttrDict | None) -> None:
        if stop.is_set():
            return  # stopping: the table shows the end
        katcp = client.katcp_client
        text = describe_state(state, katcp.state, katcp.last_error)
        if changes:
            text += f": {describe_changes(changes)}"
        console.print(Text.assemble(f"  {loop.time() - started:6.3f} s  {state}  ",
                                    (text, state_style(state))))

    view = SensorView(client, address, on_state=progress)
    view.narrow_hint = "a taller terminal shows more"
    try:
        with stop_on_signals(stop):
            await client.connect()
            await client.until_synced(timeout=10)
            console.print()
            requests = [await client.future_get_request(n) for n in client.requests]
            console.print(requests_table(requests, title=f"{len(requests)} requests"))
            reply, _ = await client.simple_request("add", 2, 3)
            console.print(Text.assemble("A request: ", ("?add 2 3", "bold"), "  →  ",
                                        format_message(reply)))
            console.print()
            until = "until Ctrl-C" if seconds is None else f"for {seconds:g} s (Ctrl-C to stop)"
            console.print(f"The sensors, live (sampling strategy event), {until}:")
            await show_live(console, view, stop, seconds)
    finally:
        stop.set()
        await client.stop()
        await device.stop()
    console.print(Text.assemble(
        "\nNext: run a device with ", ("katcp-inspect sim --port 7147", "bold"),
        " and, in another terminal, ", ("katcp-inspect watch 127.0.0.1:7147", "bold"),
        " or ", ("katcp-inspect inspect 127.0.0.1:7147", "bold"), "."))
    return EXIT_OK


async def run(args: argparse.Namespace) -> int:
    return await demo(args.seconds)
