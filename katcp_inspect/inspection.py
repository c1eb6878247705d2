"""Inspection: what the model needs from the device (:class:`Work`), the requests that ask for
it, and applying their answers to the model in one step.

What an answer means (whether it can be the reply to its question, what a named one covers)
is the model's rule (:mod:`katcp_inspect.model`); here are the requests, the failures and the
counting. May import ``errors``, ``model``, ``stats``, ``text`` and (for its types)
``client``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

import attrs

from .errors import KatcpInspectError
from .message import Message
from .model import Answer, AttrDict, DeviceModel, Question, read_answer
from .stats import InspectingStats, OnceLogger
from .text import printable

if TYPE_CHECKING:
    from .client import DeviceClient

#: Past this many changed names in one half (requests or sensors), that half is listed whole:
#: a burst of named ``#interface-changed`` costs one listing, not a request per name.
MAX_NAMED_INSPECTIONS = 100
#: Errors that say the device or the connection failed an inspection (anything else is a bug).
EXPECTED_FAILURES = (KatcpInspectError, ConnectionError, TimeoutError)


class SyncError(KatcpInspectError):
    """An inspection failed: the device refused it, timed out, or the connection went away."""


class InconsistentAnswer(SyncError):
    """An answer that cannot be the reply to the request it matched: a named inspection that
    lists other names, or a reply whose count disagrees with its informs. Without message ids
    (KATCP 4) it is how a duplicated or stray reply shows; it is retried as a whole listing,
    which no stray answer to a named request can be mistaken for."""


@attrs.define
class Work:
    """What the model needs from the device: everything, or some names."""

    all_requests: bool = False
    all_sensors: bool = False
    requests: set[str] = attrs.Factory(set)
    sensors: set[str] = attrs.Factory(set)

    def __bool__(self) -> bool:
        return self.all_requests or self.all_sensors or bool(self.requests or self.sensors)

    def merge(self, other: Work) -> None:
        self.all_requests |= other.all_requests
        self.all_sensors |= other.all_sensors
        self.requests |= other.requests
        self.sensors |= other.sensors

    def widened(self) -> Work:
        """The same work with each half that names items listed whole instead."""
        return Work(all_requests=self.all_requests or bool(self.requests),
                    all_sensors=self.all_sensors or bool(self.sensors))

    def coalesced(self) -> Work:
        """Many names of one half are cheaper as one listing of that half."""
        if len(self.requests) <= MAX_NAMED_INSPECTIONS >= len(self.sensors):
            return self
        return Work(self.all_requests or len(self.requests) > MAX_NAMED_INSPECTIONS,
                    self.all_sensors or len(self.sensors) > MAX_NAMED_INSPECTIONS,
                    self.requests if len(self.requests) <= MAX_NAMED_INSPECTIONS else set(),
                    self.sensors if len(self.sensors) <= MAX_NAMED_INSPECTIONS else set())


class Inspector:
    """Asks one device what a :class:`Work` names and applies the answers to the model; calls
    ``on_change(changes)`` when that changed the model."""

    def __init__(self, client: DeviceClient, model: DeviceModel, stats: InspectingStats,
                 problems: OnceLogger, on_change: Callable[[AttrDict], None]) -> None:
        self._client = client
        self._model = model
        self._stats = stats
        self._problems = problems
        self._on_change = on_change

    async def inspect(self, work: Work, timeout: float) -> None:
        """Ask for what ``work`` names, all requests in flight together (each allowed
        ``timeout`` seconds), then apply the answers in one step. If anything fails, or any
        answer cannot be the reply to its request, nothing is applied."""
        questions = self._questions(work.coalesced())
        results = await asyncio.gather(*(self._ask(q, timeout) for q in questions),
                                       return_exceptions=True)
        replies = []
        for result in results:
            if isinstance(result, EXPECTED_FAILURES):
                raise SyncError(f"inspection of {self._client.address} failed: "
                                f"{result}") from result
            if isinstance(result, BaseException):
                raise result
            replies.append(result)
        answers = [self._checked(read_answer(question, *reply))
                   for question, reply in zip(questions, replies)]
        before = self._model.snapshot()
        self._model.apply_answers(answers)
        self._stats.syncs += 1
        changes = self._model.changes_since(before)
        if changes is not None:
            self._on_change(changes)

    def _questions(self, work: Work) -> list[Question]:
        flags = self._client.protocol_flags
        hints = flags is not None and flags.request_timeout_hints
        questions = []
        for asked in [None] if work.all_requests else sorted(work.requests):
            questions.append(Question("help", "help", asked))
            if hints:
                questions.append(Question("hint", "request-timeout-hint", asked))
        if work.all_sensors:
            questions.append(Question("sensors", "sensor-list", None))
        else:
            questions.extend(Question("sensors", "sensor-list", asked)
                             for asked in sorted(work.sensors))
        return questions

    async def _ask(self, question: Question,
                   timeout: float) -> tuple[Message | None, list[Any]]:
        """Send one inspection request; the reply and its informs' arguments. A named one the
        device refused comes back as ``(None, [])``: the name is unknown, whatever the
        wording of the refusal (B4)."""
        args = () if question.asked is None else (question.asked,)
        reply, informs = await self._client.request_arguments(question.request, *args,
                                                              timeout=timeout,
                                                              read=question.reader())
        if reply.reply_ok():
            return reply, informs
        if question.asked is not None:
            return None, []
        raise SyncError(f"?{question.request} failed during sync: {reply}")

    def _checked(self, answer: Answer) -> Answer:
        """Count and log the answer's bad informs; raise if it cannot be the reply."""
        question = answer.question
        for problem in answer.problems:
            self._stats.bad_informs += 1
            self._problems.log(("inform", question.kind), "%s: %s", self._client.address,
                               problem)
        if answer.inconsistency is None:
            return answer
        self._stats.inconsistent_answers += 1
        asked = "" if question.asked is None else " " + printable(question.asked)
        self._problems.log(("inconsistent", question.kind), "%s: inconsistent answer to ?%s%s "
                           "(%s); not applied, listed again", self._client.address,
                           question.request, asked, answer.inconsistency)
        raise InconsistentAnswer(f"inconsistent answer to ?{question.request}{asked}: "
                                 f"{answer.inconsistency}")
