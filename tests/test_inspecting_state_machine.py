"""A hypothesis rule-based state machine for InspectingClientAsync against a hostile raw-bytes
device: the caller's API calls (``connect``, ``stop`` awaited or not, ``until_*``, lookups of
known and unknown names, requests) interleaved with the peer's connection-level events (see
``tests/hostile_machine.py``) and with changes of the device's model, announced with
``#interface-changed`` or not.

Invariants, after every step or at every report of SYNCED:

* nothing reaches the loop's exception handler and nothing is logged as an error;
* every awaitable the machine got ends: those with a timeout within it, all of them once the
  client is stopped, each with a result or a documented error;
* exactly one state loop runs; the low-level client's own invariants hold;
* SYNCED is never reported while the client knows of work not yet done;
* at every report of SYNCED the model (request names and descriptions; sensor names, types,
  parameters, descriptions and units) equals the device's model as of what the client has
  been told (:meth:`HostileDevice.expected_model`), unless the device changed its model in a
  way the client could not learn of on that connection; the flags are the greeted ones;
* a client that was connected last (and not stopped) syncs again with a healed device.
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from katcp_inspect import (
    ClientClosedError,
    DeviceClient,
    ExponentialRandomBackoff,
    InspectingClientAsync,
    KatcpInspectError,
)
from katcp_inspect.inspecting_client import SYNCED, State
from katcp_inspect.model import AttrDict

from .hostile_device import Model, SensorSpec, Style, format_model
from .hostile_machine import (
    SLACK,
    TEARDOWN_BOUND,
    HostileMachine,
    client_port,
    examples,
    styles,
)

#: Seconds for each inspection request and lookup.
SYNC_TIMEOUT = 0.3
#: The low-level client's request timeout (``simple_request``).
REQUEST_TIMEOUT = 0.2
#: Errors that lookups and waits may end with (the device or the caller made them fail).
EXPECTED_ERRORS = (KatcpInspectError, ConnectionError, TimeoutError)

SENSOR_VARIANTS: dict[str, list[SensorSpec]] = {
    "temperature": [SensorSpec("Temperature", "degC", "float", ("-50", "150")),
                    SensorSpec("Case temperature", "degC", "float", ("-50", "150")),
                    SensorSpec("Temperature", "K", "integer", ("0", "400"))],
    "mode": [SensorSpec("Operating mode", "", "discrete", ("idle", "busy")),
             SensorSpec("Operating mode", "", "discrete", ("idle", "busy", "fault"))],
    "voltage": [SensorSpec("Supply voltage", "V", "float", ("0", "30")),
                SensorSpec("Supply", "V", "float", ("0", "30"))],
    "flag": [SensorSpec("A flag", "", "boolean"), SensorSpec("A flag", "", "string")],
}
REQUEST_VARIANTS: dict[str, list[str]] = {
    "reboot": ["Reboot the device", "Restart everything"],
    "set-gain": ["Set the gain", "Set the gain (dB)"],
}
ANNOUNCE_FORMS = ("silent", "general", "list", "named")


class FastInspectingClient(InspectingClientAsync):
    """Timeouts and backoffs of milliseconds, so that an example takes a fraction of a second."""

    sync_timeout = SYNC_TIMEOUT
    initial_resync_timeout = 0.01
    max_resync_timeout = 0.05

    def inform_hook_client_factory(self, host: str, port: int, *args: Any,
                                   **kwargs: Any) -> DeviceClient:
        return DeviceClient(host, port, *args, connect_timeout=0.5, greeting_timeout=0.03,
                            default_timeout=REQUEST_TIMEOUT,
                            reconnect_backoff=ExponentialRandomBackoff(0.002, 0.02, 2.0, 0.5),
                            **kwargs)


def client_model(client: InspectingClientAsync) -> Model:
    """The client's model in the device's terms."""
    model = client._model
    return Model({n: i.description for n, i in model.requests.items()},
                 {n: SensorSpec(i.description, i.units, i.type_name, i.params)
                  for n, i in model.sensors.items()})


def differences(have: Model, want: Model) -> str:
    out = []
    for part, mine, theirs in (("requests", have.requests, want.requests),
                               ("sensors", have.sensors, want.sensors)):
        extra = sorted(set(mine) - set(theirs))
        missing = sorted(set(theirs) - set(mine))
        wrong = sorted(n for n in set(mine) & set(theirs) if mine[n] != theirs[n])
        if extra or missing or wrong:
            out.append(f"{part}: extra {extra}, missing {missing}, "
                       f"different {[(n, mine[n], theirs[n]) for n in wrong]}")
    return "; ".join(out)


def announcement(part: str, name: str, old: object, new: object, form: str) -> bytes | None:
    """The ``#interface-changed`` line that tells of a change of ``name`` (None: untold)."""
    if form == "silent":
        return None
    if form == "general":
        return b"#interface-changed\n"
    if form == "list":
        return b"#interface-changed %s-list\n" % part.encode()
    how = "added" if old is None else "removed" if new is None else "modified"
    return f"#interface-changed {part} {name} {how}\n".encode()


class InspectingClientMachine(HostileMachine):
    def __init__(self) -> None:
        super().__init__()
        self.client = FastInspectingClient("127.0.0.1", self.device.port)
        self.client.set_state_callback(self._on_state)
        self.client.katcp_client.hook_inform_arguments("x-mark", self._on_mark)
        #: The highest model version the client has been told of, by device connection.
        self.marks: dict[int, int] = {}
        #: Device connections on which the client reported SYNCED.
        self.synced_on: list[int] = []
        # What the checks made inside the state callback found (the client swallows errors
        # raised by callbacks, so they are collected here and asserted by invariants).
        self.pending_work: list[str] = []
        self.wrong_flags: list[str] = []
        self.wrong_model: list[str] = []
        #: Whether the caller's last word was a connect() that worked (then it must run).
        self.expect_running = False

    # ---------------------------------------------------------------- what the client says

    def _on_mark(self, args: list[bytes]) -> None:
        ident, version = int(args[0]), int(args[1])
        self.marks[ident] = max(version, self.marks.get(ident, -1))

    def _on_state(self, state: State, changes: AttrDict | None) -> None:
        if state == SYNCED:
            self._check_synced()

    def _check_synced(self) -> None:
        client = self.client
        if client._sync.work:
            self.pending_work.append(f"reported SYNCED with pending work {client._sync.work}")
        kc = client.katcp_client
        port = client_port(kc)
        # The stream may be closed already, unnoticed: then it is the latest one.
        conn = self.device.latest if port is None else self.device.connection_on_port(port)
        if conn is None:
            self.wrong_model.append(f"reported SYNCED with no connection (state {kc.state})")
            return
        self.synced_on.append(conn.ident)
        if conn.expected_flags is not None and kc.protocol_flags != conn.expected_flags:
            self.wrong_flags.append(f"synced as KATCP {kc.protocol_flags} with a device that "
                                    f"greeted {conn.greeting!r}")
        if conn.tainted:
            return
        mark = self.marks.get(conn.ident, -1)
        want = self.device.expected_model(conn, mark)
        have = client_model(client)
        if have != want:
            self.wrong_model.append(
                f"SYNCED on connection {conn.ident} (accepted at model version "
                f"{conn.accept_version}, told of version {mark}) with a model unlike the "
                f"device's: {differences(have, want)}; device: {format_model(want)}")

    # ---------------------------------------------------------------- the caller

    @rule(timeout=st.sampled_from([None, 0.02, 0.1]))
    def connect(self, timeout: float | None) -> None:
        future = self.call(lambda: self.client.connect(timeout))
        self.wait_done([future], (timeout or 0) + TEARDOWN_BOUND)
        assert future.done(), f"connect({timeout}) hung"
        error = future.exception()
        if error is None:
            self.expect_running = True
        elif isinstance(error, (TimeoutError, ClientClosedError)):
            self.expect_running = False  # it stopped the client again
        else:
            assert isinstance(error, RuntimeError), f"connect({timeout}) raised {error!r}"

    @rule(awaited=st.booleans())
    def stop(self, awaited: bool) -> None:
        future = self.call(self.client.stop)
        self.expect_running = False
        if awaited:
            self.wait_done([future], TEARDOWN_BOUND)
            assert future.done(), "an awaited stop() hung"
            assert future.exception() is None, repr(future.exception())
        else:
            self.track(future, "stop()", TEARDOWN_BOUND)

    @rule(kind=st.sampled_from(["synced", "not_synced", "connected"]),
          timeout=st.sampled_from([None, 0.01, 0.1]), awaited=st.booleans())
    def until(self, kind: str, timeout: float | None, awaited: bool) -> None:
        """Ask to wait for a state; if ``awaited`` (and bounded), wait for the answer."""
        method = getattr(self.client, f"until_{kind}")
        future = self.call(lambda: method(timeout))
        self.track(future, f"until_{kind}({timeout})", timeout, EXPECTED_ERRORS)
        if awaited and timeout is not None:
            self.wait_done([future], timeout + SLACK)

    @rule(name=st.sampled_from([*SENSOR_VARIANTS, "no.such.sensor", *REQUEST_VARIANTS,
                                "watchdog", "no-such-request"]),
          update=st.sampled_from([None, False]))
    def lookup(self, name: str, update: bool | None) -> None:
        """``future_get_sensor`` for a sensor's name, ``future_get_request`` otherwise."""
        if "." in name or name in SENSOR_VARIANTS:
            future = self.call(lambda: self.client.future_get_sensor(name, update))
        else:
            future = self.call(lambda: self.client.future_get_request(name, update))
        self.track(future, f"lookup of {name!r}", 2 * SYNC_TIMEOUT, EXPECTED_ERRORS)

    @rule(name=st.sampled_from(["watchdog", "reboot", "no-such-request", "sensor-value"]))
    def simple_request(self, name: str) -> None:
        future = self.call(lambda: self.client.simple_request(name))
        self.track(future, f"simple_request({name!r})", REQUEST_TIMEOUT)

    # ---------------------------------------------------------------- the device

    @rule(style=styles)
    def answer_next(self, style: Style) -> None:
        """Answer the next request in ``style`` (during a sync: an inspection request)."""
        self.device.styles.append(style)

    @rule(name=st.sampled_from(sorted(SENSOR_VARIANTS)), variant=st.sampled_from([None, 0, 1]),
          form=st.sampled_from(ANNOUNCE_FORMS))
    def change_sensor(self, name: str, variant: int | None, form: str) -> None:
        model = self.device.model
        new = None if variant is None else SENSOR_VARIANTS[name][variant]
        self.device.change_model(model.with_sensor(name, new), announcement(
            "sensor", name, model.sensors.get(name), new, form))

    @rule(name=st.sampled_from(sorted(REQUEST_VARIANTS)), variant=st.sampled_from([None, 0, 1]),
          form=st.sampled_from(ANNOUNCE_FORMS))
    def change_request(self, name: str, variant: int | None, form: str) -> None:
        model = self.device.model
        new = None if variant is None else REQUEST_VARIANTS[name][variant]
        self.device.change_model(model.with_request(name, new), announcement(
            "request", name, model.requests.get(name), new, form))

    # ---------------------------------------------------------------- checks

    @invariant()
    def never_synced_with_pending_work(self) -> None:
        assert not self.pending_work, "\n".join(self.pending_work)

    @invariant()
    def synced_with_the_greeted_flags(self) -> None:
        assert not self.wrong_flags, "\n".join(self.wrong_flags)

    @invariant()
    def synced_model_equals_the_device(self) -> None:
        assert not self.wrong_model, "\n".join(self.wrong_model)

    @invariant()
    def consistent(self) -> None:
        self.client.katcp_client.check_invariants()

    @invariant()
    def exactly_one_state_loop(self) -> None:
        loops = [t for t in asyncio.all_tasks(self.loop) if not t.done()
                 and "_state_loop" in getattr(t.get_coro(), "__qualname__", "")]
        assert len(loops) <= 1, f"{len(loops)} state loops: {loops}"

    def never_ends_dead(self) -> None:
        """connect() was the caller's last word: the client syncs with a healed device."""
        assert self.client.katcp_client.running, (
            "connect() succeeded last, but the client is closed")
        first = self.heal_device()
        synced = self.wait_for(lambda: any(i >= first for i in self.synced_on), TEARDOWN_BOUND)
        assert synced, (f"a running client did not sync with a healed device: state "
                        f"{self.client.state}, connection {self.client.katcp_client.state}")

    def teardown(self) -> None:
        try:
            if self.expect_running:
                self.never_ends_dead()
            self.never_synced_with_pending_work()
            self.synced_with_the_greeted_flags()
            self.synced_model_equals_the_device()
        finally:
            try:
                stop = self.call(self.client.stop)
                self.wait_done([stop], TEARDOWN_BOUND)
                assert stop.done(), "stop() hung"
            finally:
                self.finish()


InspectingClientMachine.TestCase.settings = settings(
    max_examples=examples(40),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestInspectingClientStateMachine = InspectingClientMachine.TestCase
