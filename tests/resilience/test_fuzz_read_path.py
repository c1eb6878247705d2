"""Test 5b: a hypothesis fuzz of the read path. Random and mutated KATCP lines go to a
connected client through a scripted device; after each input the client must still answer a
?watchdog, its counters must match what was sent, and its model must be unchanged (see
:mod:`.read_path` for the invariants). ``scripts/fuzz_read_path.py`` runs the long version."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from katcp_inspect.testing.harness.read_path import SEEDS, ReadPathHarness

NAMES = st.sampled_from([b"sensor-status", b"sensor-value", b"interface-changed",
                         b"device-changed", b"version-connect", b"help", b"sensor-list", b"log",
                         b"watchdog", b"client-connected", b"version", b"build-state",
                         b"request-timeout-hint", b"frobnicate", b"disconnect"])
MIDS = st.one_of(st.just(b""), st.integers(0, 2**32).map(lambda n: b"[%d]" % n),
                 st.sampled_from([b"[abc]", b"[]", b"[99999999999999999999]", b"[-1]"]))
ARGUMENTS = st.one_of(
    st.sampled_from([b"1.0", b"1", b"2", b"0", b"-1", b"nan", b"inf", b"1e400", b"a.float",
                     b"an.int", b"a.string", b"a.bool", b"a.discrete", b"weird.type",
                     b"utf8.desc", b"no.such", b"nominal", b"warn", b"error", b"unknown",
                     b"bogus", b"katcp-protocol", b"5.1-MIB", b"4.0", b"sensor-list",
                     b"request-list", b"ok", b"fail", b"\\@", b"\\_", b"\\\\"]),
    st.floats(allow_nan=True).map(lambda f: repr(f).encode()),
    st.binary(min_size=1, max_size=12).filter(lambda b: b" " not in b and b"\n" not in b),
)
STRUCTURED = st.builds(
    lambda t, n, m, a: t + n + m + b"".join(b" " + x for x in a),
    st.sampled_from([b"#", b"#", b"!", b"?"]), NAMES, MIDS, st.lists(ARGUMENTS, max_size=6))


@st.composite
def mutated(draw: Any) -> bytes:
    line = bytearray(draw(st.one_of(st.sampled_from(SEEDS), STRUCTURED)))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        op = draw(st.integers(0, 2))
        byte = draw(st.integers(0, 255))
        if op == 0:
            line[at:at] = bytes([byte])
        elif at < len(line):
            if op == 1:
                del line[at]
            else:
                line[at] = byte
    return bytes(line)


LINES = st.one_of(STRUCTURED, mutated(), st.binary(max_size=60))
INPUTS = st.lists(LINES, min_size=1, max_size=8).map(b"\n".join)


def test_fuzz_read_path(io_loop: Any, figures: Any) -> None:
    harness = ReadPathHarness()
    io_loop.run_sync(harness.start, timeout=20)
    try:
        @settings(max_examples=250, deadline=None, derandomize=False, database=None,
                  suppress_health_check=[HealthCheck.too_slow,
                                         HealthCheck.function_scoped_fixture])
        @given(INPUTS)
        def feed(data: bytes) -> None:
            io_loop.run_sync(lambda: harness.feed(data), timeout=30)

        feed()
        stats = harness.counters()
        figures(f"read-path fuzz (hypothesis): {harness.inputs} inputs, "
                f"{harness.reconnects} legitimate reconnects, {harness.forged} forged "
                f"inspection informs; bad lines {stats['client.bad_lines']}, bad updates "
                f"{stats['ic.bad_updates']}, unmatched replies "
                f"{stats['client.unmatched_replies']}; invariants held")
    finally:
        io_loop.run_sync(harness.stop, timeout=20)


async def test_the_harness_keeps_up_with_inputs_that_disconnect(io_loop: Any) -> None:
    # Each #disconnect ends a connection just after it was negotiated, which grows the client's
    # back-off; a long fuzz run has hundreds of them and must not stall on the back-off.
    harness = ReadPathHarness()
    await harness.start()
    try:
        for _ in range(15):
            await harness.feed(b"#disconnect")
    finally:
        await harness.stop()
    assert harness.reconnects == 15
