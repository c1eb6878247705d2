"""Sampling strategies the user asked for, remembered so they can be applied on every connection.

Strategies are per connection on the device side: a device forgets them when the connection
drops. So the client keeps the user's wishes here (per sensor name, per name pattern, and an
optional default for every sensor) and reconciles the device with them after each sync.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .message import encode_argument
from .strategies import STRATEGIES

#: A strategy and its parameters as they go on the wire, e.g. ``(b"period", b"0.5")``.
Strategy = tuple[bytes, ...]
NONE: Strategy = (b"none",)


def make_strategy(strategy: str, *params: Any) -> Strategy:
    return (encode_argument(strategy), *(encode_argument(p) for p in params))


#: Which parameters of each strategy are times (seconds to the user; KATCP 4 wants ms).
_TIME_PARAMS = {name.encode("ascii"): info.time_params for name, info in STRATEGIES.items()
                if info.time_params}


def for_protocol(strategy: Strategy, major: int) -> Strategy:
    """The strategy as a device of this KATCP major version reads it: users give times in
    seconds (as KATCP 5 does), KATCP 4 counts milliseconds."""
    times = _TIME_PARAMS.get(strategy[0])
    if major >= 5 or not times:
        return strategy
    params = list(strategy[1:])
    for index in times:
        if index < len(params):
            with contextlib.suppress(ValueError):  # not a number: the device will say so
                params[index] = b"%d" % round(float(params[index]) * 1000)
    return (strategy[0], *params)


def format_strategy(strategy: Strategy) -> str:
    return " ".join(p.decode("utf-8", "backslashreplace") for p in strategy)


class StrategyBook:
    """The strategies the user wants: explicit per-name choices win over pattern rules (the
    most recent matching rule wins), which win over the default for every sensor."""

    def __init__(self, default: Strategy | None = None) -> None:
        self.default = default
        self._by_name: dict[str, Strategy] = {}
        self._rules: list[tuple[re.Pattern[str], Strategy]] = []

    def set(self, names: str | Iterable[str], strategy: Strategy) -> None:
        """Remember ``strategy`` for one name or several names."""
        for name in [names] if isinstance(names, str) else names:
            self._by_name[name] = strategy

    def set_pattern(self, pattern: str, strategy: Strategy) -> None:
        """Remember ``strategy`` for every sensor whose name matches ``pattern`` (``re.search``),
        including sensors the device adds later."""
        compiled = re.compile(pattern)
        self._rules = [(p, s) for p, s in self._rules if p.pattern != pattern]
        self._rules.append((compiled, strategy))

    def wanted(self, name: str) -> Strategy:
        explicit = self._by_name.get(name)
        if explicit is not None:
            return explicit
        for pattern, strategy in reversed(self._rules):
            if pattern.search(name):
                return strategy
        return self.default if self.default is not None else NONE

    def plan(self, names: Iterable[str],
             applied: Mapping[str, Strategy]) -> dict[Strategy, list[str]]:
        """Which sensors need which strategy sent, grouped so that each group can be one bulk
        request. ``applied`` is what this connection already has (absent means ``none``)."""
        groups: dict[Strategy, list[str]] = {}
        for name in names:
            want = self.wanted(name)
            if applied.get(name, NONE) != want:
                groups.setdefault(want, []).append(name)
        return groups
