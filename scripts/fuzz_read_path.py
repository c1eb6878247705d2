#!/usr/bin/env python
"""Long fuzz run of the client's read path (issue #6, test 5).

A client is connected and synced to a scripted device on 127.0.0.1; every fuzz input is sent
to it by the device as it is (plus a line ending), and after each input the invariants of
``katcp_inspect/testing/harness/read_path.py`` are checked: the client still answers ``?watchdog``
(reconnecting first if the input legitimately ended the connection), its counters match what
was sent, its model is unchanged, no hook raised, and nothing reached the event loop's
exception handler. The first violation stops the run with the offending input.

Engines:

- ``atheris`` (coverage-guided, libFuzzer; ``pip install atheris``): katcp_inspect is
  instrumented, the corpus is seeded with the hostile lines of the test suite, and a
  dictionary of KATCP tokens is given to libFuzzer;
- ``random``: a seeded generator of KATCP-ish lines (structured, mutated, raw bytes);
- ``auto`` (default): atheris if it imports, else random.

Usage::

    python scripts/fuzz_read_path.py                      # 1 000 000 inputs
    python scripts/fuzz_read_path.py --runs 50000 --engine random --seed 7

About 0.5 ms per input on one core (a TCP round trip per input): a million take ~10 min.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import pathlib
import random
import sys
import tempfile
import time
from typing import Any


class Run:
    def __init__(self, runs: int, report_every: int) -> None:
        self.runs = runs
        self.report_every = report_every
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop_errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda loop, context: self.loop_errors.append(context))
        # Imported here, not at the top: atheris must instrument katcp_inspect first.
        from katcp_inspect.testing.harness.read_path import ReadPathHarness

        self.harness = ReadPathHarness()
        self.loop.run_until_complete(self.harness.start())
        self.start = time.monotonic()

    def feed(self, data: bytes) -> None:
        self.loop.run_until_complete(self.harness.feed(data))
        if self.loop_errors:
            raise AssertionError(f"after input {data!r} the event loop reported: "
                                 f"{self.loop_errors}")
        count = self.harness.inputs
        if count % self.report_every == 0 or count == self.runs:
            self.report()

    def report(self) -> None:
        h = self.harness
        c = h.counters()
        elapsed = time.monotonic() - self.start
        print(f"{h.inputs} inputs in {elapsed:.0f} s ({h.inputs / elapsed:,.0f}/s): "
              f"reconnects {h.reconnects}, forged inspection informs {h.forged}, bad lines "
              f"{c['client.bad_lines']}, long lines {c['client.long_lines']}, unmatched "
              f"replies {c['client.unmatched_replies']}, device requests "
              f"{c['client.unexpected_requests']}, bad updates {c['ic.bad_updates']}, unknown "
              f"sensor updates {c['ic.unknown_sensor_updates']}, syncs {c['ic.syncs']}; "
              f"invariants held", flush=True)

    def close(self) -> None:
        self.loop.run_until_complete(self.harness.stop())
        self.loop.close()


def run_random(args: argparse.Namespace) -> None:
    from katcp_inspect.testing.harness.read_path import random_input

    run = Run(args.runs, args.report_every)
    rng = random.Random(args.seed)
    print(f"engine: random (seed {args.seed}), {args.runs} inputs", flush=True)
    try:
        for _ in range(args.runs):
            run.feed(random_input(rng))
    finally:
        run.close()


def run_atheris(args: argparse.Namespace) -> None:
    import atheris  # type: ignore[import-untyped,unused-ignore]

    with atheris.instrument_imports(include=["katcp_inspect"]):
        import katcp_inspect.client
        import katcp_inspect.connection
        import katcp_inspect.inspecting_client
        import katcp_inspect.kattypes
        import katcp_inspect.message
        import katcp_inspect.model
        import katcp_inspect.sensor  # noqa: F401
    from katcp_inspect.testing.harness.read_path import ARGUMENTS, NAMES, SEEDS

    run = Run(args.runs, args.report_every)
    work = pathlib.Path(tempfile.mkdtemp(prefix="katcp-fuzz-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(SEEDS):
        (corpus / f"seed-{i:03d}").write_bytes(seed)
    tokens = {*NAMES, *ARGUMENTS, b"#", b"!", b"?", b"[", b"]", b"\\n", b"\\_"}
    (work / "katcp.dict").write_text("".join(
        '"' + "".join(f"\\x{b:02x}" for b in token) + '"\n' for token in sorted(tokens)))
    print(f"engine: atheris, {args.runs} inputs, work directory {work}", flush=True)
    atheris.Setup([sys.argv[0], f"-runs={args.runs}", f"-dict={work / 'katcp.dict'}",
                   f"-seed={args.seed}", "-max_len=512", f"-artifact_prefix={work}/",
                   str(corpus)], run.feed)
    atheris.Fuzz()  # exits the process when the runs are done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--report-every", type=int, default=100_000)
    parser.add_argument("--verbose", action="store_true",
                        help="show the client's warnings (one per kind of bad input)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING if args.verbose else logging.CRITICAL)
    engine = args.engine
    if engine == "auto":
        try:
            import atheris  # noqa: F401
            engine = "atheris"
        except ImportError:
            engine = "random"
    (run_atheris if engine == "atheris" else run_random)(args)


if __name__ == "__main__":
    main()
