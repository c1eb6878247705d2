"""Ending a long-running command cleanly: SIGINT (Ctrl-C) and SIGTERM handed to a callback on
the running event loop. Shared by the command line and the test toolkit's device runners
(which must not import the command line). Imports nothing from the package."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[], object]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``callback`` instead of interrupting. Where
    signal handlers cannot be installed (not on this platform, or not in the main thread),
    Ctrl-C still interrupts the usual way."""
    loop = asyncio.get_running_loop()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, callback)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        yield
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


__all__ = ["on_stop_signals"]
