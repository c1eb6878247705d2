"""(h) continued: a fleet mirrored into Redis by two worker processes, timed end to end.

    python benchmarks/redis_workers.py [--devices 1000] [--sensors 1000]

Flood devices (``flood_device.py``, 250 to a process) stand for the fleet; a fresh
``redis-server`` holds its mirror. The clock runs from starting
``katcp-inspect fleet CONFIG --redis URL --workers 2 --json`` (which starts two worker
processes sharing the devices by leases, and returns once Redis shows every device synced)
until it returns; then every device's mirrored model and readings are checked in Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import processes
import redis_mirror

from katcp_inspect.mirror import FleetView

DEVICES_PER_PROCESS = 250


def configuration(ports: list[int], url: str) -> str:
    lines = ["[fleet]", "max_syncing = 100", "connect_spread = 0.0", "",
             "[client]", 'auto_sampling = "auto"', "", "[redis]", f'url = "{url}"', "",
             "[devices]"]
    lines += [f'd{j:04d} = "127.0.0.1:{port}"' for j, port in enumerate(ports)]
    return "\n".join(lines) + "\n"


async def problem(url: str, names: list[str], sensors: int) -> str | None:
    """Whether every device's mirror holds its whole model and every sensor's first value."""
    view = FleetView(url)
    try:
        for name in names:
            readings = await view.readings(name)
            if len(readings) != sensors:
                return f"{name}: {len(readings)} readings mirrored, {sensors} expected"
    finally:
        await view.close()
    return None


def measure(devices: int, sensors: int, timeout: float) -> dict[str, object]:
    katcp_inspect = shutil.which("katcp-inspect")
    if katcp_inspect is None:
        raise SystemExit("katcp-inspect is not installed (pip install -e .)")
    groups = [min(DEVICES_PER_PROCESS, devices - start)
              for start in range(0, devices, DEVICES_PER_PROCESS)]
    with redis_mirror.redis_server() as redis_port, tempfile.TemporaryDirectory() as tmp, \
            processes.Devices([(sensors, 0)] * groups[0]) as first:
        others = [processes.Devices([(sensors, 0)] * n) for n in groups[1:]]
        for group in others:
            group.__enter__()
        try:
            ports = first.ports + [port for group in others for port in group.ports]
            url = f"redis://127.0.0.1:{redis_port}"
            config = Path(tmp, "fleet.toml")
            config.write_text(configuration(ports, url))
            started = time.perf_counter()
            done = subprocess.run([katcp_inspect, "fleet", str(config), "--workers", "2",
                                   "--json", "--timeout", str(timeout)],
                                  stdout=subprocess.DEVNULL, timeout=timeout + 60)
            seconds = time.perf_counter() - started
            names = [f"d{j:04d}" for j in range(len(ports))]
            found = (f"the command exited {done.returncode}" if done.returncode
                     else asyncio.run(problem(url, names, sensors)))
        finally:
            for group in others:
                group.stop()
    return {"seconds": seconds, "devices": devices, "sensors": sensors, "problem": found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    result = measure(args.devices, args.sensors, args.timeout)
    print(f"{args.devices} devices x {args.sensors} sensors mirrored by 2 workers: "
          f"{result['seconds']:.1f} s; {result['problem'] or 'every model and value in Redis'}")
    return 1 if result["problem"] else 0


if __name__ == "__main__":
    sys.exit(main())
