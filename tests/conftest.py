"""Shared test configuration: fail any test after which the event loop logged an error."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator

import pytest


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
