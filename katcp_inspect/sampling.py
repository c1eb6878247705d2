"""Sampling strategies: what the user wants sampled, what the device confirmed, and the
requests that reconcile the two.

Strategies are per connection on the device side: a device forgets them when the connection
drops. So the client keeps the user's wishes in a :class:`StrategyBook` (per sensor name, per
name pattern, and an optional default for every sensor), and a :class:`SamplingReconciler`
keeps what this connection's device has confirmed and sends what differs: after each sync,
and when the user asks. Per-sensor calls made in one event-loop turn are coalesced into one
send, so that ``[sensor.set_strategy("event") for sensor in sensors]`` costs what one
``set_sampling_strategies`` call costs. May import ``message``, ``sampling_requests``,
``stats`` and (for its types) ``client``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .message import Message
from .sampling_requests import (
    BULK_SAMPLING_CHUNK,
    MAX_SINGLES_IN_FLIGHT,
    NONE,
    SamplingRequests,
    WireStrategy,
    for_protocol,
    format_strategy,
    make_strategy,
)
from .stats import InspectingStats, OnceLogger

if TYPE_CHECKING:
    from .client import DeviceClient, Reply


class StrategyBook:
    """The strategies the user wants: explicit per-name choices win over pattern rules (the
    most recent matching rule wins), which win over the default for every sensor."""

    def __init__(self, default: WireStrategy | None = None) -> None:
        self.default = default
        self._by_name: dict[str, WireStrategy] = {}
        self._rules: list[tuple[re.Pattern[str], WireStrategy]] = []
        # Temporary strategies (a sensor wait), counted per name; they apply only where the
        # user wants nothing, so that a wait never overrides, nor loses, what the user set.
        self._held: dict[str, tuple[WireStrategy, int]] = {}

    def hold(self, name: str, strategy: WireStrategy) -> None:
        """Sample ``name`` with ``strategy`` until as many :meth:`release` calls, unless the
        user wants another strategy for it (theirs wins, now or later)."""
        held = self._held.get(name)
        self._held[name] = (strategy, 1) if held is None else (held[0], held[1] + 1)

    def release(self, name: str) -> None:
        held = self._held.get(name)
        if held is not None and held[1] > 1:
            self._held[name] = (held[0], held[1] - 1)
        else:
            self._held.pop(name, None)

    def user_wanted(self, name: str) -> WireStrategy:
        """What the user asked for ``name`` (explicitly, by a pattern, or the default)."""
        explicit = self._by_name.get(name)
        if explicit is not None:
            return explicit
        for pattern, strategy in reversed(self._rules):
            if pattern.search(name):
                return strategy
        return self.default if self.default is not None else NONE

    def set(self, names: str | Iterable[str], strategy: WireStrategy) -> None:
        """Remember ``strategy`` for one name or several names."""
        if isinstance(names, str):
            self._by_name[names] = strategy
        else:
            self._by_name.update(dict.fromkeys(names, strategy))

    def set_pattern(self, pattern: str, strategy: WireStrategy) -> None:
        """Remember ``strategy`` for every sensor whose name matches ``pattern`` (``re.search``),
        including sensors the device adds later."""
        compiled = re.compile(pattern)
        self._rules = [(p, s) for p, s in self._rules if p.pattern != pattern]
        self._rules.append((compiled, strategy))

    def wanted(self, name: str) -> WireStrategy:
        wanted = self.user_wanted(name)
        if wanted == NONE and self._held:
            held = self._held.get(name)
            if held is not None:
                return held[0]
        return wanted

    def plan(self, names: Iterable[str],
             applied: Mapping[str, WireStrategy]) -> dict[WireStrategy, list[str]]:
        """Which sensors need which strategy sent, grouped so that each group can be one bulk
        request. ``applied`` is what this connection already has (absent means ``none``)."""
        # wanted(), inlined: a sync plans every sensor of the model (ten thousand, say)
        # before its first request can go, so this loop is on the sync's critical path.
        by_name, rules, held = self._by_name, self._rules, self._held
        default = self.default if self.default is not None else NONE
        if not (by_name or rules or held):  # every sensor wants the default
            same = [name for name in names if applied.get(name, NONE) != default]
            return {default: same} if same else {}
        groups: dict[WireStrategy, list[str]] = {}
        last: WireStrategy | None = None
        group: list[str] = []
        for name in names:
            want = by_name.get(name)
            if want is None:
                want = self.user_wanted(name) if rules else default
            if held and want == NONE and name in held:
                want = held[name][0]
            if applied.get(name, NONE) != want:
                if want is not last:  # one strategy for every name, nearly always
                    group = groups.setdefault(want, [])
                    last = want
                group.append(name)
        return groups


class SamplingReconciler:
    """One client's sampling on the device: what the device confirmed on this connection (a
    strategy it answered ``ok`` to), and the ``?sensor-sampling`` requests that bring it to
    what the :class:`StrategyBook` wants (see :class:`SamplingRequests`: bulk with flag ``B``,
    otherwise one by one, a bounded number in flight)."""

    def __init__(self, book: StrategyBook, client: DeviceClient,
                 sensors: Mapping[str, object], stats: InspectingStats,
                 problems: OnceLogger) -> None:
        self.book = book
        #: Confirmed by the device on this connection (absent: ``none``).
        self.confirmed: dict[str, WireStrategy] = {}
        self._client = client
        self._sensors = sensors
        self._requests = SamplingRequests(client, self.confirmed, stats, problems)
        # Per-sensor calls of this event-loop turn: name -> the first caller's future, and
        # the futures of further calls for the same name (rare: no list per name otherwise).
        self._turn: dict[str, asyncio.Future[Reply]] = {}
        self._turn_more: dict[str, list[asyncio.Future[Reply]]] = {}
        self._turn_timeout = 0.0

    def new_connection(self) -> None:
        """A new connection starts with every sensor at ``none``."""
        self.confirmed.clear()
        self._requests.drop_queued("the connection was lost before this request was sent")

    def forget(self, name: str) -> None:
        """The sensor is gone or changed: what was confirmed for it no longer holds."""
        self.confirmed.pop(name, None)

    def want_one(self, name: str, strategy: WireStrategy,
                 timeout: float) -> asyncio.Future[Reply]:
        """Remember ``strategy`` for ``name`` and send it together with the other calls of
        this event-loop turn; resolves to the device's answer for this sensor: the reply to the
        request that carried it (a bulk reply names every sensor of its chunk; a refusal is
        the device's answer to this sensor alone), ``fail`` while disconnected (the strategy
        is applied on connection). Several calls for one name in one turn send the last
        strategy, and all get its outcome."""
        self.book.set(name, strategy)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        if not self._client.is_connected:
            future.set_result(_not_connected())
            return future
        turn = self._turn
        if not turn:
            loop.call_soon(self._end_turn)
            self._turn_timeout = timeout  # whatever it is: a bad one fails the calls, saying so
        elif timeout > self._turn_timeout:
            self._turn_timeout = timeout
        if name in turn:
            self._turn_more.setdefault(name, []).append(future)
        else:
            turn[name] = future
        if len(turn) >= BULK_SAMPLING_CHUNK:
            # A full request's worth: the device can start on it while the caller goes on.
            self._end_turn()
        return future

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, {}
        more, self._turn_more = self._turn_more, {}
        timeout = self._turn_timeout  # the next turn's first call sets its own
        if not turn:  # already sent, a full request's worth at a time
            return

        def resolve(name: str, strategy: WireStrategy, reply: Reply) -> None:
            # The reply to the request that carried the name: a bulk reply, shared by every
            # name of its chunk, costs nothing per name where one made per name would cost
            # ten thousand messages (and as many objects for the collector) per sync.
            future = turn.pop(name, None)
            if future is not None and not future.done():
                future.set_result(reply)
            for future in more.pop(name, ()):
                if not future.done():
                    future.set_result(reply)

        if not self._client.is_connected:
            for name in list(turn):
                resolve(name, NONE, _not_connected())
            return
        known = [name for name in turn if name in self._sensors]
        groups = self.book.plan(known, self.confirmed)
        if len(known) == len(turn) == sum(map(len, groups.values())):
            self._requests.send(groups, timeout, resolve)  # every name needs sending
            return
        sent = {name for group in groups.values() for name in group}
        for name in [name for name in turn if name not in sent]:
            # Already what the device has (or a name the model does not know: the device
            # answers for it, as it would to a single request).
            if name in self._sensors:
                strategy = self.confirmed.get(name, NONE)
                resolve(name, strategy, (Message.reply("sensor-sampling", "ok", name,
                                                       *strategy), []))
            else:
                groups.setdefault(self.book.wanted(name), []).append(name)
        self._requests.send(groups, timeout, resolve)

    def want(self, names: str | Iterable[str], strategy: WireStrategy,
             timeout: float) -> asyncio.Future[Reply]:
        """Remember ``strategy`` for ``names`` (a list, or a pattern: a ``str`` that also covers
        sensors added later) and send it; resolves to the first refusal, or an ``ok`` reply
        (``fail`` while disconnected: the strategy is applied on connection)."""
        if isinstance(names, str):
            self.book.set_pattern(names, strategy)
            pattern = re.compile(names)
            names = [n for n in self._sensors if pattern.search(n)]
        else:
            names = list(names)
            self.book.set(names, strategy)
        if not self._client.is_connected:
            future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
            future.set_result(_not_connected())
            return future
        return self.apply(names, timeout)

    def apply(self, names: Iterable[str] | None, timeout: float) -> asyncio.Future[Reply]:
        """Send what the device needs for ``names`` (None: every sensor of the model) to
        match the book; resolves, once every answer is in, to the first refusal or an ``ok``
        reply."""
        known = (list(self._sensors) if names is None
                 else [n for n in names if n in self._sensors])
        groups = self.book.plan(known, self.confirmed)
        outcomes = _AllOutcomes(sum(len(group) for group in groups.values()))
        self._requests.send(groups, timeout, outcomes)
        return outcomes.future


class _AllOutcomes:
    """The outcomes of many names as one future: the first refusal, else an ``ok`` reply."""

    def __init__(self, count: int) -> None:
        self.future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._left = count
        self._refusal: Reply | None = None
        if not count:
            self.future.set_result((Message.reply("sensor-sampling", "ok"), []))

    def __call__(self, name: str, strategy: WireStrategy, reply: Reply) -> None:
        if self._refusal is None and not reply[0].reply_ok():
            self._refusal = reply
        self._left -= 1
        if not self._left and not self.future.done():
            self.future.set_result(self._refusal or reply)


def _not_connected() -> Reply:
    return Message.reply("sensor-sampling", "fail", "not connected; the strategy is "
                         "remembered and applied on connection"), []


__all__ = [
    "BULK_SAMPLING_CHUNK",
    "MAX_SINGLES_IN_FLIGHT",
    "NONE",
    "SamplingReconciler",
    "StrategyBook",
    "WireStrategy",
    "for_protocol",
    "format_strategy",
    "make_strategy",
]
