"""``printable``: device text made safe for log lines, exception texts and terminals."""

from __future__ import annotations

import pytest

from katcp_inspect.text import printable


def test_printable_text_is_returned_as_it_is() -> None:
    text = "cpu.temperature 25 °C, ünïcödé and emoji 🌡"
    assert printable(text) is text


@pytest.mark.parametrize(("raw", "shown"), [
    ("two\nlines\r\tand a tab", "two\\nlines\\r\\tand a tab"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),  # a terminal title change
    ("del\x7f c1\x9b nul\x00", "del\\x7f c1\\x9b nul\\x00"),
    ("bidi \u202eevil\u202c \u2066x\u2069", "bidi \\u202eevil\\u202c \\u2066x\\u2069"),
    ("zero\u200bwidth \ufeffbom", "zero\\u200bwidth \\ufeffbom"),
    ("line\u2028para\u2029nel\x85", "line\\u2028para\\u2029nel\\x85"),
    ("nbsp\xa0", "nbsp\\xa0"),  # a separator that looks like a space
    ("tag \U000e0041", "tag \\U000e0041"),
    ("back\\slash", "back\\\\slash"),  # so that the escapes above are unambiguous
    ("lone \ud800", "lone \\ud800"),
    ("caf\udce9", "caf\\xe9"),  # an undecodable byte kept by surrogateescape
])
def test_what_a_terminal_would_act_on_is_spelled_out(raw: str, shown: str) -> None:
    assert printable(raw) == shown


@pytest.mark.parametrize("raw", [b"caf\xe9 \x1b\n", bytearray(b"caf\xe9 \x1b\n"),
                                 memoryview(b"caf\xe9 \x1b\n")])
def test_bytes_are_decoded_as_utf8_with_undecodable_bytes_as_escapes(raw: bytes) -> None:
    assert printable(raw) == "caf\\xe9 \\x1b\\n"
    assert printable(b"25 \xc2\xb0C") == "25 °C"


def test_escape_backslash_false_keeps_an_escaped_text_as_it_is() -> None:
    wire = "#log warn a\\_b\\nc"  # KATCP's wire form escapes its own backslashes
    assert printable(wire, escape_backslash=False) is wire
    assert printable(wire + "\x07\u202e\n", escape_backslash=False) == wire + "\\x07\\u202e\\n"
    assert printable(b"x\\_\xff", escape_backslash=False) == "x\\_\\xff"


def test_the_result_is_always_printable() -> None:
    everything = "".join(map(chr, range(0x3000))) + "\U000e0001\U0010ffff"
    for escape_backslash in (True, False):
        assert printable(everything, escape_backslash=escape_backslash).isprintable()
