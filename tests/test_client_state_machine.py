"""A hypothesis rule-based state machine that drives DeviceClient against a scripted peer on
loopback and checks every invariant of its connection state machine after every step."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from tornado.iostream import IOStream, StreamClosedError

from katcp_inspect import (
    ConnectionLostError,
    DeviceClient,
    ExponentialRandomBackoff,
    KatcpInspectError,
    Message,
    NotConnectedError,
    ProtocolError,
    RequestTimeoutError,
)

from .support import PeerConnection, ScriptedServer

T = TypeVar("T")

GREETINGS = {
    "v5.1": b"#version-connect katcp-protocol 5.1-MIB\n",
    "v5.0-no-ids": b"#version-connect katcp-protocol 5.0-M\n",
    "v4": b"#version device-1.0\n#build-state device-1.0.1\n",
    "bad-flags": b"#version-connect katcp-protocol 4.0-T\n",
    "garbage-version": b"#version-connect katcp-protocol five\n",
}
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
EXPECTED_REQUEST_ERRORS = (ConnectionLostError, NotConnectedError, RequestTimeoutError,
                           ProtocolError)


class CollectingServer(ScriptedServer):
    """Every accepted connection records the requests it receives."""

    def __init__(self) -> None:
        super().__init__(greeting=b"")
        self.received: dict[PeerConnection, list[Message]] = {}
        self.readers: list[asyncio.Future[None]] = []

    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        await super().handle_stream(stream, address)
        peer = self.all[-1]
        self.received[peer] = []
        self.readers.append(asyncio.ensure_future(self._read(peer)))

    async def _read(self, peer: PeerConnection) -> None:
        try:
            while True:
                line = await peer.stream.read_until_regex(b"[\r\n]")
                self.received[peer].append(Message.parse(line))
        except StreamClosedError:
            pass

    def open_peers(self) -> list[PeerConnection]:
        return [p for p in self.all if not p.closed]


class DeviceClientMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.server = CollectingServer()
        self.run(self._listen())
        self.client = DeviceClient(
            "127.0.0.1", self.server.port,
            connect_timeout=0.5, greeting_timeout=0.03, default_timeout=0.2,
            reconnect_backoff=ExponentialRandomBackoff(0.002, 0.02, 2.0, 0.5))
        self.requests: list[asyncio.Future[Any]] = []

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    async def _listen(self) -> None:
        self.server.listen_now()

    def latest_peer(self) -> PeerConnection | None:
        peers = self.server.open_peers()
        return peers[-1] if peers else None

    # ---------------------------------------------------------------- client side

    @precondition(lambda self: not self.client.running)
    @rule()
    def start(self) -> None:
        async def go() -> None:
            self.client.start()
        self.run(go())

    async def _close(self) -> None:
        await asyncio.wait_for(self.client.close(), 2.0)

    @rule()
    def close(self) -> None:
        self.run(self._close())
        assert self.client.state.value == "closed"

    @rule()
    def disconnect(self) -> None:
        async def go() -> None:
            self.client.disconnect("test")
        self.run(go())

    # No precondition on is_connected: it depends on real time, and hypothesis needs the rules
    # it may draw to depend only on earlier draws. A request while not connected must fail
    # cleanly, which is worth checking too.
    @rule(name=st.sampled_from(["watchdog", "help", "sensor-value"]),
          use_mid=st.sampled_from([None, False]))
    def request(self, name: str, use_mid: bool | None) -> None:
        async def go() -> asyncio.Future[Any]:
            return self.client.request_raw(name, use_mid=use_mid)
        self.requests.append(self.run(go()))

    # ---------------------------------------------------------------- server side

    @rule(listen=st.booleans())
    def listening(self, listen: bool) -> None:
        async def go() -> None:
            if listen and not self.server.listening:
                self.server.listen_now()
            elif not listen and self.server.listening:
                self.server.stop_listening()
        self.run(go())

    @rule(kind=st.sampled_from(sorted(GREETINGS)))
    def greet(self, kind: str) -> None:
        peer = self.latest_peer()
        if peer is not None:
            peer.send(GREETINGS[kind])

    @rule(data=st.sampled_from(NOISE))
    def noise(self, data: bytes) -> None:
        peer = self.latest_peer()
        if peer is not None:
            peer.send(data)

    @rule()
    def server_closes(self) -> None:
        peer = self.latest_peer()
        if peer is not None:
            peer.close()

    @rule(how=st.sampled_from(["right", "wrong-mid", "no-mid", "with-inform", "fail"]))
    def reply(self, how: str) -> None:
        peer = self.latest_peer()
        if peer is None or not self.server.received.get(peer):
            return
        request = self.server.received[peer].pop(0)
        name = request.name.encode()
        mid = b"" if request.mid is None else b"[%d]" % request.mid
        if how == "wrong-mid":
            mid = b"[%d]" % ((request.mid or 0) + 1000)
        elif how == "no-mid":
            mid = b""
        if how == "with-inform":
            peer.send(b"#" + name + mid + b" some inform\n")
        code = b"fail why" if how == "fail" else b"ok"
        peer.send(b"!" + name + mid + b" " + code + b"\n")

    # ---------------------------------------------------------------- time

    @rule()
    def step(self) -> None:
        self.run(asyncio.sleep(0))

    @rule(ms=st.integers(min_value=1, max_value=60))
    def sleep(self, ms: int) -> None:
        self.run(asyncio.sleep(ms / 1000))

    # ---------------------------------------------------------------- checks

    @invariant()
    def consistent(self) -> None:
        self.client.check_invariants()

    @invariant()
    def finished_requests_have_a_reply_or_a_known_error(self) -> None:
        for future in self.requests:
            if future.done():
                error = future.exception()
                if error is None:
                    reply, _ = future.result()
                    assert reply.mtype is Message.REPLY
                else:
                    assert isinstance(error, EXPECTED_REQUEST_ERRORS), repr(error)

    def teardown(self) -> None:
        try:
            self.run(self._close())
            self.client.check_invariants()
            # Every request ends, one way or another, once the client is closed.
            assert all(f.done() for f in self.requests)
            for future in self.requests:
                assert future.cancelled() or isinstance(future.exception(),
                                                        (type(None), KatcpInspectError))

            async def shut() -> None:
                self.server.shutdown()
                await asyncio.gather(*self.server.readers, return_exceptions=True)
            self.run(shut())
            leftover = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            assert not leftover, f"tasks left behind: {leftover}"
        finally:
            self.loop.close()


DeviceClientMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("KATCP_INSPECT_FSM_EXAMPLES", "60")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDeviceClientStateMachine = DeviceClientMachine.TestCase
