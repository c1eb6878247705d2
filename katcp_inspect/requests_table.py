"""Request matching without I/O: message ids, the requests in flight, their timeouts, the reply
informs each collects (within caps) and its reply; late, unknown and misaddressed messages are
counted and dropped.

The table is handed a ``send`` function for encoded requests and a ``call_later`` for timeouts
(an asyncio loop's, or a fake clock's in the tests). It imports only the codec, message,
errors, stats, text and waiting modules.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from . import codec
from .errors import ProtocolError, ReplyTooLargeError, RequestTimeoutError
from .message import MAX_MID, Message, MessageType, MidLike
from .stats import ClientStats, OnceLogger
from .text import printable
from .waiting import Timer

Reply = tuple[Message, list[Message]]
#: A reply and its informs, each as the tuple of its arguments (or as what a reader made of
#: them: see :meth:`RequestTable.add`).
ArgumentsReply = tuple[Message, list[Any]]
#: Reads one reply inform's arguments as it arrives; the reply holds what it returns.
InformReader = Callable[[list[bytes]], Any]
CallLater = Callable[..., Timer]


class PendingRequest:
    """A request in flight (or queued behind another of the same name on a device without ids)."""

    __slots__ = ("future", "inform_bytes", "informs", "key", "message", "overflowed", "read",
                 "sent", "timeout_handle")

    def __init__(self, message: Message, future: asyncio.Future[Any],
                 read: InformReader | None = None) -> None:
        self.message = message
        self.key = message.name.encode("ascii")
        #: Resolves to a :data:`Reply`, or an :data:`ArgumentsReply` if ``read`` is given.
        self.future = future
        self.read = read
        self.informs: list[Any] = []
        #: Bytes of the informs' arguments, against the table's ``max_bytes``.
        self.inform_bytes = 0
        #: Failed for exceeding a cap: what still comes for it is dropped.
        self.overflowed = False
        self.timeout_handle: Timer | None = None
        self.sent = False


class RequestTable:
    """The requests in flight on one connection at a time, and the matching of what answers them.

    With message ids, requests are matched by id. Without, only the name can match, so requests
    of one name wait in a queue and only its head is sent.
    """

    def __init__(self, send: Callable[[bytes], None], call_later: CallLater,
                 stats: ClientStats, problems: OnceLogger, address: Callable[[], str], *,
                 max_informs: int, max_bytes: int) -> None:
        self._send = send
        self._call_later = call_later
        self._stats = stats
        self._problems = problems
        self._address = address
        #: Caps on the reply informs one request may collect (number, bytes of arguments).
        self.max_informs = max_informs
        self.max_bytes = max_bytes
        self._next_mid = 1
        self.by_mid: dict[int, PendingRequest] = {}
        #: Requests without an id, by name; read by the client's fast path for informs.
        self.by_name: dict[bytes, deque[PendingRequest]] = {}

    def __bool__(self) -> bool:
        return bool(self.by_mid or self.by_name)

    def allocate_mid(self, mid: MidLike) -> int:
        """``mid`` if it is valid and free, else (when ``None``) the next free id."""
        if mid is not None:
            checked = Message(MessageType.REQUEST, "x", (), mid).mid
            assert checked is not None
            if checked in self.by_mid:
                raise ProtocolError(f"message id {checked} is already in use")
            return checked
        for _ in range(len(self.by_mid) + 1):
            candidate = self._next_mid
            self._next_mid = candidate + 1 if candidate < MAX_MID else 1
            if candidate not in self.by_mid:
                return candidate
        raise AssertionError("unreachable: more pending requests than ids tried")

    def add(self, message: Message, future: asyncio.Future[Any], timeout: float, *,
            read: InformReader | None = None) -> None:
        """Send ``message`` (or queue it behind its name) and fail ``future`` after ``timeout``
        seconds (``inf``: never) unless the reply comes first. ``future`` gets a
        :data:`Reply`, or with ``read`` an :data:`ArgumentsReply` holding what ``read`` made
        of each inform's arguments, called as each arrives (so that a long listing is read
        while the device is still writing it); ``read`` must not raise."""
        pending = PendingRequest(message, future, read)
        if timeout != float("inf"):
            pending.timeout_handle = self._call_later(timeout, self._timed_out, pending, timeout)
        if message.mid is not None:
            self.by_mid[message.mid] = pending
            self._send_request(pending)
            return
        queue = self.by_name.setdefault(pending.key, deque())
        queue.append(pending)
        if len(queue) == 1:
            self._send_request(pending)

    def _send_request(self, pending: PendingRequest) -> None:
        pending.sent = True
        self._stats.requests += 1
        self._send(pending.message.encode())

    def _finish(self, pending: PendingRequest) -> None:
        """Take a request out of the tables (and send the next of its name, if queued)."""
        if pending.timeout_handle is not None:
            pending.timeout_handle.cancel()
            pending.timeout_handle = None
        mid = pending.message.mid
        if mid is not None:
            self.by_mid.pop(mid, None)
            return
        queue = self.by_name.get(pending.key)
        if queue is None:
            return
        was_head = queue[0] is pending
        queue.remove(pending)
        if not queue:
            del self.by_name[pending.key]
        elif was_head:
            self._send_request(queue[0])

    def _timed_out(self, pending: PendingRequest, timeout: float) -> None:
        pending.timeout_handle = None
        self._finish(pending)
        if pending.overflowed:
            return  # already failed; only its place in the tables was kept
        self._stats.request_timeouts += 1
        if not pending.future.done():
            pending.future.set_exception(RequestTimeoutError(
                f"?{pending.message.name} to {self._address()} timed out after {timeout:g} s"))

    def fail_all(self, error: BaseException) -> None:
        """Empty the table, failing every request in it with ``error``."""
        everything = list(self.by_mid.values())
        for queue in self.by_name.values():
            everything.extend(queue)
        self.by_mid.clear()
        self.by_name.clear()
        for pending in everything:
            if pending.timeout_handle is not None:
                pending.timeout_handle.cancel()
            if not pending.future.done():
                pending.future.set_exception(error)

    # ------------------------------------------------------------------ what answers

    def take_inform(self, raw: Any) -> tuple[bool, bool, Message | None]:
        """Collect an inform that is part of a reply.

        Gives whether the inform is to be routed on to the hooks at all (a misaddressed one,
        or one past a cap, is dropped), whether a request collected it, and the
        :class:`Message` it was collected as (``None`` if it answers no request, or if the
        request collects arguments only: a listing's ten thousand informs need no message).
        """
        mid = raw.mid
        if mid is None:
            queue = self.by_name.get(raw.name)
            if queue and queue[0].sent:
                return self._collect(queue[0], raw)
            return True, False, None
        pending = self.by_mid.get(mid)
        if pending is None:
            self._stats.unmatched_informs += 1
            self._problems.log("unmatched-inform", "%s: inform #%s[%d] matches no pending "
                               "request (late or unknown)", self._address(),
                               printable(raw.name), mid)
            return True, False, None
        if pending.key != raw.name and not pending.overflowed:
            self._misaddressed(raw, pending)
            return False, False, None
        return self._collect(pending, raw)

    def _collect(self, pending: PendingRequest, raw: Any) -> tuple[bool, bool, Message | None]:
        if pending.overflowed:
            self._stats.overflow_dropped += 1
            return False, False, None
        arguments = raw.arguments
        pending.inform_bytes += sum(map(len, arguments))
        if len(pending.informs) >= self.max_informs or pending.inform_bytes > self.max_bytes:
            self._overflow(pending)
            return False, False, None
        if pending.read is not None:
            pending.informs.append(pending.read(arguments))
            return True, True, None
        message = Message.from_codec(raw)
        pending.informs.append(message)
        return True, True, message

    def _overflow(self, pending: PendingRequest) -> None:
        # The request stays in the tables, so that the rest of its reply is recognised and
        # dropped (not taken for another request's), until the reply or its timeout.
        pending.overflowed = True
        count = len(pending.informs)
        pending.informs = []
        self._stats.oversized_replies += 1
        self._stats.overflow_dropped += 1
        error = ReplyTooLargeError(
            f"?{pending.message.name} to {self._address()}: the reply exceeded {count} informs "
            f"or {pending.inform_bytes} bytes (caps: max_reply_informs={self.max_informs}, "
            f"max_reply_bytes={self.max_bytes}); the rest of it is dropped")
        self._problems.log("oversized-reply", "%s", str(error))
        if not pending.future.done():
            pending.future.set_exception(error)

    def _misaddressed(self, raw: Any, pending: PendingRequest) -> None:
        self._stats.misaddressed += 1
        kind = "!" if raw.mtype is codec.REPLY else "#"
        self._problems.log("misaddressed", "%s: %s%s[%d] carries the id of ?%s; dropped",
                           self._address(), kind, printable(raw.name), raw.mid,
                           pending.message.name)

    def take_reply(self, raw: Any) -> None:
        """Resolve the request a reply answers, or count the reply as late or unknown."""
        mid = raw.mid
        pending: PendingRequest | None
        if mid is not None:
            pending = self.by_mid.get(mid)
            if pending is not None and pending.key != raw.name:
                self._misaddressed(raw, pending)
                return
        else:
            queue = self.by_name.get(raw.name)
            pending = queue[0] if queue and queue[0].sent else None
        if pending is None:
            self._stats.unmatched_replies += 1
            self._problems.log("unmatched-reply", "%s: reply !%s%s matches no pending request "
                               "(late or unknown); dropped", self._address(),
                               printable(raw.name), "" if mid is None else f"[{mid}]")
            return
        self._finish(pending)
        if pending.overflowed:
            self._stats.overflow_dropped += 1
        elif not pending.future.done():
            pending.future.set_result((Message.from_codec(raw), pending.informs))
