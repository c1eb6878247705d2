"""Test 5: hostile input. Over-long lines, invalid escapes, bad and huge mids, replies nobody
asked for, wrong argument counts, unknown sensor types and statuses, non-UTF-8 bytes in
descriptions and values. The client survives, counts each kind in its stats, warns once per
kind, and nothing reaches the event loop's exception handler (the conftest check)."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from katcp_inspect import InspectingClientAsync
from katcp_inspect.inspecting_client import SYNCED
from katcp_inspect.testing.harness.hostile_model import (
    EXPECTED_REQUESTS,
    EXPECTED_SENSORS,
    HOSTILE,
    NON_UTF8_VALUE,
    VERSION_HOSTILE,
    Hostile,
    responses,
)

from ..support import ScriptedDevice, scripted_device, sensor_list
from .helpers import fast_client, wait_until

REPEATS = 3


def counter(client: InspectingClientAsync, name: str) -> int:
    owner, attribute = name.split(".")
    stats = client.katcp_client.stats if owner == "client" else client.stats
    return int(getattr(stats, attribute))


def all_counters(client: InspectingClientAsync) -> dict[str, int]:
    out = {f"client.{k}": v for k, v in attrs.asdict(client.katcp_client.stats).items()}
    out.update({f"ic.{k}": v for k, v in attrs.asdict(client.stats).items()})
    return out


async def probe(client: InspectingClientAsync) -> None:
    """A ?watchdog round trip: everything sent before it has been handled."""
    reply, _ = await client.simple_request("watchdog", timeout=5)
    assert reply.reply_ok(), reply


async def synced_scripted(device: ScriptedDevice, **kwargs: Any) -> InspectingClientAsync:
    client = fast_client(device.port, **kwargs)
    await client.connect()
    await client.until_synced(timeout=10)
    return client


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(1 for r in caplog.records if r.levelno >= logging.WARNING
               and r.name.startswith("katcp_inspect") and text in r.getMessage())


async def test_odd_model_is_kept_and_counted(io_loop: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    async with scripted_device(responses=responses()) as device:
        client = await synced_scripted(device)
        try:
            assert set(client.sensors) == EXPECTED_SENSORS
            assert set(client.requests) == EXPECTED_REQUESTS
            assert client.stats.bad_informs == 2  # the bare #help and "short"
            weird = await client.future_get_sensor("weird.type")
            assert weird.stype == "string"
            utf8 = client._model.sensors["utf8.desc"]
            assert utf8.description.encode("utf-8", "surrogateescape") == b"\xff\xfe d\xe9scription"
            assert warnings_about(caplog, "unknown type 'mystery-type'") == 1
        finally:
            await client.stop()


async def test_every_hostile_kind_is_survived_counted_and_logged_once(
        io_loop: Any, caplog: pytest.LogCaptureFixture, figures: Any) -> None:
    async with scripted_device(responses=responses()) as device:
        client = await synced_scripted(device)
        try:
            peer = device.all[-1]
            model = client._model.snapshot()
            for sensor in ("a.float", "an.int", "a.bool", "a.string"):
                peer.send(b"#sensor-status 1.0 1 " + sensor.encode() + b" nominal 1\n")
            await probe(client)
            problems = []
            for hostile in HOSTILE:
                before = all_counters(client)
                for _ in range(REPEATS):
                    peer.send(hostile.line + b"\n")
                await probe(client)
                await wait_until(lambda: client.state == SYNCED, timeout=5)
                after = all_counters(client)
                problems += check_kind(hostile, before, after, caplog)
            peer.send(NON_UTF8_VALUE + b"\n")
            await probe(client)
            text = await client.future_get_sensor("a.string")
            assert text.value().encode("utf-8", "surrogateescape") == b"\xff\xfe"
            assert client._model.snapshot() == model, "garbage changed the model"
            assert client.katcp_client.stats.connections == 1
            assert client.stats.callback_errors == client.katcp_client.stats.callback_errors == 0
            assert not problems, "\n".join(problems)
            figures(f"hostile input: {len(HOSTILE)} kinds x {REPEATS} lines survived on one "
                    f"connection, each counted, at most one warning per kind; counters: "
                    + ", ".join(f"{k}={v}" for k, v in all_counters(client).items()
                                if v and k.split(".")[1] in (
                                    "bad_lines", "unmatched_replies", "unexpected_requests",
                                    "bad_updates", "unknown_sensor_updates", "bad_informs")))
        finally:
            await client.stop()


def check_kind(hostile: Hostile, before: dict[str, int], after: dict[str, int],
               caplog: pytest.LogCaptureFixture) -> list[str]:
    problems = []
    changed = {k: after[k] - before[k] for k in after if after[k] != before[k]
               and k.split(".")[1] not in ("requests", "syncs", "messages")}
    want = {} if hostile.counter is None else {hostile.counter: hostile.delta * REPEATS}
    if changed != want:
        problems.append(f"{hostile.kind}: counters moved {changed}, expected {want}")
    if hostile.warning is not None:
        count = warnings_about(caplog, hostile.warning)
        if count != 1:
            problems.append(f"{hostile.kind}: {count} warnings containing "
                            f"{hostile.warning!r}, expected exactly 1")
    return problems


@pytest.mark.parametrize("params", [b"x y", b"1e400 5", b"nan 5"])
async def test_sensor_with_odd_params_is_usable(io_loop: Any, params: bytes) -> None:
    """Regression (found by this suite): unparsable or non-finite params made Sensor()
    raise, so the sensor could not be looked up and its updates were dropped."""
    entries = {"sensor-list": sensor_list(b"odd.int Odd. u integer " + params)}
    async with scripted_device(responses=entries) as device:
        client = await synced_scripted(device)
        try:
            sensor = await client.future_get_sensor("odd.int")
            device.all[-1].send(b"#sensor-status 1.0 1 odd.int nominal 3\n")
            await probe(client)
            assert sensor.value() == 3
            assert client.stats.callback_errors == 0
        finally:
            await client.stop()


@pytest.mark.parametrize("hostile", VERSION_HOSTILE, ids=lambda h: h.kind)
async def test_greetings_while_connected_are_warned_about_once(
        io_loop: Any, caplog: pytest.LogCaptureFixture, hostile: Hostile) -> None:
    """Regression (found by this suite): each repeated greeting was warned about."""
    async with scripted_device(responses=responses()) as device:
        client = await synced_scripted(device)
        try:
            before = all_counters(client)
            for _ in range(REPEATS):
                device.all[-1].send(hostile.line + b"\n")
            await probe(client)
            problems = check_kind(hostile, before, all_counters(client), caplog)
            assert client.katcp_client.stats.connections == 1
            assert not problems, problems
        finally:
            await client.stop()


async def test_unknown_sensor_names_cost_bounded_memory_and_requests(io_loop: Any) -> None:
    """Regression (found by this suite): each distinct unknown name cost a log key, a set
    entry and a ``?sensor-list`` request, without bound (100 000 names: ~52 MiB)."""
    async with scripted_device(responses=responses()) as device:
        client = await synced_scripted(device)
        try:
            peer = device.all[-1]
            peer.stream.set_nodelay(True)
            requests = client.katcp_client.stats.requests
            for batch in range(2):
                peer.send(b"".join(b"#sensor-status 1.0 1 ghost.%d nominal 1\n" % (
                    batch * 2500 + i) for i in range(2500)))
                await probe(client)
                await client.until_synced(timeout=30)
                device.received.clear()
            assert client.stats.unknown_sensor_updates == 5000
            asked = client.katcp_client.stats.requests - requests
            assert asked < 1000, f"{asked} requests sent about unknown sensors"
            assert len(client._problems._seen) < 1000, "one log key per unknown name"
        finally:
            await client.stop()


async def test_over_long_line_resets_the_connection_and_resyncs(io_loop: Any) -> None:
    async with scripted_device(responses=responses()) as device:
        client = fast_client(device.port)
        client.katcp_client.max_line_length = 64 * 1024
        await client.connect()
        await client.until_synced(timeout=10)
        try:
            model = client._model.snapshot()
            device.all[-1].send(b"#long-line " + b"x" * 100_000 + b"\n")
            await client.until_not_synced(timeout=5)
            await client.until_synced(timeout=10)
            stats = client.katcp_client.stats
            assert (stats.long_lines, stats.connections) == (1, 2)
            assert client._model.snapshot() == model
            await probe(client)
        finally:
            await client.stop()
