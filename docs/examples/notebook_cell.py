"""What a Jupyter cell can do: the blocking client works although a loop is running (Jupyter's,
in the main thread), and so does top-level ``await`` with the asynchronous client."""

from katcp_inspect import InspectingClient, InspectingClientAsync


def blocking_cell(host: str, port: int) -> None:
    client = InspectingClient(host, port)
    client.connect()
    client.until_synced(timeout=10)
    print("rx.enabled =", client.get_sensor("rx.enabled").value())  # type: ignore[union-attr]
    reply, _ = client.simple_request("watchdog")
    print("?watchdog ->", reply)
    reading = client.wait("device.mode", lambda r: r.value != "", timeout=10)
    print("device.mode =", reading.value)
    client.stop()


async def awaiting_cell(host: str, port: int) -> None:
    # In Jupyter the body of this function can be typed into a cell as it is: cells may
    # ``await`` at top level, on Jupyter's own loop.
    async with InspectingClientAsync(host, port) as client:
        await client.until_synced(timeout=10)
        sensor = await client.future_get_sensor("rx.enabled")
        print("rx.enabled =", None if sensor is None else sensor.value())
