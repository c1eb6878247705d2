"""The simulated device, seen from a raw socket: the exact lines it sends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiokatcp
import pytest
from simdevice_helpers import Connect, StartDevice
from tornado.ioloop import IOLoop

from katcp_inspect.connection import WRITE_AT_ONCE
from katcp_inspect.kattypes import SensorType
from katcp_inspect.testing import (
    FailReply,
    InvalidReply,
    RequestContext,
    SimulatedDevice,
    SimulatedSensor,
)

pytest_plugins = ["katcp_inspect.testing.pytest_plugin"]

LIB = b"katcp-inspect-"

SENSOR_LIST = [
    rb"#sensor-list a.bool A\_boolean. \@ boolean",
    rb"#sensor-list a.discrete A\_discrete. \@ discrete one two",
    rb"#sensor-list a.float A\_float\nover\_two\_lines. V float -1.0 1.0",
    rb"#sensor-list a.string A\_string. \@ string",
    rb"#sensor-list a.timestamp A\_timestamp. s timestamp",
    rb"#sensor-list an.address An\_address. \@ address",
    rb"#sensor-list an.int An\_integer. count integer 0 100",
    rb"#sensor-list an.lru An\_lru. \@ lru",
]
SENSOR_VALUES = [
    rb"1 a.bool nominal 1",
    rb"1 a.discrete nominal two",
    rb"1 a.float nominal 0.25",
    rb"1 a.string nominal hello\_world",
    rb"1 a.timestamp nominal 1234.5",
    rb"1 an.address nominal 10.0.0.1:7147",
    rb"1 an.int nominal 5",
    rb"1 an.lru nominal nominal",
]
STANDARD_51 = [
    b"client-list", b"halt", b"help", b"log-level", b"request-timeout-hint", b"sensor-list",
    b"sensor-sampling", b"sensor-value", b"version-list", b"watchdog",
]


def names_of(lines: list[bytes]) -> list[bytes]:
    return [line.split(b" ")[1] for line in lines]


# -- greetings and protocol versions -----------------------------------------------------------


async def test_greeting_v51(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device(name="dev-2.0", build="dev-2.0.1")
    client = await connect(device, greeting=0)
    greeting = await client.readlines(3)
    assert greeting[0] == b"#version-connect katcp-protocol 5.1-MIBT"
    assert greeting[1].startswith(b"#version-connect katcp-library " + LIB)
    assert greeting[2] == b"#version-connect katcp-device dev-2.0 dev-2.0.1"
    assert await client.request("?version-list[1]") == [
        b"#version-list[1] katcp-protocol 5.1-MIBT",
        greeting[1].replace(b"#version-connect", b"#version-list[1]"),
        b"#version-list[1] katcp-device dev-2.0 dev-2.0.1",
        b"!version-list[1] ok 3",
    ]


async def test_v50_has_no_timeout_hints_and_no_bulk(start_device: StartDevice,
                                                    connect: Connect) -> None:
    device = await start_device(protocol="5.0")
    client = await connect(device, greeting=0)
    assert (await client.readline()) == b"#version-connect katcp-protocol 5.0-MI"
    await client.readlines(2)
    assert await client.request("?request-timeout-hint") == [
        rb"!request-timeout-hint invalid Unknown\_request."]
    # Without flag B a comma is part of one (unknown) sensor name.
    assert await client.request("?sensor-sampling[2] an.int,a.float auto") == [
        rb"!sensor-sampling[2] fail Unknown\_sensor\_name\_an.int,a.float."]
    assert b"request-timeout-hint" not in names_of((await client.request("?help"))[:-1])


async def test_v4(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device(protocol="4", name="old-1.0", build="old-1.0.3")
    client = await connect(device, greeting=0)
    assert await client.readlines(2) == [b"#version old-1.0", b"#build-state old-1.0.3"]
    # No message ids on a v4 device, even if the client sends one.
    assert await client.request("?watchdog[3]") == [b"!watchdog ok"]
    # Milliseconds for reading timestamps and for timestamp-typed values.
    assert await client.request("?sensor-value a.timestamp") == [
        b"#sensor-value 1000500 1 a.timestamp nominal 1234500", b"!sensor-value ok 1"]
    assert await client.request("?sensor-sampling an.int event-rate 0 1") == [
        rb"!sensor-sampling fail Strategy\_event-rate\_not\_allowed\_for\_version\_4\_of\_katcp"
        rb"\_(sensor\_an.int)"]
    assert (await client.request("?sensor-sampling an.int differential-rate 1 0 1"))[0] \
        .startswith(rb"!sensor-sampling fail Strategy\_differential-rate\_not\_allowed")
    assert await client.request("?version-list") == [rb"!version-list invalid Unknown\_request."]
    # The period is in milliseconds too.
    assert await client.request("?sensor-sampling an.int period 50") == [
        b"#sensor-status 1000500 1 an.int nominal 5", b"!sensor-sampling ok an.int period 50"]
    start = time.monotonic()
    await client.readlines(2)
    assert 0.08 <= time.monotonic() - start < 1.0
    device.set_value("an.int", 6, timestamp=2000.25)
    await client.read_until(b"#sensor-status 2000250 1 an.int nominal 6")


async def test_flags_override_and_order(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device(protocol="5.1", flags="TIM")
    client = await connect(device, greeting=0)
    assert (await client.readline()) == b"#version-connect katcp-protocol 5.1-TIM"
    device2 = await start_device(protocol="5.1-MB")
    assert device2.protocol == "5.1-MB"
    assert not device2.protocol_flags.message_ids
    client2 = await connect(device2)
    # Without flag I replies carry no message id.
    assert await client2.request("?watchdog[9]") == [b"!watchdog ok"]
    with pytest.raises(ValueError, match=r"KATCP 4, 5\.0 and 5\.1"):
        SimulatedDevice(protocol="6.0")


async def test_single_client_device_drops_the_old_client(start_device: StartDevice,
                                                         connect: Connect) -> None:
    device = await start_device(flags="IBT")
    first = await connect(device)
    assert await first.request("?client-list") == [rb"!client-list invalid Unknown\_request."]
    second = await connect(device)
    line = await first.readline()
    assert line.startswith(rb"#disconnect New\_client\_connected\_from\_127.0.0.1:")
    await first.expect_closed()
    assert await second.request("?watchdog") == [b"!watchdog ok"]


# -- standard requests ----------------------------------------------------------------------


async def test_help(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    lines = await client.request("?help")
    assert names_of(lines[:-1]) == STANDARD_51
    assert lines[-1] == b"!help ok 10"
    assert await client.request("?help[7] watchdog") == [
        rb"#help[7] watchdog Check\_that\_the\_device\_is\_alive.", b"!help[7] ok 1"]
    assert await client.request("?help nosuch") == [rb"!help fail Unknown\_request\_nosuch."]
    assert await client.request("?help a b") == [
        rb"!help invalid too\_many\_positional\_arguments"]


async def test_unknown_request(start_device: StartDevice, connect: Connect) -> None:
    client = await connect(await start_device())
    assert await client.request("?nosuch") == [rb"!nosuch invalid Unknown\_request."]
    assert await client.request("?nosuch[12] x") == [rb"!nosuch[12] invalid Unknown\_request."]


async def test_sensor_list(start_device: StartDevice, connect: Connect) -> None:
    client = await connect(await start_device())
    assert await client.request("?sensor-list") == [*SENSOR_LIST, b"!sensor-list ok 8"]
    assert await client.request("?sensor-list[2] an.int") == [
        SENSOR_LIST[6].replace(b"#sensor-list", b"#sensor-list[2]"), b"!sensor-list[2] ok 1"]
    # A backslash in a regular expression is escaped on the wire.
    assert await client.request(rb"?sensor-list /^an\\./") == [
        *SENSOR_LIST[5:], b"!sensor-list ok 3"]
    assert await client.request("?sensor-list /nothing/") == [b"!sensor-list ok 0"]
    assert await client.request("?sensor-list nope") == [
        rb"!sensor-list fail Unknown\_sensor\_name\_nope."]
    reply = await client.request("?sensor-list /(/")
    assert reply[0].startswith(rb"!sensor-list fail Invalid\_regular\_expression")


async def test_sensor_value(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    assert await client.request("?sensor-value") == [
        b"#sensor-value 1000.5 " + v for v in SENSOR_VALUES] + [b"!sensor-value ok 8"]
    device.set_value("a.string", "", status="warn", timestamp=1500.0)
    assert await client.request("?sensor-value[5] a.string") == [
        rb"#sensor-value[5] 1500.0 1 a.string warn \@", b"!sensor-value[5] ok 1"]
    assert await client.request("?sensor-value /^a[.][bd]/") == [
        b"#sensor-value 1000.5 1 a.bool nominal 1",
        b"#sensor-value 1000.5 1 a.discrete nominal two",
        b"!sensor-value ok 2"]
    assert await client.request("?sensor-value nope") == [
        rb"!sensor-value fail Unknown\_sensor\_name\_nope."]


async def test_watchdog_log_level_client_list(start_device: StartDevice,
                                              connect: Connect) -> None:
    device = await start_device()
    first = await connect(device)
    assert await first.request("?watchdog[1]") == [b"!watchdog[1] ok"]
    assert await first.request("?watchdog extra") == [
        rb"!watchdog invalid too\_many\_positional\_arguments"]
    assert await first.request("?log-level") == [b"!log-level ok warn"]
    assert await first.request("?log-level debug") == [b"!log-level ok debug"]
    assert await first.request("?log-level loud") == [
        rb"!log-level fail Unknown\_log\_level\_loud."]
    second = await connect(device)
    connected = await first.readline()
    assert connected.startswith(b"#client-connected 127.0.0.1:")
    port = second.writer.get_extra_info("sockname")[1]
    assert connected == b"#client-connected 127.0.0.1:%d" % port
    # The level is device-wide.
    assert await second.request("?log-level") == [b"!log-level ok debug"]
    lines = await second.request("?client-list[4]")
    assert lines[-1] == b"!client-list[4] ok 2"
    assert b"#client-list[4] 127.0.0.1:%d" % port in lines


async def test_request_timeout_hint(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()

    @device.request("slow-thing", help="Takes a while.", timeout_hint=20.5)
    async def slow_thing(ctx: RequestContext) -> None:
        pass

    device.add_request("other", slow_thing, timeout_hint=2)
    client = await connect(device)
    assert await client.request("?request-timeout-hint") == [
        b"#request-timeout-hint other 2", b"#request-timeout-hint slow-thing 20.5",
        b"!request-timeout-hint ok 2"]
    assert await client.request("?request-timeout-hint[3] slow-thing") == [
        b"#request-timeout-hint[3] slow-thing 20.5", b"!request-timeout-hint[3] ok 1"]
    assert await client.request("?request-timeout-hint help") == [
        b"#request-timeout-hint help 0", b"!request-timeout-hint ok 1"]
    assert await client.request("?request-timeout-hint nope") == [
        rb"!request-timeout-hint fail Unknown\_request\_nope."]


async def test_malformed_line_gets_log_error_and_no_reply(start_device: StartDevice,
                                                          connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    client.send(b"?help[0]")
    client.send(b"!strange-reply ok")
    line = await client.readline()
    parts = line.split(b" ")
    assert parts[:2] == [b"#log", b"error"]
    assert float(parts[2]) == pytest.approx(time.time(), abs=60)
    assert len(parts) == 5  # logger and text (escaped) follow
    assert (await client.readline()).startswith(rb"#log error ")  # the unexpected reply
    assert await client.barrier() == []
    # ?log-level off silences it.
    await client.request("?log-level off")
    client.send(b"?bad\x00line")
    assert await client.barrier() == []


async def test_over_long_request_line_gets_log_error_and_the_connection_stays(
        start_device: StartDevice, connect: Connect) -> None:
    device = await start_device(max_line_length=1000)
    client = await connect(device)
    client.writer.write(b"?echo " + b"x" * 5000)  # no line end yet: over the limit mid-line
    await client.writer.drain()
    await asyncio.sleep(0.05)  # lets the device read the unfinished line on its own
    client.send(b"x" * 10)
    line = await client.readline()
    assert line.startswith(b"#log error ") and b"Line\\_too\\_long" in line
    assert await client.barrier() == []  # still connected, and nothing else was sent


async def test_halt(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    other = await connect(device)
    assert (await client.readline()).startswith(b"#client-connected ")
    assert await client.request("?halt[1]") == [b"!halt[1] ok"]
    await client.expect_closed()
    await other.expect_closed()
    await asyncio.wait_for(device.join(), 2)
    assert not device.running
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", device.port)


# -- sensor sampling ------------------------------------------------------------------------


async def test_sampling_query_and_none(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    assert await client.request("?sensor-sampling an.int") == [
        b"!sensor-sampling ok an.int none"]
    assert await client.request("?sensor-sampling[2] an.int differential 3") == [
        b"#sensor-status 1000.5 1 an.int nominal 5",
        b"!sensor-sampling[2] ok an.int differential 3"]
    assert await client.request("?sensor-sampling an.int") == [
        b"!sensor-sampling ok an.int differential 3"]
    # none sends nothing, and stops updates.
    assert await client.request("?sensor-sampling an.int none") == [
        b"!sensor-sampling ok an.int none"]
    device.set_value("an.int", 50)
    assert await client.barrier() == []
    assert device.get_sensor("an.int").observer_count == 0
    assert await client.request("?sensor-sampling nope") == [
        rb"!sensor-sampling fail Unknown\_sensor\_name\_nope."]
    assert await client.request("?sensor-sampling") == [
        rb"!sensor-sampling invalid missing\_a\_required\_argument:\_'names'"]


async def test_sampling_auto_sends_every_update(start_device: StartDevice,
                                                connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    await client.request("?sensor-sampling a.string auto")
    device.set_value("a.string", "hello world", timestamp=2000.0)
    device.set_value("a.string", "hello world", timestamp=2001.0)
    device.set_value("a.string", "bye", "error", timestamp=2002.0)
    assert await client.barrier() == [
        rb"#sensor-status 2000.0 1 a.string nominal hello\_world",
        rb"#sensor-status 2001.0 1 a.string nominal hello\_world",
        rb"#sensor-status 2002.0 1 a.string error bye",
    ]


async def test_sampling_event(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    assert await client.request("?sensor-sampling[1] a.discrete event") == [
        b"#sensor-status 1000.5 1 a.discrete nominal two",
        b"!sensor-sampling[1] ok a.discrete event"]
    device.set_value("a.discrete", "two", timestamp=2000.0)  # no change
    device.set_value("a.discrete", "one", timestamp=2001.0)
    device.set_status("a.discrete", "warn", timestamp=2002.0)
    device.set_status("a.discrete", "warn", timestamp=2003.0)  # no change
    assert await client.barrier() == [
        b"#sensor-status 2001.0 1 a.discrete nominal one",
        b"#sensor-status 2002.0 1 a.discrete warn one",
    ]


async def test_sampling_differential(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    await client.request("?sensor-sampling an.int differential 2")
    await client.request("?sensor-sampling a.float differential 0.5")
    for value in (6, 7, 8, 7):  # 5 -> 8 is the first change of more than 2
        device.set_value("an.int", value, timestamp=2000.0 + value)
    device.set_value("an.int", 7, "warn", timestamp=2010.0)  # status change
    device.set_value("a.float", 0.7, timestamp=3000.0)
    device.set_value("a.float", 0.8, timestamp=3001.0)
    assert await client.barrier() == [
        b"#sensor-status 2008.0 1 an.int nominal 8",
        b"#sensor-status 2010.0 1 an.int warn 7",
        b"#sensor-status 3001.0 1 a.float nominal 0.8",
    ]
    assert await client.request("?sensor-sampling a.string differential 1") == [
        rb"!sensor-sampling fail Strategy\_differential\_is\_only\_for\_integer\_and\_float"
        rb"\_sensors,\_not\_string\_(sensor\_a.string)"]
    reply = await client.request("?sensor-sampling an.int differential -1")
    assert reply[0].startswith(rb"!sensor-sampling fail the\_difference\_must\_be")


async def test_sampling_period(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    start = time.monotonic()
    assert await client.request("?sensor-sampling a.bool period 0.1") == [
        b"#sensor-status 1000.5 1 a.bool nominal 1", b"!sensor-sampling ok a.bool period 0.1"]
    device.set_value("a.bool", False, timestamp=2000.0)  # not sent at once...
    assert await client.barrier() == []
    # ...but with the next period, and the same reading again after that.
    assert await client.readlines(2) == [b"#sensor-status 2000.0 1 a.bool nominal 0"] * 2
    assert 0.19 <= time.monotonic() - start < 1.0
    for bad in ("0", "x", "-1", ""):
        reply = await client.request(f"?sensor-sampling a.bool period {bad}".strip())
        assert reply[-1].startswith(b"!sensor-sampling fail ")


async def test_sampling_event_rate(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    start = time.monotonic()
    await client.request("?sensor-sampling an.int event-rate 0.1 10")
    device.set_value("an.int", 6, timestamp=2000.0)
    device.set_value("an.int", 7, timestamp=2001.0)
    assert await client.barrier() == []  # too soon after the first update
    assert await client.readline() == b"#sensor-status 2001.0 1 an.int nominal 7"
    assert time.monotonic() - start >= 0.09
    # At least once per longest period, even without a change.
    await client.request("?sensor-sampling a.bool event-rate 0 0.05")
    assert await client.readlines(2) == [b"#sensor-status 1000.5 1 a.bool nominal 1"] * 2
    assert (await client.request("?sensor-sampling a.bool none"))[-1] == \
        b"!sensor-sampling ok a.bool none"
    reply = await client.request("?sensor-sampling a.bool event-rate 2 1")
    assert reply == [
        rb"!sensor-sampling fail the\_shortest\_period\_must\_not\_exceed\_the\_longest"
        rb"\_(sensor\_a.bool)"]
    reply = await client.request("?sensor-sampling a.bool event-rate 1")
    assert reply[0].startswith(rb"!sensor-sampling fail Strategy\_event-rate\_takes")


async def test_sampling_differential_rate(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    start = time.monotonic()
    assert await client.request("?sensor-sampling a.float differential-rate 0.5 0.1 10") == [
        b"#sensor-status 1000.5 1 a.float nominal 0.25",
        b"!sensor-sampling ok a.float differential-rate 0.5 0.1 10"]
    device.set_value("a.float", 0.5, timestamp=2000.0)  # a change of 0.25: not enough
    device.set_value("a.float", 0.9, timestamp=2001.0)  # 0.65: enough, but too soon
    assert await client.barrier() == []
    assert await client.readline() == b"#sensor-status 2001.0 1 a.float nominal 0.9"
    assert time.monotonic() - start >= 0.09
    reply = await client.request("?sensor-sampling a.bool differential-rate 1 0 1")
    assert reply[0].startswith(rb"!sensor-sampling fail Strategy\_differential-rate\_is\_only")


async def test_sampling_unknown_strategy(start_device: StartDevice, connect: Connect) -> None:
    client = await connect(await start_device())
    assert await client.request("?sensor-sampling an.int sometimes") == [
        rb"!sensor-sampling fail Unknown\_strategy\_sometimes\_(sensor\_an.int)"]
    reply = await client.request("?sensor-sampling an.int auto 1")
    assert reply[0].startswith(rb"!sensor-sampling fail Strategy\_auto\_takes\_no\_parameters")


async def test_bulk_sampling_is_atomic(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    assert await client.request("?sensor-sampling[4] an.int,a.float auto") == [
        b"#sensor-status 1000.5 1 an.int nominal 5",
        b"#sensor-status 1000.5 1 a.float nominal 0.25",
        b"!sensor-sampling[4] ok an.int,a.float auto"]
    # An unknown name or an unsuitable strategy anywhere: fail, and nothing changes.
    assert await client.request("?sensor-sampling an.int,nope none") == [
        rb"!sensor-sampling fail Unknown\_sensor\_name\_nope."]
    reply = await client.request("?sensor-sampling an.int,a.float,a.string differential 1")
    assert reply[0].startswith(rb"!sensor-sampling fail Strategy\_differential\_is\_only")
    for name in ("an.int", "a.float"):
        assert await client.request(f"?sensor-sampling {name}") == [
            b"!sensor-sampling ok %s auto" % name.encode()]
    assert await client.request("?sensor-sampling a.string") == [
        b"!sensor-sampling ok a.string none"]
    assert await client.request("?sensor-sampling an.int,a.float") == [
        rb"!sensor-sampling fail Cannot\_query\_multiple\_sensors."]


async def test_strategies_are_per_connection(start_device: StartDevice,
                                             connect: Connect) -> None:
    device = await start_device()
    first = await connect(device)
    second = await connect(device)
    await first.readline()  # #client-connected
    await first.request("?sensor-sampling an.int auto")
    assert await second.request("?sensor-sampling an.int") == [
        b"!sensor-sampling ok an.int none"]
    device.set_value("an.int", 9, timestamp=2000.0)
    assert await first.barrier() == [b"#sensor-status 2000.0 1 an.int nominal 9"]
    assert await second.barrier() == []
    # Strategies vanish with their connection.
    assert device.get_sensor("an.int").observer_count == 1
    await first.close()
    for _ in range(100):
        if device.get_sensor("an.int").observer_count == 0:
            break
        await asyncio.sleep(0.01)
    assert device.get_sensor("an.int").observer_count == 0
    assert len(device.connections) == 1


async def test_removed_and_replaced_sensors_lose_their_strategies(
        start_device: StartDevice, connect: Connect) -> None:
    device = await start_device(interface_changed=None)
    client = await connect(device)
    await client.request("?sensor-sampling an.int,a.float auto")
    device.add_sensor(SimulatedSensor(SensorType.INTEGER, "an.int", "Replaced.", value=1))
    removed = device.remove_sensor("a.float")
    removed.set_value(0.5)
    device.set_value("an.int", 2)
    assert await client.barrier() == []
    assert await client.request("?sensor-sampling an.int") == [
        b"!sensor-sampling ok an.int none"]


# -- user-defined requests ------------------------------------------------------------------


async def test_user_requests(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()

    @device.request("add", help="Add two integers.", timeout_hint=2.0)
    async def add(ctx: RequestContext, a: bytes, b: bytes) -> int:
        return int(a) + int(b)

    @device.request("pair")
    async def pair(ctx: RequestContext) -> tuple[Any, ...]:
        """Give two things."""
        ctx.inform("first inform")
        ctx.inform(1.5, True)
        return ("x y", 3)

    @device.request("nothing")
    def nothing(ctx: RequestContext, *args: bytes) -> None:  # a plain function will do
        pass

    @device.request("refuse")
    async def refuse(ctx: RequestContext, how: bytes) -> None:
        if how == b"fail":
            raise FailReply("not now")
        if how == b"invalid":
            raise InvalidReply("bad how")
        raise RuntimeError("boom")

    client = await connect(device)
    assert await client.request("?add[1] 2 3") == [b"!add[1] ok 5"]
    assert await client.request("?add 2") == [
        rb"!add invalid missing\_a\_required\_argument:\_'b'"]
    assert await client.request("?add 2 x") == [
        rb"!add fail invalid\_literal\_for\_int()\_with\_base\_10:\_b'x'"]
    assert await client.request("?pair[2]") == [
        rb"#pair[2] first\_inform", b"#pair[2] 1.5 1", rb"!pair[2] ok x\_y 3"]
    assert await client.request("?nothing a b c") == [b"!nothing ok"]
    assert await client.request("?refuse fail") == [rb"!refuse fail not\_now"]
    assert await client.request("?refuse invalid") == [rb"!refuse invalid bad\_how"]
    assert await client.request("?refuse other") == [b"!refuse fail boom"]
    assert await client.request("?help pair") == [rb"#help pair Give\_two\_things.",
                                                  b"!help ok 1"]
    assert await client.request("?request-timeout-hint add") == [
        b"#request-timeout-hint add 2.0", b"!request-timeout-hint ok 1"]
    with pytest.raises(ValueError, match="invalid request name"):
        device.add_request("bad_name", add)


async def test_requests_replaced_and_removed_at_run_time(start_device: StartDevice,
                                                         connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    device.add_request("echo", lambda ctx, *args: args, help="Echo.")
    assert await client.readline() == b"#interface-changed request echo added"
    assert await client.request("?echo a b") == [b"!echo ok a b"]
    device.add_request("echo", lambda ctx, *args: len(args), help="Count.")
    assert await client.readline() == b"#interface-changed request echo modified"
    assert await client.request("?echo a b") == [b"!echo ok 2"]
    device.remove_request("echo")
    assert await client.readline() == b"#interface-changed request echo removed"
    assert await client.request("?echo") == [rb"!echo invalid Unknown\_request."]
    device.remove_request("version-list")  # standard requests too
    assert await client.readline() == b"#interface-changed request version-list removed"


async def test_concurrent_requests_with_message_ids(start_device: StartDevice,
                                                    connect: Connect) -> None:
    device = await start_device()
    release = asyncio.Event()

    @device.request("slow")
    async def slow(ctx: RequestContext) -> None:
        await release.wait()

    client = await connect(device)
    client.send("?slow[1]")
    assert await client.request("?watchdog[2]") == [b"!watchdog[2] ok"]
    release.set()
    assert await client.readline() == b"!slow[1] ok"
    # Without message ids, one request at a time, in order.
    release.clear()
    client.send("?slow")
    client.send("?watchdog")
    await client.expect_silence(0.05)
    release.set()
    assert await client.readlines(2) == [b"!slow ok", b"!watchdog ok"]


# -- interface changes ----------------------------------------------------------------------


@pytest.mark.parametrize(("style", "expected"), [
    ("sensor", [b"#interface-changed sensor new.one added",
                b"#interface-changed sensor an.int modified",
                b"#interface-changed sensor a.bool removed",
                b"#interface-changed request extra added"]),
    ("list", [b"#interface-changed sensor-list"] * 3 + [b"#interface-changed request-list"]),
    ("bare", [b"#interface-changed"] * 4),
    ("device-changed", [b"#device-changed"] * 4),
    (None, []),
])
async def test_interface_changed_styles(start_device: StartDevice, connect: Connect,
                                        style: str | None, expected: list[bytes]) -> None:
    device = await start_device(interface_changed=style)
    client = await connect(device)
    device.add_sensor(SimulatedSensor("string", "new.one"))
    device.add_sensor(SimulatedSensor("integer", "an.int", "Another description."))
    device.remove_sensor("a.bool")
    device.add_request("extra", lambda ctx: None)
    assert await client.barrier() == expected
    assert b"new.one" in b"".join(await client.request("?sensor-list"))


# -- faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True])
async def test_drop_clients(start_device: StartDevice, connect: Connect, reset: bool) -> None:
    device = await start_device()
    client = await connect(device)
    device.drop_clients(reset=reset)
    try:
        await client.expect_closed()
    except ConnectionResetError:
        assert reset
    again = await connect(device)  # still listening
    assert await again.request("?watchdog") == [b"!watchdog ok"]


async def test_stall_and_resume(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    await client.request("?sensor-sampling an.int auto")
    device.stall()
    assert device.stalled
    client.send("?watchdog[1]")
    device.set_value("an.int", 7)  # lost: a hung device sends no updates
    device.mass_inform("hello", "world")  # held back
    late = await connect(device, greeting=0)  # TCP still accepts; the greeting waits
    await client.expect_silence(0.1)
    await late.expect_silence(0.01)
    device.resume()
    lines = await client.readlines(3)
    assert lines[0] == b"#hello world"
    assert lines[1].startswith(b"#client-connected ")
    assert lines[2] == b"!watchdog[1] ok"
    assert (await late.readline()).startswith(b"#version-connect katcp-protocol")
    device.set_value("an.int", 8, timestamp=2000.0)
    assert await client.readline() == b"#sensor-status 2000.0 1 an.int nominal 8"


async def test_delay(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    device.set_delay("sensor-value", 0.1)
    assert device.delays == {"sensor-value": 0.1}
    start = time.monotonic()
    client.send("?sensor-value[1] an.int")
    assert await client.request("?watchdog[2]") == [b"!watchdog[2] ok"]  # not held up
    assert await client.read_until(b"!sensor-value[1] ok 1")
    assert time.monotonic() - start >= 0.09
    device.set_delay("sensor-value", None)
    assert device.delays == {}


async def test_garbage_and_long_lines(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    device.send_garbage()
    assert await client.readline() == b"this is not a KATCP message"
    device.send_garbage(b"\x00\xff")
    assert await client.readline() == b"\x00\xff"
    device.send_long_line(100_000)
    line = await client.readline()
    assert line.startswith(b"#long-line xxx")
    assert len(line) == 100_001
    assert await client.request("?watchdog") == [b"!watchdog ok"]


# -- running ----------------------------------------------------------------------------------


async def test_restart_on_the_same_port(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    await client.request("?sensor-sampling an.int auto")
    port = device.port
    await device.stop()
    await client.expect_closed()
    assert not device.running
    await device.start()
    assert device.port == port
    again = await connect(device)
    assert await again.request("?sensor-sampling an.int") == [
        b"!sensor-sampling ok an.int none"]


async def test_stop_leaves_nothing_behind(io_loop: IOLoop, connect: Connect) -> None:
    loop = asyncio.get_running_loop()
    timers_before = list(getattr(loop, "_scheduled", []))  # the test runner's timeout
    device = SimulatedDevice.with_demo_sensors(24, rate=50)
    await device.start()
    client = await connect(device)
    await client.request(f"?sensor-sampling {','.join(device.sensors)} period 0.01")
    await client.request("?sensor-sampling cpu.temperature,rx.power event-rate 0.5 1")
    device.stall()
    client.send("?watchdog")
    await device.stop()
    await device.stop()  # again: nothing to do
    assert asyncio.all_tasks() == {asyncio.current_task()}
    timers = [h for h in getattr(loop, "_scheduled", [])
              if not h.cancelled() and h not in timers_before]
    assert timers == []
    await client.expect_closed()


async def test_writes_are_batched(start_device: StartDevice, connect: Connect) -> None:
    sensors = [SimulatedSensor("integer", f"n.{i:03d}", value=0) for i in range(300)]
    device = await start_device(sensors=sensors)
    client = await connect(device)
    assert len(await client.request("?sensor-sampling " + ",".join(device.sensors) + " auto")) \
        == 301
    writes: list[bytes] = []
    stream = device.connections[0].stream
    real_write = stream.write

    def write(data: bytes) -> Any:
        writes.append(bytes(data))
        return real_write(data)

    stream.write = write  # type: ignore[method-assign]
    for sensor in sensors:
        sensor.set_value(1)
    lines = await client.readlines(300)
    assert all(line.startswith(b"#sensor-status ") for line in lines)
    # Not a write per line: one per loop iteration, or per WRITE_AT_ONCE bytes queued.
    assert sum(write.count(b"\n") for write in writes) == 300
    assert all(len(write) >= WRITE_AT_ONCE for write in writes[:-1])


async def test_value_generator(start_device: StartDevice, connect: Connect) -> None:
    device = await start_device()
    client = await connect(device)
    await client.request("?sensor-sampling an.int,a.bool,a.string event")
    generator = device.start_generator("/^a\\.(bool|string)$/", rate=100)
    assert generator.running
    lines = await client.readlines(4)
    assert {line.split(b" ")[3] for line in lines} == {b"a.bool", b"a.string"}
    device.stop_generator()
    assert not generator.running
    await client.barrier()
    assert await client.barrier() == []
    with pytest.raises(KeyError):
        device.start_generator(["nope"])


# -- third-party client and the pytest plugin ------------------------------------------------


async def test_aiokatcp_client(start_device: StartDevice) -> None:
    device = await start_device()
    client = await aiokatcp.Client.connect("127.0.0.1", device.port)
    try:
        assert {"M", "I", "B"} <= client.protocol_flags
        _, informs = await client.request("help")
        assert [m.arguments[0] for m in informs] == STANDARD_51
        reply, informs = await client.request("sensor-list")
        assert reply == [b"8"]
        assert [m.arguments[0] for m in informs][:2] == [b"a.bool", b"a.discrete"]
        updates: list[tuple[bytes, bytes]] = []
        got_three = asyncio.Event()

        def on_status(*args):  # type: ignore[no-untyped-def]  # unannotated: bytes
            updates.append((args[2], args[4]))
            if len(updates) == 4:
                got_three.set()

        client.add_inform_callback("sensor-status", on_status)
        reply, _ = await client.request("sensor-sampling", "an.int,a.float,a.string", "auto")
        assert reply == [b"an.int,a.float,a.string", b"auto"]
        device.set_value("a.string", "from the test")
        await asyncio.wait_for(got_three.wait(), 2)
        assert updates == [(b"an.int", b"5"), (b"a.float", b"0.25"),
                           (b"a.string", b"hello world"), (b"a.string", b"from the test")]
    finally:
        client.close()
        await client.wait_closed()


async def test_pytest_plugin_fixture(simulated_device: SimulatedDevice) -> None:
    assert simulated_device.running
    assert {s.stype for s in simulated_device.sensors.values()} == set(SensorType)
    reader, writer = await asyncio.open_connection("127.0.0.1", simulated_device.port)
    try:
        greeting = [await asyncio.wait_for(reader.readline(), 2) for _ in range(3)]
        assert greeting[0] == b"#version-connect katcp-protocol 5.1-MIBT\n"
        writer.write(b"?sensor-value device.mode\n")
        assert await asyncio.wait_for(reader.readline(), 2) == (
            b"#sensor-value %s 1 device.mode nominal idle\n"
            % simulated_device.get_sensor("device.mode").reading_arguments()[0])
    finally:
        writer.close()
