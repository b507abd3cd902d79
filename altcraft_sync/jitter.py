"""Randomness of altcraft-sync's own: retry jitter and ``verify``'s samples draw from a private generator,
never from the ``random`` module's global one.

The global generator belongs to the program that runs us: a seeded simulation, a notebook, a test suite's
property tests (Hypothesis checks that nothing else moves it while it draws, and warns when something does).
A retry backing off on one of our threads would change that program's sequence behind its back."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")

_rng = random.Random()


def uniform(low: float, high: float) -> float:
    return _rng.uniform(low, high)


def sample(population: Sequence[T], k: int) -> list[T]:
    return _rng.sample(population, k)
