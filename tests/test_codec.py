"""The fast path through katcp-codec's core and its public API give the same results."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from katcp_inspect import codec

CORPUS = (b"#sensor-status 1.5 1 a.b nominal 4\n!help[3] ok 2\n?x \\@ a\\_b\\\\\n"
          b" leading-space\n#bad\\q\n\n\r\n#" + b"y" * 300 + b"\n#after[2147483647] 1\n"
          b"?help[0]\n#\xfe\xff\n#x \xfe\xff\n")


def normalise(items: list[object]) -> list[object]:
    out: list[object] = []
    for item in items:
        if isinstance(item, ValueError):
            out.append(("error", str(item)))
        else:
            out.append((codec.type_index(item.mtype), item.name, item.mid,  # type: ignore[attr-defined]
                        item.arguments))  # type: ignore[attr-defined]
    return out


def parse_all(data: bytes, fast: bool, chunk: int) -> list[object]:
    parser = codec.Parser(200, fast=fast)
    items: list[object] = []
    for start in range(0, len(data), chunk):
        items.extend(parser.append(data[start:start + chunk]))
    return normalise(items)


def test_the_core_parser_is_used_unless_the_fallback_is_forced() -> None:
    # katcp-codec 0.2.x: if this fails without KATCP_INSPECT_CODEC, the fallback is in use.
    assert (os.environ.get("KATCP_INSPECT_CODEC") != "public") == codec.FAST


@given(st.integers(min_value=1, max_value=len(CORPUS)))
def test_both_parsers_agree_on_any_chunking(chunk: int) -> None:
    assert parse_all(CORPUS, True, chunk) == parse_all(CORPUS, False, len(CORPUS))


@given(st.lists(st.binary(max_size=20), max_size=5), st.sampled_from([0, 1, 2]),
       st.one_of(st.none(), st.integers(min_value=1, max_value=2**31 - 1)))
def test_encoding_round_trips(arguments: list[bytes], index: int, mid: int | None) -> None:
    wire = codec.encode(index, b"name-1", mid, arguments)
    assert wire.endswith(b"\n")
    for fast in (True, False):
        assert normalise(codec.Parser(10_000, fast=fast).append(wire)) == [
            (index, b"name-1", mid, arguments)]
