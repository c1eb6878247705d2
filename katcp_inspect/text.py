"""Device-supplied text made safe to show: in log lines, exception texts and terminal output.

A device controls the bytes of sensor names, descriptions, values and ``#disconnect`` reasons.
Shown raw, a newline forges a separate log line and an escape sequence drives the reader's
terminal. :func:`printable` keeps printable text as it is (the common case costs one
``str.isprintable`` call) and spells everything else out, backslashes included so that the
result is unambiguous: what the device sent can always be read back from it.
"""

from __future__ import annotations

__all__ = ["printable"]

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _spell(char: str) -> str:
    named = _NAMED.get(char)
    if named is not None:
        return named
    if char.isprintable():
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, kept by surrogateescape
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def printable(text: str | bytes | bytearray | memoryview, *,
              escape_backslash: bool = True) -> str:
    """``text`` with control, format and separator characters (and backslashes) escaped.

    Bytes are decoded as UTF-8; undecodable bytes appear as ``\\xNN``. Text that already
    escapes its own backslashes (KATCP's wire form, or a message built from escaped parts)
    is passed with ``escape_backslash=False``, so that they are not doubled.
    """
    if not isinstance(text, str):
        text = bytes(text).decode("utf-8", errors="surrogateescape")
    if text.isprintable() and (not escape_backslash or "\\" not in text):
        return text
    if escape_backslash:
        return "".join(_spell(char) for char in text)
    return "".join(char if char == "\\" else _spell(char) for char in text)
