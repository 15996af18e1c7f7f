"""Seeded random operands shared by every test level (Amaranth unit tests and cocotb benches)."""

import numpy as np

__all__ = ["random_int8"]


def random_int8(rng: np.random.Generator, shape, *, extremes=0.25):
    """Int8 values, uniform except that a fraction ``extremes`` are -128 or 127.

    Uniform values alone rarely hit the extremes where int8 products and int32 sums are most
    likely to go wrong, so they are over-represented.
    """
    values = rng.integers(-128, 128, size=shape)
    corners = rng.choice([-128, 127], size=shape)
    return np.where(rng.random(size=shape) < extremes, corners, values).astype(np.int8)
