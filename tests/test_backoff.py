"""Tests for katcp_inspect.backoff: the randomised exponential backoff used between resyncs."""

from __future__ import annotations

import math
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from katcp_inspect.backoff import ExponentialRandomBackoff


def test_delays() -> None:
    """katcp-python's own ``TestExponentialRandomBackoff.test_delays``, reproduced."""
    with mock.patch("random.random", return_value=0.4) as m_rand:
        rv = m_rand.return_value
        # Parameters chosen so that 3 failures stay below delay_max (1.5 * 2**3 == 12).
        di = 1.5
        dm = 12
        ex = 2
        r = 0.7
        dut = ExponentialRandomBackoff(delay_initial=di, delay_max=dm, exp_fac=ex, randomicity=r)
        first_delay = dut.delay
        assert first_delay == pytest.approx((1 - r) * di + r * di * rv)
        for i in range(1, 4):
            dut.failed()
            assert dut.delay == pytest.approx(first_delay * ex**i)

        # Several more failures: the delay does not grow beyond the cap. The cap applies to the
        # base; the random factor is applied afterwards.
        for _ in range(5):
            dut.failed()
        max_expected_delay = (1 - r) * dm + r * dm * rv
        assert dut.delay == pytest.approx(max_expected_delay)

        # success() resets the delay (katcp-python's client never called it: bug B5).
        dut.success()
        assert dut.delay == first_delay


def test_defaults() -> None:
    backoff = ExponentialRandomBackoff()
    assert backoff.delay_initial == 1.0
    assert backoff.delay_max == 90.0
    assert backoff.exp_fac == 3.0
    assert backoff.randomicity == 0.95
    assert 0.05 * 1.0 <= backoff.delay <= 1.0


def test_success_after_many_failures_restores_initial_range() -> None:
    backoff = ExponentialRandomBackoff(delay_initial=5.0, delay_max=90.0, randomicity=0.5)
    for _ in range(10):
        backoff.failed()
    assert 45.0 <= backoff.delay <= 90.0
    backoff.success()
    assert 2.5 <= backoff.delay <= 5.0
    backoff.failed()
    assert 7.5 <= backoff.delay <= 15.0


def test_random_drawn_at_call_time_once_per_update() -> None:
    values = iter([0.0, 0.5, 0.99, 0.25])
    with mock.patch("random.random", side_effect=lambda: next(values)) as m_rand:
        backoff = ExponentialRandomBackoff(delay_initial=2.0, delay_max=100.0, exp_fac=2.0,
                                           randomicity=1.0)
        assert m_rand.call_count == 1
        assert backoff.delay == 0.0  # r = 1 and U = 0
        backoff.failed()
        assert m_rand.call_count == 2
        assert backoff.delay == pytest.approx(0.5 * 4.0)
        backoff.failed()
        assert backoff.delay == pytest.approx(0.99 * 8.0)
        backoff.success()
        assert backoff.delay == pytest.approx(0.25 * 2.0)
        assert m_rand.call_count == 4


def test_delay_is_stable_between_updates() -> None:
    backoff = ExponentialRandomBackoff()
    first = backoff.delay
    assert all(backoff.delay == first for _ in range(100))
    backoff.failed()
    second = backoff.delay
    assert all(backoff.delay == second for _ in range(100))


def test_randomicity_zero_is_deterministic() -> None:
    # The inspecting client's schedule: base 5 s, then 15, 45 and 90 (capped).
    backoff = ExponentialRandomBackoff(delay_initial=5.0, delay_max=90.0, exp_fac=3.0,
                                       randomicity=0.0)
    delays = [backoff.delay]
    for _ in range(5):
        backoff.failed()
        delays.append(backoff.delay)
    assert delays == [5.0, 15.0, 45.0, 90.0, 90.0, 90.0]
    backoff.success()
    assert backoff.delay == 5.0


def test_randomicity_zero_ignores_random() -> None:
    for value in (0.0, 0.3, 0.999):
        with mock.patch("random.random", return_value=value):
            backoff = ExponentialRandomBackoff(delay_initial=2.0, randomicity=0.0)
            assert backoff.delay == 2.0


def test_zero_initial_delay() -> None:
    backoff = ExponentialRandomBackoff(delay_initial=0.0, delay_max=10.0)
    backoff.failed()
    assert backoff.delay == 0.0


def test_initial_equal_to_max() -> None:
    backoff = ExponentialRandomBackoff(delay_initial=3.0, delay_max=3.0, randomicity=0.0)
    backoff.failed()
    assert backoff.delay == 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay_initial": 10.0, "delay_max": 5.0},
        {"delay_initial": -1.0},
        {"delay_initial": math.nan},
        {"randomicity": -0.01},
        {"randomicity": 1.01},
        {"randomicity": math.nan},
        {"exp_fac": 1.0},
        {"exp_fac": 0.5},
        {"exp_fac": 0.0},
        {"exp_fac": -2.0},
        {"exp_fac": math.nan},
    ],
    ids=repr,
)
def test_invalid_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  (the message varies with the parameter)
        ExponentialRandomBackoff(**kwargs)


@pytest.mark.parametrize("randomicity", [0.0, 1.0])
def test_randomicity_bounds_are_valid(randomicity: float) -> None:
    ExponentialRandomBackoff(randomicity=randomicity)


def test_attributes_are_checked_on_every_update() -> None:
    # The attributes are public and mutable (as in katcp-python); a bad value is reported at the
    # next update rather than silently used.
    backoff = ExponentialRandomBackoff()
    backoff.randomicity = 2.0
    with pytest.raises(ValueError, match="randomicity"):
        backoff.failed()
    backoff.randomicity = 0.0
    backoff.exp_fac = 1.0
    with pytest.raises(ValueError, match="exp_fac"):
        backoff.success()


def test_changed_attributes_take_effect() -> None:
    backoff = ExponentialRandomBackoff(delay_initial=1.0, delay_max=100.0, exp_fac=2.0,
                                       randomicity=0.0)
    backoff.failed()
    assert backoff.delay == 2.0
    backoff.exp_fac = 10.0
    backoff.failed()
    assert backoff.delay == 20.0
    backoff.delay_max = 30.0
    backoff.failed()
    assert backoff.delay == 30.0


@given(
    delay_initial=st.floats(0.0, 1000.0),
    extra=st.floats(0.0, 1000.0),
    exp_fac=st.floats(1.0, 10.0, exclude_min=True),
    randomicity=st.floats(0.0, 1.0),
    steps=st.lists(st.booleans(), max_size=20),
    draws=st.lists(st.floats(0.0, 1.0, exclude_max=True), min_size=22, max_size=22),
)
@settings(deadline=None, max_examples=100)
def test_delay_within_bounds(
    delay_initial: float,
    extra: float,
    exp_fac: float,
    randomicity: float,
    steps: list[bool],
    draws: list[float],
) -> None:
    """After any sequence of failures (False) and successes (True), and any random draws, the
    delay lies in [(1 - r) * base, base] and never exceeds delay_max."""
    delay_max = delay_initial + extra
    r = randomicity
    values = iter(draws)
    with mock.patch("random.random", side_effect=lambda: next(values)):
        backoff = ExponentialRandomBackoff(delay_initial, delay_max, exp_fac, randomicity)
        base = delay_initial
        for step in [None, *steps]:
            if step is True:
                backoff.success()
                base = delay_initial
            elif step is False:
                backoff.failed()
                base = min(base * exp_fac, delay_max)
            delay = backoff.delay
            assert delay <= delay_max
            assert (1 - r) * base <= delay
            assert delay <= base or math.isclose(delay, base, rel_tol=1e-12)
            assert backoff.delay == delay


@given(
    randomicity=st.floats(0.0, 1.0),
    failures=st.integers(0, 40),
)
@settings(deadline=None, max_examples=50)
def test_delay_within_bounds_real_random(randomicity: float, failures: int) -> None:
    backoff = ExponentialRandomBackoff(delay_initial=1.0, delay_max=90.0, exp_fac=3.0,
                                       randomicity=randomicity)
    for _ in range(failures):
        backoff.failed()
    base = min(3.0**failures, 90.0)
    assert (1 - randomicity) * base <= backoff.delay <= 90.0
    assert backoff.delay <= base * (1 + 1e-12)
