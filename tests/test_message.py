"""Tests for katcp_inspect.message: constructing, encoding and parsing KATCP messages."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katcp_inspect.errors import KatcpInspectError, KatcpSyntaxError
from katcp_inspect.message import MAX_MID, Message, MessageParser, MessageType, encode_argument

# ----------------------------------------------------------------------------------------------
# Strategies

names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
mids = st.none() | st.integers(min_value=1, max_value=MAX_MID)
mtypes = st.sampled_from(list(MessageType))
# Arbitrary argument bytes, with the empty argument and the special bytes well represented.
special_bytes = st.sampled_from(
    [b"", b"\\", b" ", b"\0", b"\n", b"\r", b"\x1b", b"\t", b"@", b"\\@"]
)
argument_bytes = st.one_of(
    st.binary(max_size=20),
    special_bytes,
    st.lists(st.binary(max_size=3) | special_bytes, max_size=6).map(b"".join),
)
messages = st.builds(
    Message, mtypes, names, st.lists(argument_bytes, max_size=6), mids,
)

fast = settings(deadline=None, max_examples=60)



# ----------------------------------------------------------------------------------------------
# Constructors and argument encoding


class TestConstructors:
    def test_request(self) -> None:
        msg = Message.request("sensor-value", "cpu.temp", mid=3)
        assert msg.mtype is MessageType.REQUEST
        assert msg.name == "sensor-value"
        assert msg.arguments == [b"cpu.temp"]
        assert msg.mid == 3

    def test_reply(self) -> None:
        msg = Message.reply("help", "ok", 2)
        assert msg.mtype is MessageType.REPLY
        assert msg.arguments == [b"ok", b"2"]
        assert msg.mid is None

    def test_inform(self) -> None:
        msg = Message.inform("version-connect", "katcp-protocol", b"5.1-MIB")
        assert msg.mtype is MessageType.INFORM
        assert msg.arguments == [b"katcp-protocol", b"5.1-MIB"]

    def test_no_arguments(self) -> None:
        msg = Message.request("watchdog")
        assert msg.arguments == []
        assert bytes(msg) == b"?watchdog"

    def test_class_constants(self) -> None:
        assert Message.REQUEST is MessageType.REQUEST
        assert Message.REPLY is MessageType.REPLY
        assert Message.INFORM is MessageType.INFORM
        assert (int(Message.REQUEST), int(Message.REPLY), int(Message.INFORM)) == (0, 1, 2)
        assert (Message.OK, Message.FAIL, Message.INVALID) == (b"ok", b"fail", b"invalid")
        assert [t.symbol for t in MessageType] == ["?", "!", "#"]

    def test_generic_constructor_with_int_type(self) -> None:
        msg = Message(1, "help", ["ok"])
        assert msg.mtype is MessageType.REPLY
        assert msg == Message.reply("help", "ok")

    @pytest.mark.parametrize("mid", [None, 7])
    def test_reply_to_request_copies_name_and_mid(self, mid: int | None) -> None:
        req = Message.request("sensor-list", "a.b", mid=mid)
        reply = Message.reply_to_request(req, "ok", 1)
        assert reply.mtype is MessageType.REPLY
        assert reply.name == "sensor-list"
        assert reply.mid == mid
        assert reply.arguments == [b"ok", b"1"]

    @pytest.mark.parametrize("mid", [None, 7])
    def test_reply_inform_copies_name_and_mid(self, mid: int | None) -> None:
        req = Message.request("sensor-list", mid=mid)
        inform = Message.reply_inform(req, "a.b", "desc", "", "integer", -1, 1)
        assert inform.mtype is MessageType.INFORM
        assert inform.name == "sensor-list"
        assert inform.mid == mid
        assert inform.arguments == [b"a.b", b"desc", b"", b"integer", b"-1", b"1"]

    def test_unknown_keyword_is_type_error(self) -> None:
        with pytest.raises(TypeError):
            Message.request("help", bogus=1)  # type: ignore[call-arg]


class TestArgumentEncoding:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (True, b"1"),
            (False, b"0"),
            (0, b"0"),
            (1, b"1"),
            (-42, b"-42"),
            (2**70, b"%d" % 2**70),
            (1.5, b"1.5"),
            (0.1, b"0.1"),  # repr, not %g: no precision lost
            (-0.0, b"-0.0"),
            (1e100, b"1e+100"),
            (1.0, b"1.0"),
            (float("inf"), b"inf"),
            ("plain", b"plain"),
            ("", b""),
            ("caf\u00e9", b"caf\xc3\xa9"),
            ("\u2603", "\u2603".encode()),
            (b"\xff\x00raw", b"\xff\x00raw"),
            (bytearray(b"ba"), b"ba"),
            (memoryview(b"mv"), b"mv"),
            (None, b"None"),
        ],
    )
    def test_encode_argument(self, value: object, expected: bytes) -> None:
        assert encode_argument(value) == expected
        assert Message.inform("x", value).arguments == [expected]

    def test_bool_is_checked_before_int(self) -> None:
        # bool is a subclass of int; katcp encodes booleans as 1/0, not True/False.
        msg = Message.request("x", True, False, 1, 0)
        assert msg.arguments == [b"1", b"0", b"1", b"0"]

    def test_float_round_trips_through_repr(self) -> None:
        value = 0.1 + 0.2
        (arg,) = Message.inform("x", value).arguments
        assert float(arg) == value

    def test_arguments_are_always_bytes(self) -> None:
        msg = Message.request("x", "s", b"b", 1, 2.5, True)
        assert all(type(a) is bytes for a in msg.arguments)

    def test_surrogateescape_str_goes_back_to_its_bytes(self) -> None:
        raw = b"\xff\xfe"
        assert encode_argument(raw.decode("utf-8", "surrogateescape")) == raw


class TestValidation:
    @pytest.mark.parametrize(
        "name", ["", "1abc", "-abc", "a_b", "a.b", "a b", "caf\u00e9", "help\n", "\u00e9", "?help"]
    )
    def test_invalid_names(self, name: str) -> None:
        with pytest.raises(KatcpSyntaxError):
            Message.request(name)

    @pytest.mark.parametrize("name", ["a", "A", "help", "Help-X", "help-", "a1-2-b", "x" * 200])
    def test_valid_names(self, name: str) -> None:
        assert Message.inform(name).name == name

    @pytest.mark.parametrize(
        "mid", [0, 2**31, MAX_MID + 1, -1, "abc", "-1", "", " 7", "1.5", b"x", True, 1.0, "\u0663"]
    )
    def test_invalid_mids(self, mid: object) -> None:
        with pytest.raises(KatcpSyntaxError):
            Message.request("help", mid=mid)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("mid", "expected"), [(1, 1), (MAX_MID, MAX_MID), ("7", 7), (b"12", 12), ("007", 7)]
    )
    def test_valid_mids_become_int(self, mid: object, expected: int) -> None:
        assert Message.request("help", mid=mid).mid == expected  # type: ignore[arg-type]

    def test_syntax_error_is_value_error(self) -> None:
        with pytest.raises(ValueError, match="name"):
            Message.request("a_b")
        assert issubclass(KatcpSyntaxError, KatcpInspectError)


# ----------------------------------------------------------------------------------------------
# reply_ok


class TestReplyOk:
    def test_ok_reply(self) -> None:
        assert Message.reply("help", "ok").reply_ok()
        assert Message.reply("help", b"ok", "more", mid=2).reply_ok()

    @pytest.mark.parametrize(
        "msg",
        [
            Message.reply("help", "fail", "no"),
            Message.reply("help", "invalid"),
            Message.reply("help", "OK"),
            Message.reply("help", "ok "),
            Message.reply("help", "okay"),
            Message.reply("help"),
            Message.reply("help", "", "ok"),
            Message.request("help", "ok"),
            Message.inform("help", "ok"),
        ],
        ids=repr,
    )
    def test_not_ok(self, msg: Message) -> None:
        assert not msg.reply_ok()

    def test_parsed_reply(self) -> None:
        assert Message.parse(b"!help[3] ok 5\n").reply_ok()
        assert not Message.parse(b"!help[3] fail oops\n").reply_ok()


# ----------------------------------------------------------------------------------------------
# Wire form: bytes() and encode()

ESCAPES = [
    (b"\\", b"\\\\"),
    (b" ", b"\\_"),
    (b"\0", b"\\0"),
    (b"\n", b"\\n"),
    (b"\r", b"\\r"),
    (b"\x1b", b"\\e"),
    (b"\t", b"\\t"),
    (b"", b"\\@"),
]


class TestWireForm:
    def test_bytes_has_no_newline_encode_has_one(self) -> None:
        msg = Message.reply("help", "ok", 2)
        assert bytes(msg) == b"!help ok 2"
        assert msg.encode() == b"!help ok 2\n"

    def test_mid_in_wire_form(self) -> None:
        assert bytes(Message.request("help", "x", mid=42)) == b"?help[42] x"
        assert Message.inform("help", mid=MAX_MID).encode() == b"#help[2147483647]\n"

    @pytest.mark.parametrize(("raw", "escaped"), ESCAPES, ids=[repr(r) for r, _ in ESCAPES])
    def test_escape(self, raw: bytes, escaped: bytes) -> None:
        msg = Message.inform("x", raw)
        assert bytes(msg) == b"#x " + escaped
        assert msg.encode() == b"#x " + escaped + b"\n"
        assert Message.parse(msg.encode()).arguments == [raw]

    def test_escapes_inside_an_argument(self) -> None:
        msg = Message.inform("x", b"a b\\c\td\ne\rf\x1bg\0h")
        assert bytes(msg) == b"#x a\\_b\\\\c\\td\\ne\\rf\\eg\\0h"

    def test_empty_arguments(self) -> None:
        msg = Message.request("x", "", b"", "a", "")
        assert bytes(msg) == b"?x \\@ \\@ a \\@"
        assert Message.parse(msg.encode()).arguments == [b"", b"", b"a", b""]

    def test_other_bytes_are_not_escaped(self) -> None:
        raw = bytes(b for b in range(256) if b not in b"\\ \0\n\r\x1b\t")
        assert bytes(Message.inform("x", raw)) == b"#x " + raw

    def test_str_of_non_utf8_arguments(self) -> None:
        msg = Message.inform("x", b"\xff\xfe", "ok")
        text = str(msg)
        assert text.startswith("#x ")
        assert text.endswith(" ok")
        assert "\\xff" in text
        assert "\\xff" in repr(msg)
        assert msg.format_argument(0) == "\\xff\\xfe"
        assert msg.format_argument(1) == "ok"

    def test_str_and_repr(self) -> None:
        msg = Message.request("sensor-value", "cpu.temp", mid=3)
        assert str(msg) == "?sensor-value[3] cpu.temp"
        assert repr(msg) == "<Message ?sensor-value[3] cpu.temp>"

    def test_repr_of_huge_message_is_truncated(self) -> None:
        msg = Message.inform("x", b"a" * 10_000)
        assert len(repr(msg)) < 1100
        assert repr(msg).endswith("...>")


# ----------------------------------------------------------------------------------------------
# Equality and copying


class TestEqualityAndCopy:
    def test_equal_whatever_the_argument_type(self) -> None:
        assert Message.request("a", 1) == Message.request("a", "1") == Message.request("a", b"1")
        assert Message.request("a", True) == Message.request("a", 1)

    @pytest.mark.parametrize(
        "other",
        [
            Message.reply("a", "1", mid=5),
            Message.request("b", "1", mid=5),
            Message.request("a", "2", mid=5),
            Message.request("a", "1", "", mid=5),
            Message.request("a", "1"),
            Message.request("a", "1", mid=6),
        ],
        ids=repr,
    )
    def test_every_field_counts(self, other: Message) -> None:
        msg = Message.request("a", "1", mid=5)
        assert msg != other
        assert not msg == other  # noqa: SIM201

    def test_not_equal_to_other_types(self) -> None:
        msg = Message.request("a")
        assert msg != "?a"
        assert msg != b"?a"
        assert msg != None  # noqa: E711

    def test_unhashable(self) -> None:
        with pytest.raises(TypeError):
            hash(Message.request("a"))

    def test_copy_keeps_mid_and_is_independent(self) -> None:
        msg = Message.request("a", "x", mid=9)
        dup = msg.copy()
        assert dup == msg
        assert dup is not msg
        assert dup.mid == 9
        dup.arguments.append(b"y")
        assert msg.arguments == [b"x"]

    def test_copy_module(self) -> None:
        msg = Message.inform("a", "x", mid=2)
        assert copy.copy(msg) == msg
        deep = copy.deepcopy(msg)
        assert deep == msg
        deep.arguments.append(b"z")
        assert msg.arguments == [b"x"]


# ----------------------------------------------------------------------------------------------
# Message.parse


class TestParse:
    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            (b"?help", Message.request("help")),
            (b"?help\n", Message.request("help")),
            (b"?help\r\n", Message.request("help")),
            (b"?help\r", Message.request("help")),
            (b"!help ok 2\n", Message.reply("help", "ok", "2")),
            (b"#sensor-status 1.5 1 cpu.temp nominal 42\n",
             Message.inform("sensor-status", "1.5", "1", "cpu.temp", "nominal", "42")),
            (b"?a  b\tc  \n", Message.request("a", "b", "c")),
            (b"!x[1] ok\n", Message.reply("x", "ok", mid=1)),
            (b"?help[2147483647] a\n", Message.request("help", "a", mid=MAX_MID)),
            (b"#x[12]\n", Message.inform("x", mid=12)),
            (b"?help [1]\n", Message.request("help", "[1]")),
            (b"?Help-X\n", Message.request("Help-X")),
            (b"?help-\n", Message.request("help-")),
            (b"#x a\\@b \\@ q\n", Message.inform("x", "ab", "", "q")),
            (b"#x \\@\\@\n", Message.inform("x", "")),
            (b"#x a\\_b c\\\\d\n", Message.inform("x", "a b", "c\\d")),
            (b"#x \\0\\n\\r\\e\\t\n", Message.inform("x", b"\0\n\r\x1b\t")),
            (b"?help a\x01\x7f\xfe\n", Message.request("help", b"a\x01\x7f\xfe")),
            (b"\n?help\n\n", Message.request("help")),
        ],
        ids=repr,
    )
    def test_valid(self, line: bytes, expected: Message) -> None:
        assert Message.parse(line) == expected

    def test_at_escape_in_middle(self) -> None:
        assert Message.parse(b"#x a\\@b").arguments == [b"ab"]

    def test_mid_is_int(self) -> None:
        msg = Message.parse(b"!help[42] ok")
        assert msg.mid == 42
        assert type(msg.mid) is int

    def test_parsed_types(self) -> None:
        msg = Message.parse(b"#x a b")
        assert type(msg.name) is str
        assert msg.mtype is MessageType.INFORM
        assert all(type(a) is bytes for a in msg.arguments)

    @pytest.mark.parametrize(
        "line",
        [
            b"",
            b"\n",
            b"   \n",
            b"?",
            b"?\n",
            b"help\n",
            b"@help\n",
            b" ?help\n",
            b"?1abc\n",
            b"?a_b\n",
            b"?a.b\n",
            b"?help[]\n",
            b"?help[0]\n",
            b"?help[01]\n",
            b"!x[007] ok\n",
            b"?help[-1]\n",
            b"?help[abc]\n",
            b"?help[1\n",
            b"?help[2147483648]\n",
            b"?help a\\qb\n",
            b"?help a\\\n",
            b"?help a\\ b\n",
            b"?help a\x00b\n",
            b"?help a\x1bb\n",
            b"?a\n?b\n",
            b"?help a\rb\n",
        ],
        ids=repr,
    )
    def test_malformed(self, line: bytes) -> None:
        with pytest.raises(KatcpSyntaxError):
            Message.parse(line)

    @given(msg=messages)
    @fast
    def test_round_trip(self, msg: Message) -> None:
        wire = msg.encode()
        assert wire.endswith(b"\n")
        assert wire.count(b"\n") == 1
        assert b"\r" not in wire
        assert Message.parse(wire) == msg
        assert Message.parse(bytes(msg)) == msg

    @given(name=names, args=st.lists(argument_bytes, max_size=6), mid=mids)
    @settings(deadline=None, max_examples=30)
    def test_round_trip_all_constructors(
        self, name: str, args: list[bytes], mid: int | None
    ) -> None:
        for ctor in (Message.request, Message.reply, Message.inform):
            msg = ctor(name, *args, mid=mid)
            assert Message.parse(msg.encode()) == msg


# ----------------------------------------------------------------------------------------------
# MessageParser

STREAM_MESSAGES = [
    Message.request("help", mid=1),
    Message.inform("help", "watchdog", "Check the connection.", mid=1),
    Message.inform("help", "with space", b"", b"\\@", b"\xff\n", mid=1),
    Message.reply("help", "ok", 2, mid=1),
    Message.inform("sensor-status", "1234.5", "1", "cpu.temp", "nominal", "42.5"),
    Message.inform("interface-changed"),
]
STREAM = b"".join(m.encode() for m in STREAM_MESSAGES)


def _feed_chunks(parser: MessageParser, chunks: list[bytes]) -> list[Message | KatcpSyntaxError]:
    out: list[Message | KatcpSyntaxError] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(points, points[1:])]


def _kinds(items: list[Message | KatcpSyntaxError]) -> list[str]:
    return ["msg" if isinstance(i, Message) else "err" for i in items]


class TestMessageParser:
    def test_whole_stream(self) -> None:
        assert MessageParser(1 << 16).feed(STREAM) == STREAM_MESSAGES

    def test_split_at_every_boundary(self) -> None:
        for cut in range(len(STREAM) + 1):
            parser = MessageParser(1 << 16)
            assert _feed_chunks(parser, [STREAM[:cut], STREAM[cut:]]) == STREAM_MESSAGES, cut
            assert parser.buffer_size == 0

    def test_byte_at_a_time(self) -> None:
        parser = MessageParser(1 << 16)
        out: list[Message | KatcpSyntaxError] = []
        for i in range(len(STREAM)):
            items = parser.feed(STREAM[i : i + 1])
            # A message comes out exactly when its newline goes in.
            assert len(items) == (1 if STREAM[i : i + 1] == b"\n" else 0)
            out.extend(items)
        assert out == STREAM_MESSAGES

    def test_partial_line_is_kept(self) -> None:
        parser = MessageParser(1 << 16)
        assert parser.feed(b"?e") == []
        assert parser.buffer_size > 0
        assert parser.feed(b" f") == []
        assert parser.feed(b"\n") == [Message.request("e", "f")]
        assert parser.buffer_size == 0

    def test_empty_feed(self) -> None:
        assert MessageParser(100).feed(b"") == []

    @given(msgs=st.lists(messages, max_size=5), data=st.data())
    @fast
    def test_random_chunking(self, msgs: list[Message], data: st.DataObject) -> None:
        stream = b"".join(m.encode() for m in msgs)
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
        parser = MessageParser(1 << 20)
        assert _feed_chunks(parser, _split(stream, cuts)) == msgs

    def test_blank_whitespace_and_crlf_lines_skipped(self) -> None:
        data = b"?a\r\n\r\n  \t \n\n\r#b x\r!c[3] ok\n   \r\n\t\n?d\n"
        assert MessageParser(100).feed(data) == [
            Message.request("a"),
            Message.inform("b", "x"),
            Message.reply("c", "ok", mid=3),
            Message.request("d"),
        ]

    def test_malformed_lines_in_the_middle(self) -> None:
        data = b"?a\n?bad_name x\n#b 1\n!c[0] ok\n?d a\\qb\n#e\n@f\n?g\n"
        items = MessageParser(100).feed(data)
        assert _kinds(items) == ["msg", "err", "msg", "err", "err", "msg", "err", "msg"]
        assert [i for i in items if isinstance(i, Message)] == [
            Message.request("a"), Message.inform("b", "1"), Message.inform("e"),
            Message.request("g"),
        ]
        for item in items:
            if not isinstance(item, Message):
                assert isinstance(item, KatcpSyntaxError)
                assert str(item)

    def test_bare_cr_ends_a_line(self) -> None:
        # CR is an end of line, so "a\rb" is a message and then a line "b" that is malformed.
        items = MessageParser(100).feed(b"?help a\rb\n?next\n")
        assert _kinds(items) == ["msg", "err", "msg"]
        assert items[0] == Message.request("help", "a")
        assert items[2] == Message.request("next")

    @given(
        layout=st.lists(
            st.one_of(
                messages.map(lambda m: ("msg", m.encode())),
                st.sampled_from(
                    [
                        b"?bad_name\n", b"!x[0] ok\n", b"?help[]\n", b"?a b\\q\n", b"?a b\\\n",
                        b"@help\n", b"?1abc\n", b" ?help\n", b"?a x\x00y\n", b"?a x\x1by\n",
                        b"?help[2147483648]\n", b"garbage \xff\n",
                    ]
                ).map(lambda line: ("err", line)),
                st.sampled_from([b"\n", b"\r\n", b"  \t\n", b"\r"]).map(lambda line: ("", line)),
            ),
            max_size=12,
        ),
        data=st.data(),
    )
    @fast
    def test_errors_never_raise_and_later_lines_parse(
        self, layout: list[tuple[str, bytes]], data: st.DataObject
    ) -> None:
        stream = b"".join(line for _, line in layout)
        cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
        items = _feed_chunks(MessageParser(1 << 20), _split(stream, cuts))
        assert _kinds(items) == [kind for kind, _ in layout if kind]
        expected = [Message.parse(line) for kind, line in layout if kind == "msg"]
        assert [i for i in items if isinstance(i, Message)] == expected

    @given(st.lists(st.binary(max_size=50), max_size=10))
    @fast
    def test_arbitrary_bytes_never_raise(self, chunks: list[bytes]) -> None:
        parser = MessageParser(64)
        for item in _feed_chunks(parser, chunks):
            assert isinstance(item, (Message, KatcpSyntaxError))
        # The stream is still usable afterwards (the partial line may end as an error).
        assert parser.feed(b"\n?ok\n")[-1:] == [Message.request("ok")]

    def test_over_long_line(self) -> None:
        parser = MessageParser(20)
        items = parser.feed(b"?a " + b"x" * 100 + b"\n?b\n")
        assert _kinds(items) == ["err", "msg"]
        assert isinstance(items[0], KatcpSyntaxError)
        assert "long" in str(items[0]).lower()
        assert items[1] == Message.request("b")

    def test_line_within_limit(self) -> None:
        line = Message.request("a", "x" * 10).encode()
        assert MessageParser(len(line)).feed(line) == [Message.request("a", "x" * 10)]

    def test_over_long_line_in_chunks_keeps_buffer_bounded(self) -> None:
        parser = MessageParser(32)
        items: list[Message | KatcpSyntaxError] = []
        items += parser.feed(b"#x ")
        for _ in range(100):
            items += parser.feed(b"y" * 10)
            assert parser.buffer_size <= 32
        items += parser.feed(b"\n#after 1\n")
        assert _kinds(items) == ["err", "msg"]
        assert items[1] == Message.inform("after", "1")
        assert parser.buffer_size == 0

    def test_over_long_lines_repeatedly(self) -> None:
        parser = MessageParser(16)
        data = (b"?" + b"z" * 40 + b"\n?ok\n") * 3
        items = parser.feed(data)
        assert _kinds(items) == ["err", "msg"] * 3
