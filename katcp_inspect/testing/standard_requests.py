"""The standard requests of the simulated device: ``?halt``, ``?help``, ``?log-level``,
``?sensor-list``, ``?sensor-sampling``, ``?sensor-value``, ``?watchdog``, ``?version-list``,
``?client-list`` and ``?request-timeout-hint``.

Each handler reaches the device through its :class:`RequestContext`, so the handlers are plain
functions; :func:`add_standard_requests` offers those the device's protocol has. May import the
library and the testing toolkit's connection, sampling and sensors modules; the device itself
only for type checking.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import tornado

from ..kattypes import SensorType
from .device_connection import FailReply, RequestContext, RequestHandler
from .sampling import SamplingStrategy, StrategyError, parse_strategy
from .sensors import SimulatedSensor

if TYPE_CHECKING:
    from .device import SimulatedDevice

#: ``?log-level`` levels, from quietest to noisiest.
LOG_LEVELS = ("off", "fatal", "error", "warn", "info", "debug", "trace", "all")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _sensor(device: SimulatedDevice, name: str) -> SimulatedSensor:
    sensor = device.sensors.get(name)
    if sensor is None:
        raise FailReply(f"Unknown sensor name {name}.")
    return sensor


def _sensors_named(device: SimulatedDevice, selector: bytes | None) -> list[SimulatedSensor]:
    sensors = device.sensors
    if selector is None:
        return [sensors[name] for name in sorted(sensors)]
    text = _decode(selector)
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        try:
            pattern = re.compile(text[1:-1])
        except re.error as exc:
            raise FailReply(f"Invalid regular expression {text}: {exc}") from None
        return [sensors[n] for n in sorted(sensors) if pattern.search(n)]
    return [_sensor(device, text)]


async def request_halt(ctx: RequestContext) -> None:
    ctx.after_reply(ctx.device.halt)


async def request_help(ctx: RequestContext, name: bytes | None = None) -> int:
    requests = ctx.device.requests
    if name is None:
        infos = [requests[n] for n in sorted(requests)]
    else:
        info = requests.get(_decode(name))
        if info is None:
            raise FailReply(f"Unknown request {_decode(name)}.")
        infos = [info]
    for info in infos:
        ctx.inform(info.name, info.description)
    return len(infos)


async def request_log_level(ctx: RequestContext, level: bytes | None = None) -> str:
    if level is not None:
        text = _decode(level).lower()
        if text not in LOG_LEVELS:
            raise FailReply(f"Unknown log level {_decode(level)}.")
        ctx.device.log_level = text
    return ctx.device.log_level


async def request_sensor_list(ctx: RequestContext, name: bytes | None = None) -> int:
    sensors = _sensors_named(ctx.device, name)
    for sensor in sensors:
        ctx.inform(*sensor.list_arguments())
    return len(sensors)


async def request_sensor_value(ctx: RequestContext, name: bytes | None = None) -> int:
    sensors = _sensors_named(ctx.device, name)
    major = ctx.device.protocol_flags.major
    for sensor in sensors:
        ctx.inform(*sensor.reading_arguments(major))
    return len(sensors)


def _strategies_for(sensors: list[SimulatedSensor], strategy: bytes, params: tuple[bytes, ...],
                    major: int) -> list[SamplingStrategy]:
    """The strategy parsed for each sensor (once per type), or ``FailReply`` for the first
    sensor it does not suit: a bulk request that fails for one sensor changes nothing."""
    by_type: dict[SensorType, SamplingStrategy] = {}
    chosen = []
    for sensor in sensors:
        parsed = by_type.get(sensor.stype)
        if parsed is None:
            try:
                parsed = parse_strategy(strategy, params, sensor.stype, major=major)
            except StrategyError as exc:
                raise FailReply(f"{exc} (sensor {sensor.name})") from None
            by_type[sensor.stype] = parsed
        chosen.append(parsed)
    return chosen


async def request_sensor_sampling(ctx: RequestContext, names: bytes,
                                  strategy: bytes | None = None,
                                  *params: bytes) -> tuple[bytes, ...]:
    device = ctx.device
    text = _decode(names)
    listed = text.split(",") if device.protocol_flags.bulk_set_sensor_sampling else [text]
    sampling = ctx.connection.sampling
    if strategy is None:
        if len(listed) > 1:
            raise FailReply("Cannot query multiple sensors.")
        sensor = _sensor(device, listed[0])
        return (names, *sampling.strategy(sensor.name).reply_arguments())
    sensors = [_sensor(device, name) for name in listed]
    chosen = _strategies_for(sensors, strategy, params, device.protocol_flags.major)
    for sensor, parsed in zip(sensors, chosen):
        sampling.set(sensor, parsed)
    return (names, strategy, *params)


async def request_watchdog(ctx: RequestContext) -> None:
    return None


async def request_version_list(ctx: RequestContext) -> int:
    device = ctx.device
    ctx.inform("katcp-protocol", device.protocol)
    ctx.inform("katcp-library", device.library_version, f"tornado-{tornado.version}")
    ctx.inform("katcp-device", device.name, device.build)
    return 3


async def request_client_list(ctx: RequestContext) -> int:
    connections = ctx.device.connections
    for conn in connections:
        ctx.inform(str(conn.address))
    return len(connections)


async def request_request_timeout_hint(ctx: RequestContext, name: bytes | None = None) -> int:
    requests = ctx.device.requests
    if name is None:
        hints = [(n, requests[n].timeout_hint) for n in sorted(requests)
                 if requests[n].timeout_hint]
    else:
        info = requests.get(_decode(name))
        if info is None:
            raise FailReply(f"Unknown request {_decode(name)}.")
        hints = [(info.name, info.timeout_hint)]
    for request, hint in hints:
        ctx.inform(request, hint if hint else 0)
    return len(hints)


def add_standard_requests(device: SimulatedDevice) -> None:
    """Offer the standard requests that the device's protocol version and flags have."""
    flags = device.protocol_flags
    standard: list[tuple[str, RequestHandler, str]] = [
        ("halt", request_halt,
         "Halt the device: reply, then close every connection and stop listening."),
        ("help", request_help, "List the requests, or describe one (?help [name])."),
        ("log-level", request_log_level,
         "Query or set the log level (?log-level [" + "|".join(LOG_LEVELS) + "])."),
        ("sensor-list", request_sensor_list,
         "List the sensors, or those named (?sensor-list [name|/regex/])."),
        ("sensor-sampling", request_sensor_sampling,
         "Query or set a sampling strategy "
         "(?sensor-sampling name[,name...] [strategy [params...]])."),
        ("sensor-value", request_sensor_value,
         "Read sensor values (?sensor-value [name|/regex/])."),
        ("watchdog", request_watchdog, "Check that the device is alive."),
    ]
    if flags.major >= 5:
        standard.append(("version-list", request_version_list,
                         "List the versions of the device's components."))
    if flags.multi_client:
        standard.append(("client-list", request_client_list, "List the connected clients."))
    if flags.request_timeout_hints:
        standard.append(("request-timeout-hint", request_request_timeout_hint,
                         "Give the timeout hints of requests (?request-timeout-hint [name])."))
    for name, handler, description in standard:
        device.add_request(name, handler, help=description)
