#!/usr/bin/env python
"""Flood run (issue #6, test 3): 1 000 sensors, 1 000 000 updates with increasing values.

Checks, per sensor, that the client's cache ends on the last value, that observers saw the
values in order, that nothing was lost where the strategy (``auto``) does not allow it (a
tenth of the sensors use ``event-rate``, which may drop updates), and reports RSS before,
peak and after. ``--mode device`` produces every update through the simulated device's
sensors and samplers; ``--mode raw`` writes pre-encoded ``#sensor-status`` lines, to measure
the client alone; ``--mode both`` (default) runs one after the other.

Usage::

    python scripts/flood.py                          # 1 000 x 1 000, both modes
    python scripts/flood.py --rounds 200 --mode raw
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from katcp_inspect.testing.harness.flood import run_flood


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1000, help="updates per sensor")
    parser.add_argument("--mode", choices=("device", "raw", "both"), default="both")
    parser.add_argument("--rss-limit", type=float, default=32.0, help="MiB of growth allowed")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    failed = False
    for mode in ("device", "raw") if args.mode == "both" else (args.mode,):
        def progress(value: int, seconds: float, mode: str = mode) -> None:
            print(f"  {mode}: round {value}/{args.rounds} after {seconds:.1f} s", flush=True)

        result = asyncio.run(run_flood(args.sensors, args.rounds, mode=mode,
                                       progress=progress))
        print(result.summary(), flush=True)
        problems = [text for bad, text in (
            (result.lost_auto, "updates lost"), (result.reordered, "updates reordered"),
            (result.not_last, "sensors not on their last value"),
            (result.diffs, "model differences"), (result.bad_updates, "bad updates"),
            (result.rss_after - result.rss_before >= args.rss_limit, "RSS grew"),
            (result.tasks_after > result.tasks_before, "tasks left")) if bad]
        if problems:
            failed = True
            print(f"FAILED ({mode}): " + ", ".join(problems))
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
