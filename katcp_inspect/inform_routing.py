"""Inform routing without I/O: who gets an inform (the client's own handlers, the users' hooks,
the hooks for informs nobody took), and the one loop that calls hooks, counting and logging
their failures so that a user's bug never reaches the connection (the fast path in
:mod:`.receiving` inlines the loop, and shares ``hook_failed``). Also the lists of lifecycle
callbacks. Imports only the message and stats modules.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from .message import Message
from .stats import ClientStats

InformHook = Callable[[Message], Any]
ArgumentsHook = Callable[[list[bytes]], Any]
A = TypeVar("A")
H = TypeVar("H")


class InformRouter:
    """The hook tables of one client, and the routing of each inform through them.

    An inform goes to the client's builtin handler for its name, to the argument hooks (with
    its raw arguments) and the inform hooks (with a :class:`Message`) of its name; one that none
    of these took, and that answers no request, goes to the unhandled hooks.
    """

    def __init__(self, builtin: Mapping[bytes, Callable[[Message], None]], stats: ClientStats,
                 logger: logging.Logger) -> None:
        self._builtin = builtin
        self._stats = stats
        self._logger = logger
        self._inform_hooks: dict[bytes, list[InformHook]] = {}
        self._argument_hooks: dict[bytes, list[ArgumentsHook]] = {}
        self._unhandled_hooks: list[InformHook] = []
        #: Informs that only argument hooks want: the fast path builds no :class:`Message`.
        self.fast: dict[bytes, list[ArgumentsHook]] = {}

    def hook_count(self) -> int:
        """Hooks registered by name (for leak checks)."""
        return (sum(map(len, self._inform_hooks.values()))
                + sum(map(len, self._argument_hooks.values())))

    def hook_inform(self, name: str, hook: InformHook) -> None:
        _add_hook(self._inform_hooks, name, hook)
        self._update_fast()

    def unhook_inform(self, name: str, hook: InformHook) -> None:
        _remove_hook(self._inform_hooks, name, hook)
        self._update_fast()

    def hook_arguments(self, name: str, hook: ArgumentsHook) -> None:
        _add_hook(self._argument_hooks, name, hook)
        self._update_fast()

    def unhook_arguments(self, name: str, hook: ArgumentsHook) -> None:
        _remove_hook(self._argument_hooks, name, hook)
        self._update_fast()

    def hook_unhandled(self, hook: InformHook) -> None:
        if hook not in self._unhandled_hooks:
            self._unhandled_hooks.append(hook)

    def _update_fast(self) -> None:
        self.fast = {
            name: hooks for name, hooks in self._argument_hooks.items()
            if name not in self._inform_hooks and name not in self._builtin}

    def route(self, raw: Any, collected: bool, message: Message | None) -> None:
        """Route the parsed inform ``raw``; ``collected``: it is part of a reply (then it
        counts as handled), as ``message`` if it was collected as one."""
        name = raw.name
        handled = collected
        arg_hooks = self._argument_hooks.get(name)
        if arg_hooks is not None:
            handled = True
            self.call_each(arg_hooks, raw.arguments, name)
        builtin = self._builtin.get(name)
        hooks = self._inform_hooks.get(name)
        if builtin is None and hooks is None and (handled or not self._unhandled_hooks):
            return  # nobody else wants a Message: do not build one
        if message is None:
            message = Message.from_codec(raw)
        if builtin is not None:
            builtin(message)
            handled = True
        if hooks is not None:
            handled = True
            self.call_each(hooks, message, name)
        if not handled:
            self.call_each(self._unhandled_hooks, message, name)

    def call_each(self, hooks: list[Callable[[A], Any]], argument: A, name: bytes) -> None:
        """Call every hook with ``argument``; a hook that raises is counted and logged."""
        for hook in hooks:
            try:
                hook(argument)
            except Exception:
                self.hook_failed(hook, name)

    def hook_failed(self, hook: Callable[..., Any], name: bytes) -> None:
        """Count and log a hook that raised (called from within its ``except``)."""
        self._stats.callback_errors += 1
        self._logger.exception("Inform hook %r for #%s raised", hook, name.decode("ascii"))


class Callbacks:
    """An ordered list of lifecycle callbacks whose exceptions are logged, counted and
    contained."""

    def __init__(self, stats: ClientStats, logger: logging.Logger, what: str) -> None:
        self._stats = stats
        self._logger = logger
        self._what = what
        self._items: list[Callable[..., Any]] = []

    def add(self, cb: Callable[..., Any]) -> None:
        if cb not in self._items:
            self._items.append(cb)

    def remove(self, cb: Callable[..., Any]) -> None:
        self._items.remove(cb)

    def __bool__(self) -> bool:
        return bool(self._items)

    def run(self, *args: Any) -> None:
        for cb in list(self._items):
            try:
                cb(*args)
            except Exception:
                self._stats.callback_errors += 1
                self._logger.exception("%s %r raised", self._what, cb)


def _add_hook(table: dict[bytes, list[H]], name: str, hook: H) -> None:
    hooks = table.setdefault(name.encode("ascii"), [])
    if hook not in hooks:
        hooks.append(hook)


def _remove_hook(table: dict[bytes, list[H]], name: str, hook: H) -> None:
    key = name.encode("ascii")
    hooks = table.get(key, [])
    if hook in hooks:
        hooks.remove(hook)
    if not hooks:
        table.pop(key, None)
