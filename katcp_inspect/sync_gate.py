"""A limit on the inspecting clients that sync at once, shared by the clients of a fleet.

When a thousand devices come up together (or restart together), a thousand inspections at
once would swamp both the event loop and the network: every client lists every sensor and
sets every strategy in the same few seconds, and none finishes early. A :class:`SyncGate`
given to several :class:`~katcp_inspect.InspectingClientAsync` (``sync_gate=``) lets at most
``limit`` of them through the costly part of a sync (inspecting, reporting the changes,
sending the strategies) at once; the others wait their turn, first come first served. A
client waiting at the gate reports SYNCING (it knows its model is out of date) and still
stops, or starts over on another connection, at once. Imports nothing from the package.
"""

from __future__ import annotations

import asyncio


class SyncGate:
    """At most :attr:`limit` holders at once; the others wait in the order they came."""

    def __init__(self, limit: int) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"a sync gate's limit must be a whole number, at least 1, "
                             f"not {limit!r}")
        self.limit = limit
        #: How many have entered and not left.
        self.holders = 0
        # An ordered set: a waiter that gives up leaves it at once, wherever it stands.
        self._waiting: dict[asyncio.Future[None], None] = {}

    @property
    def waiting(self) -> int:
        """How many wait to enter."""
        return len(self._waiting)

    def enter(self) -> asyncio.Future[None]:
        """A future that resolves once the caller holds a place (at once if one is free).
        Cancel it to stop waiting; a caller whose future resolved must :meth:`leave`."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.holders < self.limit and not self._waiting:
            self.holders += 1
            future.set_result(None)
        else:
            self._waiting[future] = None
            future.add_done_callback(self._forget)
        return future

    def leave(self) -> None:
        """Give the place back: to the first waiter still waiting, if any."""
        while self._waiting:
            future = next(iter(self._waiting))
            del self._waiting[future]
            if not future.done():
                future.set_result(None)  # the place passes on: holders is unchanged
                return
        self.holders = max(self.holders - 1, 0)

    def _forget(self, future: asyncio.Future[None]) -> None:
        self._waiting.pop(future, None)


__all__ = ["SyncGate"]
