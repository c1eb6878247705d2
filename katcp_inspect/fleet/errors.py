""":class:`ConfigError`, what a fleet raises for a configuration it cannot take, and how it
names the place of the problem: a dotted key path, as the TOML file spells it."""

from __future__ import annotations

import json
import re

#: Where a problem is: the keys from the top of the configuration, e.g.
#: ``("devices", "m000", "address")``.
Where = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def dotted(where: Where) -> str:
    """``where`` as a TOML dotted key: ``devices.m000.address``, ``sampling."^rx\\\\."``
    (keys that are not bare quoted, and escaped, as a TOML basic string)."""
    return ".".join(key if _BARE_KEY.match(key) else toml_string(key) for key in where)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string. JSON's escapes are TOML's (DEL aside, which TOML
    wants escaped too), so the result is also safe to print, whatever ``text`` holds."""
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


class ConfigError(ValueError):
    """A fleet configuration that cannot be used: an unknown key, a bad address, a bad
    strategy or pattern, a duplicate device, a file that is not TOML...

    ``str()`` gives ``FILE:LINE: KEY: what is wrong`` (the file and line when it came from a
    file). The parts are attributes: :attr:`message` (what is wrong), :attr:`where` (the key
    path, see :func:`dotted`), :attr:`file` and :attr:`line` (1-based).
    """

    def __init__(self, message: str, where: Where = (), *, file: str | None = None,
                 line: int | None = None) -> None:
        self.message = message
        self.where = tuple(where)
        self.file = file
        self.line = line
        super().__init__(self.text())

    def text(self) -> str:
        place = f"{dotted(self.where)}: " if self.where else ""
        if self.file is None:
            return place + self.message
        at = f"{self.file}:{self.line}: " if self.line is not None else f"{self.file}: "
        return at + place + self.message

    def within(self, outer: Where) -> ConfigError:
        """The same problem, inside the table at ``outer``."""
        return ConfigError(self.message, (*outer, *self.where), file=self.file, line=self.line)

    def located(self, file: str, line: int | None) -> ConfigError:
        """The same problem, at ``line`` of ``file``."""
        return ConfigError(self.message, self.where, file=file, line=line)


__all__ = ["ConfigError", "Where", "dotted", "toml_string"]
