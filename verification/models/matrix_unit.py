"""Bit-exact NumPy model of the matrix unit, tile semantics included.

This is the single reference for what the hardware computes: the cocotb benches compare the
RTL against it, and the tiling helper here is what drivers use to split a whole GEMM into the
tiles the unit takes.
"""

from dataclasses import dataclass

import numpy as np

from rtl.config import JalapenoConfig

__all__ = ["Tile", "MatrixUnitModel", "tile_gemm", "wrap_int32"]


def wrap_int32(values):
    """Reduce integers modulo 2**32 into int32, as the hardware's adders do."""
    return np.asarray(values, dtype=np.int64).astype(np.uint32).view(np.int32)


@dataclass(frozen=True)
class Tile:
    """One matrix-unit command with its data.

    ``C[acc_addr + i, j] (+)= sum_k a[i, k] * w[k, j]`` for ``i < m``, ``j < n``; rows wrap
    modulo the accumulator depth.

    Attributes
    ----------
    a : ndarray, int8, shape (m, k)
        Activations.
    w : ndarray, int8, shape (k, n)
        Weights.
    acc_addr : int
        First accumulator row.
    accumulate : bool
        Add to the rows instead of overwriting them.
    """

    a: np.ndarray
    w: np.ndarray
    acc_addr: int
    accumulate: bool

    @property
    def m(self):
        return self.a.shape[0]

    @property
    def k(self):
        return self.w.shape[0]

    @property
    def n(self):
        return self.w.shape[1]

    @property
    def macs(self):
        """Useful multiply-accumulates in this tile."""
        return self.m * self.k * self.n

    def check(self, config: JalapenoConfig):
        """Raise ``ValueError`` naming the first field the unit of ``config`` cannot take."""
        if self.a.dtype != np.int8 or self.w.dtype != np.int8:
            raise ValueError(
                f"tile operands must be int8, not {self.a.dtype} and {self.w.dtype}")
        if self.a.ndim != 2 or self.w.ndim != 2 or self.a.shape[1] != self.w.shape[0]:
            raise ValueError(
                f"tile shapes do not chain: a is {self.a.shape}, w is {self.w.shape}")
        if self.k > config.rows:
            raise ValueError(f"tile K={self.k} exceeds the array's {config.rows} rows")
        if self.n > config.cols:
            raise ValueError(f"tile N={self.n} exceeds the array's {config.cols} columns")
        if self.m > config.acc_depth:
            raise ValueError(
                f"tile M={self.m} exceeds the accumulator's {config.acc_depth} rows")
        if not 0 <= self.acc_addr < config.acc_depth:
            raise ValueError(
                f"tile acc_addr={self.acc_addr} is outside the accumulator's "
                f"{config.acc_depth} rows")


class MatrixUnitModel:
    """The accumulator memory of one matrix unit and the tiles that update it.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point.
    """

    def __init__(self, config: JalapenoConfig):
        self.config = config
        self.acc = np.zeros((config.acc_depth, config.cols), dtype=np.int32)

    def run(self, tile: Tile):
        """Apply one tile to the accumulator."""
        tile.check(self.config)
        product = tile.a.astype(np.int64) @ tile.w.astype(np.int64)
        rows = (tile.acc_addr + np.arange(tile.m)) % self.config.acc_depth
        old = self.acc[rows, : tile.n].astype(np.int64) if tile.accumulate else 0
        self.acc[rows, : tile.n] = wrap_int32(old + product)

    def read(self, addr, count):
        """``count`` accumulator rows from ``addr`` on, wrapping."""
        rows = (addr + np.arange(count)) % self.config.acc_depth
        return self.acc[rows].copy()


def tile_gemm(a, w, config: JalapenoConfig, *, acc_base=0):
    """Split ``a @ w`` into matrix-unit tiles and say where each output block lands.

    Output column block ``j`` (``cols`` wide) of all ``M`` rows goes to accumulator rows
    ``acc_base + j * M`` onwards; the K dimension is split into ``rows``-deep tiles, the first
    overwriting and the rest accumulating.

    Returns
    -------
    tiles : list of :class:`Tile`
    gather : callable
        ``gather(acc_rows)`` turns the accumulator contents (a ``(depth, cols)`` array) into
        the ``M x N`` result.

    Raises
    ------
    ValueError
        If the operands are not int8 matrices that chain, or the result does not fit in the
        accumulator.
    """
    a = np.asarray(a)
    w = np.asarray(w)
    if a.ndim != 2 or w.ndim != 2 or a.shape[1] != w.shape[0]:
        raise ValueError(f"GEMM shapes do not chain: a is {a.shape}, w is {w.shape}")
    if a.dtype != np.int8 or w.dtype != np.int8:
        raise ValueError(f"GEMM operands must be int8, not {a.dtype} and {w.dtype}")
    m, k = a.shape
    n = w.shape[1]
    col_blocks = -(-n // config.cols)
    if acc_base + m * col_blocks > config.acc_depth:
        raise ValueError(
            f"GEMM result of {m} x {n} needs {m * col_blocks} accumulator rows from "
            f"{acc_base}, but the accumulator has {config.acc_depth}")
    tiles = []
    for j in range(col_blocks):
        cols = slice(j * config.cols, min(n, (j + 1) * config.cols))
        for i, k0 in enumerate(range(0, max(k, 1), config.rows)):
            ks = slice(k0, min(k, k0 + config.rows))
            tiles.append(Tile(a=a[:, ks], w=w[ks, cols], acc_addr=acc_base + j * m,
                              accumulate=i > 0))

    def gather(acc):
        out = np.zeros((m, n), dtype=np.int32)
        for j in range(col_blocks):
            width = min(n, (j + 1) * config.cols) - j * config.cols
            base = acc_base + j * m
            out[:, j * config.cols: j * config.cols + width] = acc[base: base + m, :width]
        return out

    return tiles, gather
