"""A fleet of KATCP devices in one process: :class:`Fleet`, its configuration
(:class:`FleetConfig`, :class:`DeviceConfig`, from a TOML file or plain values), the
:class:`DeviceState` of each device, and :class:`ConfigError`.

>>> from katcp_inspect.fleet import Fleet
>>> fleet = Fleet({"m000": "127.0.0.1:7147"}, sampling={r"^cpu\\.": "event"})
>>> # async with fleet: await fleet.until_synced(10); fleet["m000"].sensors ...

See docs/fleet.md. The modules: ``config`` and ``config_file`` (the configuration and its
file), ``options`` (client options), ``rules`` (sampling rules), ``fleet`` (the fleet),
``member`` (one device), ``observers`` (fleet-wide observers), ``summary`` (states).
"""

from .config import DeviceConfig, FleetConfig
from .errors import ConfigError
from .fleet import Fleet
from .summary import STATES, DeviceState

__all__ = ["STATES", "ConfigError", "DeviceConfig", "DeviceState", "Fleet", "FleetConfig"]
