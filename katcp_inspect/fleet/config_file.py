"""The fleet's configuration file: TOML read with ``tomllib`` (the ``tomli`` backport before
Python 3.11), checked key by key, every problem reported with the file and the line; and
written back (``katcp-inspect sim --devices N --write-config FILE``).

The format (docs/fleet.md)::

    [fleet]                  # optional: max_syncing, connect_spread
    [redis]                  # optional: url, prefix, lease (mirror the fleet into Redis)
    [client]                 # options of every device's client (sync_timeout, ...)
    [sampling]               # rules for every device: "regex" = "strategy"
    [devices]
    m000 = "127.0.0.1:7147"  # a device: its name and address
    [devices.m001]           # ... or a table, with options and rules of its own
    address = "127.0.0.1:7148"
    client = { sync_timeout = 30.0 }
    [devices.m001.sampling]
    "^cpu\\\\." = "period 1.0"
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import (
    DEFAULT_CONNECT_SPREAD,
    DEFAULT_LEASE,
    DEFAULT_MAX_SYNCING,
    DeviceConfig,
    FleetConfig,
    RedisConfig,
)
from .errors import ConfigError, Where, dotted, toml_string

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

_TOP_KEYS = ("fleet", "redis", "client", "sampling", "devices")
_FLEET_KEYS = ("max_syncing", "connect_spread")
_REDIS_KEYS = ("url", "prefix", "lease")
_DEVICE_KEYS = ("address", "client", "sampling")

# tomllib gives the values, not where they are. The lines of keys are found by scanning the
# text a line at a time: a table header ([a.b] or [[a.b]]) sets the current table; a line
# "key = ..." (a dotted key too) defines the current table's path plus that key. Each key's
# text is decoded by tomllib itself (by parsing "<key> = 0"), so quoted keys and their escapes
# read exactly as the document's. Lines inside multi-line strings are skipped; keys of inline
# tables are not found, and a problem there is reported at the line of the nearest key found.
_SIMPLE_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\\n]|\\.)*"|'[^'\n]*')"""
_KEY = rf"{_SIMPLE_KEY}(?:[ \t]*\.[ \t]*{_SIMPLE_KEY})*"
_HEADER = re.compile(rf"[ \t]*\[\[?[ \t]*({_KEY})[ \t]*\]")
_ASSIGNMENT = re.compile(rf"[ \t]*({_KEY})[ \t]*=")
_AT_LINE = re.compile(r" \(at (?:line (\d+), column \d+|end of document)\)\Z")
_DECLARED_TWICE = re.compile(r"Can ?not declare (\(.*\)) twice")
_OVERWRITE = re.compile(r"Can ?not overwrite a value")


def _key_path(text: str) -> Where | None:
    try:
        document: Any = tomllib.loads(text + " = 0")
    except tomllib.TOMLDecodeError:
        return None
    path = []
    while isinstance(document, dict) and len(document) == 1:
        key, document = next(iter(document.items()))
        path.append(key)
    return tuple(path)


def _opens_multiline(line: str) -> str | None:
    """The delimiter of a multi-line string that ``line`` leaves open, if any."""
    for quotes in ('"""', "'''"):
        if line.count(quotes) % 2:
            return quotes
    return None


class KeyLines:
    """The line (1-based) of each key and table header of a TOML text (see above)."""

    def __init__(self, text: str) -> None:
        self.first: dict[Where, int] = {}
        self.at_line: dict[int, Where] = {}
        self.last_line = max(len(text.splitlines()), 1)
        table: Where = ()
        closing: str | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if closing is not None:
                if line.count(closing) % 2:
                    closing = None
                continue
            path = None
            header = _HEADER.match(line)
            if header is not None:
                path = _key_path(header.group(1))
                table = path or ()
            else:
                assignment = _ASSIGNMENT.match(line)
                key = _key_path(assignment.group(1)) if assignment is not None else None
                path = table + key if key is not None else None
            if path is not None:
                self.first.setdefault(path, number)
                self.at_line[number] = path
            closing = _opens_multiline(line)

    def line_of(self, where: Where) -> int | None:
        """The line of ``where``, or of the nearest enclosing key that was found."""
        for size in range(len(where), 0, -1):
            prefix = where[:size]
            if prefix in self.first:
                return self.first[prefix]
            inside = [line for path, line in self.first.items() if path[:size] == prefix]
            if inside:
                return min(inside)
        return None


def load_config(path: str | Path) -> FleetConfig:
    """Read and check the fleet configuration in ``path`` (see the module's docstring)."""
    name = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", file=name) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte {exc.start})", file=name) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _decode_error(exc, KeyLines(text), name) from None
    try:
        return _fleet_config(document, name)
    except ConfigError as exc:
        raise exc.located(name, KeyLines(text).line_of(exc.where)) from None


def _decode_error(exc: Exception, lines: KeyLines, file: str) -> ConfigError:
    """tomllib's error with the line as a number of its own, and duplicates named."""
    message = str(exc)
    at = _AT_LINE.search(message)
    line = lines.last_line if at is not None and at.group(1) is None else (
        int(at.group(1)) if at is not None else getattr(exc, "lineno", None))
    message = message[:at.start()] if at is not None else message
    twice = _DECLARED_TWICE.match(message)
    where = None
    if twice is not None:
        try:
            where = tuple(str(key) for key in ast.literal_eval(twice.group(1)))
        except (ValueError, SyntaxError):
            where = None
    elif _OVERWRITE.match(message) and line is not None:
        where = lines.at_line.get(line)
    if where is None:
        return ConfigError(f"not valid TOML: {message}", file=file, line=line)
    first = lines.first.get(where)
    earlier = f" (first defined at line {first})" if first is not None and first != line else ""
    if len(where) == 2 and where[0] == "devices":
        return ConfigError(f"duplicate device name {where[1]!r}{earlier}", where, file=file,
                           line=line)
    return ConfigError(f"defined twice{earlier}", where, file=file, line=line)


def _table(container: Mapping[str, Any], key: str, where: Where) -> dict[str, Any]:
    value = container.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"must be a table, not {value!r}", (*where, key))
    return value


def _only(table: Mapping[str, Any], allowed: tuple[str, ...], where: Where) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"unknown key (expected one of: {', '.join(allowed)})",
                              (*where, key))


def _fleet_config(document: dict[str, Any], source: str) -> FleetConfig:
    _only(document, _TOP_KEYS, ())
    fleet = _table(document, "fleet", ())
    _only(fleet, _FLEET_KEYS, ("fleet",))
    devices = {name: _device(name, spec)
               for name, spec in _table(document, "devices", ()).items()}
    return FleetConfig(devices, _table(document, "sampling", ()),
                       _table(document, "client", ()),
                       fleet.get("max_syncing", DEFAULT_MAX_SYNCING),
                       fleet.get("connect_spread", DEFAULT_CONNECT_SPREAD),
                       _redis(document), source=source)


def _redis(document: dict[str, Any]) -> RedisConfig | None:
    if "redis" not in document:
        return None
    table = _table(document, "redis", ())
    _only(table, _REDIS_KEYS, ("redis",))
    if "url" not in table:
        raise ConfigError('no url (expected url = "redis://HOST:PORT")', ("redis",))
    return RedisConfig(table["url"], table.get("prefix"), table.get("lease", DEFAULT_LEASE))


def _device(name: str, spec: Any) -> DeviceConfig:
    where = ("devices", name)
    if isinstance(spec, dict):
        _only(spec, _DEVICE_KEYS, where)
        if "address" not in spec:
            raise ConfigError('no address (expected address = "HOST:PORT")', where)
        client, sampling = _table(spec, "client", where), _table(spec, "sampling", where)
        address = spec["address"]
    elif isinstance(spec, str):
        address, client, sampling = spec, {}, {}
    else:
        raise ConfigError(f'a device is "HOST:PORT" or a table with an address, not {spec!r}',
                          where)
    try:
        return DeviceConfig(address, client, sampling)
    except ConfigError as exc:
        raise exc.within(where) from None


# ---------------------------------------------------------------------- writing


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return toml_string(str(value))


def _pairs(table: Mapping[str, Any]) -> list[str]:
    return [f"{dotted((key,))} = {_value(value)}" for key, value in table.items()]


def dump_config(config: FleetConfig) -> str:
    """``config`` as TOML that :func:`load_config` reads back to an equal configuration."""
    lines = ["# A katcp-inspect fleet: katcp-inspect fleet FILE (format: docs/fleet.md)", "",
             "[fleet]", f"max_syncing = {config.max_syncing}",
             f"connect_spread = {_value(float(config.connect_spread))}"]
    if config.redis is not None:
        redis = {"url": config.redis.url, "prefix": config.redis.prefix,
                 "lease": float(config.redis.lease)}
        lines += ["", "[redis]", *_pairs({k: v for k, v in redis.items() if v is not None})]
    for title, table in (("client", config.client_options), ("sampling", config.sampling)):
        if table:
            lines += ["", f"[{title}]", *_pairs(table)]
    plain = {name: d for name, d in config.devices.items() if not (d.client_options or d.sampling)}
    lines += ["", "[devices]", *(f"{dotted((name,))} = {_value(device.address)}"
                                 for name, device in plain.items())]
    for name, device in config.devices.items():
        if name in plain:
            continue
        lines += ["", f"[{dotted(('devices', name))}]", f"address = {_value(device.address)}"]
        for title, table in (("client", device.client_options), ("sampling", device.sampling)):
            if table:
                lines += ["", f"[{dotted(('devices', name, title))}]", *_pairs(table)]
    return "\n".join(lines) + "\n"


__all__ = ["KeyLines", "dump_config", "load_config"]
