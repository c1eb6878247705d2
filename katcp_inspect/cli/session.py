"""Connecting for a one-shot command: one attempt, bounded by ``--timeout``, and a one-line
error (exit code 2) when the device cannot be reached, does not greet, or does not sync."""

from __future__ import annotations

import asyncio

from ..client import DeviceClient
from ..errors import KatcpInspectError
from ..inspecting_client import InspectingClientAsync
from .common import CliError, Target
from .formatting import describe_error


def one_shot_client(client: DeviceClient, timeout: float) -> None:
    """Make ``client`` give up after one attempt of at most ``timeout`` seconds."""
    client.auto_reconnect = False
    client.connect_timeout = timeout
    # A device that greets with nothing is taken for KATCP v4 after this long.
    client.greeting_timeout = min(client.greeting_timeout, timeout / 2)


async def connect_device(target: Target, timeout: float) -> DeviceClient:
    """A started, negotiated :class:`DeviceClient`, or :class:`CliError`."""
    client = DeviceClient(target.host, target.port)
    one_shot_client(client, timeout)
    client.start()
    try:
        await asyncio.wait_for(client.when_connected(fail_after_failures=1), timeout)
    except asyncio.TimeoutError:
        await client.close()
        raise CliError(f"cannot connect to {target}: no connection within {timeout:g} s") \
            from None
    except (KatcpInspectError, OSError) as exc:
        await client.close()
        raise CliError(f"cannot connect to {target}: {describe_error(exc)}") from None
    return client


async def sync_client(client: InspectingClientAsync, target: Target, timeout: float) -> None:
    """Start ``client`` (made one-shot) and wait, ``timeout`` seconds for each step, until it
    is connected and then synced; or raise :class:`CliError` (the client is then stopped)."""
    one_shot_client(client.katcp_client, timeout)
    await client.connect()
    closed = asyncio.ensure_future(client.katcp_client.until_closed())
    try:
        if not await _before_closing(client.until_connected(), closed, timeout):
            if closed.done():  # the one attempt failed
                reason = describe_error(client.katcp_client.last_error)
            else:
                reason = f"no connection within {timeout:g} s"
            await client.stop()
            raise CliError(f"cannot connect to {target}: {reason}")
        if not await _before_closing(client.until_synced(), closed, timeout):
            if closed.done():
                error = describe_error(client.katcp_client.last_error)
                message = f"lost the connection to {target}: {error}"
            else:
                message = (f"{target} did not complete the sync (?help, ?sensor-list) "
                           f"within {timeout:g} s")
            await client.stop()
            raise CliError(message)
    finally:
        closed.cancel()


async def _before_closing(waiter: asyncio.Future[None], closed: asyncio.Future[None],
                          timeout: float) -> bool:
    """Whether ``waiter`` resolved within ``timeout`` and before ``closed``."""
    try:
        done, _ = await asyncio.wait({waiter, closed}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    return waiter in done and not waiter.cancelled() and waiter.exception() is None
