"""``katcp-inspect request HOST:PORT NAME [ARGS...]``: send one request, print its informs as
they arrive and then its reply, in KATCP's wire form; the exit code tells ok, fail and
everything else apart."""

from __future__ import annotations

import argparse

from ..client import DeviceClient
from ..errors import ConnectionLostError, KatcpInspectError, KatcpSyntaxError, RequestTimeoutError
from ..message import Message
from .common import DEFAULT_TIMEOUT, EXIT_ERROR, EXIT_FAIL, EXIT_OK, CliError, Target
from .formatting import describe_error, format_message, message_json
from .output import STDOUT
from .session import connect_device


def exit_code(reply: Message) -> int:
    """0 for ``ok``, 2 for ``invalid``, 1 for ``fail`` and any other return code."""
    code = reply.arguments[0] if reply.arguments else b""
    if code == Message.OK:
        return EXIT_OK
    return EXIT_ERROR if code == Message.INVALID else EXIT_FAIL


def request_name(text: str) -> str:
    """The request's name, checked; a leading ``?`` is allowed (``?help`` or ``help``)."""
    name = text[1:] if text.startswith("?") else text
    try:
        Message.request(name)
    except KatcpSyntaxError:
        raise CliError(f"invalid request name {text!r} (a letter, then letters, digits "
                       f"and '-')") from None
    return name


async def learn_timeout_hint(client: DeviceClient, name: str) -> None:
    """Ask a device with timeout hints (flag ``T``) for the hint of ``name``, so that a slow
    request is given the time the device says it needs."""
    flags = client.protocol_flags
    if flags is None or not flags.request_timeout_hints:
        return
    try:
        reply, informs = await client.request_raw("request-timeout-hint", name,
                                                  timeout=DEFAULT_TIMEOUT)
    except (KatcpInspectError, ConnectionError, TimeoutError):
        return  # the request itself will tell
    for inform in informs if reply.reply_ok() else []:
        if len(inform.arguments) >= 2 and inform.arguments[0] == name.encode():
            try:
                hint = float(inform.arguments[1])
            except ValueError:
                continue
            if hint > 0:
                client.timeout_hints[name] = hint


def show_message(message: Message, as_json: bool) -> None:
    if as_json:
        STDOUT.json(message_json(message))
    else:
        STDOUT.line(format_message(message))


async def send_request(target: Target, name: str, arguments: list[str],
                       timeout: float | None, *, as_json: bool = False) -> Message:
    """Connect, send ``?name arguments...``, print each inform as it arrives (as JSON with
    ``as_json``), and return the reply; raises :class:`CliError` for a connection problem or a
    timeout."""
    client = await connect_device(target, DEFAULT_TIMEOUT if timeout is None else timeout)
    try:
        if timeout is None:
            await learn_timeout_hint(client, name)
        flags = client.protocol_flags
        mid = 1 if flags is not None and flags.message_ids else None

        def show(inform: Message) -> None:
            if inform.mid == mid:
                show_message(inform, as_json)

        client.hook_inform(name, show)
        try:
            reply, _ = await client.request_raw(name, *arguments, timeout=timeout, mid=mid)
        except RequestTimeoutError as exc:
            raise CliError(str(exc)) from None
        except (ConnectionLostError, KatcpInspectError, ConnectionError) as exc:
            raise CliError(f"?{name} to {target}: {describe_error(exc)}") from None
    finally:
        await client.close()
    return reply


async def run(args: argparse.Namespace) -> int:
    name = request_name(args.name)
    reply = await send_request(args.target, name, args.arguments, args.timeout,
                               as_json=args.json)
    show_message(reply, args.json)
    return exit_code(reply)
