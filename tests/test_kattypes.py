"""Tests for katcp_inspect.kattypes: sensor types, statuses and value codecs."""

from __future__ import annotations

import ipaddress
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from katcp_inspect.kattypes import (
    LRU_ERROR,
    LRU_NOMINAL,
    STATUS_FROM_WIRE,
    STATUS_TO_WIRE,
    Address,
    SensorStatus,
    SensorType,
    check_value,
    decode_timestamp,
    decode_value,
    default_value,
    discrete_in_set,
    encode_timestamp,
    encode_value,
    parse_params,
    type_from_name,
    value_decoder,
)

T = SensorType

ALL_TYPE_NAMES = [
    "integer",
    "float",
    "boolean",
    "lru",
    "discrete",
    "string",
    "timestamp",
    "address",
]
ALL_STATUS_NAMES = ["unknown", "nominal", "warn", "error", "failure", "unreachable", "inactive"]


# --- types and statuses --------------------------------------------------------------------


def test_sensor_type_values_and_wire_names() -> None:
    assert [t.value for t in SensorType] == list(range(8))
    assert [t.wire_name for t in SensorType] == ALL_TYPE_NAMES


def test_sensor_status_values_and_wire_names() -> None:
    assert [s.value for s in SensorStatus] == list(range(7))
    assert [s.wire_name for s in SensorStatus] == ALL_STATUS_NAMES


def test_valid_value_only_for_nominal_warn_error() -> None:
    valid = {s for s in SensorStatus if s.valid_value}
    assert valid == {SensorStatus.NOMINAL, SensorStatus.WARN, SensorStatus.ERROR}


@pytest.mark.parametrize("index", range(7))
def test_status_from_wire_all_seven(index: int) -> None:
    name = ALL_STATUS_NAMES[index].encode()
    status = STATUS_FROM_WIRE[name]
    assert status == index
    assert STATUS_TO_WIRE[status] == name


def test_status_maps_are_exact_and_complete() -> None:
    assert len(STATUS_FROM_WIRE) == 7
    assert len(STATUS_TO_WIRE) == 7
    assert b"NOMINAL" not in STATUS_FROM_WIRE
    assert b"nominal " not in STATUS_FROM_WIRE


@pytest.mark.parametrize("index", range(8))
def test_type_from_name_known(index: int) -> None:
    name = ALL_TYPE_NAMES[index]
    assert type_from_name(name) == (SensorType(index), True)
    assert type_from_name(name.encode()) == (SensorType(index), True)


@pytest.mark.parametrize("name", ["int", "Integer", b"double", b"", b"\xff\xfe"])
def test_type_from_name_unknown_is_string(name: str | bytes) -> None:
    # B16: a device with an odd type name must not lose the sensor.
    assert type_from_name(name) == (SensorType.STRING, False)


# --- params and defaults -------------------------------------------------------------------


def test_parse_params_integer() -> None:
    result = parse_params(T.INTEGER, [b"-5", b"10"])
    assert result == [-5, 10]
    assert all(type(p) is int for p in result)


def test_parse_params_integer_float_formatted() -> None:
    # B16: real devices send integer ranges as "0.0".
    result = parse_params(T.INTEGER, [b"0.0", b"10.0"])
    assert result == [0, 10]
    assert all(type(p) is int for p in result)


def test_parse_params_integer_non_integral_kept_as_float() -> None:
    result = parse_params(T.INTEGER, [b"0.5", "7"])
    assert result == [0.5, 7]
    assert type(result[0]) is float
    assert type(result[1]) is int


def test_parse_params_float() -> None:
    result = parse_params(T.FLOAT, [b"-1.5", b"2", "inf"])
    assert result == [-1.5, 2.0, math.inf]
    assert all(type(p) is float for p in result)


@pytest.mark.parametrize("stype", [T.INTEGER, T.FLOAT])
def test_parse_params_unparsable_number(stype: SensorType) -> None:
    with pytest.raises(ValueError, match="abc"):
        parse_params(stype, [b"0", b"abc"])


def test_parse_params_discrete() -> None:
    assert parse_params(T.DISCRETE, [b"on", b"off", "caf\u00e9"]) == ["on", "off", "caf\u00e9"]


def test_parse_params_discrete_empty() -> None:
    # B16: discrete sensors with no values exist in the wild.
    assert parse_params(T.DISCRETE, []) == []


@pytest.mark.parametrize("stype", [T.BOOLEAN, T.LRU, T.STRING, T.TIMESTAMP, T.ADDRESS])
def test_parse_params_extras_kept_as_str(stype: SensorType) -> None:
    assert parse_params(stype, []) == []
    assert parse_params(stype, [b"x", b"\xff"]) == ["x", "\udcff"]


@pytest.mark.parametrize(
    ("stype", "params", "expected"),
    [
        (T.INTEGER, [], 0),
        (T.INTEGER, [-10, 10], 0),
        (T.INTEGER, [5, 10], 5),
        (T.INTEGER, [-10, -5], -10),
        (T.FLOAT, [], 0.0),
        (T.FLOAT, [-1.0, 1.0], 0.0),
        (T.FLOAT, [2.5, 3.0], 2.5),
        (T.BOOLEAN, [], False),
        (T.LRU, [], LRU_NOMINAL),
        (T.DISCRETE, ["on", "off"], "on"),
        (T.DISCRETE, [], "unknown"),
        (T.STRING, [], ""),
        (T.TIMESTAMP, [], 0.0),
        (T.ADDRESS, [], Address("0.0.0.0", None)),
    ],
)
def test_default_value(stype: SensorType, params: list[Any], expected: Any) -> None:
    value = default_value(stype, params)
    assert value == expected
    assert type(value) is type(expected)


def test_default_value_float_with_int_params_is_float() -> None:
    value = default_value(T.FLOAT, [3, 4])
    assert value == 3.0
    assert type(value) is float


# --- decoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stype", "raw", "expected"),
    [
        (T.INTEGER, b"0", 0),
        (T.INTEGER, b"-17", -17),
        (T.INTEGER, b"12345678901234567890", 12345678901234567890),
        (T.FLOAT, b"1.5", 1.5),
        (T.FLOAT, b"-2", -2.0),
        (T.FLOAT, b"1e-3", 0.001),
        (T.FLOAT, b"inf", math.inf),
        (T.FLOAT, b"-inf", -math.inf),
        (T.BOOLEAN, b"1", True),
        (T.BOOLEAN, b"0", False),
        (T.LRU, b"nominal", LRU_NOMINAL),
        (T.LRU, b"error", LRU_ERROR),
        (T.DISCRETE, b"on", "on"),
        (T.STRING, b"hello world", "hello world"),
        (T.STRING, b"", ""),
        (T.STRING, "caf\u00e9".encode(), "caf\u00e9"),
        (T.STRING, b"\xff\x00", "\udcff\x00"),
        (T.TIMESTAMP, b"1234567890.5", 1234567890.5),
        (T.ADDRESS, b"1.2.3.4:80", Address("1.2.3.4", 80)),
        (T.ADDRESS, b"1.2.3.4", Address("1.2.3.4", None)),
        (T.ADDRESS, b"localhost:0", Address("localhost", 0)),
        (T.ADDRESS, b"[::1]:65535", Address("::1", 65535)),
        (T.ADDRESS, b"[fe80::1%eth0]", Address("fe80::1%eth0", None)),
    ],
)
def test_decode_value(stype: SensorType, raw: bytes, expected: Any) -> None:
    value = decode_value(stype, raw)
    assert value == expected
    assert type(value) is type(expected)
    assert value_decoder(stype)(raw) == expected


def test_decode_float_nan() -> None:
    assert math.isnan(decode_value(T.FLOAT, b"nan"))


def test_decoded_address_unpacks_as_tuple() -> None:
    host, port = decode_value(T.ADDRESS, b"[2001:db8::2]:8080")
    assert (host, port) == ("2001:db8::2", 8080)


def test_discrete_decoder_does_not_check_membership() -> None:
    assert decode_value(T.DISCRETE, b"purple", ["red", "green"]) == "purple"


def test_decoders_are_builtins_where_possible() -> None:
    assert value_decoder(T.FLOAT) is float
    assert value_decoder(T.TIMESTAMP) is float
    assert value_decoder(T.TIMESTAMP, major=6) is float
    assert value_decoder(T.TIMESTAMP, major=4) is not float


def test_timestamp_value_v4_is_milliseconds() -> None:
    assert decode_value(T.TIMESTAMP, b"1234567500", major=4) == 1234567.5
    assert decode_value(T.TIMESTAMP, b"1234567500", major=5) == 1234567500.0
    assert value_decoder(T.TIMESTAMP, major=3)(b"1500") == 1.5


def test_decode_timestamp() -> None:
    assert decode_timestamp(b"1234567890.25") == 1234567890.25
    assert decode_timestamp(b"1234567890.25", major=5) == 1234567890.25
    assert decode_timestamp(b"1234567890250", major=4) == 1234567890.25
    assert decode_timestamp(b"1500.5", major=4) == 1.5005


@pytest.mark.parametrize(
    ("stype", "raw"),
    [
        (T.INTEGER, b"1_000"),
        (T.INTEGER, b" 5"),
        (T.INTEGER, b"5 "),
        (T.INTEGER, b"5\n"),
        (T.INTEGER, b"abc"),
        (T.INTEGER, b""),
        (T.INTEGER, b"-"),
        (T.INTEGER, b"+5"),
        (T.INTEGER, b"1.0"),
        (T.INTEGER, b"--1"),
        (T.FLOAT, b"abc"),
        (T.FLOAT, b""),
        (T.BOOLEAN, b"true"),
        (T.BOOLEAN, b"01"),
        (T.BOOLEAN, b""),
        (T.LRU, b"maybe"),
        (T.LRU, b"NOMINAL"),
        (T.TIMESTAMP, b"now"),
        (T.ADDRESS, b"1.2.3.4:notaport"),
        (T.ADDRESS, b"1.2.3.4:65536"),
        (T.ADDRESS, b"1.2.3.4:-1"),
        (T.ADDRESS, b"1.2.3.4:"),
        (T.ADDRESS, b""),
        (T.ADDRESS, b":80"),
        (T.ADDRESS, b"::1"),
        (T.ADDRESS, b"[::1"),
        (T.ADDRESS, b"[]:80"),
        (T.ADDRESS, b"[::1]80"),
    ],
)
def test_decode_bad_value(stype: SensorType, raw: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - messages come from several builtins
        decode_value(stype, raw)


@pytest.mark.parametrize("major", [4, 5])
def test_decode_timestamp_bad(major: int) -> None:
    with pytest.raises(ValueError, match="abc"):
        decode_timestamp(b"abc", major=major)


# --- encoding ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stype", "value", "expected"),
    [
        (T.INTEGER, 0, b"0"),
        (T.INTEGER, -42, b"-42"),
        (T.FLOAT, 1.5, b"1.5"),
        (T.FLOAT, 2, b"2.0"),
        (T.FLOAT, math.inf, b"inf"),
        (T.FLOAT, math.nan, b"nan"),
        (T.BOOLEAN, True, b"1"),
        (T.BOOLEAN, False, b"0"),
        (T.LRU, LRU_NOMINAL, b"nominal"),
        (T.LRU, LRU_ERROR, b"error"),
        (T.DISCRETE, "on", b"on"),
        (T.DISCRETE, b"off", b"off"),
        (T.STRING, "caf\u00e9", "caf\u00e9".encode()),
        (T.STRING, "\udcff", b"\xff"),
        (T.STRING, b"\x00\xff", b"\x00\xff"),
        (T.TIMESTAMP, 1234567890.5, b"1234567890.5"),
        (T.TIMESTAMP, 7, b"7.0"),
        (T.ADDRESS, Address("1.2.3.4", 80), b"1.2.3.4:80"),
        (T.ADDRESS, ("::1", 80), b"[::1]:80"),
        (T.ADDRESS, ("host", None), b"host"),
    ],
)
def test_encode_value(stype: SensorType, value: Any, expected: bytes) -> None:
    assert encode_value(stype, value) == expected


def test_encode_timestamp_value_v4_is_milliseconds() -> None:
    assert encode_value(T.TIMESTAMP, 1234567.5, major=4) == b"1234567500"
    assert encode_value(T.TIMESTAMP, 1234567.5, major=5) == b"1234567.5"


def test_encode_timestamp() -> None:
    assert encode_timestamp(1234567890.25) == b"1234567890.25"
    assert encode_timestamp(1234567890.25, major=5) == b"1234567890.25"
    assert encode_timestamp(1234567890.25, major=4) == b"1234567890250"
    assert encode_timestamp(1.0004, major=4) == b"1000"
    assert encode_timestamp(1.0006, major=4) == b"1001"
    assert encode_timestamp(0, major=4) == b"0"


@pytest.mark.parametrize("seconds", [math.inf, -math.inf, math.nan])
def test_encode_timestamp_v4_non_finite(seconds: float) -> None:
    with pytest.raises(ValueError, match="milliseconds"):
        encode_timestamp(seconds, major=4)


@pytest.mark.parametrize(
    ("stype", "value"),
    [
        (T.INTEGER, 1.5),
        (T.INTEGER, 2.0),
        (T.INTEGER, "3"),
        (T.FLOAT, "abc"),
        (T.FLOAT, None),
        (T.BOOLEAN, "yes"),
        (T.BOOLEAN, 2),
        (T.BOOLEAN, []),
        (T.LRU, 2),
        (T.LRU, "maybe"),
        (T.DISCRETE, 5),
        (T.STRING, None),
        (T.TIMESTAMP, "later"),
        (T.ADDRESS, "1.2.3.4:80"),
        (T.ADDRESS, ("1.2.3.4", 80, 1)),
        (T.ADDRESS, ("1.2.3.4", 65536)),
        (T.ADDRESS, ("1.2.3.4", -1)),
        (T.ADDRESS, ("1.2.3.4", "80")),
        (T.ADDRESS, ("", 80)),
        (T.ADDRESS, ("[::1]", 80)),
        (T.ADDRESS, (1234, 80)),
    ],
)
def test_encode_bad_value(stype: SensorType, value: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        encode_value(stype, value)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (Address("1.2.3.4", 80), "1.2.3.4:80"),
        (Address("1.2.3.4", None), "1.2.3.4"),
        (Address("host.example", 0), "host.example:0"),
        (Address("::1", 80), "[::1]:80"),
        (Address("::1", None), "[::1]"),
        (Address("2001:db8::1", 65535), "[2001:db8::1]:65535"),
    ],
)
def test_address_str(address: Address, text: str) -> None:
    assert str(address) == text


def test_address_is_a_tuple() -> None:
    address = Address("1.2.3.4", 80)
    assert (address.host, address.port) == ("1.2.3.4", 80)
    assert isinstance(address, tuple)
    assert tuple(address) == ("1.2.3.4", 80)


# --- round trips ---------------------------------------------------------------------------


@given(st.integers())
def test_integer_round_trip(value: int) -> None:
    assert decode_value(T.INTEGER, encode_value(T.INTEGER, value)) == value


@given(st.floats(allow_nan=False))
def test_float_round_trip(value: float) -> None:
    decoded = decode_value(T.FLOAT, encode_value(T.FLOAT, value))
    assert decoded == value
    assert math.copysign(1.0, decoded) == math.copysign(1.0, value)


def test_float_nan_round_trip() -> None:
    assert math.isnan(decode_value(T.FLOAT, encode_value(T.FLOAT, math.nan)))


@given(st.booleans())
def test_boolean_round_trip(value: bool) -> None:
    assert decode_value(T.BOOLEAN, encode_value(T.BOOLEAN, value)) is value


@pytest.mark.parametrize("value", [LRU_NOMINAL, LRU_ERROR])
def test_lru_round_trip(value: int) -> None:
    assert decode_value(T.LRU, encode_value(T.LRU, value)) == value


@given(st.text())
def test_string_round_trip_text(value: str) -> None:
    # Text made of lone surrogates cannot come from bytes, so only check text that can.
    raw = value.encode("utf-8", "surrogatepass")
    if raw.decode("utf-8", "surrogateescape") == value:
        assert decode_value(T.STRING, encode_value(T.STRING, value)) == value


@given(st.binary())
def test_string_round_trip_arbitrary_bytes(raw: bytes) -> None:
    value = decode_value(T.STRING, raw)
    assert isinstance(value, str)
    assert encode_value(T.STRING, value) == raw


@given(st.binary())
def test_discrete_round_trip_arbitrary_bytes(raw: bytes) -> None:
    value = decode_value(T.DISCRETE, raw)
    assert encode_value(T.DISCRETE, value) == raw
    assert decode_value(T.DISCRETE, encode_value(T.DISCRETE, value)) == value


_hostnames = st.from_regex(r"[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?", fullmatch=True)
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(str)
_ports = st.none() | st.integers(min_value=0, max_value=65535)


@given(st.builds(Address, _hostnames | _ipv4 | _ipv6, _ports))
def test_address_round_trip(address: Address) -> None:
    wire = encode_value(T.ADDRESS, address)
    assert decode_value(T.ADDRESS, wire) == address
    assert encode_value(T.ADDRESS, tuple(address)) == wire


@given(st.ip_addresses(v=6), st.integers(min_value=0, max_value=65535))
def test_ipv6_address_is_bracketed(ip: ipaddress.IPv6Address, port: int) -> None:
    wire = encode_value(T.ADDRESS, (str(ip), port))
    assert wire == b"[%s]:%d" % (str(ip).encode(), port)
    assert decode_value(T.ADDRESS, wire) == Address(str(ip), port)


@given(st.floats(min_value=0, max_value=4e9, allow_nan=False))
def test_timestamp_round_trip_v5(seconds: float) -> None:
    assert decode_value(T.TIMESTAMP, encode_value(T.TIMESTAMP, seconds)) == seconds
    assert decode_timestamp(encode_timestamp(seconds)) == seconds


@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_timestamp_round_trip_v4(millis: int) -> None:
    wire = b"%d" % millis
    seconds = decode_value(T.TIMESTAMP, wire, major=4)
    assert seconds == millis / 1000
    assert encode_value(T.TIMESTAMP, seconds, major=4) == wire
    assert encode_timestamp(decode_timestamp(wire, major=4), major=4) == wire


# --- checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stype", "value", "params"),
    [
        (T.INTEGER, 5, []),
        (T.INTEGER, 500, [0, 10]),  # ranges are informational
        (T.FLOAT, 1.5, []),
        (T.FLOAT, 2, []),
        (T.BOOLEAN, True, []),
        (T.BOOLEAN, False, []),
        (T.LRU, LRU_NOMINAL, []),
        (T.LRU, LRU_ERROR, []),
        (T.DISCRETE, "on", ["on", "off"]),
        (T.DISCRETE, "anything", []),
        (T.STRING, "text", []),
        (T.STRING, b"bytes", []),
        (T.TIMESTAMP, 1234567890, []),
        (T.TIMESTAMP, 1234567890.5, []),
        (T.ADDRESS, Address("1.2.3.4", 80), []),
        (T.ADDRESS, ("::1", None), []),
    ],
)
def test_check_value_accepts(stype: SensorType, value: Any, params: list[Any]) -> None:
    check_value(stype, value, params)


@pytest.mark.parametrize(
    ("stype", "value", "params"),
    [
        (T.INTEGER, True, []),
        (T.INTEGER, 1.0, []),
        (T.INTEGER, "1", []),
        (T.FLOAT, False, []),
        (T.FLOAT, "1.0", []),
        (T.BOOLEAN, 1, []),
        (T.BOOLEAN, None, []),
        (T.LRU, 2, []),
        (T.LRU, True, []),
        (T.LRU, "nominal", []),
        (T.DISCRETE, "purple", ["on", "off"]),
        (T.DISCRETE, b"on", ["on", "off"]),
        (T.STRING, 5, []),
        (T.TIMESTAMP, "now", []),
        (T.TIMESTAMP, True, []),
        (T.ADDRESS, "1.2.3.4:80", []),
        (T.ADDRESS, ("1.2.3.4", 80, 0), []),
        (T.ADDRESS, ("1.2.3.4", 70000), []),
    ],
)
def test_check_value_rejects(stype: SensorType, value: Any, params: list[Any]) -> None:
    with pytest.raises(ValueError, match=f"not a valid {stype.wire_name} value"):
        check_value(stype, value, params)


def test_discrete_in_set() -> None:
    assert discrete_in_set("on", ["on", "off"])
    assert not discrete_in_set("purple", ["on", "off"])
    assert discrete_in_set("purple", [])
