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
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple, TypeVar, cast

import attrs

from .message import Message, MessageType
from .text import printable

T = TypeVar("T")
#: The arguments of one inform.
Arguments = Sequence[bytes]


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
    thousands are built per sync and compared after each; the model holds their fields as
    plain tuples (see :class:`SensorRegistry`)."""

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
        return _new_tuple(cls, sensor_fields(args, {} if shared is None else shared))


#: The fields of a :class:`SensorInfo` in a plain tuple.
SensorFields = tuple[str, str, str, str, tuple[str, ...]]
#: Builds a named tuple without its generated ``__new__`` (a third of the cost).
_new_tuple = tuple.__new__


def sensor_fields(args: Arguments, shared: dict[bytes, str]) -> SensorFields:
    """:meth:`SensorInfo.from_arguments`, as a plain tuple."""
    if len(args) < 4:
        raise ValueError(f"#sensor-list needs at least 4 arguments, got {len(args)}")
    return (args[0].decode("utf-8", "surrogateescape"),
            args[1].decode("utf-8", "surrogateescape"), _shared(shared, args[2]),
            _shared(shared, args[3]),
            tuple([_shared(shared, a) for a in args[4:]]) if len(args) > 4 else ())
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


def _shown(name: str, args: Arguments) -> str:
    """An inform for a problem's text, as its :class:`Message` shows it."""
    return repr(Message.trusted(MessageType.INFORM, name, list(args)))


def parse_help(informs: Iterable[Arguments]) -> tuple[dict[str, str], list[str]]:
    """``#help name description`` informs' arguments → descriptions (their :func:`summary`)
    by name, and problems found."""
    found: dict[str, str] = {}
    problems = []
    for args in informs:
        if not args:
            problems.append(f"#help with no arguments: {_shown('help', args)}")
            continue
        found[_text(args[0])] = summary(_text(args[1])) if len(args) > 1 else ""
    return found, problems


def parse_timeout_hints(informs: Iterable[Arguments]) -> tuple[dict[str, float], list[str]]:
    """``#request-timeout-hint name seconds`` informs' arguments → positive hints by name (0
    means none)."""
    hints: dict[str, float] = {}
    problems = []
    for args in informs:
        try:
            name, value = args[0], float(args[1])
        except (IndexError, ValueError):
            problems.append(f"bad #request-timeout-hint: {_shown('request-timeout-hint', args)}")
            continue
        if value > 0 and math.isfinite(value):
            hints[_text(name)] = value
    return hints, problems


class SensorListReader:
    """Reads one ``#sensor-list`` inform's arguments at a time, as they arrive: its sensor's
    fields, or the problem that makes it unreadable (a ``str``). An inspection reads each
    inform as it comes, while the device writes the next ones: parsed after the reply, ten
    thousand would keep the sync waiting for as long as a tenth of the device's own time."""

    __slots__ = ("_shared",)

    def __init__(self) -> None:
        self._shared: dict[bytes, str] = {}

    def __call__(self, args: Arguments) -> SensorFields | str:
        try:
            return sensor_fields(args, self._shared)
        except ValueError as exc:
            return f"{exc}: {_shown('sensor-list', args)}"


def collect_sensor_list(items: Iterable[SensorFields | str]
                        ) -> tuple[dict[str, SensorFields], list[str]]:
    """What a :class:`SensorListReader` read → each sensor's fields (see
    :class:`SensorRegistry`) by name, and problems found."""
    found: dict[str, SensorFields] = {}
    problems = []
    for item in items:
        if isinstance(item, str):
            problems.append(item)
        else:
            found[item[0]] = item
    return found, problems


def _plain(info: SensorFields) -> SensorFields:
    """The fields of a :class:`SensorInfo` (or the plain tuple itself) as a plain tuple."""
    return cast("SensorFields", tuple(info))


class SensorRegistry(MutableMapping[str, SensorInfo]):
    """The model's sensors by name, in the device's order, each a :class:`SensorInfo` when
    read. Held as plain tuples (:attr:`raw`), which the garbage collector stops tracking,
    where it would scan a million named tuples in every full collection of a fleet."""

    __slots__ = ("raw",)

    def __init__(self, raw: dict[str, SensorFields] | None = None) -> None:
        self.raw: dict[str, SensorFields] = {} if raw is None else raw

    def __getitem__(self, name: str) -> SensorInfo:
        return _new_tuple(SensorInfo, self.raw[name])

    def get(self, name: str, default: Any = None) -> Any:
        fields = self.raw.get(name)
        return default if fields is None else _new_tuple(SensorInfo, fields)

    def __contains__(self, name: object) -> bool:
        return name in self.raw

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def __setitem__(self, name: str, info: SensorFields) -> None:
        self.raw[name] = _plain(info)

    def __delitem__(self, name: str) -> None:
        del self.raw[name]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SensorRegistry):
            return self.raw == other.raw
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def copy(self) -> SensorRegistry:
        return SensorRegistry(dict(self.raw))

    def __repr__(self) -> str:
        return f"SensorRegistry({self.raw!r})"


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

    def reader(self) -> Callable[[Arguments], Any]:
        """What reads each inform of the answer as it arrives (see :func:`read_answer`)."""
        return SensorListReader() if self.kind == "sensors" else tuple


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
    "sensors": collect_sensor_list,
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


def read_answer(question: Question, reply: Message | None, informs: Sequence[Any]) -> Answer:
    """Parse the answer to ``question`` from its reply and its informs, each as the
    question's :meth:`~Question.reader` read it (``reply``
    None: a named question the device refused,
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
        if not registry:  # the first listing: ten thousand entries, nothing to compare
            registry.update(found)
            return
        for name in [n for n in registry if n not in found]:
            del registry[name]
    elif asked not in found:
        registry.pop(asked, None)
    for name, info in found.items():
        if registry.get(name) != info:
            registry[name] = info


def _diff(old: Mapping[str, T], new: Mapping[str, T]) -> AttrDict | None:
    if not old:  # the first listing
        return AttrDict(added=set(new), removed=set()) if new else None
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
    sensors: SensorRegistry


class DeviceModel:
    """The registries: request and sensor info by name, in the device's order."""

    def __init__(self) -> None:
        self.requests: dict[str, RequestInfo] = {}
        self.sensors = SensorRegistry()

    def apply(self, requests: Mapping[str, RequestInfo] | None = None,
              sensors: Mapping[str, SensorFields] | None = None,
              asked_request: str | None = None, asked_sensor: str | None = None) -> None:
        """Apply one inspection's results (``None`` for a part that was not inspected);
        ``sensors`` as :class:`SensorInfo` or their plain fields."""
        if requests is not None:
            _merge(self.requests, requests, asked_request)
        if sensors is not None:
            _merge(self.sensors.raw, {name: info if info.__class__ is tuple else _plain(info)
                                      for name, info in sensors.items()}, asked_sensor)

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
                fields = sensor_fields(inform.arguments, {})
            except ValueError:
                return False
            return self.sensors.raw.get(fields[0]) != fields
        if inform.name == "help" and inform.arguments:
            found, _ = parse_help([inform.arguments])
            return any(self._description(name) != text for name, text in found.items())
        return False

    def _description(self, name: str) -> str | None:
        info = self.requests.get(name)
        return None if info is None else info.description

    def snapshot(self) -> Snapshot:
        return Snapshot(dict(self.requests), self.sensors.copy())

    def changes_since(self, snapshot: Snapshot) -> AttrDict | None:
        """What changed since ``snapshot``, in katcp-python's shape: ``None``, or an
        :class:`AttrDict` with ``requests`` and/or ``sensors``, each holding ``added`` and
        ``removed`` name sets; a modified item is in both."""
        changes = AttrDict()
        parts: tuple[tuple[str, Mapping[str, Any], Mapping[str, Any]], ...] = (
            ("requests", snapshot.requests, self.requests),
            ("sensors", snapshot.sensors.raw, self.sensors.raw))
        for part, old, new in parts:
            diff = _diff(old, new)
            if diff is not None:
                changes[part] = diff
        return changes or None
