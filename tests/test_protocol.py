"""Tests for katcp_inspect.protocol: KATCP versions, flags and what follows from them."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katcp_inspect.errors import KatcpInspectError, ProtocolError
from katcp_inspect.protocol import (
    KATCP_V4,
    STRATEGIES_V4,
    STRATEGIES_V5,
    ProtocolFlags,
)


class TestParseVersion:
    @pytest.mark.parametrize(
        ("text", "major", "minor", "flags"),
        [
            ("5.1-MIBT", 5, 1, {"M", "I", "B", "T"}),
            ("5.0-IM", 5, 0, {"I", "M"}),
            ("5.0-M", 5, 0, {"M"}),
            ("5.0", 5, 0, set()),
            ("4.0", 4, 0, set()),
            ("4.9-M", 4, 9, {"M"}),
            (b"5.1-BIMT", 5, 1, {"B", "I", "M", "T"}),
            (b"5.0-IM", 5, 0, {"I", "M"}),
            ("10.20", 10, 20, set()),
            ("6.0-IT", 6, 0, {"I", "T"}),
        ],
    )
    def test_valid(self, text: str | bytes, major: int, minor: int, flags: set[str]) -> None:
        pf = ProtocolFlags.parse_version(text)
        assert (pf.major, pf.minor, pf.flags) == (major, minor, frozenset(flags))
        assert pf == ProtocolFlags(major, minor, flags)

    def test_flag_order_does_not_matter(self) -> None:
        # Devices announce the same flags in different orders ([KP] BIMT, [AIO] MIB...).
        assert ProtocolFlags.parse_version("5.1-MIBT") == ProtocolFlags.parse_version("5.1-BIMT")
        assert ProtocolFlags.parse_version("5.1-TBIM") == ProtocolFlags.parse_version(b"5.1-MIBT")

    def test_repeated_flags_collapse(self) -> None:
        assert ProtocolFlags.parse_version("5.0-MMI").flags == frozenset("MI")

    def test_trailing_dash_means_no_flags(self) -> None:
        # Decision: "5.1-" is read as 5.1 with no flags, as katcp-python's `-(flags)?` pattern
        # does; the dash adds nothing and nothing contradictory was announced.
        pf = ProtocolFlags.parse_version("5.1-")
        assert pf == ProtocolFlags(5, 1)
        assert pf.flags == frozenset()

    def test_unknown_flags_are_kept_and_ignored(self) -> None:
        pf = ProtocolFlags.parse_version("5.1-MXz")
        assert pf.flags == frozenset({"M", "X", "z"})
        assert pf.supports("X")
        assert pf.multi_client
        assert not pf.message_ids
        assert not pf.request_timeout_hints
        assert not pf.bulk_set_sensor_sampling
        assert str(pf) == "5.1-MXz"

    @pytest.mark.parametrize(
        "text",
        [
            "five",
            "",
            "5",
            "5.",
            ".1",
            "5.1.2",
            "v5.1",
            "5,1",
            "5.1-M I",
            "5.1-M1",
            "5.1-M-I",
            "5.1 -M",
            "-5.1",
            "5.-1",
            "5.1-\u00e9",
            b"5.1-\xff",
            b"",
            "katcp-protocol",
        ],
    )
    def test_unparsable(self, text: str | bytes) -> None:
        with pytest.raises(ProtocolError, match="unparsable"):
            ProtocolFlags.parse_version(text)

    @pytest.mark.parametrize(
        ("text", "what"),
        [
            ("4.0-T", "flag T"),
            ("4.0-I", "message ids"),
            ("4.0-B", "flag B"),
            ("4.9-IM", "message ids"),
            ("5.0-B", "flag B"),
            ("5.0-T", "flag T"),
            ("5.0-IMT", "flag T"),
        ],
    )
    def test_flag_needs_newer_version(self, text: str, what: str) -> None:
        # B15: katcp-python raised a bare ValueError inside its inform handler and hung; here
        # the error is a ProtocolError that says what is wrong and with which version.
        with pytest.raises(ProtocolError) as info:
            ProtocolFlags.parse_version(text)
        message = str(info.value)
        assert what in message
        assert text.split("-")[0] in message

    def test_protocol_error_is_value_error(self) -> None:
        assert issubclass(ProtocolError, ValueError)
        assert issubclass(ProtocolError, KatcpInspectError)
        with pytest.raises(ValueError):  # noqa: PT011  (the base class is the point here)
            ProtocolFlags.parse_version("4.0-T")
        with pytest.raises(ValueError):  # noqa: PT011
            ProtocolFlags.parse_version("five")

    @pytest.mark.parametrize("text", ["\u0665.\u0661", "\uff15.1-M"])
    def test_non_ascii_digits_rejected(self, text: str) -> None:
        with pytest.raises(ProtocolError):
            ProtocolFlags.parse_version(text)


class TestProperties:
    def test_all_flags(self) -> None:
        pf = ProtocolFlags.parse_version("5.1-MIBT")
        assert pf.multi_client
        assert pf.message_ids
        assert pf.request_timeout_hints
        assert pf.bulk_set_sensor_sampling

    @pytest.mark.parametrize(
        ("flag", "prop"),
        [
            ("M", "multi_client"),
            ("I", "message_ids"),
            ("T", "request_timeout_hints"),
            ("B", "bulk_set_sensor_sampling"),
        ],
    )
    def test_each_flag_alone(self, flag: str, prop: str) -> None:
        pf = ProtocolFlags(5, 1, flag)
        props = ["multi_client", "message_ids", "request_timeout_hints",
                 "bulk_set_sensor_sampling"]
        assert {p: getattr(pf, p) for p in props} == {p: p == prop for p in props}
        assert pf.supports(flag)

    def test_flag_constants(self) -> None:
        assert ProtocolFlags.MULTI_CLIENT == "M"
        assert ProtocolFlags.MESSAGE_IDS == "I"
        assert ProtocolFlags.REQUEST_TIMEOUT_HINTS == "T"
        assert ProtocolFlags.BULK_SET_SENSOR_SAMPLING == "B"
        pf = ProtocolFlags(5, 0, "IM")
        assert pf.supports(ProtocolFlags.MESSAGE_IDS)
        assert not pf.supports(ProtocolFlags.BULK_SET_SENSOR_SAMPLING)

    def test_no_flags(self) -> None:
        pf = ProtocolFlags.parse_version("5.0")
        assert not pf.multi_client
        assert not pf.message_ids
        assert not pf.request_timeout_hints
        assert not pf.bulk_set_sensor_sampling

    @pytest.mark.parametrize(
        ("text", "scale"),
        [("4.0", 0.001), ("4.9-M", 0.001), ("3.0", 0.001), ("5.0", 1.0), ("5.1-IM", 1.0),
         ("6.0", 1.0)],
    )
    def test_timestamp_scale(self, text: str, scale: float) -> None:
        assert ProtocolFlags.parse_version(text).timestamp_scale == scale

    def test_strategy_allowed(self) -> None:
        v4 = ProtocolFlags(4, 0)
        v5 = ProtocolFlags(5, 0, "IM")
        v51 = ProtocolFlags(5, 1, "MIB")
        for strategy in ("none", "auto", "period", "event", "differential"):
            assert v4.strategy_allowed(strategy)
            assert v5.strategy_allowed(strategy)
            assert v51.strategy_allowed(strategy)
        for strategy in ("event-rate", "differential-rate"):
            assert not v4.strategy_allowed(strategy)
            assert v5.strategy_allowed(strategy)
            assert v51.strategy_allowed(strategy)
        for bogus in ("", "bogus", "EVENT", "period "):
            assert not v4.strategy_allowed(bogus)
            assert not v5.strategy_allowed(bogus)
        assert STRATEGIES_V4 < STRATEGIES_V5
        assert {"event-rate", "differential-rate"} == STRATEGIES_V5 - STRATEGIES_V4


class TestStrAndIdentity:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("5.1-MIBT", "5.1-MIBT"),
            ("5.1-BIMT", "5.1-BIMT"),
            ("5.1-MIB", "5.1-MIB"),
            ("5.0-MI", "5.0-MI"),
            ("5.0-MIM", "5.0-MI"),
            ("5.0", "5.0"),
            ("5.1-", "5.1"),
            ("4.0", "4.0"),
        ],
    )
    def test_str_keeps_the_devices_order(self, text: str, expected: str) -> None:
        assert str(ProtocolFlags.parse_version(text)) == expected

    def test_equality(self) -> None:
        assert ProtocolFlags(5, 0, "IM") == ProtocolFlags(5, 0, "MI")
        assert ProtocolFlags(5, 0, "IM") != ProtocolFlags(5, 0, "I")
        assert ProtocolFlags(5, 0, "IM") != ProtocolFlags(5, 1, "IM")
        assert ProtocolFlags(5, 0) != ProtocolFlags(4, 0)
        assert ProtocolFlags(5, 0) != "5.0"
        assert ProtocolFlags(5, 0) != (5, 0, frozenset())

    def test_hashable(self) -> None:
        a = ProtocolFlags.parse_version("5.1-MIB")
        b = ProtocolFlags(5, 1, ["B", "I", "M"])
        assert hash(a) == hash(b)
        assert len({a, b, ProtocolFlags(5, 0)}) == 2
        assert {a: "x"}[b] == "x"

    def test_frozen(self) -> None:
        pf = ProtocolFlags(5, 0, "IM")
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            pf.major = 4  # type: ignore[misc]
        assert isinstance(pf.flags, frozenset)

    @given(
        major=st.integers(0, 99),
        minor=st.integers(0, 99),
        flags=st.sets(st.sampled_from("MIBTXYZabq")),
    )
    @settings(deadline=None, max_examples=100)
    def test_round_trip_and_version_rules(self, major: int, minor: int, flags: set[str]) -> None:
        text = f"{major}.{minor}-{''.join(flags)}"
        allowed = not ("I" in flags and major < 5) and not (
            flags & {"T", "B"} and (major, minor) < (5, 1)
        )
        if not allowed:
            with pytest.raises(ProtocolError):
                ProtocolFlags.parse_version(text)
            with pytest.raises(ProtocolError):
                ProtocolFlags(major, minor, flags)
            return
        pf = ProtocolFlags.parse_version(text)
        assert pf == ProtocolFlags(major, minor, flags)
        assert pf.flags == frozenset(flags)
        assert ProtocolFlags.parse_version(str(pf)) == pf
        assert ProtocolFlags.parse_version(str(pf).encode()) == pf
        assert pf.timestamp_scale == (0.001 if major < 5 else 1.0)


class TestConstructor:
    @pytest.mark.parametrize(
        "flags",
        [
            "IM",
            b"IM",
            set("IM"),
            frozenset("MI"),
            ["I", "M"],
            [b"I", b"M"],
            ("M", b"I"),
            iter("IMI"),
        ],
        ids=repr,
    )
    def test_flag_forms(self, flags: object) -> None:
        # katcp-python compatibility: ProtocolFlags(5, 0, set("IM")).
        pf = ProtocolFlags(5, 0, flags)  # type: ignore[arg-type]
        assert pf.flags == frozenset({"I", "M"})
        assert pf == ProtocolFlags.parse_version("5.0-IM")

    def test_default_is_no_flags(self) -> None:
        assert ProtocolFlags(5, 0).flags == frozenset()
        assert ProtocolFlags(5, 0, "").flags == frozenset()
        assert ProtocolFlags(5, 0, b"").flags == frozenset()

    @pytest.mark.parametrize("flags", [["IM"], [""], [b"IM"], ["M", "BI"]], ids=repr)
    def test_multi_letter_items_rejected(self, flags: list[str | bytes]) -> None:
        with pytest.raises(ProtocolError, match="single letters"):
            ProtocolFlags(5, 1, flags)

    @pytest.mark.parametrize(
        ("major", "minor", "flags"),
        [(4, 0, "I"), (4, 9, "MI"), (5, 0, "T"), (5, 0, "B"), (4, 0, "T")],
    )
    def test_version_rules(self, major: int, minor: int, flags: str) -> None:
        with pytest.raises(ProtocolError):
            ProtocolFlags(major, minor, flags)

    def test_negative_version(self) -> None:
        with pytest.raises(ProtocolError):
            ProtocolFlags(-1, 0)
        with pytest.raises(ProtocolError):
            ProtocolFlags(5, -1)

    @pytest.mark.parametrize("flag", ["1", " ", "-", "\u00e9"])
    def test_non_letter_flags_rejected(self, flag: str) -> None:
        # Anything the constructor accepts should survive str() -> parse_version(); these do
        # not (str(ProtocolFlags(5, 0, "1")) == "5.0-1", which parse_version rejects).
        with pytest.raises(ProtocolError):
            ProtocolFlags(5, 0, flag)


def test_katcp_v4() -> None:
    assert ProtocolFlags(4, 0) == KATCP_V4
    assert (KATCP_V4.major, KATCP_V4.minor, KATCP_V4.flags) == (4, 0, frozenset())
    assert str(KATCP_V4) == "4.0"
    assert KATCP_V4.timestamp_scale == 0.001
    assert not KATCP_V4.message_ids
    assert not KATCP_V4.multi_client
    assert not KATCP_V4.strategy_allowed("event-rate")
    assert KATCP_V4.strategy_allowed("event")
    assert ProtocolFlags.parse_version("4.0") == KATCP_V4
