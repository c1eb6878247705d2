"""Shared test configuration: fail any test after which the event loop logged an error."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Iterator

import pytest

from katcp_inspect import codec

#: ``KATCP_INSPECT_TEST_LOOP``: the event loop every test runs on (CI runs the suite on each).
LOOP_VARIANT = os.environ.get("KATCP_INSPECT_TEST_LOOP", "default")


class _EagerTaskPolicy(asyncio.DefaultEventLoopPolicy):
    """Loops whose tasks run their first step inside ``create_task`` (Python 3.12+)."""

    def new_event_loop(self) -> asyncio.AbstractEventLoop:
        loop = super().new_event_loop()
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        return loop


def pytest_configure(config: pytest.Config) -> None:
    if LOOP_VARIANT == "eager":
        asyncio.set_event_loop_policy(_EagerTaskPolicy())
    elif LOOP_VARIANT == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif LOOP_VARIANT != "default":
        raise pytest.UsageError(f"KATCP_INSPECT_TEST_LOOP={LOOP_VARIANT!r}: "
                                "expected default, eager or uvloop")


def pytest_report_header() -> str:
    return (f"katcp-inspect: event loop {LOOP_VARIANT}; katcp-codec "
            f"{'core parser' if codec.FAST else 'public parser (fallback)'}")


@pytest.fixture(autouse=True)
def no_event_loop_errors(request: pytest.FixtureRequest,
                         caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Unretrieved future exceptions, destroyed pending tasks and errors in callbacks all reach
    the loop's exception handler, which logs them on the ``asyncio`` logger: none may appear.

    Only tests that run an event loop (they ask for ``io_loop``) are checked: the check
    collects garbage, which would dominate the run time of the many pure tests.
    """
    if "io_loop" not in request.fixturenames:
        yield
        return
    caplog.set_level(logging.DEBUG)
    yield
    gc.collect()
    errors = [r for r in caplog.get_records("call") + caplog.get_records("teardown")
              if r.name == "asyncio" and r.levelno >= logging.ERROR]
    assert not errors, "the event loop reported: " + "; ".join(r.getMessage() for r in errors)
