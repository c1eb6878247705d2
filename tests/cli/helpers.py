"""Running the command as a subprocess while the test's event loop serves a device."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import attrs

CLI = (sys.executable, "-m", "katcp_inspect.cli")
#: Output that is not a terminal, wide enough that tables are not cut, and no forced colour.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR")}
ENV["COLUMNS"] = "200"
TIMEOUT = 20.0


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


async def run_cli(*args: str, timeout: float = TIMEOUT) -> Result:
    """Run ``katcp-inspect args...`` to completion without blocking the event loop."""
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except BaseException:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Result(process.returncode, out.decode(), err.decode())


class CliProcess:
    """A running command whose output the test reads line by line, with timeouts."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> CliProcess:
        process = await asyncio.create_subprocess_exec(
            *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=ENV)
        return cls(process)

    async def until(self, *texts: str, timeout: float = 10.0) -> None:
        """Read lines until each of ``texts`` has been in one of them (in any order)."""
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        missing = list(texts)
        while missing:
            remaining = deadline - loop.time()
            try:
                raw = await asyncio.wait_for(self.process.stdout.readline(), max(remaining, 0))
            except asyncio.TimeoutError:
                raise AssertionError(f"no line with {missing} within {timeout} s; got:\n"
                                     + "\n".join(self.lines)) from None
            if not raw:
                raise AssertionError(f"output ended before a line with {missing}; got:\n"
                                     + "\n".join(self.lines))
            line = raw.decode().rstrip("\n")
            self.lines.append(line)
            missing = [text for text in missing if text not in line]

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    async def finish(self, timeout: float = 10.0) -> Result:
        try:
            out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        except BaseException:
            await self.kill()
            raise
        assert self.process.returncode is not None
        return Result(self.process.returncode, "\n".join(self.lines) + out.decode(),
                      err.decode())

    async def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
            await self.process.communicate()


@contextmanager
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it) but not
    listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
