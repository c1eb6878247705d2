"""Tutorial, part 3: the katcp-python style, with Tornado coroutines and ``yield``.

Code written for ``katcp.inspecting_client.InspectingClientAsync`` runs unchanged once the
import is changed to ``katcp_inspect``.
"""

from tornado import gen
from tornado.ioloop import IOLoop

from katcp_inspect import InspectingClientAsync
from katcp_inspect.testing import SimulatedDevice


@gen.coroutine
def inspect_device(host, port):  # type: ignore[no-untyped-def]
    client = InspectingClientAsync(host, port)
    yield client.connect()
    yield client.until_synced(timeout=10)
    request = yield client.future_get_request("watchdog")
    print("Request:", request.name, "-", request.description)
    sensor = yield client.future_get_sensor("device.mode")
    print("Sensor:", sensor.name, sensor.type, sensor.params)
    reply, _ = yield client.simple_request("watchdog")
    print("?watchdog ->", reply)
    client.stop()
    yield client.until_stopped()


@gen.coroutine
def main():  # type: ignore[no-untyped-def]
    device = SimulatedDevice.with_demo_sensors()
    yield device.start("127.0.0.1", 0)
    try:
        yield inspect_device("127.0.0.1", device.port)
    finally:
        yield device.stop()


if __name__ == "__main__":
    IOLoop.current().run_sync(main)
