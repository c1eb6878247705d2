"""StrategyBook: what the user wants sampled, and the requests that bring a device there."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from katcp_inspect.sampling import (
    NONE,
    StrategyBook,
    for_protocol,
    format_strategy,
    make_strategy,
)


def test_names_beat_patterns_beat_the_default() -> None:
    book = StrategyBook(default=make_strategy("auto"))
    book.set_pattern(r"^cpu\.", make_strategy("period", 0.5))
    book.set(["cpu.load"], make_strategy("event"))
    assert book.wanted("cpu.load") == (b"event",)
    assert book.wanted("cpu.temp") == (b"period", b"0.5")
    assert book.wanted("rx.power") == (b"auto",)
    assert format_strategy(book.wanted("cpu.temp")) == "period 0.5"


def test_later_patterns_win_and_replacing_one_keeps_one() -> None:
    book = StrategyBook()
    book.set_pattern("a", make_strategy("event"))
    book.set_pattern("ab", make_strategy("auto"))
    assert book.wanted("abc") == (b"auto",)
    book.set_pattern("a", make_strategy("none"))
    assert book.wanted("abc") == NONE  # "a" was set again, so it is now the latest


def test_plan_groups_what_differs_from_the_connection() -> None:
    book = StrategyBook(default=make_strategy("auto"))
    book.set("b", NONE)
    plan = book.plan(["a", "b", "c"], applied={"a": (b"auto",)})
    assert plan == {(b"auto",): ["c"]}


_NAMES = ["a", "ab", "b.c", "c", "cd"]
_STRATEGIES = st.sampled_from([NONE, (b"auto",), (b"event",), (b"period", b"0.5")])


@given(default=st.one_of(st.none(), _STRATEGIES),
       explicit=st.dictionaries(st.sampled_from(_NAMES), _STRATEGIES),
       patterns=st.lists(st.tuples(st.sampled_from(["a", "^c", r"\.", "d$"]), _STRATEGIES)),
       held=st.lists(st.tuples(st.sampled_from(_NAMES), _STRATEGIES)),
       applied=st.dictionaries(st.sampled_from(_NAMES), _STRATEGIES))
def test_plan_sends_each_name_what_wanted_says(
        default: tuple[bytes, ...] | None, explicit: dict[str, tuple[bytes, ...]],
        patterns: list[tuple[str, tuple[bytes, ...]]], held: list[tuple[str, tuple[bytes, ...]]],
        applied: dict[str, tuple[bytes, ...]]) -> None:
    book = StrategyBook(default=default)
    for pattern, strategy in patterns:
        book.set_pattern(pattern, strategy)
    for name, strategy in explicit.items():
        book.set(name, strategy)
    for name, strategy in held:
        book.hold(name, strategy)
    expected: dict[tuple[bytes, ...], list[str]] = {}
    for name in _NAMES:
        if applied.get(name, NONE) != book.wanted(name):
            expected.setdefault(book.wanted(name), []).append(name)
    assert book.plan(_NAMES, applied) == expected


def test_times_are_seconds_to_the_user_and_milliseconds_to_katcp_4() -> None:
    assert for_protocol(make_strategy("period", 0.5), 4) == (b"period", b"500")
    assert for_protocol(make_strategy("period", 0.5), 5) == (b"period", b"0.5")
    assert for_protocol(make_strategy("event-rate", 1, 10), 4) == (b"event-rate", b"1000",
                                                                   b"10000")
    assert for_protocol(make_strategy("differential-rate", 2, 0.1, 5), 4) == (
        b"differential-rate", b"2", b"100", b"5000")
    assert for_protocol(make_strategy("event"), 4) == (b"event",)
