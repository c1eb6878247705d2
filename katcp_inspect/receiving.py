"""What the device client does with each item parsed from its connection, without I/O: informs
to the inform router (argument-only hooks on the fast path), replies to the request table,
malformed and over-long lines and requests from the device counted. Imports the request table,
inform routing, and the codec, connection, errors, stats and text modules.
"""

from __future__ import annotations

from collections.abc import Callable

from . import codec
from .codec import ParsedItem
from .connection import is_line_too_long
from .errors import LineTooLongError
from .inform_routing import InformRouter
from .requests_table import RequestTable
from .stats import ClientStats, OnceLogger

_REPLY = codec.REPLY
_INFORM = codec.INFORM


class Receiver:
    """Routes what one connection at a time sends; ``link`` is that connection (``None``: what
    arrives is ignored, as while a connection is being dropped)."""

    def __init__(self, requests: RequestTable, informs: InformRouter, stats: ClientStats,
                 problems: OnceLogger, address: Callable[[], str],
                 drop: Callable[[BaseException], None], max_line_length: int) -> None:
        self._requests = requests
        self._informs = informs
        self._stats = stats
        self._problems = problems
        self._address = address
        self._drop = drop
        self.max_line_length = max_line_length
        self.link: object | None = None

    def on_items(self, items: list[ParsedItem]) -> None:
        # The hot path: a flood of #sensor-status goes through the first branch only.
        link = self.link
        if link is None:
            return
        self._stats.messages += len(items)
        fast = self._informs.fast
        by_name = self._requests.by_name
        for item in items:
            if self.link is not link:
                return  # a message before this one ended the connection
            if isinstance(item, ValueError):
                self._bad_line(item)
                continue
            mtype = item.mtype
            if mtype is _INFORM:
                name = item.name
                hooks = fast.get(name)
                if hooks is not None and item.mid is None and name not in by_name:
                    # InformRouter.call_each, inlined: a call per update costs ~10 % here.
                    arguments = item.arguments
                    for hook in hooks:
                        try:
                            hook(arguments)
                        except Exception:
                            self._informs.hook_failed(hook, name)
                else:
                    route, collected, message = self._requests.take_inform(item)
                    if route:
                        self._informs.route(item, collected, message)
            elif mtype is _REPLY:
                self._requests.take_reply(item)
            else:
                self._stats.unexpected_requests += 1
                self._problems.log("request", "%s sent us a request ?%s; ignored",
                                   self._address(), item.name.decode("ascii"))

    def _bad_line(self, error: ValueError) -> None:
        if is_line_too_long(error):
            self.long_line()
            self._drop(LineTooLongError(
                f"{self._address()} sent a line over {self.max_line_length} bytes"))
            return
        self._stats.bad_lines += 1
        self._problems.log("bad-line", "%s sent a malformed line (%s); skipped", self._address(),
                           error)

    def long_line(self) -> None:
        """Count (and log) a line over the maximum, which resets the connection."""
        self._stats.long_lines += 1
        self._problems.log("long-line", "%s sent a line over %d bytes; connection reset",
                           self._address(), self.max_line_length)
