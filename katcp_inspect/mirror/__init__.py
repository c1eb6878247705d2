"""The fleet's model in Redis: written by workers, read by anyone (optional: needs the
``redis`` extra, ``pip install 'katcp-inspect[redis]'``).

- :class:`RedisMirror`: a worker's side: mirrors :class:`~katcp_inspect.InspectingClientAsync`
  s into Redis while it holds their devices' leases (:class:`Coordinator`), through one
  :class:`DeviceMirror` per device and one writer task;
- :class:`FleetView` (and :class:`BlockingFleetView` for scripts): lists the devices and their
  states, reads whole models and their readings, follows updates (:class:`Update`, with a
  :class:`Gap` wherever some may be missing), waits for a sensor condition.

The key schema is in :mod:`~katcp_inspect.mirror.schema`; docs/redis.md describes it, the
guarantees and the fault behaviour.
"""

try:
    import redis.asyncio  # noqa: F401
except ImportError as exc:  # pragma: no cover - the extra is installed for the tests
    raise ImportError("katcp_inspect.mirror needs the redis package: "
                      "pip install 'katcp-inspect[redis]'") from exc

from .blocking import BlockingFleetView
from .device import STATES, DeviceMirror, MirrorStats
from .follow import Gap, Update
from .lease import Coordinator
from .schema import DEFAULT_PREFIX, Keys, RequestModel, SensorModel, escape, unescape
from .view import DeviceSnapshot, DeviceStatus, FleetView, exact
from .worker import RedisMirror, connect, connect_blocking

__all__ = [
    "DEFAULT_PREFIX",
    "STATES",
    "BlockingFleetView",
    "Coordinator",
    "DeviceMirror",
    "DeviceSnapshot",
    "DeviceStatus",
    "FleetView",
    "Gap",
    "Keys",
    "MirrorStats",
    "RedisMirror",
    "RequestModel",
    "SensorModel",
    "Update",
    "connect",
    "connect_blocking",
    "escape",
    "exact",
    "unescape",
]
