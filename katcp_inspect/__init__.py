"""katcp-inspect: a live, correct model of a KATCP device, on Tornado 6."""

from .backoff import ExponentialRandomBackoff
from .blocking import InspectingClient
from .client import ConnectionState, DeviceClient
from .connection import Keepalive
from .errors import (
    ClientClosedError,
    ConnectionLostError,
    KatcpInspectError,
    KatcpSyntaxError,
    LineTooLongError,
    NotConnectedError,
    ProtocolError,
    ReplyTooLargeError,
    RequestError,
    RequestFailedError,
    RequestInvalidError,
    RequestTimeoutError,
    UnknownSensorError,
    WaitTimeoutError,
)
from .inspecting_client import (
    InspectingClientAsync,
    InspectingClientStateType,
    SyncError,
)
from .kattypes import Address, SensorStatus, SensorType
from .message import Message, MessageParser, MessageType
from .protocol import KATCP_V4, ProtocolFlags
from .request import Request, RequestType
from .sensor import Reading, Sensor
from .stats import ClientStats, InspectingStats

__version__ = "0.1.0.dev0"

__all__ = [
    "KATCP_V4",
    "Address",
    "ClientClosedError",
    "ClientStats",
    "ConnectionLostError",
    "ConnectionState",
    "DeviceClient",
    "ExponentialRandomBackoff",
    "InspectingClient",
    "InspectingClientAsync",
    "InspectingClientStateType",
    "InspectingStats",
    "KatcpInspectError",
    "KatcpSyntaxError",
    "Keepalive",
    "LineTooLongError",
    "Message",
    "MessageParser",
    "MessageType",
    "NotConnectedError",
    "ProtocolError",
    "ProtocolFlags",
    "Reading",
    "ReplyTooLargeError",
    "Request",
    "RequestError",
    "RequestFailedError",
    "RequestInvalidError",
    "RequestTimeoutError",
    "RequestType",
    "Sensor",
    "SensorStatus",
    "SensorType",
    "SyncError",
    "UnknownSensorError",
    "WaitTimeoutError",
]
