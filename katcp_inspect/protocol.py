"""Protocol versions and flags: what a device said it speaks, and what follows from that."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import ClassVar

import attrs

from .errors import ProtocolError
from .strategies import STRATEGIES, strategies_for

_VERSION_RE = re.compile(r"([0-9]+)\.([0-9]+)(?:-([A-Za-z]*))?\Z")

#: Sampling strategies each major version defines (event-rate and differential-rate are v5);
#: views of :data:`katcp_inspect.strategies.STRATEGIES`.
STRATEGIES_V4 = strategies_for(4)
STRATEGIES_V5 = strategies_for(5)


def _to_flag_order(flags: str | bytes | Iterable[str | bytes]) -> str:
    """The flags as a string of distinct letters, in the order given (sorted when given as a
    set, which has no order of its own)."""
    if isinstance(flags, bytes):
        flags = flags.decode("ascii")
    elif isinstance(flags, (set, frozenset)):
        flags = sorted(flags)
    out: dict[str, None] = {}
    for flag in flags:
        text = flag.decode("ascii") if isinstance(flag, bytes) else str(flag)
        if len(text) != 1 or not ("A" <= text <= "Z" or "a" <= text <= "z"):
            raise ProtocolError(f"protocol flags are single letters, not {text!r}")
        out[text] = None
    return "".join(out)


@attrs.frozen(init=False)
class ProtocolFlags:
    """A device's KATCP version (``major.minor``) and the flags it announced.

    The constructor accepts the flags as a string (``"MIB"``), or an iterable of one-letter
    ``str`` or ``bytes``, as katcp-python's does. Flags that the stated version cannot have
    (``I`` before v5, ``T`` or ``B`` before v5.1) raise :class:`ProtocolError`; unknown letters
    are kept and ignored, as the specification reserves them for the future.
    """

    MULTI_CLIENT: ClassVar[str] = "M"
    MESSAGE_IDS: ClassVar[str] = "I"
    REQUEST_TIMEOUT_HINTS: ClassVar[str] = "T"
    BULK_SET_SENSOR_SAMPLING: ClassVar[str] = "B"

    major: int
    minor: int
    flags: frozenset[str]
    #: The flags in the order the device announced them, so that ``str()`` shows what it sent
    #: (devices order them differently; equality ignores the order).
    spelling: str = attrs.field(eq=False, repr=False)

    def __init__(self, major: int, minor: int,
                 flags: str | bytes | Iterable[str | bytes] = ()) -> None:
        spelling = _to_flag_order(flags)
        flag_set = frozenset(spelling)
        if major < 0 or minor < 0:
            raise ProtocolError(f"negative protocol version {major}.{minor}")
        if self.MESSAGE_IDS in flag_set and major < 5:
            raise ProtocolError(f"message ids need KATCP 5 or later, not {major}.{minor}")
        for flag in (self.REQUEST_TIMEOUT_HINTS, self.BULK_SET_SENSOR_SAMPLING):
            if flag in flag_set and (major, minor) < (5, 1):
                raise ProtocolError(f"flag {flag} needs KATCP 5.1 or later, not {major}.{minor}")
        self.__attrs_init__(major, minor, flag_set, spelling)

    @classmethod
    def parse_version(cls, version: str | bytes) -> ProtocolFlags:
        """Parse the argument of ``#version-connect katcp-protocol``, e.g. ``5.1-MIBT``.

        Raises :class:`ProtocolError` for a string that is not ``major.minor[-flags]`` or that
        names flags its version cannot have. (katcp-python turned garbage into version 0.0 and
        raised a bare ``ValueError`` inside its inform handler, which hung its clients: B15.)
        """
        text = version.decode("ascii", "backslashreplace") if isinstance(version, bytes) \
            else version
        match = _VERSION_RE.match(text.strip())
        if not match:
            raise ProtocolError(f"unparsable KATCP protocol version {text!r}")
        return cls(int(match.group(1)), int(match.group(2)), match.group(3) or "")

    @property
    def multi_client(self) -> bool:
        return self.MULTI_CLIENT in self.flags

    @property
    def message_ids(self) -> bool:
        return self.MESSAGE_IDS in self.flags

    @property
    def request_timeout_hints(self) -> bool:
        return self.REQUEST_TIMEOUT_HINTS in self.flags

    @property
    def bulk_set_sensor_sampling(self) -> bool:
        return self.BULK_SET_SENSOR_SAMPLING in self.flags

    @property
    def timestamp_scale(self) -> float:
        """Seconds per unit of a wire timestamp: KATCP 4 counts milliseconds, 5 seconds."""
        return 0.001 if self.major < 5 else 1.0

    def supports(self, flag: str) -> bool:
        return flag in self.flags

    def strategy_allowed(self, strategy: str) -> bool:
        """Whether a device of this version knows the sampling ``strategy``."""
        info = STRATEGIES.get(strategy)
        return info is not None and info.allowed(self.major)

    def __str__(self) -> str:
        flags = self.spelling
        return f"{self.major}.{self.minor}-{flags}" if flags else f"{self.major}.{self.minor}"


#: What a device that greets with ``#version`` / ``#build-state`` (or not at all) is taken to be.
KATCP_V4 = ProtocolFlags(4, 0)
