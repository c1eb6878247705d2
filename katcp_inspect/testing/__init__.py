"""A simulated KATCP device for demos, tests and load tests, and pytest fixtures.

>>> from katcp_inspect.testing import SimulatedDevice
>>> device = SimulatedDevice.with_demo_sensors()   # then: await device.start("127.0.0.1", 0)

See :class:`SimulatedDevice`; the pytest plugin is :mod:`katcp_inspect.testing.pytest_plugin`.
"""

from .device import (
    GARBAGE_LINE,
    INTERFACE_CHANGED_STYLES,
    LOG_LEVELS,
    ClientConnection,
    FailReply,
    InvalidReply,
    OfferedRequest,
    RequestContext,
    RequestInfo,
    SimulatedDevice,
)
from .proxy import FaultProxy
from .runner import run_simulator, serve_simulator
from .sampling import SamplingStrategy, Strategy, StrategyError, StrategyName, parse_strategy
from .sensors import (
    DEMO_CHANGING,
    SensorReading,
    SimulatedSensor,
    ValueGenerator,
    demo_sensors,
    generated_reading,
)

__all__ = [
    "DEMO_CHANGING",
    "GARBAGE_LINE",
    "INTERFACE_CHANGED_STYLES",
    "LOG_LEVELS",
    "ClientConnection",
    "FailReply",
    "FaultProxy",
    "InvalidReply",
    "OfferedRequest",
    "RequestContext",
    "RequestInfo",
    "SamplingStrategy",
    "SensorReading",
    "SimulatedDevice",
    "SimulatedSensor",
    "Strategy",
    "StrategyError",
    "StrategyName",
    "ValueGenerator",
    "demo_sensors",
    "generated_reading",
    "parse_strategy",
    "run_simulator",
    "serve_simulator",
]
