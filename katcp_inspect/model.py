"""``DeviceModel``: the request and sensor registries, and the changes between two of them.

Pure data: inspections parse their informs into info records here, a whole inspection is
applied in one step (so a failed one changes nothing), and what changed is computed by
comparing the registries with a snapshot taken when changes were last reported.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import attrs

from .message import Message

T = TypeVar("T")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@attrs.frozen
class RequestInfo:
    """What ``?help`` (and ``?request-timeout-hint``) said about one request."""

    name: str
    description: str
    timeout_hint: float | None = None


@attrs.frozen
class SensorInfo:
    """What ``?sensor-list`` said about one sensor, as the device wrote it."""

    name: str
    description: str
    units: str
    type_name: str
    params: tuple[str, ...] = ()

    @classmethod
    def from_arguments(cls, args: list[bytes]) -> SensorInfo:
        if len(args) < 4:
            raise ValueError(f"#sensor-list needs at least 4 arguments, got {len(args)}")
        # Units, types and parameters repeat across thousands of sensors: share them.
        return cls(_text(args[0]), _text(args[1]), sys.intern(_text(args[2])),
                   sys.intern(_text(args[3])), tuple(sys.intern(_text(a)) for a in args[4:]))


class AttrDict(dict[str, Any]):
    """A dict whose keys are also attributes, the shape of katcp-python's model changes:
    ``changes.sensors.added`` and ``changes["sensors"]["added"]`` both work."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def summary(description: str) -> str:
    """The first line of a request's description: all that servers agree on. aiokatcp, for
    one, lists the first line of a docstring in ``?help`` and the whole of it in ``?help
    NAME``; a model that kept either would change with the form that last described it."""
    lines = description.splitlines()
    return lines[0].strip() if lines else ""


def parse_help(informs: Iterable[Message]) -> tuple[dict[str, str], list[str]]:
    """``#help name description`` informs → descriptions (their :func:`summary`) by name, and
    problems found."""
    found: dict[str, str] = {}
    problems = []
    for inform in informs:
        if not inform.arguments:
            problems.append(f"#help with no arguments: {inform!r}")
            continue
        found[_text(inform.arguments[0])] = (
            summary(_text(inform.arguments[1])) if len(inform.arguments) > 1 else "")
    return found, problems


def parse_timeout_hints(informs: Iterable[Message]) -> tuple[dict[str, float], list[str]]:
    """``#request-timeout-hint name seconds`` informs → positive hints by name (0 means none)."""
    hints: dict[str, float] = {}
    problems = []
    for inform in informs:
        try:
            name, value = inform.arguments[0], float(inform.arguments[1])
        except (IndexError, ValueError):
            problems.append(f"bad #request-timeout-hint: {inform!r}")
            continue
        if value > 0 and math.isfinite(value):
            hints[_text(name)] = value
    return hints, problems


def parse_sensor_list(informs: Iterable[Message]) -> tuple[dict[str, SensorInfo], list[str]]:
    found: dict[str, SensorInfo] = {}
    problems = []
    for inform in informs:
        try:
            info = SensorInfo.from_arguments(inform.arguments)
        except ValueError as exc:
            problems.append(f"{exc}: {inform!r}")
            continue
        found[info.name] = info
    return found, problems


def _merge(registry: dict[str, T], found: Mapping[str, T], asked: str | None) -> None:
    """Apply an inspection's result: all of it (``asked is None``), or just what one named
    inspection covers: the entries it returned, and the asked name if it is now unknown."""
    if asked is None:
        for name in [n for n in registry if n not in found]:
            del registry[name]
    elif asked not in found:
        registry.pop(asked, None)
    for name, info in found.items():
        if registry.get(name) != info:
            registry[name] = info


def _diff(old: Mapping[str, T], new: Mapping[str, T]) -> AttrDict | None:
    added = {n for n in new if n not in old}
    removed = {n for n in old if n not in new}
    modified = {n for n, info in new.items() if n in old and old[n] is not info
                and old[n] != info}
    if not (added or removed or modified):
        return None
    return AttrDict(added=added | modified, removed=removed | modified)


@attrs.frozen
class Snapshot:
    requests: Mapping[str, RequestInfo]
    sensors: Mapping[str, SensorInfo]


class DeviceModel:
    """The registries: request and sensor info by name, in the device's order."""

    def __init__(self) -> None:
        self.requests: dict[str, RequestInfo] = {}
        self.sensors: dict[str, SensorInfo] = {}

    def apply(self, requests: Mapping[str, RequestInfo] | None = None,
              sensors: Mapping[str, SensorInfo] | None = None,
              asked_request: str | None = None, asked_sensor: str | None = None) -> None:
        """Apply one inspection's results (``None`` for a part that was not inspected)."""
        if requests is not None:
            _merge(self.requests, requests, asked_request)
        if sensors is not None:
            _merge(self.sensors, sensors, asked_sensor)

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.requests), dict(self.sensors))

    def changes_since(self, snapshot: Snapshot) -> AttrDict | None:
        """What changed since ``snapshot``, in katcp-python's shape: ``None``, or an
        :class:`AttrDict` with ``requests`` and/or ``sensors``, each holding ``added`` and
        ``removed`` name sets; a modified item is in both."""
        changes = AttrDict()
        for part, old, new in (("requests", snapshot.requests, self.requests),
                               ("sensors", snapshot.sensors, self.sensors)):
            diff = _diff(old, new)
            if diff is not None:
                changes[part] = diff
        return changes or None
