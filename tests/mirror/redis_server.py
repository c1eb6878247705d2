"""A real ``redis-server`` for the tests: on a free loopback port, without persistence,
stopped by its PID; restartable on the same port, and able to play dead (SIGSTOP)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence

import pytest

SERVER = shutil.which("redis-server")


def require_server() -> str:
    """The server's path; skips the test where it is missing, but fails in CI (``CI`` set),
    which must run these tests."""
    if SERVER is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing, and CI must run the Redis tests")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    return SERVER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process."""

    def __init__(self, executable: str, args: Sequence[str] = ()) -> None:
        self.executable = executable
        self.args = list(args)
        self.port = free_port()
        self.directory = tempfile.mkdtemp(prefix="katcp-redis-")
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", self.directory,
                "--loglevel", "warning", *self.args]

    def spawn(self) -> None:
        self.process = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up (with a password)
        except OSError:
            return False

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait (blocking: for fixtures) until it answers PING."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while not self.answers():
            self._check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            time.sleep(0.01)

    async def astart(self, timeout: float = 10.0) -> None:
        """Start, and wait without blocking the loop until it answers PING."""
        self.spawn()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not await loop.run_in_executor(None, self.answers):
            self._check_alive()
            if loop.time() > deadline:
                raise RuntimeError("redis-server did not answer PING")
            await asyncio.sleep(0.01)

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.process.returncode}")

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def stop(self) -> None:
        """End the process by its PID (SIGKILL: no persistence to save anyway)."""
        if self.process is None:
            return
        if self.paused:
            self.resume()
        self.signal(signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    async def arestart(self) -> None:
        """Stop, then start again on the same port with nothing in it (as after a crash)."""
        self.stop()
        await self.astart()

    def pause(self) -> None:
        """Unreachable: connections stay open, nothing is answered."""
        self.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        self.signal(signal.SIGCONT)
        self.paused = False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of the test's own (see :class:`RedisServer`), stopped by its PID."""
    server = RedisServer(require_server())
    server.start()
    try:
        yield server
    finally:
        server.close()
