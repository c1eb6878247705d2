"""The benchmark's processes: devices and clients, each a fresh ``spawn``-ed interpreter.

Every wait is bounded, and every process started here is stopped (then terminated, then
killed) before its function returns or its ``with`` block ends.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any

import flood_device
import scenarios

_SPAWN = multiprocessing.get_context("spawn")
#: Seconds a device process may take to build its buffers and start listening.
DEVICE_START_TIMEOUT = 120.0


def _reap(process: BaseProcess) -> None:
    process.join(5)
    if process.is_alive():
        process.terminate()
        process.join(5)
    if process.is_alive():
        process.kill()
        process.join(5)


Serve = Callable[[list[tuple[int, int]], Connection], None]


class Devices:
    """A process running one device per ``(sensors, updates)`` spec, by default a
    :class:`flood_device.FloodDevice` (``serve`` is the process's entry point, e.g.
    :func:`aiokatcp_device.serve`); :attr:`ports` lists their ports in the same order."""

    def __init__(self, specs: list[tuple[int, int]], serve: Serve = flood_device.serve) -> None:
        self._specs = specs
        self._control, child = _SPAWN.Pipe()
        self._child_end = child
        self._process = _SPAWN.Process(target=serve, args=(specs, child), daemon=True)
        self.ports: list[int] = []

    def __enter__(self) -> Devices:
        self._process.start()
        self._child_end.close()
        try:
            if not self._control.poll(DEVICE_START_TIMEOUT):
                raise RuntimeError(f"devices not listening within {DEVICE_START_TIMEOUT} s")
            try:
                self.ports = self._control.recv()
            except EOFError:
                raise RuntimeError("the device process died while starting") from None
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self._control.send("stop")
        self._control.close()
        _reap(self._process)


@contextlib.contextmanager
def _importing_from(path: str | None) -> Iterator[None]:
    """Processes started meanwhile import ``katcp_inspect`` from ``path`` (a spawned process
    takes this process's ``sys.path``, read when it is started)."""
    if path is None:
        yield
        return
    sys.path.insert(0, path)
    try:
        yield
    finally:
        sys.path.remove(path)


def run_scenario(scenario: str, kwargs: dict[str, Any], timeout: float,
                 katcp_inspect_from: str | None = None) -> dict[str, Any]:
    """Run one scenario in a fresh process; its result, or a ``problem`` if it failed,
    died or took longer than ``timeout`` seconds. ``katcp_inspect_from``: a directory
    holding another ``katcp_inspect`` (a baseline) for the process to import."""
    results, child = _SPAWN.Pipe(duplex=False)
    process = _SPAWN.Process(target=scenarios.child_main, args=(scenario, kwargs, child),
                             daemon=True)
    with _importing_from(katcp_inspect_from):
        process.start()
    child.close()
    try:
        if results.poll(timeout):
            result: dict[str, Any] = results.recv()
            return result
        return {"problem": f"no result within {timeout:g} s"}
    except EOFError:
        return {"problem": "the benchmark process died"}
    finally:
        results.close()
        _reap(process)
