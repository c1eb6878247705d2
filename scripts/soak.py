#!/usr/bin/env python
"""Soak run (issue #6, test 7): a device that drops every client every 2-5 s while one
client samples 1 000 sensors (all changing once a second), for 10 minutes by default.

After each resync a sample is printed: RSS, the event loop's tasks and timers, objects tracked
by the garbage collector, and whether the client's own tables (waiters, hooks, callbacks,
pending requests, cached objects) kept their size. The run fails (exit status 1) if RSS grew
by more than ``--rss-limit`` MiB or any count grew, between the first sample after the warm-up
and the last.

Usage::

    python scripts/soak.py                 # 600 s
    python scripts/soak.py --duration 60 --sensors 200
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from katcp_inspect.testing.harness.soak import Sample, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (600)")
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="updates per sensor per second")
    parser.add_argument("--rss-limit", type=float, default=4.0, help="MiB of growth allowed")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    def show(sample: Sample) -> None:
        loop = sample.loop
        print(f"{sample.elapsed:7.1f} s  RSS {sample.rss:6.1f} MiB  tasks {loop['tasks']}  "
              f"timers {loop['timers']} (scheduled {sample.scheduled_all})  gc objects "
              f"{loop['gc_objects']}  tables {sum(sample.tables.values())}", flush=True)

    result = asyncio.run(run_soak(args.duration, sensors=args.sensors, rate=args.rate,
                                  seed=args.seed, progress=show))
    print("soak:", result.summary())
    growth = result.growth()
    print("growth (last sample - first after warm-up):", growth or "none")
    rss = growth.pop("rss_mib")
    growth.pop("gc_objects", None)
    growth.pop("ready", None)
    failed = rss >= args.rss_limit or any(v > 0 for v in growth.values())
    print("FAILED" if failed else "OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
