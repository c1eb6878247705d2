"""A hypothesis rule-based state machine that drives DeviceClient against a hostile raw-bytes
device on loopback and checks every invariant of its connection state machine after every step.

The peer's alphabet (``tests/hostile_machine.py``): accept-then-close or reset, a greeting cut
at any byte, half-close, close or reset mid-line, floods, greetings of every kind and in odd
orders, late greetings, noise, and answers that are duplicated, mis-addressed (another request's
id, an unknown id), refused, held back, never sent or cut off.

Invariants: the client's own (``check_invariants``); nothing reaches the loop's exception handler
(an exception never retrieved, a callback that raised) and nothing is logged as an error; every
request ends within its timeout, and every request future by the end; a finished request holds
its own reply and only its own informs; the negotiated flags are those the device greeted with;
and a started client with a well-behaved listening device connects again.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, precondition, rule

from katcp_inspect import (
    ConnectionLostError,
    ConnectionState,
    DeviceClient,
    ExponentialRandomBackoff,
    Message,
    NotConnectedError,
    ProtocolError,
    RequestTimeoutError,
)

from .hostile_device import Style
from .hostile_machine import (
    TEARDOWN_BOUND,
    HostileMachine,
    client_port,
    examples,
    styles,
)

EXPECTED_REQUEST_ERRORS = (ConnectionLostError, NotConnectedError, RequestTimeoutError,
                           ProtocolError)
DEFAULT_TIMEOUT = 0.2


class DeviceClientMachine(HostileMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client = DeviceClient(
            "127.0.0.1", self.device.port,
            connect_timeout=0.5, greeting_timeout=0.03, default_timeout=DEFAULT_TIMEOUT,
            reconnect_backoff=ExponentialRandomBackoff(0.002, 0.02, 2.0, 0.5))
        self.requests: list[tuple[str, asyncio.Future[Any]]] = []

    # ---------------------------------------------------------------- client side

    @precondition(lambda self: not self.client.running)
    @rule()
    def start(self) -> None:
        self.call(self.client.start)

    async def _close(self) -> None:
        await asyncio.wait_for(self.client.close(), TEARDOWN_BOUND)

    @rule()
    def close(self) -> None:
        self.run(self._close())
        assert self.client.state is ConnectionState.CLOSED

    @rule()
    def disconnect(self) -> None:
        self.call(lambda: self.client.disconnect("test"))

    # No precondition on is_connected: it depends on real time, and hypothesis needs the rules
    # it may draw to depend only on earlier draws. A request while not connected must fail
    # cleanly, which is worth checking too.
    @rule(name=st.sampled_from(["watchdog", "help", "sensor-list", "sensor-value"]),
          use_mid=st.sampled_from([None, False]), timeout=st.sampled_from([None, 0.05]),
          style=st.one_of(st.just(Style()), styles))
    def request(self, name: str, use_mid: bool | None, timeout: float | None,
                style: Style) -> None:
        """Send a request, to be answered in ``style`` (unless others are queued before it)."""
        if self.client.is_connected:
            self.device.styles.append(style)
        future = self.call(lambda: self.client.request_raw(name, use_mid=use_mid,
                                                           timeout=timeout))
        self.requests.append((name, future))
        self.track(future, f"?{name}", timeout or DEFAULT_TIMEOUT, EXPECTED_REQUEST_ERRORS)

    # ---------------------------------------------------------------- checks

    @invariant()
    def consistent(self) -> None:
        self.client.check_invariants()

    @invariant()
    def finished_requests_hold_their_own_reply_and_informs(self) -> None:
        for name, future in self.requests:
            if not future.done():
                continue
            if future.exception() is not None:
                continue
            reply, informs = future.result()
            assert reply.mtype is Message.REPLY
            assert reply.name == name, f"?{name} got {reply!r}"
            strays = [m for m in informs if m.name != name]
            assert not strays, f"?{name} got informs of other requests: {strays}"

    @invariant()
    def negotiated_the_flags_the_device_greeted_with(self) -> None:
        if self.client.state is not ConnectionState.CONNECTED:
            return
        port = client_port(self.client)
        conn = None if port is None else self.device.connection_on_port(port)
        if conn is not None and conn.expected_flags is not None:
            assert self.client.protocol_flags == conn.expected_flags, (
                f"greeted with {conn.greeting!r}, negotiated {self.client.protocol_flags}")

    def never_ends_dead(self) -> None:
        """A started client connects again once the device behaves and listens."""
        first = self.heal_device()

        def reconnected() -> bool:
            port = client_port(self.client)
            conn = None if port is None else self.device.connection_on_port(port)
            return self.client.is_connected and conn is not None and conn.ident >= first

        assert self.wait_for(reconnected, TEARDOWN_BOUND), (
            f"a running client did not reconnect to a healthy device: state "
            f"{self.client.state}, last error {self.client.last_error!r}")

    def teardown(self) -> None:
        try:
            if self.client.running:
                self.never_ends_dead()
        finally:
            try:
                self.run(self._close())
                self.client.check_invariants()
            finally:
                self.finish()


DeviceClientMachine.TestCase.settings = settings(
    max_examples=examples(60),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDeviceClientStateMachine = DeviceClientMachine.TestCase
