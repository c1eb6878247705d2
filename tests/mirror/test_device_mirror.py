"""One device's mirror without Redis: what it takes for the writer, and what it still owes
after the results come back."""

from __future__ import annotations

from typing import Any

from katcp_inspect import Sensor, SensorType
from katcp_inspect.mirror.device import DeviceMirror, Op
from katcp_inspect.mirror.schema import Keys
from katcp_inspect.sync_states import SYNCED, SYNCING

from .fake_client import FakeClient


def _mirror(marks: list[DeviceMirror]) -> DeviceMirror:
    sensor = Sensor(SensorType.INTEGER, "count", "A count.", "")
    sensor.set(1.0, Sensor.NOMINAL, 1)
    mirror = DeviceMirror("d0", FakeClient([sensor]), Keys(),  # type: ignore[arg-type]
                          marks.append, owner="w", stream_maxlen=10, buffer=10)
    mirror.activate("token")
    return mirror


def _committed(op: Op) -> list[Any]:
    return [op.generation, op.generation]


async def test_a_report_made_while_the_commit_is_on_its_way_is_written_next(
        io_loop: Any) -> None:
    marks: list[DeviceMirror] = []
    mirror = _mirror(marks)
    mirror.state_changed(SYNCED)  # an old model: the worker took the device over
    mirror.set_status("connecting")
    [commit] = mirror.take()
    assert commit.kind == "commit" and "connecting" in commit.args
    # The client syncs anew while that commit is on its way to Redis.
    mirror.state_changed(SYNCING, None)
    mirror.state_changed(SYNCED, None)
    mirror.set_status("synced")
    assert not mirror.done(commit, _committed(commit))
    [again] = mirror.take()
    assert again.kind == "commit" and again.generation == commit.generation + 1
    assert "synced" in again.args
    assert not mirror.done(again, _committed(again))
    assert mirror.take() == []


async def test_a_status_set_while_one_is_on_its_way_is_written_next(io_loop: Any) -> None:
    mirror = _mirror([])
    mirror.state_changed(SYNCED)
    [commit] = mirror.take()
    assert not mirror.done(commit, _committed(commit))
    mirror.set_status("disconnected", "lost")
    [status] = mirror.take()
    assert status.kind == "status"
    mirror.set_status("connecting")
    assert not mirror.done(status, 1)
    [latest] = mirror.take()
    assert latest.kind == "status" and "connecting" in latest.args


async def test_a_failed_write_is_a_whole_commit_again(io_loop: Any) -> None:
    mirror = _mirror([])
    mirror.state_changed(SYNCED)
    [commit] = mirror.take()
    assert mirror.done(commit, ConnectionError("gone"))
    [again] = mirror.take()
    assert again.kind == "commit" and again.generation == commit.generation
