"""Uses the public API as documented: mypy must accept it."""

from katcp_inspect import InspectingClient, InspectingClientAsync, Reading


async def read(client: InspectingClientAsync) -> float:
    sensor = await client.future_get_sensor("cpu.temperature")
    if sensor is None:
        return 0.0
    reading: Reading = await client.wait("cpu.temperature", lambda r: r.value > 0, timeout=5)
    request = await client.future_get_request("watchdog")
    print(None if request is None else request.description)
    return float(sensor.read().value) + reading.timestamp


def blocking(client: InspectingClient) -> str:
    sensor = client.get_sensor("device.mode")
    return "" if sensor is None else sensor.name
