"""``katcp-inspect request``: informs then the reply in wire form, and exit codes 0 (ok),
1 (fail), 2 (invalid, unreachable, timeout, lost connection)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from katcp_inspect.cli.cmd_request import learn_timeout_hint
from katcp_inspect.cli.common import Target
from katcp_inspect.cli.session import connect_device
from katcp_inspect.testing import FailReply, RequestContext, SimulatedDevice

from .conftest import StartDevice
from .helpers import closed_port, run_cli


def device_with_requests(protocol: str = "5.1") -> SimulatedDevice:
    device = SimulatedDevice(protocol=protocol)

    @device.request("echo", help="Reply with the arguments, after one inform per argument.")
    async def echo(ctx: RequestContext, *args: bytes) -> tuple[bytes, ...]:
        for arg in args:
            ctx.inform(arg)
        return args

    @device.request("refuse", help="Always fails.")
    async def refuse(ctx: RequestContext) -> None:
        raise FailReply("not today")

    @device.request("hang-up", help="Drops the connection instead of replying.")
    async def hang_up(ctx: RequestContext) -> None:
        ctx.device.drop_clients()
        await asyncio.sleep(10)

    @device.request("slow", help="Takes a while.", timeout_hint=7.5)
    async def slow(ctx: RequestContext) -> None:
        await asyncio.sleep(10)

    return device


@pytest.mark.parametrize("protocol", ["5.1", "4"])
async def test_ok_prints_informs_then_the_reply(io_loop: Any, start_device: StartDevice,
                                                protocol: str) -> None:
    device = await start_device(device_with_requests(protocol))
    result = await run_cli("request", f"127.0.0.1:{device.port}", "?echo", "a b", "caf\xe9",
                           "--", "-1")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == ["#echo a\\_b", "#echo caf\xe9", "#echo -1",
                                       "!echo ok a\\_b caf\xe9 -1"]


async def test_fail_is_1(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(device_with_requests())
    result = await run_cli("request", f"127.0.0.1:{device.port}", "refuse")
    assert (result.code, result.out, result.err) == (1, "!refuse fail not\\_today\n", "")


async def test_invalid_is_2(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(device_with_requests())
    result = await run_cli("request", f"127.0.0.1:{device.port}", "no-such-request")
    assert (result.code, result.out) == (2, "!no-such-request invalid Unknown\\_request.\n")
    result = await run_cli("request", f"127.0.0.1:{device.port}", "refuse", "extra")
    assert result.code == 2
    assert result.out.startswith("!refuse invalid")


async def test_unreachable_is_2(io_loop: Any) -> None:
    with closed_port() as port:
        result = await run_cli("request", f"127.0.0.1:{port}", "help")
    assert (result.code, result.out) == (2, "")
    assert result.err == f"katcp-inspect: cannot connect to 127.0.0.1:{port}: " \
                         "Connection refused\n"


async def test_timeout_is_2(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(device_with_requests())
    started = time.monotonic()
    result = await run_cli("request", f"127.0.0.1:{device.port}", "slow", "--timeout", "0.5")
    assert time.monotonic() - started < 10
    assert (result.code, result.out) == (2, "")
    assert result.err == f"katcp-inspect: ?slow to 127.0.0.1:{device.port} timed out " \
                         "after 0.5 s\n"


async def test_lost_connection_is_2(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(device_with_requests())
    result = await run_cli("request", f"127.0.0.1:{device.port}", "hang-up")
    assert (result.code, result.out) == (2, "")
    assert result.err.startswith(f"katcp-inspect: ?hang-up to 127.0.0.1:{device.port}: ")
    assert result.err.count("\n") == 1


async def test_the_timeout_hint_is_asked_for(io_loop: Any, start_device: StartDevice) -> None:
    device = await start_device(device_with_requests())
    client = await connect_device(Target("127.0.0.1", device.port), 5)
    try:
        await learn_timeout_hint(client, "slow")
        await learn_timeout_hint(client, "echo")  # no hint
        await learn_timeout_hint(client, "no-such-request")  # refused: ignored
        assert client.timeout_hints == {"slow": 7.5}
    finally:
        await client.close()
