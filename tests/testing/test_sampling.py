"""Parsing ``?sensor-sampling`` strategies, and the samplers' bookkeeping (no sockets)."""

from __future__ import annotations

import pytest

from katcp_inspect.kattypes import SensorType
from katcp_inspect.strategies import STRATEGIES
from katcp_inspect.testing import (
    SimulatedSensor,
    Strategy,
    StrategyError,
    StrategyName,
    parse_strategy,
)
from katcp_inspect.testing.sampling import NONE, ConnectionSampling

T = SensorType


def test_the_strategy_names_are_the_library_table() -> None:
    assert {name.value for name in StrategyName} == set(STRATEGIES)
    assert Strategy is StrategyName  # the former name still imports


@pytest.mark.parametrize(("name", "params", "expected"), [
    ("none", [], {"strategy": Strategy.NONE}),
    ("auto", [], {"always": True, "on_change": True}),
    ("event", [], {"always": False, "on_change": True, "difference": None}),
    ("differential", [b"2"], {"on_change": True, "difference": 2.0}),
    ("period", [b"0.5"], {"on_change": False, "longest": 0.5, "shortest": 0.0}),
    ("event-rate", [b"0.1", b"2"], {"on_change": True, "shortest": 0.1, "longest": 2.0}),
    ("differential-rate", [b"1.5", b"0", b"3"],
     {"difference": 1.5, "shortest": 0.0, "longest": 3.0}),
])
def test_parse_strategy(name: str, params: list[bytes], expected: dict[str, object]) -> None:
    strategy = parse_strategy(name.encode(), params, T.FLOAT)
    assert strategy.strategy is Strategy(name)
    assert strategy.params == tuple(params)
    for field, value in expected.items():
        assert getattr(strategy, field) == value
    assert strategy.reply_arguments() == [name.encode(), *params]


def test_v4_periods_are_milliseconds_and_rates_are_refused() -> None:
    assert parse_strategy("period", [b"250"], T.INTEGER, major=4).longest == 0.25
    with pytest.raises(StrategyError, match="not allowed for version 4"):
        parse_strategy("event-rate", [b"0", b"1"], T.INTEGER, major=4)


@pytest.mark.parametrize(("name", "params", "stype", "message"), [
    ("sometimes", [], T.INTEGER, "Unknown strategy"),
    ("auto", [b"1"], T.INTEGER, "takes no parameters"),
    ("period", [], T.INTEGER, "takes period"),
    ("period", [b"0"], T.INTEGER, "must be positive"),
    ("period", [b"nan"], T.INTEGER, "non-negative number"),
    ("period", [b"\xff"], T.INTEGER, "bad period"),
    ("differential", [b"1"], T.STRING, "only for integer and float"),
    ("differential", [b"-1"], T.INTEGER, "non-negative"),
    ("differential-rate", [b"1", b"0", b"1"], T.BOOLEAN, "only for integer and float"),
    ("event-rate", [b"1", b"0"], T.INTEGER, "longest period must be positive"),
    ("event-rate", [b"2", b"1"], T.INTEGER, "must not exceed"),
])
def test_parse_strategy_errors(name: str, params: list[bytes], stype: SensorType,
                               message: str) -> None:
    with pytest.raises(StrategyError, match=message):
        parse_strategy(name, params, stype)


async def test_connection_sampling_attaches_and_detaches(io_loop: object) -> None:
    sensor = SimulatedSensor("integer", "x", value=1)
    sent: list[bytes] = []
    sampling = ConnectionSampling(lambda s: sent.append(s.status_line()))
    assert sampling.strategy("x") is NONE
    sampling.set(sensor, parse_strategy("auto", [], sensor.stype))
    assert sensor.observer_count == 1
    assert len(sent) == 1  # the update right after setting a strategy
    assert "x" in sampling
    assert list(sampling) == ["x"]
    sampling.set(sensor, parse_strategy("event", [], sensor.stype))  # replaces
    assert sensor.observer_count == 1
    assert len(sent) == 2
    sensor.set_value(2)
    assert len(sent) == 3
    sampling.set(sensor, NONE)
    assert sensor.observer_count == 0
    assert len(sampling) == 0
    sampling.set(sensor, parse_strategy("period", [b"10"], sensor.stype))
    assert sensor.observer_count == 0  # period does not listen to updates
    sampling.close()
    assert len(sampling) == 0
