"""What the simulated device and the fault proxy share: the lines they misbehave with and the
set of tasks they end before stopping."""

from __future__ import annotations

import asyncio
from typing import Any

from katcp_inspect.testing.server import GARBAGE_LINE, Tasks, garbage_line, long_line


def test_garbage_line_gets_a_line_ending_only_if_it_has_none() -> None:
    assert garbage_line() == GARBAGE_LINE
    assert garbage_line(b"junk") == b"junk\n"
    assert garbage_line(b"junk\r") == b"junk\r"


def test_long_line_is_an_inform_just_over_the_size() -> None:
    line = long_line(100, b"big")
    assert line.startswith(b"#big xxx") and line.endswith(b"x\n")
    assert len(line) == 102  # 101 bytes, then the line ending


async def test_tasks_wait_for_tasks_started_meanwhile_but_not_the_caller(io_loop: Any) -> None:
    tasks = Tasks()
    finished: list[str] = []
    gate = asyncio.Event()

    async def late() -> None:
        await gate.wait()
        finished.append("late")

    async def first() -> None:
        tasks.spawn(late())
        await asyncio.sleep(0)
        gate.set()
        finished.append("first")

    async def stopper() -> None:
        await tasks.wait()  # would wait for itself forever if it counted itself

    tasks.spawn(first())
    tasks.spawn(stopper())
    await asyncio.wait_for(tasks.wait(), 1)
    assert sorted(finished) == ["first", "late"]


async def test_tasks_cancel_spares_the_caller(io_loop: Any) -> None:
    tasks = Tasks()
    outcome: list[bool] = []

    async def sleeper() -> None:
        await asyncio.sleep(10)

    async def canceller() -> None:
        tasks.cancel()
        await asyncio.sleep(0)
        outcome.append(True)

    tasks.spawn(sleeper())
    tasks.spawn(canceller())
    await asyncio.wait_for(tasks.wait(), 1)
    assert outcome == [True]
