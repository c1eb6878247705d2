"""katcp-inspect: a live, correct model of a KATCP device, on Tornado 6."""

from .backoff import ExponentialRandomBackoff
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
    RequestError,
    RequestFailedError,
    RequestInvalidError,
    RequestTimeoutError,
)
from .message import Message, MessageParser, MessageType
from .protocol import KATCP_V4, ProtocolFlags
from .stats import ClientStats

__version__ = "0.1.0.dev0"

__all__ = [
    "KATCP_V4",
    "ClientClosedError",
    "ClientStats",
    "ConnectionLostError",
    "ConnectionState",
    "DeviceClient",
    "ExponentialRandomBackoff",
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
    "RequestError",
    "RequestFailedError",
    "RequestInvalidError",
    "RequestTimeoutError",
]
