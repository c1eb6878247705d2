"""A harness that feeds arbitrary bytes to a connected, synced client through a scripted
device and checks the read path's invariants after every input.

Used by the hypothesis fuzz in CI (``test_fuzz_read_path.py``) and by the long run,
``scripts/fuzz_read_path.py`` (atheris, or a random generator). The invariants, after each
input (sent as it is, plus a line ending):

1. the client still answers a ``?watchdog`` round trip; if the input legitimately ended the
   connection (``#disconnect``, a line over the limit), it reconnects and resyncs first;
2. counters only grow; on an unbroken connection, ``bad_lines`` grew by exactly the number of
   malformed lines in the input, ``unexpected_requests`` by its number of requests, and
   ``unmatched_replies`` by no more than its number of replies;
3. the model is unchanged (unless the input forged an inform carrying the id of a request
   the client had in flight; then a fresh ``inspect()`` must restore it);
4. no hook or callback raised, the low-level client's invariants hold (and, checked by the
   test's conftest, nothing reached the event loop's exception handler).
"""

from __future__ import annotations

import random
from typing import Any

import attrs

from ... import codec
from ...connection import is_line_too_long
from ...inspecting_client import SYNCED, InspectingClientAsync
from .hostile_model import HELP_ENTRIES, HOSTILE, SENSOR_ENTRIES
from .probes import fast_client
from .scripted import Responder, ScriptedDevice, help_list, sensor_list

MAX_LINE = 8192
#: The hostile model, without the sensor whose odd params trip a known library bug.
FUZZ_SENSOR_ENTRIES = tuple(e for e in SENSOR_ENTRIES if not e.startswith(b"bad.params"))


def fuzz_responses() -> dict[str, Responder]:
    return {"help": help_list(*HELP_ENTRIES), "sensor-list": sensor_list(*FUZZ_SENSOR_ENTRIES)}


@attrs.define
class Expected:
    lines: int = 0
    bad: int = 0
    long: int = 0
    requests: int = 0
    replies: int = 0
    forged_inspection: bool = False


_INSPECTION_INFORMS = (b"help", b"sensor-list", b"request-timeout-hint")


def classify(data: bytes) -> Expected:
    """What the client's parser will make of ``data`` (a whole number of lines)."""
    expected = Expected()
    for item in codec.Parser(MAX_LINE).append(data):
        expected.lines += 1
        if isinstance(item, ValueError):
            if is_line_too_long(item):
                expected.long += 1
            else:
                expected.bad += 1
            continue
        kind = codec.type_index(item.mtype)
        if kind == 0:
            expected.requests += 1
        elif kind == 1:
            expected.replies += 1
        elif item.mid is not None and item.name in _INSPECTION_INFORMS:
            expected.forged_inspection = True
    return expected


class ReadPathHarness:
    """``await start()``, then ``await feed(data)`` as often as wanted, then ``await stop()``."""

    def __init__(self) -> None:
        self.device = ScriptedDevice(responses=fuzz_responses())
        self.client: InspectingClientAsync | None = None
        self.inputs = 0
        self.reconnects = 0
        self.forged = 0
        self._model: Any = None
        self._nodelay: Any = None

    async def start(self) -> None:
        self.device.listen_now()
        client = self.client = fast_client(self.device.port)
        client.katcp_client.max_line_length = MAX_LINE
        # Inputs end the connection on purpose (#disconnect, long lines), hundreds of times in a
        # run; the back-off for connections that end early must not outgrow _settled's waits.
        client.katcp_client.reconnect_backoff.delay_max = 0.2
        await client.connect()
        await client.until_synced(timeout=10)
        self._model = client._model.snapshot()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()
        self.device.shutdown()

    def counters(self) -> dict[str, int]:
        assert self.client is not None
        out = {f"client.{k}": v for k, v in attrs.asdict(self.client.katcp_client.stats).items()}
        out.update({f"ic.{k}": v for k, v in attrs.asdict(self.client.stats).items()})
        return out

    async def _settled(self) -> None:
        """Wait until the client is synced with nothing left to do."""
        client = self.client
        assert client is not None
        for _ in range(100):
            await client.until_synced(timeout=10)
            if not client._sync.work and client.state == SYNCED:
                return
            await client.until_not_synced(timeout=1)
        raise AssertionError("the client never settled")

    async def feed(self, data: bytes) -> None:
        client = self.client
        assert client is not None
        self.inputs += 1
        kc = client.katcp_client
        data = data if data.endswith((b"\n", b"\r")) else data + b"\n"
        expected = classify(data)
        before = self.counters()
        self.device.received.clear()  # the scripted device keeps every request it got
        del self.device.all[:-1]  # and every connection
        peer = self.device.all[-1]
        if peer is not self._nodelay:  # no Nagle delay between input and ?watchdog reply
            peer.stream.set_nodelay(True)
            self._nodelay = peer
        peer.send(data)
        reply, _ = await client.simple_request("watchdog", timeout=5)
        if not reply.reply_ok():
            await self._settled()
            reply, _ = await client.simple_request("watchdog", timeout=5)
            assert reply.reply_ok(), f"no answer to ?watchdog after {data!r}: {reply}"
        await self._settled()
        after = self.counters()
        problems = [f"{k} went down" for k in after if after[k] < before[k]]
        delta = {k: after[k] - before[k] for k in after}
        reconnected = delta["client.connections"] > 0
        self.reconnects += reconnected
        if not reconnected:
            if delta["client.bad_lines"] != expected.bad:
                problems.append(f"bad_lines +{delta['client.bad_lines']}, {expected.bad} "
                                "malformed lines sent")
            if delta["client.unexpected_requests"] != expected.requests:
                problems.append(f"unexpected_requests +{delta['client.unexpected_requests']},"
                                f" {expected.requests} requests sent")
            if delta["client.long_lines"]:
                problems.append("a long line did not reset the connection")
        if delta["client.unmatched_replies"] > expected.replies + 1:  # + a late probe reply
            problems.append(f"unmatched_replies +{delta['client.unmatched_replies']}, only "
                            f"{expected.replies} replies sent")
        if after["client.callback_errors"] or after["ic.callback_errors"]:
            problems.append("a hook or callback raised")
        if client._model.snapshot() != self._model:
            if expected.forged_inspection:
                self.forged += 1
                await client.inspect()
                await self._settled()
            if client._model.snapshot() != self._model:
                problems.append("the model changed")
        kc.check_invariants()
        assert not problems, f"after input {data!r}: " + "; ".join(problems)


# -- a plain random generator of KATCP-ish input, for the long run ---------------------------

NAMES = (b"sensor-status", b"sensor-status", b"sensor-value", b"version-connect", b"help",
          b"sensor-list", b"log", b"watchdog", b"client-connected", b"version", b"build-state",
          b"request-timeout-hint", b"x", b"sensor-sampling")
#: Names that make the client resync or reconnect (slow): chosen rarely.
_COSTLY = (b"interface-changed", b"device-changed", b"disconnect")
ARGUMENTS = (b"1.0", b"1", b"2", b"0", b"-1", b"nan", b"inf", b"1e400", b"-0", b"a.float",
         b"an.int", b"a.string", b"a.bool", b"a.discrete", b"weird.type", b"utf8.desc",
         b"nominal", b"warn", b"error", b"failure", b"unknown", b"unreachable", b"inactive",
         b"bogus", b"katcp-protocol", b"5.1-MIB", b"4.0", b"sensor-list", b"request-list",
         b"\\_", b"\\@", b"\\\\", b"\\q", b"\\", b"\xff\xfe", b"\x00", b"\t", b"ok", b"fail",
         b"invalid", b"one", b"two", b"1.5", b"2147483648", b"99999999999999999999")
_MIDS = (b"", b"", b"", b"[1]", b"[0]", b"[2147483647]", b"[2147483648]", b"[abc]", b"[]",
         b"[99999999999999999999]", b"[7]")
SEEDS = tuple(h.line for h in HOSTILE)


def random_line(rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    if roll < 0.15:
        line = bytearray(rng.choice(SEEDS))
    else:
        name = rng.choice(_COSTLY) if rng.random() < 0.003 else rng.choice(NAMES)
        line = bytearray(bytes([rng.choice(b"#!?#")]) + name + rng.choice(_MIDS))
        for _ in range(rng.randrange(0, 7)):
            line += b" " + rng.choice(ARGUMENTS)
    for _ in range(rng.choice((0, 0, 0, 1, 2))):  # mutate
        at = rng.randrange(len(line) + 1)
        op = rng.randrange(3)
        if op == 0:
            line[at:at] = bytes([rng.randrange(256)])
        elif op == 1 and at < len(line):
            del line[at]
        elif at < len(line):
            line[at] = rng.randrange(256)
    return bytes(line)


def random_input(rng: random.Random) -> bytes:
    lines = [random_line(rng) for _ in range(rng.randrange(1, 6))]
    if rng.random() < 0.001:
        lines.append(b"#long " + b"y" * MAX_LINE)
    return b"\n".join(lines)
