"""A user's script type-checks against the installed package: mypy sees precise types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# mypy comes with the dev extra (the linters), not with the test extra that packagers install.
pytest.importorskip("mypy")

HERE = Path(__file__).resolve().parent / "typing"


def mypy(script: str) -> subprocess.CompletedProcess[str]:
    # Run from the scripts' directory, as a user would from theirs: the package must be
    # found as installed, not because the checkout is the current directory.
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           script], cwd=HERE, capture_output=True, text=True, timeout=300)


def test_correct_use_type_checks() -> None:
    result = mypy("good_script.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mistakes_are_caught() -> None:
    result = mypy("bad_script.py")
    assert result.returncode == 1, result.stdout + result.stderr
    assert '"Reading" has no attribute "valu"' in result.stdout
    assert 'Item "None" of "Sensor | None" has no attribute "value"' in result.stdout
