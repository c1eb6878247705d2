"""Strategies as they go on the wire, and the ``?sensor-sampling`` requests that carry them to
one device, each sensor's outcome reported on its own.

:class:`SamplingRequests` sends many names with one strategy as bulk requests when the device
has flag ``B`` (chunked, all chunks in flight together), and one by one otherwise or when a
bulk request is refused; at most :data:`MAX_SINGLES_IN_FLIGHT` single requests are in flight,
the others wait in a queue here rather than as pending requests. Nothing is made per name
but a queue entry: each request's future gets one done-callback, and each name's outcome goes
to a callback.

May import ``message``, ``stats``, ``strategies``, ``text`` and (for its types) ``client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable

from .message import Message, encode_argument
from .stats import InspectingStats, OnceLogger
from .strategies import STRATEGIES
from .text import printable

if TYPE_CHECKING:
    from .client import DeviceClient, Reply

#: Names per bulk ``?sensor-sampling`` request, so that no line gets huge.
BULK_SAMPLING_CHUNK = 500
#: Single-sensor ``?sensor-sampling`` requests in flight at once on one connection: enough to
#: keep a device busy, few enough that ten thousand calls are not ten thousand pending requests.
MAX_SINGLES_IN_FLIGHT = 64

#: A strategy and its parameters as they go on the wire, e.g. ``(b"period", b"0.5")``.
WireStrategy = tuple[bytes, ...]
NONE: WireStrategy = (b"none",)

#: Receives one sensor's outcome: its name, the strategy sent, and the device's reply to the
#: request that carried it (a bulk reply covers every name of its chunk).
Outcome = Callable[[str, WireStrategy, "Reply"], None]


def make_strategy(strategy: str, *params: Any) -> WireStrategy:
    if not params:
        made = _PLAIN.get(strategy)
        if made is not None:
            return made
    return (encode_argument(strategy), *(encode_argument(p) for p in params))


#: The strategies without parameters, made once: per-sensor calls make ten thousand.
_PLAIN: dict[str, WireStrategy] = {name: (name.encode("ascii"),)
                                   for name, info in STRATEGIES.items() if not info.params}


#: Which parameters of each strategy are times (seconds to the user; KATCP 4 wants ms).
_TIME_PARAMS = {name.encode("ascii"): info.time_params for name, info in STRATEGIES.items()
                if info.time_params}


def for_protocol(strategy: WireStrategy, major: int) -> WireStrategy:
    """The strategy as a device of this KATCP major version reads it: users give times in
    seconds (as KATCP 5 does), KATCP 4 counts milliseconds."""
    times = _TIME_PARAMS.get(strategy[0])
    if major >= 5 or not times:
        return strategy
    params = list(strategy[1:])
    for index in times:
        if index < len(params):
            with contextlib.suppress(ValueError):  # not a number: the device will say so
                params[index] = b"%d" % round(float(params[index]) * 1000)
    return (strategy[0], *params)


def format_strategy(strategy: WireStrategy) -> str:
    return " ".join(p.decode("utf-8", "backslashreplace") for p in strategy)


class SamplingRequests:
    """The ``?sensor-sampling`` requests of one inspecting client; records what the device
    confirmed in ``confirmed`` (a name → the strategy it answered ``ok`` to)."""

    def __init__(self, client: DeviceClient, confirmed: dict[str, WireStrategy],
                 stats: InspectingStats, problems: OnceLogger) -> None:
        self._client = client
        self._confirmed = confirmed
        self._stats = stats
        self._problems = problems
        self._singles: deque[tuple[str, WireStrategy, float, Outcome]] = deque()
        self._in_flight = 0

    def send(self, groups: Mapping[WireStrategy, list[str]], timeout: float,
             outcome: Outcome) -> None:
        """Send each group's strategy to its names; ``outcome`` is called once per name."""
        flags = self._client.protocol_flags
        bulk = flags is not None and flags.bulk_set_sensor_sampling
        for strategy, group in groups.items():
            if bulk:
                # With bulk sampling a device reads "a,b" as two sensors: such a name cannot
                # be sampled without sampling others.
                for name in group:
                    if "," in name:
                        outcome(name, strategy, self._refuse_comma(name, strategy))
                group = [name for name in group if "," not in name]
            if bulk and len(group) > 1:
                for start in range(0, len(group), BULK_SAMPLING_CHUNK):
                    self._send_bulk(group[start:start + BULK_SAMPLING_CHUNK], strategy,
                                    timeout, outcome)
            else:
                self._singles.extend((name, strategy, timeout, outcome) for name in group)
        self._pump()

    def drop_queued(self, why: str) -> None:
        """A new connection: single requests still queued belong to the old one (the sync
        sends what the new one needs), so each ends with a ``fail`` reply saying ``why``."""
        singles, self._singles = self._singles, deque()
        for name, strategy, _, outcome in singles:
            outcome(name, strategy, (Message.reply("sensor-sampling", "fail", why), []))

    # ------------------------------------------------------------------ bulk

    def _send_bulk(self, names: list[str], strategy: WireStrategy, timeout: float,
                   outcome: Outcome) -> None:
        def done(future: asyncio.Future[Reply]) -> None:
            reply = _result(future)
            if reply[0].reply_ok():
                self._confirmed.update(dict.fromkeys(names, strategy))
                for name in names:
                    outcome(name, strategy, reply)
            else:  # refused as a whole (one name gone, or no bulk after all): one by one
                self._singles.extend((name, strategy, timeout, outcome) for name in names)
                self._pump()

        self._request(",".join(names), strategy, timeout).add_done_callback(done)

    def _refuse_comma(self, name: str, strategy: WireStrategy) -> Reply:
        self._stats.strategy_failures += 1
        self._problems.log(("comma", name), "%s: cannot sample sensor %s: its name has a comma, "
                           "which this device (bulk sampling) reads as a list of sensors",
                           self._client.address, printable(name))
        return Message.reply("sensor-sampling", "fail", f"cannot sample {name!r} with "
                             f"{format_strategy(strategy)}: a device with bulk sampling reads "
                             "the comma in its name as a list of sensors"), []

    # ------------------------------------------------------------------ one by one

    def _pump(self) -> None:
        while self._singles and self._in_flight < MAX_SINGLES_IN_FLIGHT:
            name, strategy, timeout, outcome = self._singles.popleft()
            self._in_flight += 1
            self._request(name, strategy, timeout).add_done_callback(
                functools.partial(self._single_done, name, strategy, outcome))

    def _single_done(self, name: str, strategy: WireStrategy, outcome: Outcome,
                     future: asyncio.Future[Reply]) -> None:
        self._in_flight -= 1
        reply = _result(future)
        if reply[0].reply_ok():
            self._confirmed[name] = strategy
        elif self._client.is_connected:
            self._stats.strategy_failures += 1
            self._problems.log(("strategy", name), "%s refused strategy %s for %s: %s",
                               self._client.address, format_strategy(strategy),
                               printable(name), reply[0])
        try:
            outcome(name, strategy, reply)
        finally:
            self._pump()

    def _request(self, names: str, strategy: WireStrategy,
                 timeout: float) -> asyncio.Future[Reply]:
        flags = self._client.protocol_flags
        wire = for_protocol(strategy, flags.major if flags is not None else 5)
        # Sent now, not from a task of its own: a caller making thousands of calls in one go
        # has each full chunk on the wire, and the device at work on it, while it goes on.
        try:
            return self._client.request_raw("sensor-sampling", names, *wire, timeout=timeout)
        except ValueError as exc:  # the timeout (the user's sync_timeout) is not one
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            future.set_exception(exc)
            return future


def _result(future: asyncio.Future[Reply]) -> Reply:
    """The reply a request's future holds; a ``fail`` reply saying why if it failed (not
    connected, the connection lost, no reply in time) or was cancelled (the client stopped)."""
    if future.cancelled():
        return Message.reply("sensor-sampling", "fail", "the request was cancelled"), []
    exc = future.exception()
    if exc is not None:
        return Message.reply("sensor-sampling", "fail", str(exc)), []
    return future.result()
