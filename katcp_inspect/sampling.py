"""Sampling strategies: what the user wants sampled, what the device confirmed, and the
requests that reconcile the two.

Strategies are per connection on the device side: a device forgets them when the connection
drops. So the client keeps the user's wishes in a :class:`StrategyBook` (per sensor name, per
name pattern, and an optional default for every sensor), and a :class:`SamplingReconciler`
keeps what this connection's device has confirmed and sends what differs after each sync.
May import ``message``, ``strategies``, ``stats``, ``text`` and (for its types) ``client``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .message import Message, encode_argument
from .stats import InspectingStats, OnceLogger
from .strategies import STRATEGIES
from .text import printable

if TYPE_CHECKING:
    from .client import DeviceClient, Reply

#: Names per bulk ``?sensor-sampling`` request, so that no line gets huge.
BULK_SAMPLING_CHUNK = 500

#: A strategy and its parameters as they go on the wire, e.g. ``(b"period", b"0.5")``.
WireStrategy = tuple[bytes, ...]
NONE: WireStrategy = (b"none",)


def make_strategy(strategy: str, *params: Any) -> WireStrategy:
    return (encode_argument(strategy), *(encode_argument(p) for p in params))


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
        for name in [names] if isinstance(names, str) else names:
            self._by_name[name] = strategy

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
        groups: dict[WireStrategy, list[str]] = {}
        for name in names:
            want = self.wanted(name)
            if applied.get(name, NONE) != want:
                groups.setdefault(want, []).append(name)
        return groups


class SamplingReconciler:
    """One client's sampling on the device: what the device confirmed on this connection (a
    strategy it answered ``ok`` to), and the ``?sensor-sampling`` requests that bring it to
    what the :class:`StrategyBook` wants. Bulk requests (chunked) with flag ``B``, otherwise
    one request per sensor; all in flight together."""

    def __init__(self, book: StrategyBook, client: DeviceClient,
                 sensors: Mapping[str, object], stats: InspectingStats,
                 problems: OnceLogger) -> None:
        self.book = book
        #: Confirmed by the device on this connection (absent: ``none``).
        self.confirmed: dict[str, WireStrategy] = {}
        self._client = client
        self._sensors = sensors
        self._stats = stats
        self._problems = problems

    def new_connection(self) -> None:
        """A new connection starts with every sensor at ``none``."""
        self.confirmed = {}

    def forget(self, name: str) -> None:
        """The sensor is gone or changed: what was confirmed for it no longer holds."""
        self.confirmed.pop(name, None)

    async def want(self, names: str | Iterable[str], strategy: WireStrategy,
                   timeout: float) -> Reply:
        """Remember ``strategy`` for ``names`` (a list, or a pattern: a ``str`` that also covers
        sensors added later) and send it; the last reply (``fail`` while disconnected: the
        strategy is applied on connection)."""
        if isinstance(names, str):
            self.book.set_pattern(names, strategy)
            pattern = re.compile(names)
            names = [n for n in self._sensors if pattern.search(n)]
        else:
            names = list(names)
            self.book.set(names, strategy)
        if not self._client.is_connected:
            return Message.reply("sensor-sampling", "fail", "not connected; the strategy is "
                                 "remembered and applied on connection"), []
        replies = await self.apply(names, timeout)
        return replies[-1] if replies else (Message.reply("sensor-sampling", "ok"), [])

    async def apply(self, names: Iterable[str] | None, timeout: float) -> list[Reply]:
        """Send what the device needs for ``names`` (None: every sensor of the model) to
        match the book; the replies, refusals included."""
        known = [n for n in (self._sensors if names is None else names) if n in self._sensors]
        flags = self._client.protocol_flags
        bulk = flags is not None and flags.bulk_set_sensor_sampling
        sends: list[Awaitable[list[Reply]]] = []
        refused: list[Reply] = []
        for strategy, group in self.book.plan(known, self.confirmed).items():
            if bulk:
                # With bulk sampling a device reads "a,b" as two sensors: such a name cannot
                # be sampled without sampling others.
                refused.extend(self._refuse_comma(n, strategy) for n in group if "," in n)
                group = [n for n in group if "," not in n]
            if bulk and len(group) > 1:
                sends.extend(self._bulk(group[start:start + BULK_SAMPLING_CHUNK], strategy,
                                        timeout)
                             for start in range(0, len(group), BULK_SAMPLING_CHUNK))
            elif group:
                sends.append(self._each(group, strategy, timeout))
        return refused + [reply for replies in await asyncio.gather(*sends) for reply in replies]

    def _refuse_comma(self, name: str, strategy: WireStrategy) -> Reply:
        self._stats.strategy_failures += 1
        self._problems.log(("comma", name), "%s: cannot sample sensor %s: its name has a comma, "
                           "which this device (bulk sampling) reads as a list of sensors",
                           self._client.address, printable(name))
        return Message.reply("sensor-sampling", "fail", f"cannot sample {name!r} with "
                             f"{format_strategy(strategy)}: a device with bulk sampling reads "
                             "the comma in its name as a list of sensors"), []

    async def _bulk(self, names: list[str], strategy: WireStrategy,
                    timeout: float) -> list[Reply]:
        reply = await self._request(",".join(names), strategy, timeout)
        if reply[0].reply_ok():
            self.confirmed.update(dict.fromkeys(names, strategy))
            return [reply]
        # Refused as a whole (one name gone, or no bulk after all): one by one.
        return await self._each(names, strategy, timeout)

    async def _each(self, names: list[str], strategy: WireStrategy,
                    timeout: float) -> list[Reply]:
        return list(await asyncio.gather(*(self._one(name, strategy, timeout)
                                           for name in names)))

    async def _one(self, name: str, strategy: WireStrategy, timeout: float) -> Reply:
        reply = await self._request(name, strategy, timeout)
        if reply[0].reply_ok():
            self.confirmed[name] = strategy
        elif self._client.is_connected:
            self._stats.strategy_failures += 1
            self._problems.log(("strategy", name), "%s refused strategy %s for %s: %s",
                               self._client.address, format_strategy(strategy),
                               printable(name), reply[0])
        return reply

    def _request(self, names: str, strategy: WireStrategy,
                 timeout: float) -> asyncio.Future[Reply]:
        flags = self._client.protocol_flags
        wire = for_protocol(strategy, flags.major if flags is not None else 5)
        return self._client.future_request(
            Message.request("sensor-sampling", names, *wire), timeout)
