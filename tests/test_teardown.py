"""Teardown never depends on a done-callback having run (the Python 3.12 hang).

Since CPython 3.12, ``asyncio.gather`` over futures that are all done completes at once,
without yielding to the loop; with eager tasks a task may even finish inside ``create_task``.
A loop such as ``while tasks: await asyncio.gather(*tasks)``, whose set is emptied by the
tasks' done-callbacks, then spins forever: the callbacks never get to run. These tests build
exactly that situation, a done task whose done-callback is still only scheduled, and run it in
a thread of its own, so that a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from katcp_inspect import DeviceClient
from katcp_inspect.testing import FaultProxy
from katcp_inspect.waiting import drain


def finishes(scenario: Callable[[], Awaitable[None]], seconds: float = 10.0) -> bool:
    """Whether ``scenario`` runs to its end on a fresh event loop within ``seconds``."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            asyncio.run(scenario())  # type: ignore[arg-type]
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)  # a spinning loop must not block exit
    thread.start()
    thread.join(seconds)
    if outcome and outcome[0] is not None:
        raise outcome[0]
    return bool(outcome)


def done_but_not_forgotten(tasks: set[asyncio.Future[Any]]) -> asyncio.Future[None]:
    """A future in ``tasks`` that is done, whose done-callback (which would remove it from the
    set) has been scheduled but not run yet."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    tasks.add(future)
    future.add_done_callback(tasks.discard)
    future.set_result(None)
    return future


def test_drain_does_not_wait_for_done_callbacks() -> None:
    async def scenario() -> None:
        tasks: set[asyncio.Future[Any]] = set()
        done_but_not_forgotten(tasks)
        await drain(tasks)

    assert finishes(scenario)


def test_drain_waits_for_what_is_added_meanwhile() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Future[Any]] = set()
        first: asyncio.Future[None] = loop.create_future()
        second: asyncio.Future[None] = loop.create_future()
        tasks.update((first, second))

        def finish_first() -> None:
            late: asyncio.Future[None] = loop.create_future()
            tasks.add(late)
            first.set_result(None)
            loop.call_later(0.01, second.set_exception, RuntimeError("retrieved, not raised"))
            loop.call_later(0.02, late.cancel)

        loop.call_soon(finish_first)
        await drain(tasks)
        assert all(task.done() for task in tasks)

    assert finishes(scenario)


def test_device_client_close_with_a_done_closing_task() -> None:
    async def scenario() -> None:
        client = DeviceClient("127.0.0.1", 1, auto_reconnect=False)
        client.start()
        done_but_not_forgotten(client._closing_tasks)
        await asyncio.wait_for(client.close(), 5)

    assert finishes(scenario)


def test_fault_proxy_stop_with_a_done_task() -> None:
    async def scenario() -> None:
        proxy = FaultProxy("127.0.0.1", 1)
        await proxy.start()
        done_but_not_forgotten(proxy._tasks._tasks)
        await asyncio.wait_for(proxy.stop(), 5)

    assert finishes(scenario)
