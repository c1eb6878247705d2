"""``katcp-inspect sim``: run a simulated device until Ctrl-C or ``?halt``. The options and the
server are :mod:`katcp_inspect.testing.runner`'s (``python -m katcp_inspect.testing``)."""

from __future__ import annotations

import argparse

from ..testing.runner import build_parser, run_simulator
from .common import EXIT_OK, CliError
from .formatting import describe_error


def parent_parser() -> argparse.ArgumentParser:
    """The runner's options (``--host``, ``--port``, ``--sensors``, ``--rate``,
    ``--protocol``), for ``katcp-inspect sim`` to inherit."""
    return build_parser()


def run(args: argparse.Namespace) -> int:
    try:
        run_simulator(args.host, args.port, args.sensors, args.rate, args.protocol)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {describe_error(exc)}") \
            from None
    except ValueError as exc:  # e.g. a negative rate
        raise CliError(str(exc)) from None
    return EXIT_OK
