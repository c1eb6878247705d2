"""The KATCP sampling strategies: one table, for the client, the command line and the
simulated device.

Each entry says how many parameters a strategy takes (and what they mean), which KATCP major
versions define it, and which parameters are times (seconds in KATCP 5, milliseconds in
KATCP 4). Pure data; imports nothing from the package, so anything may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

#: Parameters that are durations, which KATCP 4 gives in milliseconds.
_TIME_PARAMS = frozenset({"period", "shortest", "longest"})


class StrategyInfo(NamedTuple):
    """One sampling strategy: its wire name, its parameters' names in order, and the first
    KATCP major version that defines it."""

    name: str
    params: tuple[str, ...]
    since_major: int

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def time_params(self) -> tuple[int, ...]:
        """Positions of the parameters that are durations."""
        return tuple(i for i, param in enumerate(self.params) if param in _TIME_PARAMS)

    def allowed(self, major: int) -> bool:
        """Whether a device of this KATCP major version knows the strategy."""
        return major >= self.since_major


def _table(*infos: StrategyInfo) -> Mapping[str, StrategyInfo]:
    return MappingProxyType({info.name: info for info in infos})


#: Every KATCP sampling strategy by name, in the order the specification lists them.
STRATEGIES: Mapping[str, StrategyInfo] = _table(
    StrategyInfo("none", (), 4),
    StrategyInfo("auto", (), 4),
    StrategyInfo("event", (), 4),
    StrategyInfo("period", ("period",), 4),
    StrategyInfo("differential", ("difference",), 4),
    StrategyInfo("event-rate", ("shortest", "longest"), 5),
    StrategyInfo("differential-rate", ("difference", "shortest", "longest"), 5),
)


def strategies_for(major: int) -> frozenset[str]:
    """The names of the strategies a device of this KATCP major version knows."""
    return frozenset(name for name, info in STRATEGIES.items() if info.allowed(major))


__all__ = ["STRATEGIES", "StrategyInfo", "strategies_for"]
