"""Timing (optionally under cProfile) and memory readings inside a benchmark process."""

from __future__ import annotations

import cProfile
import os
import pstats
import time
from types import TracebackType
from typing import Any

#: Functions listed per profile.
PROFILE_ROWS = 25


class Section:
    """Times the measured part of a scenario (``perf_counter``), profiling it if asked."""

    def __init__(self, profile: bool = False) -> None:
        self._profiler = cProfile.Profile() if profile else None
        self._start = 0.0
        self.seconds = 0.0

    def __enter__(self) -> Section:
        self._start = time.perf_counter()
        if self._profiler is not None:
            self._profiler.enable()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._profiler is not None:
            self._profiler.disable()
        self.seconds = time.perf_counter() - self._start

    def profile_rows(self) -> list[dict[str, Any]]:
        """The functions with the most own time: ncalls, own and cumulative seconds, where."""
        if self._profiler is None:
            return []
        raw: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = (
            pstats.Stats(self._profiler).stats)  # type: ignore[attr-defined]
        rows: list[dict[str, Any]] = [
            {"function": _where(key), "ncalls": nc, "tottime": tt, "cumtime": ct}
            for key, (_, nc, tt, ct, _) in raw.items()]
        rows.sort(key=lambda row: -row["tottime"])
        return rows[:PROFILE_ROWS]


def _where(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    if filename == "~":  # a builtin
        return function
    parts = filename.replace(os.sep, "/").split("/")
    return f"{'/'.join(parts[-2:])}:{line}({function})"


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``), in bytes."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak_rss() -> None:
    """Make the peak resident set (``VmHWM``) the current one, so that :func:`peak_rss_bytes`
    measures from here (Linux ≥ 4.0; a no-op where ``/proc`` refuses it)."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int:
    """The peak resident set size of this process since :func:`reset_peak_rss`, in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0
