"""Mistakes mypy must catch now that lookups are typed."""

from katcp_inspect import InspectingClientAsync


async def read(client: InspectingClientAsync) -> None:
    sensor = await client.future_get_sensor("cpu.temperature")
    if sensor is not None:
        print(sensor.read().valu)  # a typo
    sensor.value()  # may be None
