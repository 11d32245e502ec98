"""Shared bits: a result line with its budget, and a time measurement."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Result:
    name: str
    value: float
    unit: str
    budget: str
    passed: bool
    detail: str = ""

    def line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        figure = f"{self.value:.3g} {self.unit}"
        return f"{verdict}  {self.name}: {figure}  (budget {self.budget})  {self.detail}"


def timed(work: Callable[[], int]) -> tuple[float, int]:
    """Seconds taken and the bytes ``work`` says it handled."""
    start = time.perf_counter()
    handled = work()
    return time.perf_counter() - start, handled
