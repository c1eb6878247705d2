"""The user-facing fixtures and ``async with SimulatedDevice`` under each async test runner.

The suite itself runs under pytest-tornasync, so each runner gets a pytest of its own (a
subprocess, via ``pytester``) on the documentation's example files, with the other runner's
plugin disabled so that it cannot be what made the tests pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"

TORNASYNC = ("-p", "tornado", "-p", "no:asyncio")
ASYNCIO = ("-p", "asyncio", "-p", "no:tornado",
           "-o", "asyncio_default_fixture_loop_scope=function")
STRICT = (*ASYNCIO, "--asyncio-mode=strict")
AUTO = (*ASYNCIO, "--asyncio-mode=auto")
#: The user's tests must pass without a warning of pytest-asyncio or of the plugin.
NO_WARNINGS = ("-W", "error")


def example(name: str, *, mark_asyncio: bool = False) -> str:
    source = (EXAMPLES / name).read_text()
    # What strict mode asks of the user: the mark on every async test.
    return source + "\nimport pytest\n\npytestmark = pytest.mark.asyncio\n" if mark_asyncio \
        else source


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_users_tests=source)
    return pytester.runpytest_subprocess(*args, "-q")


@pytest.mark.parametrize("mode", [STRICT, AUTO], ids=["strict", "auto"])
def test_asyncio_fixture_under_pytest_asyncio(pytester: pytest.Pytester,
                                              mode: tuple[str, ...]) -> None:
    result = run(pytester, example("test_user_example_asyncio.py"), *mode, *NO_WARNINGS)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", [STRICT, AUTO], ids=["strict", "auto"])
def test_async_with_under_pytest_asyncio(pytester: pytest.Pytester,
                                         mode: tuple[str, ...]) -> None:
    source = example("test_user_example_any_runner.py", mark_asyncio=mode is STRICT)
    result = run(pytester, source, *mode, *NO_WARNINGS)
    result.assert_outcomes(passed=1)


def test_tornasync_fixture_under_pytest_tornasync(pytester: pytest.Pytester) -> None:
    result = run(pytester, example("test_user_example.py"), *TORNASYNC)
    result.assert_outcomes(passed=2)


def test_async_with_under_pytest_tornasync(pytester: pytest.Pytester) -> None:
    result = run(pytester, example("test_user_example_any_runner.py"), *TORNASYNC)
    result.assert_outcomes(passed=1)


def test_the_tornasync_fixture_is_not_the_asyncio_one(pytester: pytest.Pytester) -> None:
    """The error a user of pytest-asyncio met before, so the two fixtures are told apart."""
    source = example("test_user_example.py", mark_asyncio=True)
    result = run(pytester, source, *STRICT)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'io_loop' not found*"])
