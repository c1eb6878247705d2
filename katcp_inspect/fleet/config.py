"""A fleet's configuration: its devices (name → address, client options, sampling rules), the
options and sampling rules of every device, and how the fleet starts them.

Everything is checked when a :class:`DeviceConfig` or :class:`FleetConfig` is made, so that a
fleet never starts with half a configuration; problems raise :class:`ConfigError` naming the
key (and, from a file, the file and line: :meth:`FleetConfig.load`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Union

import attrs

from .errors import ConfigError
from .options import check_backoff, check_client_options
from .rules import SamplingRule, check_sampling

#: Devices syncing at once, by default (see :class:`~katcp_inspect.sync_gate.SyncGate`).
DEFAULT_MAX_SYNCING = 32
#: Seconds over which the first connection attempts are spread, by default.
DEFAULT_CONNECT_SPREAD = 1.0
#: Seconds of a worker's lease on a device in Redis, by default.
DEFAULT_LEASE = 5.0
#: The schemes of a Redis URL.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")

_ADDRESS = re.compile(r"(?:\[(?P<v6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[^:]*)\Z")


def parse_address(text: Any) -> tuple[str, int]:
    """``"HOST:PORT"`` (or ``"[IPv6]:PORT"``) → ``(host, port)``; ``ValueError`` saying what
    is wrong: no port, a port that is not a number or out of range, an empty host."""
    if not isinstance(text, str):
        raise ValueError(f'must be a string "HOST:PORT", not {text!r}')
    stripped = text.strip()
    if ":" not in stripped:
        raise ValueError(f"no port in {text!r} (expected HOST:PORT, e.g. 127.0.0.1:7147)")
    match = _ADDRESS.match(stripped)
    if match is None:
        raise ValueError(f"{text!r} is not HOST:PORT (an IPv6 host goes in brackets, e.g. "
                         "[::1]:7147)")
    host = match.group("v6") if match.group("v6") is not None else match.group("host")
    if not host.strip():
        raise ValueError(f"empty host in {text!r} (expected HOST:PORT, e.g. 127.0.0.1:7147)")
    port = match.group("port")
    if not port.isdigit() or not port.isascii():
        raise ValueError(f"the port in {text!r} is not a number")
    if not 0 < int(port) < 65536:
        raise ValueError(f"port {int(port)} out of range (1-65535) in {text!r}")
    return host, int(port)


def _frozen(mapping: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(mapping or {}))


@attrs.frozen
class DeviceConfig:
    """One device: its ``address`` (``"HOST:PORT"``), the options of its client (they win
    over the fleet's, see :data:`~katcp_inspect.fleet.options.CLIENT_OPTIONS`) and its
    sampling rules (pattern → strategy; they come after the fleet's, so they win)."""

    address: str
    client_options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)
    sampling: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    host: str = attrs.field(init=False, eq=False, repr=False)
    port: int = attrs.field(init=False, eq=False, repr=False)
    #: The checked ``client_options`` and ``sampling``.
    options: Mapping[str, Any] = attrs.field(init=False, eq=False, repr=False)
    rules: tuple[SamplingRule, ...] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        try:
            host, port = parse_address(self.address)
        except ValueError as exc:
            raise ConfigError(str(exc), ("address",)) from None
        object.__setattr__(self, "host", host)
        object.__setattr__(self, "port", port)
        object.__setattr__(self, "options",
                           _frozen(check_client_options(self.client_options, ("client",))))
        object.__setattr__(self, "rules", check_sampling(self.sampling, ("sampling",)))

    @classmethod
    def of(cls, spec: str | DeviceConfig) -> DeviceConfig:
        """``spec`` as a :class:`DeviceConfig` (a ``"HOST:PORT"`` string is one with no
        options or rules of its own)."""
        if isinstance(spec, DeviceConfig):
            return spec
        return cls(spec)


DeviceSpec = Union[str, DeviceConfig]


def check_name(name: Any) -> str:
    """A device name: a string that is not empty."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a device name must be a non-empty string, not {name!r}",
                          ("devices", name) if isinstance(name, str) else ("devices",))
    return name


def _check_fleet_options(max_syncing: Any, connect_spread: Any) -> None:
    if isinstance(max_syncing, bool) or not isinstance(max_syncing, int) or max_syncing < 1:
        raise ConfigError(f"must be a whole number, at least 1, not {max_syncing!r}",
                          ("fleet", "max_syncing"))
    if (isinstance(connect_spread, bool) or not isinstance(connect_spread, (int, float))
            or not math.isfinite(connect_spread) or connect_spread < 0):
        raise ConfigError(f"must be a finite number of seconds, at least 0, not "
                          f"{connect_spread!r}", ("fleet", "connect_spread"))


def check_redis(url: Any, prefix: Any, lease: Any) -> None:
    """A Redis URL, key prefix (None: the mirror's default) and lease time."""
    if not isinstance(url, str):
        raise ConfigError(f"must be a URL as a string, not {url!r}", ("redis", "url"))
    if not url.startswith(REDIS_SCHEMES):  # not shown: it may hold a password
        raise ConfigError(f"must start with {', '.join(REDIS_SCHEMES)}", ("redis", "url"))
    if prefix is not None and not isinstance(prefix, str):
        raise ConfigError(f"must be a string, not {prefix!r}", ("redis", "prefix"))
    if (isinstance(lease, bool) or not isinstance(lease, (int, float))
            or not math.isfinite(lease) or lease <= 0):
        raise ConfigError(f"must be a finite number of seconds, more than 0, not {lease!r}",
                          ("redis", "lease"))


@attrs.frozen
class RedisConfig:
    """Where a fleet mirrors its model: the Redis ``url`` (``redis://``, ``rediss://`` or
    ``unix://``; it may hold a password, so it is never shown), the key ``prefix`` (None: the
    mirror's default) and the ``lease`` of a worker on a device, in seconds."""

    url: str = attrs.field(repr=False)
    prefix: str | None = None
    lease: float = DEFAULT_LEASE

    def __attrs_post_init__(self) -> None:
        check_redis(self.url, self.prefix, self.lease)


@attrs.frozen
class FleetConfig:
    """A whole fleet: its devices by name, the sampling rules and client options of every
    device, ``max_syncing`` / ``connect_spread`` (see :class:`~katcp_inspect.fleet.Fleet`) and
    where it mirrors its model (:class:`RedisConfig`, optional).
    Made from a TOML file by :meth:`load`, or with :meth:`of` from plain values."""

    devices: Mapping[str, DeviceConfig] = attrs.field(converter=_frozen)
    sampling: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen)
    client_options: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen)
    max_syncing: int = DEFAULT_MAX_SYNCING
    connect_spread: float = DEFAULT_CONNECT_SPREAD
    #: Where the fleet mirrors its model (the ``[redis]`` table), if anywhere.
    redis: RedisConfig | None = None
    #: The file it was read from, if any.
    source: str | None = attrs.field(default=None, eq=False)
    rules: tuple[SamplingRule, ...] = attrs.field(init=False, eq=False, repr=False)
    options: Mapping[str, Any] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_fleet_options(self.max_syncing, self.connect_spread)
        if self.redis is not None and not isinstance(self.redis, RedisConfig):
            raise ConfigError(f"expected a RedisConfig, not {self.redis!r}", ("redis",))
        object.__setattr__(self, "rules", check_sampling(self.sampling, ("sampling",)))
        object.__setattr__(self, "options",
                           _frozen(check_client_options(self.client_options, ("client",))))
        check_backoff(self.options, ("client",))
        for name, device in self.devices.items():
            check_name(name)
            if not isinstance(device, DeviceConfig):
                raise ConfigError(f"expected a DeviceConfig, not {device!r}", ("devices", name))
            check_device_options(self.options, device, name)

    @classmethod
    def of(cls, devices: Mapping[str, DeviceSpec], *, sampling: Mapping[str, str] | None = None,
           client_options: Mapping[str, Any] | None = None,
           max_syncing: int = DEFAULT_MAX_SYNCING,
           connect_spread: float = DEFAULT_CONNECT_SPREAD) -> FleetConfig:
        """A configuration from what :class:`~katcp_inspect.fleet.Fleet` takes: devices
        given as ``"HOST:PORT"`` strings or :class:`DeviceConfig`."""
        made = {}
        for name, spec in devices.items():
            check_name(name)
            try:
                made[name] = DeviceConfig.of(spec)
            except ConfigError as exc:
                raise exc.within(("devices", name)) from None
        return cls(made, sampling or {}, client_options or {}, max_syncing, connect_spread)

    @classmethod
    def load(cls, path: str | Path) -> FleetConfig:
        """Read a TOML configuration file (format: docs/fleet.md); :class:`ConfigError`
        naming the file, the line and what is wrong."""
        from .config_file import load_config

        return load_config(path)

    def device_options(self, device: DeviceConfig) -> dict[str, Any]:
        """The client options of ``device``: the fleet's, overridden by its own."""
        return {**self.options, **device.options}

    def device_rules(self, device: DeviceConfig) -> tuple[SamplingRule, ...]:
        """The sampling rules of ``device``: the fleet's, then its own (later rules win)."""
        return self.rules + device.rules

    def to_toml(self) -> str:
        """This configuration as a TOML file that :meth:`load` reads back."""
        from .config_file import dump_config

        return dump_config(self)


def check_device_options(options: Mapping[str, Any], device: DeviceConfig, name: str) -> None:
    """The options of ``device`` with the fleet's ``options`` under it agree."""
    try:
        check_backoff({**options, **device.options}, ())
    except ConfigError as exc:
        own = exc.where[-1] in device.options
        raise exc.within(("devices", name, "client") if own else ("client",)) from None


__all__ = ["DEFAULT_CONNECT_SPREAD", "DEFAULT_LEASE", "DEFAULT_MAX_SYNCING", "ConfigError",
           "DeviceConfig", "DeviceSpec", "FleetConfig", "RedisConfig", "check_name",
           "check_redis", "parse_address"]
