"""The ``katcp-inspect`` command: ``demo``, ``inspect``, ``watch``, ``request``, ``fleet`` and
``sim``.

``main()`` parses the arguments and runs one subcommand (each in ``cmd_<name>.py``). Tables and
live views use rich, which only the subcommands import: the library itself never does.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from .. import __version__
from ..text import printable
from .cmd_sim import parent_parser
from .common import (
    DEFAULT_TIMEOUT,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    CliError,
    parse_target,
    positive_float,
    positive_int,
)
from .formatting import describe_error, sanitize_line
from .output import EXIT_PIPE, STDOUT

PROG = "katcp-inspect"

DESCRIPTION = """\
Inspect KATCP devices: list their requests and sensors, watch sensor readings live, send
requests, or run a simulated device to try it all on."""

EXAMPLES = """\
examples:
  katcp-inspect demo                              a simulated device, inspected, live
  katcp-inspect sim --port 7147                   run a simulated device until Ctrl-C
  katcp-inspect inspect 127.0.0.1:7147            its requests and sensors, as tables
  katcp-inspect inspect 127.0.0.1:7147 --json     ... or as JSON, for scripts
  katcp-inspect watch 127.0.0.1:7147 '^cpu\\.'     live readings of the cpu.* sensors
  katcp-inspect request 127.0.0.1:7147 help       send ?help, print informs and reply
  katcp-inspect fleet fleet.toml                  many devices, live, from a configuration

exit codes: 0 success; 1 a request answered fail; 2 usage errors, invalid replies,
unreachable devices, timeouts, lost connections and strategies refused for every watched
sensor; 130 interrupted; 141 the reader of the output went away (`... | head`), quietly.
Logging: warnings by default, -q errors only, -v INFO, -vv DEBUG; --no-color or NO_COLOR.
Run 'katcp-inspect COMMAND --help' for each command's options."""

COMMAND_HELP = {
    "demo": (
        "start a simulated device in this process and inspect it, live",
        """\
Starts a simulated device (40 sensors of all eight types, some changing every second, and a
few requests) on a free port of 127.0.0.1, inspects it with InspectingClientAsync, showing
each state of the sync, prints its requests and sends one, then shows the sensors live.
Needs no device and no network beyond the loopback.

examples:
  katcp-inspect demo                 ten seconds of live sensors, then exit
  katcp-inspect demo --seconds 60    a minute (Ctrl-C stops it earlier)

exit codes: 0 done (after --seconds, or Ctrl-C); 2 the demo could not run."""),
    "inspect": (
        "connect, sync and print a device's requests and sensors",
        """\
Prints the requests (name, first line of the help, timeout hint) and the sensors (name,
type, units, params, status, value, age), read once with ?sensor-value. --timeout bounds
the connection and, again, the sync and the reading of the values.

examples:
  katcp-inspect inspect 127.0.0.1:7147
  katcp-inspect inspect 127.0.0.1:7147 --sensors '^rx\\.'
  katcp-inspect inspect 127.0.0.1:7147 --json | jq '.sensors[].value'

exit codes: 0 done; 2 the device could not be reached, did not sync or did not answer
within --timeout."""),
    "watch": (
        "a live table of sensor readings that survives device restarts",
        """\
Samples the sensors whose names match any REGEX (Python re.search; all sensors without
one) with the given strategy and shows their readings, coloured by status: nominal green,
warn yellow, error/failure/unreachable red, inactive dim. The client reconnects and
re-applies the strategy after a disconnect or a device restart. Runs until Ctrl-C, or for
--seconds. When the output is not a terminal, prints one line per reading instead:
'<UTC time> <sensor> <status> <value>', and '# <address> <state>' on each state change.

examples:
  katcp-inspect watch 127.0.0.1:7147
  katcp-inspect watch 127.0.0.1:7147 '^cpu\\.' 'uptime$' --strategy period 0.5
  katcp-inspect watch 127.0.0.1:7147 --strategy differential 0.1 --seconds 30 > log.txt

exit codes: 0 stopped by Ctrl-C or after --seconds; 2 not synced within --timeout."""),
    "request": (
        "send one request and print its informs and reply",
        """\
Prints each inform as it arrives and then the reply, in KATCP's wire form (a space in an
argument is \\_, a newline \\n; bytes that are not UTF-8 \\xNN), without message ids.
Without --timeout the request gets 5 s, or the device's timeout hint when longer.
Put '--' before arguments that start with '-'.

examples:
  katcp-inspect request 127.0.0.1:7147 help
  katcp-inspect request 127.0.0.1:7147 sensor-value cpu.temperature
  katcp-inspect request 127.0.0.1:7147 ?sensor-sampling cpu.temperature period 1

exit codes: 0 ok; 1 fail; 2 invalid, or the device could not be reached, the connection
was lost or no reply came within the timeout."""),
    "fleet": (
        "many devices at once, live, from a fleet configuration file",
        """\
Connects to every device of the TOML configuration CONFIG (format: docs/fleet.md) and shows
a live table of the devices: state, KATCP version, sensors, updates/s and the last
connection error. With --sensor REGEX, a second table shows the latest readings of the
matching sensors of every device (those the configuration samples). Runs until Ctrl-C, or
for --seconds. When the output is not a terminal (or with --lines), prints
'# <device> <address> <state>' per change of a device's state and
'<UTC time> <device> <sensor> <status> <value>' per reading instead. --json prints one
snapshot once every device is synced (or at --timeout) and exits.

examples:
  katcp-inspect sim --devices 20 --port 0 --write-config fleet.toml &
  katcp-inspect fleet fleet.toml
  katcp-inspect fleet fleet.toml --sensor '^cpu\\.temperature$'
  katcp-inspect fleet fleet.toml --json | jq '.counts'

exit codes: 0 stopped by Ctrl-C or after --seconds, or (--json) every device synced; 2 a bad
configuration, or (--json) devices not synced within --timeout."""),
    "sim": (
        "run simulated KATCP devices until Ctrl-C or ?halt",
        """\
The same device as 'python -m katcp_inspect.testing': demo sensors of all eight types,
the standard requests, any number of clients. --devices N runs N of them, on consecutive
ports from --port (free ports with --port 0), speaking the --protocols in turn, and
--write-config FILE writes a fleet configuration of them for 'katcp-inspect fleet FILE'.

examples:
  katcp-inspect sim --port 7147
  katcp-inspect sim --port 0 --sensors 2000 --rate 10 --protocol 5.0
  katcp-inspect sim --devices 50 --port 7200 --protocols 5.1,5.0,4 --write-config f.toml

exit codes: 0 stopped by Ctrl-C, SIGTERM or ?halt (every device, with --devices); 2 cannot
listen on an address, or write the configuration."""),
}

def _verbose_parent(default: object) -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="count", default=default,
                        help="log more: -v what happens (INFO), -vv every message (DEBUG)")
    parent.add_argument("-q", "--quiet", action="count", default=default,
                        help="log errors only (warnings are shown by default)")
    parent.add_argument("--no-color", action="store_true", default=default,
                        help="no colours (as the NO_COLOR environment variable does)")
    return parent


def _watch_options(watch: argparse.ArgumentParser) -> None:
    watch.add_argument("target", metavar="HOST:PORT",
                       help="the device; with --redis, DEVICE:PATTERN (a device of the "
                            "mirrored fleet and a regex of its sensors)")
    watch.add_argument("patterns", nargs="*", metavar="REGEX",
                       help="sensors to watch: names matching any of these (default: all)")
    watch.add_argument("--strategy", nargs="+", default=["event"], metavar="WORD",
                       help="sampling strategy and its parameters: event (default), auto, "
                            "period SECONDS, differential DELTA, event-rate SHORTEST LONGEST, "
                            "differential-rate DELTA SHORTEST LONGEST")
    watch.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                       help="give up (exit 2) if not synced within S seconds of starting "
                            "(default: keep trying)")
    watch.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                       help="stop after S seconds (default: run until Ctrl-C)")
    watch.add_argument("--json", action="store_true",
                       help="one JSON object per line (readings, states), even on a terminal")
    watch.add_argument("--redis", metavar="URL",
                       help="read the readings from the fleet mirrored in Redis at URL "
                            "(redis://, rediss://, unix://) instead of connecting; prints "
                            "lines (or --json)")
    watch.add_argument("--lines", action="store_true",
                       help="one text line per reading, even on a terminal (for logs)")


def _fleet_options(fleet: argparse.ArgumentParser) -> None:
    fleet.add_argument("config", metavar="CONFIG", help="the fleet configuration (TOML)")
    fleet.add_argument("--sensor", metavar="REGEX",
                       help="also show the readings of the sensors matching REGEX")
    fleet.add_argument("--json", action="store_true",
                       help="print one JSON snapshot once every device is synced, and exit")
    fleet.add_argument("--timeout", type=positive_float, default=10.0, metavar="S",
                       help="with --json: seconds to wait for every device to sync "
                            "(default: %(default)g)")
    fleet.add_argument("--seconds", type=positive_float, default=None, metavar="S",
                       help="stop after S seconds (default: run until Ctrl-C)")
    fleet.add_argument("--lines", action="store_true",
                       help="text lines (states, readings), even on a terminal")
    fleet.add_argument("--redis", metavar="URL",
                       help="also mirror the fleet into Redis at URL (redis://, rediss://, "
                            "unix://; overrides the configuration's [redis] url)")
    fleet.add_argument("--workers", type=positive_int, default=None, metavar="K",
                       help="with --redis: run the devices in K worker processes sharing "
                            "them by leases; show them from Redis (--sensor not supported)")
    fleet.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def build_parser() -> argparse.ArgumentParser:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EXAMPLES,
                                     formatter_class=formatter,
                                     parents=[_verbose_parent(0)])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    # In a subcommand, -v adds to nothing when absent, so `katcp-inspect -v inspect` works.
    verbose = _verbose_parent(argparse.SUPPRESS)

    def add(name: str, *, parents: Sequence[argparse.ArgumentParser] = (),
            add_help: bool = True) -> argparse.ArgumentParser:
        summary, epilog = COMMAND_HELP[name]
        return commands.add_parser(name, help=summary, description=summary[0].upper()
                                   + summary[1:] + ".", epilog=epilog, formatter_class=formatter,
                                   parents=[verbose, *parents], add_help=add_help)

    demo = add("demo")
    demo.add_argument("--seconds", type=positive_float, default=10.0, metavar="S",
                      help="how long to show the live sensors (default: %(default)g)")

    inspect = add("inspect")
    inspect.add_argument("target", type=parse_target, metavar="HOST:PORT")
    inspect.add_argument("--sensors", metavar="REGEX",
                         help="only the sensors whose names match (Python re.search)")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of tables")
    inspect.add_argument("--wide", action="store_true",
                         help="never fit the tables to the terminal: whole lines, for logs")
    inspect.add_argument("--timeout", type=positive_float, default=DEFAULT_TIMEOUT, metavar="S",
                         help="seconds for each step: connect, sync, read (default: "
                              "%(default)g)")

    watch = add("watch")
    _watch_options(watch)

    request = add("request")
    request.add_argument("target", type=parse_target, metavar="HOST:PORT")
    request.add_argument("name", metavar="NAME", help="the request, with or without '?'")
    request.add_argument("arguments", nargs="*", metavar="ARG", help="its arguments")
    request.add_argument("--timeout", type=positive_float, default=None, metavar="S",
                         help="seconds to connect, and then for the reply (default: 5, or "
                              "the device's timeout hint when longer)")
    request.add_argument("--json", action="store_true",
                         help="one JSON object per line: each inform, then the reply")

    _fleet_options(add("fleet"))
    add("sim", parents=[parent_parser()], add_help=False)  # the simulator runner's options
    return parser


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time, so that logging goes above a live
    display (rich redirects stderr while it draws)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


class _PrintableFormatter(logging.Formatter):
    """One record, one line: the library escapes device text in its messages, and this catches
    any other logger's (tracebacks, appended after the line, keep their lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return printable(super().formatMessage(record), escape_backslash=False)


def log_level(verbose: int, quiet: int) -> int:
    """Warnings by default (a refused strategy, a bad update: the device's problems are
    shown); ``-q`` errors only, ``-v`` INFO, ``-vv`` DEBUG (every message)."""
    if quiet:
        return logging.ERROR
    return {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)


def setup_logging(level: int) -> None:
    handler = _StderrHandler()
    handler.setFormatter(_PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit code (see ``katcp-inspect --help``)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    if args.command == "watch" and args.redis is None:
        try:
            args.target = parse_target(args.target)
        except argparse.ArgumentTypeError as exc:
            parser.error(f"argument HOST:PORT: {exc}")
    setup_logging(log_level(args.verbose or 0, args.quiet or 0))
    if args.no_color:
        os.environ["NO_COLOR"] = "1"  # rich reads it for every console
    module = importlib.import_module(f"{__name__}.cmd_{args.command}")
    try:
        if args.command == "sim":
            code = int(module.run(args))
        else:
            code = int(asyncio.run(module.run(args)))
    except CliError as exc:
        print(f"{PROG}: {sanitize_line(str(exc))}", file=sys.stderr)
        code = exc.code
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # a table printed after the reader went away (`... | head`)
        STDOUT.close()
    except OSError as exc:  # the environment: no loopback for the demo, a full disk...
        print(f"{PROG}: {describe_error(exc)}", file=sys.stderr)
        code = EXIT_ERROR
    # The reader went away: stop quietly, with the status a shell gives a writer it killed.
    return EXIT_PIPE if STDOUT.closed else code
