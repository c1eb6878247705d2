"""A hypothesis rule-based state machine that drives the device client's socket-free core
(:class:`~katcp_inspect.client_core.ClientCore`) on a fake clock: no socket, no real time, so
thousands of examples run in seconds.

The machine plays the driver: it makes connection attempts succeed or fail, feeds the core the
items a parser makes of a device's bytes (greetings good and bad, noise, replies with the right,
a wrong or no message id), ends links, and moves the clock so that greeting, request and
backoff timers fire. After every step it checks the table of what each state holds
(``check_invariants``), that every request is either answered, failed with a known error or
still in the request table, and that every transition is one of ``LEGAL_TRANSITIONS``. Over a
whole run every transition the table allows must be taken: a table that allows more than the
client does (a mutation) fails the run, and so does a client that does more than the table.

The loopback variant, with real sockets and real time, is tests/test_client_state_machine.py.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import os
from collections.abc import Coroutine
from typing import Any, TypeVar, cast

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from katcp_inspect import (
    ConnectionLostError,
    ExponentialRandomBackoff,
    KatcpInspectError,
    Message,
    NotConnectedError,
    ProtocolError,
    ProtocolFlags,
    ReplyTooLargeError,
    RequestTimeoutError,
    client_core,
    codec,
)
from katcp_inspect.client_core import ClientCore
from katcp_inspect.connection_state import (
    LEGAL_TRANSITIONS,
    ConnectionState,
    IllegalTransitionError,
)
from katcp_inspect.waiting import Timers

T = TypeVar("T")
S = ConnectionState
Transition = tuple[ConnectionState, ConnectionState]

MAX_LINE = 200
GREETINGS = {
    "v5.1": b"#version-connect katcp-protocol 5.1-MIB\n",
    "v5.0-no-ids": b"#version-connect katcp-protocol 5.0-M\n",
    "v4": b"#version device-1.0\n#build-state device-1.0.1\n",
    "v4-then-v5": b"#build-state device-1.0.1\n#version-connect katcp-protocol 5.1-MIB\n",
    "bad-flags": b"#version-connect katcp-protocol 4.0-T\n",
    "garbage-version": b"#version-connect katcp-protocol five\n",
}
NOISE = [
    b"#version-connect katcp-library lib-1.0 lib-1.0.0\n",
    b"#disconnect going\\_away\n",
    b"?unexpected-request\n",
    b"!unexpected-reply ok\n",
    b"!watchdog[99] ok\n",
    b"#watchdog[98] stray\n",
    b"#unexpected-inform 1 2\n",
    b"malformed \x01 line\n",
    b"#long " + b"x" * (2 * MAX_LINE) + b"\n",
]
EXPECTED_REQUEST_ERRORS = (ConnectionLostError, NotConnectedError, RequestTimeoutError,
                           ProtocolError, ReplyTooLargeError)
logger = logging.getLogger("katcp_inspect.tests.core_machine")
# Thousands of examples: the core's logging is tested elsewhere, and would only slow this down.
logger.setLevel(logging.CRITICAL)


class FakeTimer:
    __slots__ = ("args", "callback", "cancelled", "deadline")

    def __init__(self, deadline: float, callback: Any, args: tuple[Any, ...]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def when(self) -> float:
        return self.deadline


class FakeClock:
    """Virtual time: timers fire, in order, only when the test advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any, *args: Any) -> FakeTimer:
        timer = FakeTimer(self.now + delay, callback, args)
        heapq.heappush(self._heap, (timer.deadline, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            deadline, _, timer = heapq.heappop(self._heap)
            if not timer.cancelled:
                self.now = max(self.now, deadline)
                timer.callback(*timer.args)
        self.now = end


class FakeLink:
    """A connection that records what the core sends and whether it was asked to close."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.close_reason: BaseException | None = None
        self.ended = False
        self._parser = codec.Parser(MAX_LINE)

    def send(self, data: bytes) -> None:
        self.sent.append(Message.parse(data))

    def close(self, reason: BaseException) -> None:
        if self.close_reason is None:
            self.close_reason = reason

    def parse(self, data: bytes) -> list[Any]:
        return list(self._parser.append(data))


class FakeDrivenCore(ClientCore):
    """The core with a fake driver: attempts are futures the machine resolves."""

    def __init__(self, clock: FakeClock, **kwargs: Any) -> None:
        super().__init__("device", 7147, **kwargs)
        self.clock = clock
        self.attempt: asyncio.Future[None] | None = None
        self.taken: list[Transition] = []

    def _timers(self) -> Timers:
        return self.clock

    def _begin_attempt(self) -> asyncio.Future[None]:
        self.attempt = asyncio.get_running_loop().create_future()
        return self.attempt

    def _set_state(self, new: ConnectionState, error: BaseException | None = None) -> None:
        old = self._state
        super()._set_state(new, error)
        self.taken.append((old, new))


def all_transitions() -> set[Transition]:
    return {(old, new) for old, news in LEGAL_TRANSITIONS.items() for new in news}


class CoreMachine(RuleBasedStateMachine):
    #: Transitions taken over a whole run (all examples).
    taken: set[Transition] = set()

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.requests: list[asyncio.Future[Any]] = []
        self.closes: list[asyncio.Future[None]] = []
        self.links: list[FakeLink] = []
        self.client: FakeDrivenCore | None = None
        self.failed = False

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def act(self, action: Any, *args: Any) -> Any:
        """Run ``action`` inside the loop (the core needs a running loop for its futures),
        then let the callbacks it scheduled run."""
        async def go() -> Any:
            result = action(*args)
            await asyncio.sleep(0)
            return result
        try:
            return self.run(go())
        except BaseException:
            self.failed = True  # the teardown's checks would only hide this error
            raise

    @property
    def core(self) -> FakeDrivenCore:
        assert self.client is not None
        return self.client

    @initialize(auto_reconnect=st.booleans(), watchdog=st.booleans(),
                preset=st.sampled_from([None, None, None, "5.1-MIB"]))
    def make_client(self, auto_reconnect: bool, watchdog: bool, preset: str | None) -> None:
        self.client = FakeDrivenCore(
            self.clock, auto_reconnect=auto_reconnect, greeting_timeout=0.5, v4_grace=0.1,
            default_timeout=0.3, healthy_after=2.0, max_line_length=MAX_LINE,
            watchdog_interval=1.0 if watchdog else None, watchdog_timeout=0.3,
            preset_flags=None if preset is None else ProtocolFlags.parse_version(preset.encode()),
            reconnect_backoff=ExponentialRandomBackoff(0.01, 0.1, 2.0, 0.5),
            max_reply_informs=3, logger=logger)

    def link(self) -> FakeLink | None:
        """The link the core holds, if it has not ended."""
        link = cast("FakeLink | None", self.core._connection)
        return None if link is None or link.ended else link

    def receive(self, data: bytes) -> None:
        link = self.link()
        if link is not None:
            self.act(self.core._receiver.on_items, link.parse(data))

    # ---------------------------------------------------------------- the user

    # The state depends only on earlier draws (no real time), so preconditions may use it: they
    # steer the machine to steps that do something in the state it is in.

    @precondition(lambda self: not self.core.running)
    @rule()
    def start(self) -> None:
        self.act(self.core.start)

    # Closing undoes everything built so far: drawn as often as the other rules, it would keep
    # the machine near CLOSED, so three draws in four do nothing.
    @rule(really=st.sampled_from([False, False, False, True]))
    def close(self, really: bool) -> None:
        if really:
            self.closes.append(self.act(self.core.close))

    @precondition(lambda self: self.core.state in (S.NEGOTIATING, S.CONNECTED))
    @rule()
    def disconnect(self) -> None:
        self.act(self.core.disconnect, "test")

    @precondition(lambda self: self.core.state in (S.CONNECTED, S.CLOSED))
    @rule(name=st.sampled_from(["watchdog", "help", "sensor-value"]),
          use_mid=st.sampled_from([None, False]),
          timeout=st.sampled_from([None, 0.05, 1.0, math.inf]))
    def request(self, name: str, use_mid: bool | None, timeout: float | None) -> None:
        def send() -> asyncio.Future[Any]:
            return self.core.request_raw(name, use_mid=use_mid, timeout=timeout)
        self.requests.append(self.act(send))

    # ---------------------------------------------------------------- the driver

    @precondition(lambda self: self.core.state is S.CONNECTING)
    @rule(succeed=st.booleans())
    def attempt_ends(self, succeed: bool) -> None:
        core = self.core
        assert core.attempt is not None and not core.attempt.done()
        core.attempt.set_result(None)
        if succeed:
            link = FakeLink()
            self.links.append(link)
            self.act(core._attempt_succeeded, link)
        else:
            self.act(core._attempt_failed, ConnectionRefusedError("refused"))

    @precondition(lambda self: self.core._receiver.link is not None)
    @rule()
    def device_closes(self) -> None:
        """The read loop ends by itself: the device (or the network) closed the link."""
        self.end_link(ConnectionLostError("connection closed by the device"))

    @precondition(lambda self: self.link() is not None and self.core.state is S.DISCONNECTING)
    @rule()
    def link_closed(self) -> None:
        """The read loop ends after the core asked to close the link."""
        self.end_link(None)

    def end_link(self, reason: BaseException | None) -> None:
        link = self.link()
        assert link is not None
        link.ended = True
        self.act(self.core._on_closed, link.close_reason or reason)

    # ---------------------------------------------------------------- the device

    @precondition(lambda self: self.core._receiver.link is not None)
    @rule(kind=st.sampled_from(sorted(GREETINGS)))
    def greet(self, kind: str) -> None:
        self.receive(GREETINGS[kind])

    @precondition(lambda self: self.core._receiver.link is not None)
    @rule(data=st.sampled_from(NOISE))
    def noise(self, data: bytes) -> None:
        self.receive(data)

    @precondition(lambda self: self.core._receiver.link is not None)
    @rule(how=st.sampled_from(["right", "wrong-mid", "no-mid", "with-inform", "fail",
                               "too-many-informs"]))
    def reply(self, how: str) -> None:
        link = self.link()
        if link is None or not link.sent:
            return
        request = link.sent.pop(0)
        name = request.name.encode()
        mid = b"" if request.mid is None else b"[%d]" % request.mid
        if how == "wrong-mid":
            mid = b"[%d]" % ((request.mid or 0) + 1000)
        elif how == "no-mid":
            mid = b""
        informs = {"with-inform": 1, "too-many-informs": 4}.get(how, 0)
        code = b"fail why" if how == "fail" else b"ok"
        self.receive(b"#" + name + mid + b" some inform\n" * informs
                     + b"!" + name + mid + b" " + code + b"\n")

    # ---------------------------------------------------------------- time

    @rule(seconds=st.sampled_from([0.001, 0.05, 0.1, 0.3, 0.6, 1.5, 5.0]))
    def advance(self, seconds: float) -> None:
        self.act(self.clock.advance, seconds)

    # ---------------------------------------------------------------- checks

    @invariant()
    def consistent(self) -> None:
        if self.client is not None:
            self.client.check_invariants()

    @invariant()
    def transitions_are_legal(self) -> None:
        if self.client is None:
            return
        for old, new in self.client.taken:
            assert new in LEGAL_TRANSITIONS[old], f"took {old.name} -> {new.name}"
        CoreMachine.taken.update(self.client.taken)

    @invariant()
    def every_request_is_answered_failed_or_pending(self) -> None:
        if self.client is None:
            return
        table = self.client._requests
        pending = {p.future for p in table.by_mid.values()}
        pending.update(p.future for queue in table.by_name.values() for p in queue)
        for future in self.requests:
            if not future.done():
                assert future in pending, "a request nobody will ever answer"
            elif future.exception() is None:
                assert future.result()[0].mtype is Message.REPLY
            else:
                assert isinstance(future.exception(), EXPECTED_REQUEST_ERRORS), \
                    repr(future.exception())

    def teardown(self) -> None:
        try:
            if self.client is not None and not self.failed:
                self.finish()
        finally:
            self.loop.close()

    def finish(self) -> None:
        """Close; end the link the core waits for; then everything has ended."""
        self.closes.append(self.act(self.core.close))
        if self.link() is not None:
            self.end_link(ConnectionLostError("gone"))
        self.run(asyncio.sleep(0))  # close() needs no time, only the loop to run
        assert all(f.done() for f in self.closes), "close() did not finish"
        self.core.check_invariants()
        self.transitions_are_legal()
        assert self.core.state is S.CLOSED
        assert all(f.done() for f in self.requests), "a request never ended"
        for future in self.requests:
            assert isinstance(future.exception(), (type(None), KatcpInspectError))
        leftover = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
        assert not leftover, f"tasks left behind: {leftover}"


def run_machine(examples: int, shrink: bool = True) -> set[Transition]:
    """Run the machine; the transitions it took over the whole run. Without shrinking (the
    mutation tests, which must find one given fault) the examples are derandomised, so that
    whether the fault is found does not depend on the seed."""
    CoreMachine.taken = set()
    phases = list(Phase) if shrink else [Phase.generate]
    run_state_machine_as_test(CoreMachine, settings=settings(
        max_examples=examples, stateful_step_count=25, deadline=None, database=None,
        phases=phases, derandomize=not shrink,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
    return CoreMachine.taken


EXAMPLES = int(os.environ.get("KATCP_INSPECT_CORE_FSM_EXAMPLES", "2000"))


def untaken_transitions(examples: int) -> set[Transition]:
    """Run the machine; the transitions the table allows but no step took."""
    return all_transitions() - run_machine(examples)


def test_the_core_state_machine() -> None:
    untaken = untaken_transitions(EXAMPLES)
    assert not untaken, f"the table allows transitions the client never takes: {untaken}"


# ------------------------------------------------------------------------ mutations


def test_a_transition_the_table_allows_but_the_client_never_takes_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    table = cast("dict[ConnectionState, frozenset[ConnectionState]]", LEGAL_TRANSITIONS)
    monkeypatch.setitem(table, S.CLOSED, table[S.CLOSED] | {S.CONNECTED})
    assert (S.CLOSED, S.CONNECTED) in untaken_transitions(300)


def test_a_transition_the_client_takes_but_the_table_forbids_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    table = cast("dict[ConnectionState, frozenset[ConnectionState]]", LEGAL_TRANSITIONS)
    monkeypatch.setitem(table, S.NEGOTIATING, table[S.NEGOTIATING] - {S.SLEEPING})
    with pytest.raises(IllegalTransitionError, match="NEGOTIATING -> SLEEPING"):
        run_machine(300, shrink=False)


def test_an_illegal_transition_without_the_check_is_caught(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two faults at once: the check in _set_state gone, and a lifecycle that reconnects at once
    # after a loss (skipping SLEEPING). The machine's own look at each transition catches it.
    monkeypatch.setattr(client_core, "check_transition", lambda old, new: None)
    real_after_loss = ClientCore._after_loss

    def after_loss(self: ClientCore) -> ConnectionState:
        state = real_after_loss(self)
        return S.CONNECTING if state is S.SLEEPING else state
    monkeypatch.setattr(ClientCore, "_after_loss", after_loss)
    with pytest.raises(AssertionError, match=r"took \w+ -> CONNECTING"):
        run_machine(300, shrink=False)
