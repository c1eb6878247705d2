"""Runs the user's example test of docs/testing.md (docs/examples/test_user_example.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "test_user_example.py"

_spec = importlib.util.spec_from_file_location("docs_example_test_user_example", EXAMPLE)
assert _spec is not None and _spec.loader is not None
_example = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_example)

pytest_plugins = _example.pytest_plugins
test_start_observing = _example.test_start_observing
test_start_observing_on_a_slow_device = _example.test_start_observing_on_a_slow_device
