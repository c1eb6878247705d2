"""``InspectingClient``, the blocking client: in a plain script, in a notebook-style session
(a loop already running in the main thread) and from two threads at once.

The device runs on a loop in a thread of its own, so that the main thread is free to block
(or to run a loop of its own, as Jupyter's)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import pytest

from katcp_inspect import InspectingClient, Reading, UnknownSensorError, WaitTimeoutError
from katcp_inspect.testing import SimulatedDevice

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


class DeviceThread:
    """A simulated device on its own loop and thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.device = SimulatedDevice.with_demo_sensors(rate=None)
        self.call(self.device.start("127.0.0.1", 0))

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def do(self, fn: Callable[[], T]) -> T:
        async def run() -> T:
            return fn()
        return self.call(run())  # type: ignore[no-any-return]

    def close(self) -> None:
        self.call(self.device.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def device() -> Iterator[DeviceThread]:
    device = DeviceThread()
    yield device
    device.close()


def set_mode_soon(device: DeviceThread, value: str) -> None:
    device.loop.call_soon_threadsafe(
        device.loop.call_later, 0.05, device.device.set_value, "device.mode", value)


def run_script(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_a_plain_script(device: DeviceThread) -> None:
    script = run_script([str(EXAMPLES / "blocking_script.py"), "127.0.0.1",
                         str(device.device.port)])
    assert script.stdout is not None
    lines = []
    for line in script.stdout:
        lines.append(line)
        if line.startswith("waiting for device.mode"):
            set_mode_soon(device, "maintenance")
            break
    out, err = script.communicate(timeout=30)
    text = "".join(lines) + out
    assert script.returncode == 0, err
    assert "40 sensors" in text
    assert "cpu.temperature = " in text and "degC" in text
    assert "?help watchdog -> ok" in text
    assert "device.mode is 'maintenance'" in text


def test_a_script_that_forgets_stop_still_exits(device: DeviceThread) -> None:
    code = ("import sys\nfrom katcp_inspect import InspectingClient\n"
            "client = InspectingClient('127.0.0.1', int(sys.argv[1]))\n"
            "client.connect()\nclient.until_synced(timeout=10)\n"
            "print(client.get_sensor('device.mode').value())\n")
    script = run_script(["-c", code, str(device.device.port)])
    out, err = script.communicate(timeout=30)
    assert script.returncode == 0, err
    assert out.strip() == device.do(lambda: device.device.sensors["device.mode"].reading.value)


def test_a_notebook_style_session(device: DeviceThread) -> None:
    """As in Jupyter: the cells run while a loop runs in the main thread."""
    async def cell() -> tuple[Any, ...]:
        asyncio.get_running_loop()  # a loop is running here, as in a notebook
        with InspectingClient("127.0.0.1", device.device.port) as client:
            client.until_synced(timeout=10)
            sensor = client.get_sensor("cpu.temperature")
            assert sensor is not None
            reply, _ = client.simple_request("watchdog")
            set_mode_soon(device, "observing")
            reading = client.wait("device.mode", "observing", timeout=10)
            thread = client.thread
        return sensor.read(), reply.reply_ok(), reading, thread
    reading, ok, waited, thread = asyncio.run(cell())
    assert isinstance(reading, Reading) and ok
    assert waited.value == "observing"
    assert not thread.is_alive()  # stop() ended the client's thread


def test_two_threads_at_once(device: DeviceThread) -> None:
    with InspectingClient("127.0.0.1", device.device.port) as client:
        client.until_synced(timeout=10)
        start = threading.Barrier(2)

        def user(value: str) -> tuple[Any, ...]:
            start.wait(5)
            reply, _ = client.simple_request("watchdog")
            sensor = client.get_sensor("device.mode")
            return reply.reply_ok(), sensor, client.wait("device.mode", value, timeout=10)

        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(user, "observing")
            second = pool.submit(user, "maintenance")
            set_mode_soon(device, "observing")
            assert first.result(15)[2].value == "observing"
            set_mode_soon(device, "maintenance")
            ok, sensor, reading = second.result(15)
        assert ok and reading.value == "maintenance"
        assert sensor is first.result()[1]  # one model, one sensor object


def test_errors_cross_to_the_callers_thread(device: DeviceThread) -> None:
    with InspectingClient("127.0.0.1", device.device.port) as client:
        client.until_synced(timeout=10)
        with pytest.raises(WaitTimeoutError):
            client.wait("cpu.temperature", -1000.0, timeout=0.1)
        assert client.get_sensor("no.such.sensor") is None


def test_calling_from_the_clients_own_thread_is_refused(device: DeviceThread) -> None:
    with InspectingClient("127.0.0.1", device.device.port) as client:
        client.until_synced(timeout=10)
        seen: list[BaseException] = []

        class Observer:
            def update(self, sensor: Any, reading: Reading) -> None:
                try:
                    client.get_sensor("cpu.temperature")
                except RuntimeError as exc:
                    seen.append(exc)

        sensor = client.get_sensor("device.mode")
        assert sensor is not None
        client._loop.call_soon_threadsafe(sensor.attach, Observer())
        set_mode_soon(device, "maintenance")
        client.wait("device.mode", "maintenance", timeout=10)
        assert seen and "own thread" in str(seen[0])


def test_the_notebook_example(device: DeviceThread, capsys: pytest.CaptureFixture[str]) -> None:
    from .test_docs_examples import load
    example = load("notebook_cell")
    port = device.device.port

    async def session() -> None:
        example.blocking_cell("127.0.0.1", port)  # a loop runs: Jupyter's, here asyncio.run's

    asyncio.run(session())
    # Top-level await runs on the notebook's loop; the device must not be on the same one.
    asyncio.run(example.awaiting_cell("127.0.0.1", port))
    out = capsys.readouterr().out
    assert out.count("rx.enabled =") == 2 and "?watchdog -> !watchdog" in out
    assert "device.mode =" in out


def test_wait_on_the_blocking_client(device: DeviceThread) -> None:
    """The blocking ``wait`` in each case the async one is tested for (a timeout and a value
    set later are above): already satisfied, a predicate, a reconnect in the middle, an
    unknown sensor."""
    with InspectingClient("127.0.0.1", device.device.port) as client:
        client.until_synced(timeout=10)
        now = device.do(lambda: device.device.sensors["device.mode"].reading.value)
        assert client.wait("device.mode", now, timeout=1).value == now
        set_mode_soon(device, "maintenance")
        reading = client.wait("device.mode", lambda r: r.value == "maintenance", timeout=10)
        assert reading.value == "maintenance"

        def drop_then_set() -> None:
            device.device.drop_clients()
            device.loop.call_later(0.2, device.device.set_value, "device.mode", "observing")
        device.loop.call_soon_threadsafe(drop_then_set)
        assert client.wait("device.mode", "observing", timeout=15).value == "observing"
        with pytest.raises(UnknownSensorError):
            client.wait("no.such.sensor", 1, timeout=1)
