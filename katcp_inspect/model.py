"""``DeviceModel``: the request and sensor registries, what an inspection's answer means for
them, and the changes between two of them.

Pure data: inspections parse their informs into info records here; whether an answer can be
the reply to its question (:func:`read_answer`) and what a whole or a named answer covers
(:meth:`DeviceModel.apply_answers`) are decided here; a whole inspection is applied in one step
(so a failed one changes nothing), and what changed is computed by comparing the registries
with a snapshot taken when changes were last reported. May import ``message`` and ``text``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeVar

import attrs

from .message import Message
from .text import printable

T = TypeVar("T")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


@attrs.frozen
class RequestInfo:
    """What ``?help`` (and ``?request-timeout-hint``) said about one request."""

    name: str
    description: str
    timeout_hint: float | None = None


class SensorInfo(NamedTuple):
    """What ``?sensor-list`` said about one sensor, as the device wrote it. A named tuple:
    thousands are built per sync, compared after each, and held for the model's life."""

    name: str
    description: str
    units: str
    type_name: str
    params: tuple[str, ...] = ()

    @classmethod
    def from_arguments(cls, args: list[bytes],
                       shared: dict[bytes, str] | None = None) -> SensorInfo:
        """The info of one ``#sensor-list`` inform's arguments. Units, types and parameters
        repeat across thousands of sensors: each is decoded once per ``shared`` cache and
        the one string shared (interned)."""
        if len(args) < 4:
            raise ValueError(f"#sensor-list needs at least 4 arguments, got {len(args)}")
        if shared is None:
            shared = {}
        name = args[0].decode("utf-8", "surrogateescape")
        return _new_tuple(cls, (
            name, args[1].decode("utf-8", "surrogateescape"), _shared(shared, args[2]),
            _shared(shared, args[3]),
            tuple([_shared(shared, a) for a in args[4:]]) if len(args) > 4 else ()))


#: Builds a named tuple without its generated ``__new__`` (a third of the cost).
_new_tuple = tuple.__new__
#: Distinct units, types and parameters a listing may share, past which it decodes anew:
#: a device chooses them, so the cache must not grow without bound.
MAX_SHARED = 4096


def _shared(shared: dict[bytes, str], raw: bytes) -> str:
    text = shared.get(raw)
    if text is None:
        text = sys.intern(raw.decode("utf-8", "surrogateescape"))
        if len(shared) < MAX_SHARED:
            shared[raw] = text
    return text


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
    shared: dict[bytes, str] = {}
    for inform in informs:
        try:
            info = SensorInfo.from_arguments(inform.arguments, shared)
        except ValueError as exc:
            problems.append(f"{exc}: {inform!r}")
            continue
        found[info.name] = info
    return found, problems


@attrs.frozen
class Question:
    """One inspection request: what it lists (``help``, ``hint`` for timeout hints, or
    ``sensors``), the request that asks it, and the name it asks about (None: all of them;
    ``/.../``: a pattern)."""

    kind: str
    request: str
    asked: str | None

    @property
    def is_pattern(self) -> bool:
        return self.asked is not None and self.asked.startswith("/") and self.asked.endswith("/")


@attrs.frozen
class Answer:
    """One question's answer: the items it describes by name, the informs that made no sense
    (skipped), and why it cannot be the reply to its question (None when it can be)."""

    question: Question
    found: Mapping[str, Any]
    problems: list[str] = attrs.Factory(list)
    inconsistency: str | None = None


_PARSERS: dict[str, Any] = {
    "help": lambda informs: _request_infos(*parse_help(informs)),
    "hint": parse_timeout_hints,
    "sensors": parse_sensor_list,
}


def _request_infos(descriptions: dict[str, str], problems: list[str]
                   ) -> tuple[dict[str, RequestInfo], list[str]]:
    return {name: RequestInfo(name, text) for name, text in descriptions.items()}, problems


def _count(reply: Message) -> int | None:
    """The number of informs a listing's reply (``!name ok N``) announces, if it does."""
    if len(reply.arguments) < 2:
        return None
    try:
        return int(reply.arguments[1])
    except ValueError:
        return None


def read_answer(question: Question, reply: Message | None, informs: list[Message]) -> Answer:
    """Parse the answer to ``question`` (``reply`` None: a named question the device refused,
    which says the name is unknown, whatever the wording). It cannot be the reply to the
    question if its count (``!name ok N``) matches neither the informs that came nor the
    well-formed ones, or if a named question's answer names anything else: without message
    ids that is how a duplicated or stray reply shows."""
    if reply is None:
        return Answer(question, {})
    found, problems = _PARSERS[question.kind](informs)
    count = _count(reply)
    why = None
    if count is not None and count not in (len(informs), len(informs) - len(problems)):
        why = f"the reply counts {count} informs, {len(informs)} came"
    elif question.asked is not None and not question.is_pattern and any(
            name != question.asked for name in found):
        why = "it names " + printable(", ".join(sorted(found))[:200])
    return Answer(question, found, problems, why)


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

    def apply_answers(self, answers: Iterable[Answer]) -> None:
        """Apply every answer of one inspection: a whole listing replaces its half; a named
        one covers its name (and what a ``/pattern/`` returned); timeout hints join the
        requests listed with them. Linear in the answers."""
        answers = list(answers)
        hints: dict[str, float] = {}
        for answer in answers:
            if answer.question.kind == "hint":
                hints.update(answer.found)
        for answer in answers:
            asked = answer.question.asked
            if answer.question.kind == "help":
                self.apply(requests={name: attrs.evolve(info, timeout_hint=hints[name])
                                     if name in hints else info
                                     for name, info in answer.found.items()},
                           asked_request=asked)
            elif answer.question.kind == "sensors":
                self.apply(sensors=answer.found, asked_sensor=asked)

    def contradicted_by(self, inform: Message) -> bool:
        """Whether a listing inform (``#sensor-list`` or ``#help``) describes an item otherwise
        than the model does (unparsable informs contradict nothing)."""
        if inform.name == "sensor-list":
            try:
                info = SensorInfo.from_arguments(inform.arguments)
            except ValueError:
                return False
            return self.sensors.get(info.name) != info
        if inform.name == "help" and inform.arguments:
            found, _ = parse_help([inform])
            return any(self._description(name) != text for name, text in found.items())
        return False

    def _description(self, name: str) -> str | None:
        info = self.requests.get(name)
        return None if info is None else info.description

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
