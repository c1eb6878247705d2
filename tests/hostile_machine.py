"""What the property-based machines share: a private event loop whose errors are caught per
example, bounds on every awaitable a machine created, and the peer's alphabet against a
:class:`~tests.hostile_device.HostileDevice` (connection-level events, greetings, answer styles,
floods, stray announcements).

Each machine runs its own event loop; a rule runs it until the rule's coroutine is done, so the
client and the device make progress only inside rules (and the waits of the checks).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import traceback
from collections.abc import Coroutine
from typing import Any, Callable, TypeVar, Union

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from katcp_inspect import DeviceClient

from .hostile_device import (
    ACCEPT_KINDS,
    GREETINGS,
    STYLE_KINDS,
    AcceptScript,
    HostileDevice,
    Style,
)

T = TypeVar("T")

def examples(default: int) -> int:
    """Examples per machine: ``KATCP_INSPECT_FSM_EXAMPLES`` overrides the machine's default."""
    return int(os.environ.get("KATCP_INSPECT_FSM_EXAMPLES", str(default)))


#: Loop lateness allowed beyond an awaitable's own timeout before it counts as hung.
SLACK = 0.5
#: How long teardown waits for anything (stop, a reconnect, the end of every awaitable).
TEARDOWN_BOUND = 1.0

NOISE = [
    b"#version-connect katcp-library lib-1.0 lib-1.0.0\n",
    b"#disconnect going\\_away\n",
    b"?unexpected-request\n",
    b"!unexpected-reply ok\n",
    b"!watchdog[99] ok\n",
    b"#unexpected-inform 1 2\n",
    b"malformed line\n",
    b"#half-a-line-with-no-end",
]
#: Lines the device may cut at any byte before dropping the connection.
CUT_LINES = [
    GREETINGS["5.1-MIBT"],
    b"#sensor-status 1700000000.125 1 temperature nominal 1.5\n",
    b"#interface-changed sensor-list\n",
    b"!watchdog[1] ok\n",
]
FLOOD_LINES = [
    b"#sensor-status 1700000000.125 1 temperature nominal 1.5\n",
    b"#sensor-status 1700000000.125 1 no.such.sensor nominal 1\n",
    b"#x-noise 1 2 3\n",
]
ANNOUNCEMENTS = [
    b"#interface-changed\n",
    b"#interface-changed sensor-list\n",
    b"#interface-changed request-list\n",
    b"#interface-changed sensor temperature modified\n",
    b"#interface-changed request watchdog modified\n",
]

styles = st.builds(Style, kind=st.sampled_from(STYLE_KINDS),
                   cut=st.integers(1, 99).map(lambda p: p / 100), rst=st.booleans())
accept_scripts = st.builds(AcceptScript, kind=st.sampled_from(ACCEPT_KINDS),
                           greeting=st.sampled_from(sorted(GREETINGS)),
                           cut=st.integers(0, 99).map(lambda p: p / 100), rst=st.booleans())


# The peer's events. They are drawn by one rule, so that the peer acts about as often as the
# caller's single rules do: a device hostile at every step would leave nothing to check.

@attrs.frozen
class Listen:
    """Start or stop listening (connections are refused while not listening)."""

    on: bool


@attrs.frozen
class Accept:
    """Queue ``script`` for the next accepted connection, or (``persistent``) make its
    greeting that of every connection served once the queue is empty."""

    script: AcceptScript
    persistent: bool


@attrs.frozen
class Send:
    """Send ``data`` on the latest connection: a late greeting, noise, an announcement that
    changes nothing, or a flood."""

    data: bytes


@attrs.frozen
class Drop:
    """Close, reset or half-close the latest connection; the ``cut-`` forms first send
    ``line`` cut after ``at`` bytes."""

    how: str
    line: bytes = b""
    at: int = 0


@attrs.frozen
class Answer:
    """Answer the next request in ``style``, or (``release``) a held one now."""

    style: Style
    release: bool


PeerEvent = Union[Listen, Accept, Send, Drop, Answer]
peer_events: st.SearchStrategy[PeerEvent] = st.one_of(
    st.builds(Listen, st.booleans()),
    st.builds(Accept, accept_scripts, st.booleans()),
    st.builds(Send, st.one_of(
        st.sampled_from(sorted(g for g in GREETINGS.values() if g)),
        st.sampled_from(NOISE),
        st.sampled_from(ANNOUNCEMENTS),
        st.builds(lambda line, n: line * n, st.sampled_from(FLOOD_LINES), st.integers(1, 300)),
    )),
    st.builds(Drop, st.sampled_from(["close", "rst", "half-close", "cut-close", "cut-rst"]),
              st.sampled_from(CUT_LINES), st.integers(0, 60)),
    st.builds(Answer, styles, st.booleans()),
)


class LoopWatch(logging.Handler):
    """Records everything that reaches the loop's exception handler (an exception nobody
    retrieved, a task destroyed while pending, a callback that raised) and every ERROR logged
    by asyncio, Tornado or katcp_inspect: each is a bug."""

    LOGGERS = ("asyncio", "tornado", "katcp_inspect")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.ERROR)
        self.problems: list[str] = []
        loop.set_exception_handler(self._loop_error)
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)

    def detach(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        text = f"{record.name} logged {record.getMessage()!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.problems.append(text)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        text = f"loop exception handler: {context.get('message')!r}"
        for key in ("task", "future", "handle"):
            if key in context:
                text += f" {key}={context[key]!r}"
        error = context.get("exception")
        if isinstance(error, BaseException):
            text += "\n" + "".join(traceback.format_exception(
                type(error), error, error.__traceback__))
        self.problems.append(text)

    def check(self) -> None:
        assert not self.problems, "\n".join(self.problems)


@attrs.define
class Tracked:
    """An awaitable the machine got from the API, and by when (loop time) it must be done."""

    future: asyncio.Future[Any]
    what: str
    deadline: float | None
    #: The exceptions it may end with (anything else is a bug).
    allowed: tuple[type[BaseException], ...]


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def client_port(client: DeviceClient) -> int | None:
    """The local port of the client's current connection, if it has one."""
    connection = client._connection
    sock = connection.stream.socket if connection is not None else None
    if sock is None:
        return None
    try:
        port: int = sock.getsockname()[1]
    except OSError:
        return None
    return port


class HostileMachine(RuleBasedStateMachine):
    """The peer's alphabet and the loop-level checks; subclasses add a client."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.watch = LoopWatch(self.loop)
        self.device = HostileDevice()
        self.tracked: list[Tracked] = []
        self.run(self.device.listen())

    # ---------------------------------------------------------------- running the loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def call(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` inside the running loop (the API wants one) and run the loop once."""
        async def go() -> T:
            return fn()
        return self.run(go())

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Run the loop until ``predicate()`` holds (True) or ``timeout`` passes (False)."""
        async def poll() -> bool:
            deadline = self.loop.time() + timeout
            while not predicate():
                if self.loop.time() > deadline:
                    return False
                await asyncio.sleep(0.001)
            return True
        return self.run(poll())

    def wait_done(self, futures: list[asyncio.Future[Any]], timeout: float) -> None:
        pending = [f for f in futures if not f.done()]
        if pending:
            self.run(asyncio.wait(pending, timeout=timeout))

    def track(self, future: asyncio.Future[Any], what: str, bound: float | None,
              allowed: tuple[type[BaseException], ...] = ()) -> None:
        """Remember an awaitable that must end ``bound`` seconds from now (``None``: by the end
        of the example) with a result or one of the ``allowed`` exceptions, and retrieve its
        outcome so that nothing is reported unretrieved."""
        future.add_done_callback(_retrieve)
        deadline = None if bound is None else self.loop.time() + bound
        self.tracked.append(Tracked(future, what, deadline, allowed))

    # ---------------------------------------------------------------- the peer

    def latest_writable(self) -> Any:
        conn = self.device.latest
        return conn if conn is not None and conn.writable else None

    @rule(event=peer_events)
    def peer(self, event: PeerEvent) -> None:
        if isinstance(event, Listen):
            self._listen(event.on)
        elif isinstance(event, Accept):
            self._accept_policy(event)
        elif isinstance(event, Send):
            self._send(event.data)
        elif isinstance(event, Drop):
            self._drop(event)
        elif event.release:
            self.device.release(event.style)
        else:
            self.device.styles.append(event.style)

    def _listen(self, on: bool) -> None:
        if on:
            self.run(self.device.listen())
        else:
            self.device.stop_listening()

    def _accept_policy(self, event: Accept) -> None:
        if event.persistent:
            self.device.default_greeting = event.script.greeting
        else:
            self.device.accept_scripts.append(event.script)

    def _send(self, data: bytes) -> None:
        conn = self.latest_writable()
        if conn is None:
            return
        conn.send_raw(data)
        if data.startswith((b"#version", b"#build-state")):
            conn.expected_flags = None  # two greetings: no single right answer

    def _drop(self, event: Drop) -> None:
        conn = self.device.latest
        if conn is None:
            return
        if event.how == "half-close":
            conn.half_close()
            return
        if event.how.startswith("cut"):
            conn.send_lines(b"")
            conn.send_raw(event.line[:event.at])
            conn.expected_flags = None  # the line may be a whole (second) greeting
        conn.end(event.how.endswith("rst"))

    def heal_device(self) -> int:
        """Make the device well-behaved and drop every connection, so that the client must
        connect anew; returns the id the next accepted connection will have."""
        device = self.device
        device.accept_scripts.clear()
        device.styles.clear()
        device.default_style = Style()
        device.default_greeting = "5.1-MIBT"
        self.run(device.listen())
        for conn in device.connections:
            conn.held.clear()
            conn.close()
        return len(device.connections)

    # ---------------------------------------------------------------- time

    @rule(ms=st.sampled_from([0, 1, 5, 20, 60]))
    def wait(self, ms: int) -> None:
        """Let the loop run: one iteration (0), or some milliseconds."""
        self.run(asyncio.sleep(ms / 1000))

    # ---------------------------------------------------------------- checks

    @invariant()
    def nothing_reached_the_loop_exception_handler(self) -> None:
        self.watch.check()

    @invariant()
    def every_awaitable_ends_with_a_result_or_a_documented_error(self) -> None:
        for t in self.tracked:
            if t.future.done() and not t.future.cancelled():
                error = t.future.exception()
                assert error is None or isinstance(error, t.allowed), (
                    f"{t.what} raised {error!r}")

    @invariant()
    def every_awaitable_ends_within_its_bound(self) -> None:
        now = self.loop.time()
        overdue = [t for t in self.tracked if t.deadline is not None and t.deadline < now
                   and not t.future.done()]
        if not overdue:
            return
        # The loop only runs inside rules: give the timers that are due a chance to fire.
        self.wait_done([t.future for t in overdue], SLACK)
        hung = [t.what for t in overdue if not t.future.done()]
        assert not hung, f"not done {SLACK} s after their bound: {hung}"

    def finish(self) -> None:
        """The end of every example, once the client is closed: every awaitable ended, the
        device is shut down, no task is left, and nothing reached the exception handler."""
        try:
            self.wait_done([t.future for t in self.tracked], TEARDOWN_BOUND)
            hung = [t.what for t in self.tracked if not t.future.done()]
            assert not hung, f"awaitables still pending after the client was closed: {hung}"
            self.run(self.device.shutdown())
            self.run(asyncio.sleep(0))
            leftover = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            assert not leftover, f"tasks left behind: {leftover}"
            gc.collect()  # an exception never retrieved is reported when its task is collected
            self.watch.check()
        finally:
            self.watch.detach()
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()
