"""``katcp-inspect sim``: run a simulated device until Ctrl-C or ``?halt``. The options and the
server are :mod:`katcp_inspect.testing.runner`'s (``python -m katcp_inspect.testing``)."""

from __future__ import annotations

import argparse

from ..testing.runner import build_parser, run_from_arguments
from .common import EXIT_OK, CliError
from .formatting import describe_error


def parent_parser() -> argparse.ArgumentParser:
    """The runner's options (``--host``, ``--port``, ``--sensors``, ``--rate``,
    ``--protocol``, ``--devices``, ``--protocols``, ``--write-config``), for
    ``katcp-inspect sim`` to inherit."""
    return build_parser()


def run(args: argparse.Namespace) -> int:
    try:
        run_from_arguments(args)
    except OSError as exc:
        what = f"write {exc.filename}" if exc.filename else f"listen on {args.host}:{args.port}"
        raise CliError(f"cannot {what}: {describe_error(exc)}") from None
    except ValueError as exc:  # e.g. a negative rate
        raise CliError(str(exc)) from None
    return EXIT_OK
