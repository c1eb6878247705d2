"""The client options a fleet accepts (``client_options=`` and the ``[client]`` tables), how
each is checked, and how they make and set up a device's
:class:`~katcp_inspect.InspectingClientAsync`.

Options go to three places: the client's constructor (``auto_reconnect``,
``initial_inspection``, ``auto_sampling``), the client's own attributes (``sync_timeout`` ...)
and its connection, the :class:`~katcp_inspect.DeviceClient` (``connect_timeout`` ... and the
reconnect backoff's ``reconnect_delay`` and ``reconnect_delay_max``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Callable

import attrs

from ..client_core import default_reconnect_backoff
from ..inspecting_client import InspectingClientAsync
from ..sync_gate import SyncGate
from .errors import ConfigError, Where, dotted
from .rules import parse_strategy


def _seconds(value: Any) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not math.isfinite(value) or value < 0):
        raise ValueError("must be a finite number of seconds, at least 0")
    return float(value)


def _positive_seconds(value: Any) -> float:
    if _seconds(value) == 0:
        raise ValueError("must be more than 0 seconds")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError("must be a whole number, at least 1")
    return value


def _strategy(value: Any) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise ValueError('must be a strategy as a string, e.g. "auto" or "period 1.0"')
    return parse_strategy(value)


@attrs.frozen
class Option:
    """One option: how its value is checked (and converted), and where it goes: ``"init"``
    (the client's constructor), ``"client"``, ``"katcp"`` (its connection) or
    ``"backoff"`` (the connection's reconnect backoff, under another name)."""

    check: Callable[[Any], Any]
    target: str
    attribute: str = ""


#: Every option a fleet accepts for its clients.
CLIENT_OPTIONS: Mapping[str, Option] = {
    "auto_reconnect": Option(_flag, "init"),
    "initial_inspection": Option(_flag, "init"),
    "auto_sampling": Option(_strategy, "init"),
    "sync_timeout": Option(_positive_seconds, "client"),
    "initial_resync_timeout": Option(_seconds, "client"),
    "max_resync_timeout": Option(_seconds, "client"),
    "connect_timeout": Option(_positive_seconds, "katcp"),
    "greeting_timeout": Option(_seconds, "katcp"),
    "default_timeout": Option(_seconds, "katcp"),
    "healthy_after": Option(_seconds, "katcp"),
    "watchdog_interval": Option(_positive_seconds, "katcp"),
    "watchdog_timeout": Option(_seconds, "katcp"),
    "max_line_length": Option(_size, "katcp"),
    "max_reply_informs": Option(_size, "katcp"),
    "max_reply_bytes": Option(_size, "katcp"),
    "reconnect_delay": Option(_seconds, "backoff", "delay_initial"),
    "reconnect_delay_max": Option(_seconds, "backoff", "delay_max"),
}


def check_client_options(options: Mapping[str, Any], where: Where) -> dict[str, Any]:
    """``options`` checked and converted; :class:`ConfigError` (naming ``where`` and the
    option) for an unknown option or a bad value."""
    checked: dict[str, Any] = {}
    for name, value in options.items():
        option = CLIENT_OPTIONS.get(name)
        if option is None:
            raise ConfigError(f"unknown client option {dotted((name,))} (expected one of: "
                              f"{', '.join(CLIENT_OPTIONS)})", (*where, name))
        try:
            checked[name] = option.check(value)
        except ValueError as exc:
            raise ConfigError(f"client option {name} {exc}, not {value!r}",
                              (*where, name)) from None
    return checked


def check_backoff(options: Mapping[str, Any], where: Where) -> None:
    """The reconnect delays of one device's options (global ones with its own) agree."""
    default = default_reconnect_backoff()
    first = options.get("reconnect_delay", default.delay_initial)
    longest = options.get("reconnect_delay_max", default.delay_max)
    if first > longest:
        name = "reconnect_delay" if "reconnect_delay" in options else "reconnect_delay_max"
        raise ConfigError(f"reconnect_delay ({first:g} s) is longer than reconnect_delay_max "
                          f"({longest:g} s)", (*where, name))


def make_client(host: str, port: int, options: Mapping[str, Any],
                gate: SyncGate | None) -> InspectingClientAsync:
    """A client for ``host:port`` with checked ``options``, syncing through ``gate``."""
    init = {name: value for name, value in options.items()
            if CLIENT_OPTIONS[name].target == "init"}
    client = InspectingClientAsync(host, port, sync_gate=gate, **init)
    backoff = client.katcp_client.reconnect_backoff
    for name, value in options.items():
        option = CLIENT_OPTIONS[name]
        if option.target == "client":
            setattr(client, name, value)
        elif option.target == "katcp":
            setattr(client.katcp_client, name, value)
        elif option.target == "backoff":
            setattr(backoff, option.attribute, value)
    backoff.success()  # draws the first delay anew, from the delays just set
    return client


__all__ = ["CLIENT_OPTIONS", "Option", "check_backoff", "check_client_options", "make_client"]
