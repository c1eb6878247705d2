"""What a fleet says of its devices: a :class:`DeviceState` per device, and a summary of the
whole fleet that serialises to JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from ..text import printable

#: The states of a device in a fleet, in the order a device goes through them:
#:
#: - ``connecting``: started, not connected yet, and no attempt has failed so far;
#: - ``syncing``: connected; the model is being listed (or waits for its turn, see
#:   ``max_syncing``), or the sampling strategies set;
#: - ``synced``: the model is complete and the strategies applied;
#: - ``disconnected``: an attempt failed or the connection was lost; the client retries;
#: - ``stopped``: not started, stopped, or closed for good (``auto_reconnect = false``).
STATES = ("connecting", "syncing", "synced", "disconnected", "stopped")


@attrs.frozen
class DeviceState:
    """A snapshot of one device of a fleet (:meth:`~katcp_inspect.fleet.Fleet.state`)."""

    name: str
    #: ``host:port``.
    address: str
    #: One of :data:`STATES`.
    state: str
    #: The KATCP version and flags of the current (or last) connection, e.g. ``"5.1-MIBT"``.
    protocol: str | None
    #: Sensors in the model.
    sensors: int
    #: Messages a second received from the device over the last second or so: at steady
    #: state, its sensor updates.
    updates_per_second: float
    #: The most recent connection problem (a failed attempt or a lost connection), escaped,
    #: kept after the device is back; ``None`` if there was none.
    last_error: str | None
    #: When the device entered :attr:`state` (``time.monotonic()``).
    since: float

    def as_dict(self) -> dict[str, Any]:
        """The fields, as JSON takes them."""
        return attrs.asdict(self)


def describe_error(error: BaseException | None) -> str | None:
    """A connection problem as a short phrase safe to print (``Connection refused``)."""
    if error is None:
        return None
    if isinstance(error, OSError) and error.strerror:
        return printable(error.strerror, escape_backslash=False)
    # The library escapes the device text it puts in its errors.
    return printable(str(error), escape_backslash=False) or type(error).__name__


def summarise(states: Iterable[DeviceState]) -> dict[str, Any]:
    """``{"total": N, "counts": {state: n, ...}, "devices": {name: {...}, ...}}``: how many
    devices are in each of :data:`STATES`, and each device's :meth:`DeviceState.as_dict`."""
    counts = dict.fromkeys(STATES, 0)
    devices = {}
    for state in states:
        counts[state.state] = counts.get(state.state, 0) + 1
        devices[state.name] = state.as_dict()
    return {"total": len(devices), "counts": counts, "devices": devices}


__all__ = ["STATES", "DeviceState", "describe_error", "summarise"]
