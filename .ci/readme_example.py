"""Run the README's first program against a `katcp-inspect sim` started here, as a user would.

usage: python readme_example.py README.md [default|eager|uvloop]

The program is taken from the README itself (its first ``python`` block), with only the port
changed, so what CI proves is what users copy. The event loop is asyncio's default, one with
``asyncio.eager_task_factory`` (Python 3.12+), or uvloop's. Exit 0 only if the program ends
by itself, within the time allowed, having printed what it should.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

LOOPS = {
    "default": "",
    "eager": (
        "class _Policy(asyncio.DefaultEventLoopPolicy):\n"
        "    def new_event_loop(self):\n"
        "        loop = super().new_event_loop()\n"
        "        loop.set_task_factory(asyncio.eager_task_factory)\n"
        "        return loop\n"
        "asyncio.set_event_loop_policy(_Policy())\n"
    ),
    "uvloop": "import uvloop\nasyncio.set_event_loop_policy(uvloop.EventLoopPolicy())\n",
}


def program(readme: str, loop: str, port: int) -> str:
    block = re.search(r"```python\n(.*?)```", readme, re.S)
    if block is None:
        raise SystemExit("no python block in the README")
    code = block.group(1).replace("7147", str(port))
    return code.replace("asyncio.run(main())", LOOPS[loop] + "asyncio.run(main())")


def main() -> int:
    readme_path, loop = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "default"
    with open(readme_path, encoding="utf-8") as f:
        readme = f.read()
    sim = subprocess.Popen(["katcp-inspect", "sim", "--port", "0"], stdout=subprocess.PIPE,
                           text=True)
    try:
        line = sim.stdout.readline() if sim.stdout else ""
        found = re.search(r":(\d+)", line)
        if found is None:
            print(f"the simulated device said: {line!r}", file=sys.stderr)
            return 1
        start = time.monotonic()
        result = subprocess.run([sys.executable, "-c", program(readme, loop, int(found[1]))],
                                capture_output=True, text=True, timeout=60, check=False)
        elapsed = time.monotonic() - start
        sys.stdout.write(result.stdout)
        sys.stderr.write(result.stderr)
        ok = (result.returncode == 0 and "cpu.temperature Reading(" in result.stdout
              and re.search(r"^True \d+ requests$", result.stdout, re.M) is not None)
        print(f"README program on {sys.version.split()[0]} ({loop} loop): "
              f"{'ok' if ok else 'FAILED'} in {elapsed:.1f} s")
        return 0 if ok else 1
    finally:
        sim.terminate()
        sim.wait(10)


if __name__ == "__main__":
    sys.exit(main())
