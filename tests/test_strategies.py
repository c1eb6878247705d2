"""The one strategy table: what each strategy takes, and which versions know it."""

from __future__ import annotations

from katcp_inspect.cli.common import STRATEGY_PARAMS
from katcp_inspect.protocol import KATCP_V4, ProtocolFlags
from katcp_inspect.sampling import for_protocol, make_strategy
from katcp_inspect.strategies import STRATEGIES, strategies_for


def test_the_table_is_the_specification() -> None:
    assert {name: info.n_params for name, info in STRATEGIES.items()} == {
        "none": 0, "auto": 0, "event": 0, "period": 1, "differential": 1,
        "event-rate": 2, "differential-rate": 3}
    assert strategies_for(4) == {"none", "auto", "event", "period", "differential"}
    assert strategies_for(5) == set(STRATEGIES)
    assert STRATEGIES["differential-rate"].time_params == (1, 2)


def test_the_client_and_the_command_line_read_the_same_table() -> None:
    assert {name: info.n_params for name, info in STRATEGIES.items()} == STRATEGY_PARAMS
    assert not KATCP_V4.strategy_allowed("event-rate")
    assert ProtocolFlags(5, 0).strategy_allowed("event-rate")
    assert not ProtocolFlags(5, 0).strategy_allowed("sometimes")
    assert for_protocol(make_strategy("event-rate", 0.5, 2), 4) == (b"event-rate", b"500",
                                                                    b"2000")
