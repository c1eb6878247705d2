"""What the subcommands share: exit codes, the one-line error, argument types, and stopping
long-running views cleanly on Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

from ..signals import on_stop_signals
from ..strategies import STRATEGIES

T = TypeVar("T")

#: Success (and a ``request`` answered ``ok``).
EXIT_OK = 0
#: ``request`` answered ``fail``.
EXIT_FAIL = 1
#: Bad usage, an ``invalid`` reply, a device that cannot be reached, a timeout, a lost
#: connection.
EXIT_ERROR = 2
#: Interrupted (Ctrl-C) during a one-shot command.
EXIT_INTERRUPTED = 130

DEFAULT_TIMEOUT = 5.0

#: Strategies and how many parameters each takes (KATCP v5).
STRATEGY_PARAMS = {name: info.n_params for name, info in STRATEGIES.items()}

class CliError(Exception):
    """A failure to report as one line on stderr, with an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


@attrs.frozen
class Target:
    """A device address given as ``HOST:PORT``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


_TARGET_RE = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>[0-9]+)\Z")


def parse_target(text: str) -> Target:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (an argparse type: raises ``ArgumentTypeError``)."""
    match = _TARGET_RE.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected HOST:PORT (e.g. 127.0.0.1:7147 or [::1]:7147), not {text!r}")
    port = int(match.group("port"))
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range in {text!r}")
    return Target(match.group("v6") or match.group("host"), port)


def _converted(text: str, convert: Callable[[str], T], what: str) -> T:
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


def positive_float(text: str) -> float:
    """A number of seconds greater than zero (an argparse type)."""
    value = _converted(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number, at least 1 (an argparse type)."""
    value = _converted(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port to listen on, 0 for any free one (an argparse type)."""
    port = _converted(text, int, "a port number")
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range (0-65535): {text!r}")
    return port


def count(text: str) -> int:
    """A number of things, zero or more (an argparse type)."""
    number = _converted(text, int, "a whole number")
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be zero or more, not {text!r}")
    return number


def rate(text: str) -> float:
    """Times a second, 0 for never (an argparse type)."""
    value = _converted(text, float, "a number")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be zero or a positive rate, not {text!r}")
    return value


def parse_strategy(words: Sequence[str]) -> tuple[str, ...]:
    """``["period", "0.5"]`` (or ``["period 0.5"]``) → ``("period", "0.5")``, checking the
    name and the number of parameters; raises :class:`CliError`."""
    parts = [part for word in words for part in word.split()]
    if not parts:
        raise CliError("--strategy needs a strategy name")
    name, params = parts[0], parts[1:]
    expected = STRATEGY_PARAMS.get(name)
    if expected is None:
        raise CliError(f"unknown strategy {name!r}; use one of {', '.join(STRATEGY_PARAMS)}")
    if len(params) != expected:
        hint = " (give sensor patterns before --strategy)" if len(params) > expected else ""
        raise CliError(f"strategy {name} takes {expected} parameter"
                       f"{'' if expected == 1 else 's'}, not {len(params)}{hint}")
    for param in params:
        try:
            float(param)
        except ValueError:
            raise CliError(f"strategy {name}: {param!r} is not a number") from None
    return (name, *params)


def compile_patterns(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """Several regular expressions as one (``re.search`` semantics); ``None`` for none."""
    if not patterns:
        return None
    try:
        for pattern in patterns:
            re.compile(pattern)
        return re.compile("|".join(f"(?:{p})" for p in patterns))
    except re.error as exc:
        raise CliError(f"invalid regular expression: {exc}") from None


def stop_on_signals(stop: asyncio.Event) -> contextlib.AbstractContextManager[None]:
    """While inside, SIGINT (Ctrl-C) and SIGTERM set ``stop`` instead of interrupting, so that
    a long-running view can end cleanly (see :func:`~katcp_inspect.signals.on_stop_signals`)."""
    return on_stop_signals(stop.set)


async def wait_stop(stop: asyncio.Event, seconds: float | None) -> None:
    """Wait until ``stop`` is set or ``seconds`` (None: forever) have passed."""
    if seconds is None:
        await stop.wait()
        return
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
