"""The waiting helpers added for the test toolkit: a counter to wait on, and waiting for the
first of several waiters; no waiter is left behind either way."""

from __future__ import annotations

import asyncio
from typing import Any

from katcp_inspect.waiting import Counter, Flag, wait_first


async def test_counter_wakes_waiters_as_it_reaches_their_value(io_loop: Any) -> None:
    counter = Counter()
    second = counter.wait_for(2)
    also_second = counter.wait_for(2)
    third = counter.wait_for(3)
    counter.increment()
    await asyncio.sleep(0)
    assert not second.done()
    counter.increment()
    await asyncio.wait_for(asyncio.gather(second, also_second), 1)
    assert not third.done()
    assert counter.wait_for(1).done()  # reached already: at once
    counter.increment()
    await asyncio.wait_for(third, 1)
    assert counter.value == 3


async def test_counter_keeps_nothing_for_abandoned_waits(io_loop: Any) -> None:
    counter = Counter()
    for value in range(1, 50):
        waiter = counter.wait_for(value)
        waiter.cancel()
        await asyncio.sleep(0)
    assert not counter._reached


async def test_wait_first_cancels_the_waiters_it_did_not_need(io_loop: Any) -> None:
    flag, other = Flag(), Flag()
    waiters = (flag.wait(), other.wait())
    asyncio.get_running_loop().call_soon(flag.set)
    await asyncio.wait_for(wait_first(*waiters), 1)
    assert waiters[1].cancelled()
    await asyncio.sleep(0)  # a waiter leaves its set in its done-callback, on the next turn
    assert len(flag) == len(other) == 0


async def test_wait_first_ends_after_its_timeout(io_loop: Any) -> None:
    flag = Flag()
    waiter = flag.wait()
    await asyncio.wait_for(wait_first(waiter, timeout=0.01), 1)
    assert waiter.cancelled()
    await asyncio.sleep(0)  # a waiter leaves its set in its done-callback, on the next turn
    assert len(flag) == 0
