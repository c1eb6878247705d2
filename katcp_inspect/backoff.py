"""Randomised exponential backoff, for resyncs and reconnects."""

from __future__ import annotations

import random


class ExponentialRandomBackoff:
    """The delay before the next retry: exponential in the number of failures, with jitter.

    Same formula, defaults and attributes as katcp-python's class, so code and tests written
    for it keep working: the *base* grows by ``exp_fac`` on each :meth:`failed` up to
    ``delay_max``, and :attr:`delay` is ``((1 - r) + r * U) * base`` with ``r = randomicity`` and
    ``U`` uniform in [0, 1) drawn once per update. Unlike katcp-python (bug B5),
    :meth:`success` is really called by our clients, so the delay does return to its start.
    """

    def __init__(self, delay_initial: float = 1.0, delay_max: float = 90.0,
                 exp_fac: float = 3.0, randomicity: float = 0.95) -> None:
        self.delay_initial = delay_initial
        self.delay_max = delay_max
        self.exp_fac = exp_fac
        self.randomicity = randomicity
        self._base_delay = delay_initial
        self._delay = 0.0
        self._update()

    def _validate(self) -> None:
        if not 0 <= self.delay_initial <= self.delay_max:
            raise ValueError(f"need 0 <= delay_initial ({self.delay_initial}) "
                             f"<= delay_max ({self.delay_max})")
        if not 0 <= self.randomicity <= 1:
            raise ValueError(f"randomicity must lie in [0, 1], not {self.randomicity}")
        if not self.exp_fac > 1:
            raise ValueError(f"exp_fac must be greater than 1, not {self.exp_fac}")

    def _update(self) -> None:
        self._validate()
        r = self.randomicity
        self._delay = min(((1 - r) + r * random.random()) * self._base_delay, self.delay_max)

    @property
    def delay(self) -> float:
        """The delay to wait now, in seconds (the same value until the next update)."""
        return self._delay

    def failed(self) -> None:
        """Record a failure: grow the base delay (up to ``delay_max``) and draw a new delay."""
        self._base_delay = min(self._base_delay * self.exp_fac, self.delay_max)
        self._update()

    def success(self) -> None:
        """Record a success: return the base delay to ``delay_initial`` and draw a new delay."""
        self._base_delay = self.delay_initial
        self._update()
