"""A plain script (no asyncio of its own) that reads and waits on a device's sensors.

Run a device first, e.g. ``katcp-inspect sim --port 7147``, then
``python blocking_script.py 127.0.0.1 7147``.
"""

import sys

from katcp_inspect import InspectingClient


def main(host: str, port: int) -> None:
    with InspectingClient(host, port) as client:  # connects; stops on exit
        client.until_synced(timeout=10)
        print(f"{len(client.sensors)} sensors, {len(client.requests)} requests")

        sensor = client.get_sensor("cpu.temperature")
        if sensor is not None:
            reading = sensor.read()  # safe from this thread: one immutable tuple
            print(f"cpu.temperature = {reading.value} {sensor.units} ({reading.status.name})")

        reply, informs = client.simple_request("help", "watchdog", timeout=5)
        print(f"?help watchdog -> {reply.arguments[0].decode()}: {informs[0]}")

        print("waiting for device.mode to be 'maintenance'...", flush=True)
        reading = client.wait("device.mode", "maintenance", timeout=60)
        print(f"device.mode is {reading.value!r} since {reading.timestamp:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
