"""Seeded random number generators, passed down and never global.

Every function that draws random numbers takes ``seed`` (an int, ``None`` or
a :class:`numpy.random.Generator`) and turns it into a generator here, so the
whole simulator is reproducible from one integer.
"""

from __future__ import annotations

import numbers

import numpy as np

from neurolace.core.errors import InvalidInputError

__all__ = ["check_rng", "spawn_rngs"]

SeedLike = int | np.random.Generator | np.random.SeedSequence | None


def check_rng(seed: SeedLike) -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for ``seed``.

    A generator is returned as is (so callers share its stream); an int or a
    ``SeedSequence`` seeds a new PCG64 generator; ``None`` draws fresh entropy.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if int(seed) < 0:
            raise InvalidInputError(f"seed must be a non-negative integer, got {int(seed)}")
        return np.random.default_rng(int(seed))
    raise InvalidInputError(f"seed must be an int, None or numpy Generator, got {type(seed).__name__}")


def spawn_rngs(seed: SeedLike, n: int) -> list[np.random.Generator]:
    """Return ``n`` independent generators derived from ``seed``."""
    if isinstance(seed, np.random.Generator):
        return list(seed.spawn(n))
    sequence = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(
        None if seed is None else int(seed)
    )
    return [np.random.default_rng(child) for child in sequence.spawn(n)]
