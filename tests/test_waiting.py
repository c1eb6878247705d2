"""Flags and timeouts: no waiter is lost, none is left behind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado import gen

from katcp_inspect.waiting import Flag, done_future, with_timeout


async def test_every_waiter_wakes_and_none_is_kept(io_loop: Any) -> None:
    flag = Flag()
    waiters = [flag.wait() for _ in range(1000)]
    assert len(flag) == 1000
    flag.set()
    await asyncio.wait_for(asyncio.gather(*waiters), 1)
    assert len(flag) == 0
    assert flag.wait().done()  # already set: at once


async def test_timed_out_waiters_leave_the_flag(io_loop: Any) -> None:
    flag = Flag()
    for _ in range(10):
        with pytest.raises(TimeoutError):
            await with_timeout(flag.wait(), 0.001)
    assert len(flag) == 0


async def test_clear_and_fail(io_loop: Any) -> None:
    flag = Flag(True)
    flag.clear()
    waiter = flag.wait()
    flag.fail(RuntimeError("closed"))
    with pytest.raises(RuntimeError, match="closed"):
        await waiter
    assert not flag.is_set()


async def test_done_future_and_no_timeout(io_loop: Any) -> None:
    assert await done_future(3) == 3
    assert await with_timeout(done_future("x"), None) == "x"


@pytest.mark.parametrize("caught", [TimeoutError, asyncio.TimeoutError, gen.TimeoutError])
async def test_timeouts_are_caught_by_every_timeout_error(io_loop: Any,
                                                          caught: type[Exception]) -> None:
    with pytest.raises(caught):
        await with_timeout(Flag().wait(), 0.001)
