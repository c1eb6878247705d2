"""Standard output for the command's lines, and what happens when the reader goes away.

``katcp-inspect ... | head -2`` closes the pipe early: the next write raises
:class:`BrokenPipeError`, wherever it happens (in a callback of the event loop too). The
first one sends stdout to ``/dev/null`` (so that nothing more fails, the final flush
included), remembers it, and calls ``on_closed`` (a live command stops); the command then
exits with :data:`EXIT_PIPE` and no message.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .formatting import json_line

#: The status a shell reports for a writer killed by SIGPIPE (128 + 13): what ``yes | head``
#: gives under ``set -o pipefail``.
EXIT_PIPE = 141


class PipeClosed(Exception):
    """Standard output was closed by its reader."""


class Output:
    """Lines to stdout, flushed one by one (a reader sees each reading as it comes)."""

    def __init__(self) -> None:
        self.closed = False
        self.on_closed: Callable[[], None] | None = None

    def line(self, text: str) -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            self.close()

    def json(self, data: dict[str, Any]) -> None:
        """One JSON object on one line (see :func:`~.formatting.json_line`)."""
        self.line(json_line(data))

    def close(self) -> None:
        """The reader is gone: write nowhere from now on, and tell ``on_closed``."""
        if not self.closed:
            self.closed = True
            silence_stdout()
            if self.on_closed is not None:
                self.on_closed()


def silence_stdout() -> None:
    """Point stdout at ``/dev/null``: Python flushes it at exit, which would fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # no file descriptor behind sys.stdout
        pass
    finally:
        os.close(devnull)


#: The command's standard output.
STDOUT = Output()
