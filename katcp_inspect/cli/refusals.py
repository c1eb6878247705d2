"""Which watched sensors the device would not sample as asked (``watch --strategy period -1``
on a device that refuses it): ``watch`` marks them, and exits 2 when it refuses them all."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from ..inspecting_client import InspectingClientAsync
from ..message import Message
from .formatting import escape_text


class Refusals:
    """The refusals of one connection, asked after each sync: the client's rule is already
    applied then, so each sensor whose strategy the device confirmed is answered at once,
    without a request, and only the refused ones are asked again (and refused again)."""

    def __init__(self, client: InspectingClientAsync, strategy: tuple[str, ...]) -> None:
        self.client = client
        self.strategy = strategy
        #: Refused sensor name → the device's reason (escaped, for display).
        self.refused: dict[str, str] = {}

    async def check(self, names: Sequence[str]) -> dict[str, str]:
        """The refusals among ``names`` (kept as they were if the client lost the sync)."""
        replies = await asyncio.gather(*(self.client.set_sampling_strategy(name, *self.strategy)
                                         for name in names))
        if self.client.state.synced:
            self.refused = {name: reason(reply) for name, (reply, _) in zip(names, replies)
                            if not reply.reply_ok()}
        return self.refused


def reason(reply: Message) -> str:
    """A ``fail`` reply's text, escaped."""
    words = [escape_text(bytes(argument)) for argument in reply.arguments[1:]]
    return " ".join(words) or "no reason given"
