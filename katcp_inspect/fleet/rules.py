"""Sampling rules: a pattern of sensor names and the strategy for the sensors it matches,
checked against :data:`katcp_inspect.strategies.STRATEGIES` before any device is asked."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ..strategies import STRATEGIES
from .errors import ConfigError, Where


def parse_strategy(text: str) -> tuple[str, ...]:
    """``"period 0.5"`` → ``("period", "0.5")``: a known strategy with as many parameters as
    it takes, each a finite number; ``ValueError`` saying what is wrong otherwise."""
    words = text.split()
    if not words:
        raise ValueError('is empty (expected a strategy, e.g. "event" or "period 1.0")')
    name, params = words[0], words[1:]
    info = STRATEGIES.get(name)
    if info is None:
        raise ValueError(f"unknown strategy {name!r} (expected one of: "
                         f"{', '.join(STRATEGIES)})")
    if len(params) != info.n_params:
        takes = "no parameters" if not info.params else (
            f"{info.n_params} parameter{'' if info.n_params == 1 else 's'} "
            f"({', '.join(info.params)})")
        raise ValueError(f"strategy {name} takes {takes}, not {len(params)}")
    for param in params:
        try:
            number = float(param)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"strategy {name}: {param!r} is not a number")
    return (name, *params)


@attrs.frozen
class SamplingRule:
    """Sensors whose names match ``pattern`` (``re.search``) are sampled with ``strategy``
    (the strategy's name and parameters)."""

    pattern: str
    strategy: tuple[str, ...]


def check_sampling(rules: Mapping[Any, Any], where: Where) -> tuple[SamplingRule, ...]:
    """``rules`` (pattern → strategy string) as :class:`SamplingRule`, in their order;
    :class:`ConfigError` naming the rule that is wrong."""
    checked = []
    for pattern, strategy in rules.items():
        if not isinstance(pattern, str):
            raise ConfigError(f"a sampling pattern must be a string, not {pattern!r}", where)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"bad regular expression: {exc}", (*where, pattern)) from None
        if not isinstance(strategy, str):
            raise ConfigError(f'the strategy must be a string, e.g. "event" or "period 1.0", '
                              f"not {strategy!r}", (*where, pattern))
        try:
            words = parse_strategy(strategy)
        except ValueError as exc:
            raise ConfigError(f"bad strategy {strategy!r}: {exc}", (*where, pattern)) from None
        checked.append(SamplingRule(pattern, words))
    return tuple(checked)


__all__ = ["SamplingRule", "check_sampling", "parse_strategy"]
