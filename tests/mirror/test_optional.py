"""The Redis part is optional: the library and its fleet never import ``redis``."""

from __future__ import annotations

import subprocess
import sys


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_the_library_does_not_import_redis() -> None:
    result = run("import sys, katcp_inspect, katcp_inspect.testing\n"
                 "assert 'redis' not in sys.modules, 'redis imported'")
    assert result.returncode == 0, result.stderr


def test_the_mirror_says_what_is_missing() -> None:
    result = run("import sys; sys.modules['redis'] = None\nimport katcp_inspect.mirror")
    assert result.returncode != 0
    assert "pip install 'katcp-inspect[redis]'" in result.stderr


def test_a_fleet_without_redis_does_not_import_it() -> None:
    result = run("import sys\nfrom katcp_inspect.fleet import Fleet, FleetConfig\n"
                 "Fleet({'d0': '127.0.0.1:7147'})\n"
                 "assert 'redis' not in sys.modules, 'redis imported'")
    assert result.returncode == 0, result.stderr
