"""``Request``: what the device model knows about one of the device's requests."""

from __future__ import annotations

from typing import NamedTuple


class Request(NamedTuple):
    """A device request: its name, its ``?help`` description and its timeout hint in seconds
    (``None`` when the device gave none; a hint of 0 means "no hint" and is stored as None).

    A named tuple with the fields of katcp-python's ``RequestType``, so the default
    ``request_factory(name=..., description=..., timeout_hint=...)`` builds one.
    """

    name: str
    description: str
    timeout_hint: float | None


#: katcp-python's name for the same type.
RequestType = Request
