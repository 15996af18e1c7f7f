"""The matrix-unit golden model: tile semantics, wraparound, tiling, and its errors."""

import numpy as np
import pytest

from rtl.config import JalapenoConfig, preset
from verification.models.matrix_unit import MatrixUnitModel, Tile, tile_gemm, wrap_int32

SEEDS = range(5)


def _int8(rng, shape):
    return rng.integers(-128, 128, shape, dtype=np.int8)


@pytest.mark.parametrize("seed", SEEDS)
def test_tiles_equal_int64_reference(seed):
    cfg = JalapenoConfig(rows=4, cols=3, acc_depth=16)
    rng = np.random.default_rng(seed)
    model = MatrixUnitModel(cfg)
    reference = np.zeros((16, 3), dtype=np.int64)
    for _ in range(30):
        m, k, n = (int(rng.integers(0, lim + 1)) for lim in (16, 4, 3))
        tile = Tile(a=_int8(rng, (m, k)), w=_int8(rng, (k, n)),
                    acc_addr=int(rng.integers(0, 16)), accumulate=bool(rng.integers(0, 2)))
        model.run(tile)
        rows = (tile.acc_addr + np.arange(m)) % 16
        product = tile.a.astype(np.int64) @ tile.w.astype(np.int64)
        reference[rows, :n] = product + (reference[rows, :n] if tile.accumulate else 0)
        assert np.array_equal(model.acc, reference), f"seed {seed}"


def test_accumulator_wraps_like_int32_adders():
    cfg = JalapenoConfig(rows=1, cols=1, acc_depth=2)
    model = MatrixUnitModel(cfg)
    model.acc[0, 0] = 2**31 - 1
    model.run(Tile(a=np.ones((1, 1), np.int8), w=np.ones((1, 1), np.int8), acc_addr=0,
                   accumulate=True))
    assert model.acc[0, 0] == -(2**31)
    assert wrap_int32([2**32 + 5])[0] == 5


@pytest.mark.parametrize("seed", SEEDS)
def test_tile_gemm_reassembles_the_product(seed):
    rng = np.random.default_rng(seed)
    cfg = preset("default")
    m, k, n = (int(rng.integers(1, lim)) for lim in (40, 30, 30))
    a, w = _int8(rng, (m, k)), _int8(rng, (k, n))
    tiles, gather = tile_gemm(a, w, cfg, acc_base=3)
    model = MatrixUnitModel(cfg)
    for tile in tiles:
        model.run(tile)
    assert np.array_equal(gather(model.acc), a.astype(np.int64) @ w), f"seed {seed}"
    assert sum(t.macs for t in tiles) == m * k * n


@pytest.mark.parametrize(("tile", "message"), [
    (dict(a=(2, 9), w=(9, 8)), "tile K=9 exceeds the array's 8 rows"),
    (dict(a=(2, 8), w=(8, 9)), "tile N=9 exceeds the array's 8 columns"),
    (dict(a=(513, 8), w=(8, 8)), "tile M=513 exceeds the accumulator's 512 rows"),
    (dict(a=(2, 8), w=(8, 8), acc_addr=512),
     "tile acc_addr=512 is outside the accumulator's 512 rows"),
    (dict(a=(2, 3), w=(4, 8)), "tile shapes do not chain: a is (2, 3), w is (4, 8)"),
])
def test_shapes_the_unit_cannot_take(tile, message):
    t = Tile(a=np.zeros(tile["a"], np.int8), w=np.zeros(tile["w"], np.int8),
             acc_addr=tile.get("acc_addr", 0), accumulate=False)
    with pytest.raises(ValueError) as error:
        MatrixUnitModel(preset("default")).run(t)
    assert str(error.value) == message


def test_tile_operands_must_be_int8():
    t = Tile(a=np.zeros((1, 1), np.int16), w=np.zeros((1, 1), np.int8), acc_addr=0,
             accumulate=False)
    with pytest.raises(ValueError, match=r"^tile operands must be int8, not int16 and int8$"):
        t.check(preset("tiny"))


def test_gemm_that_does_not_fit_the_accumulator():
    a = np.zeros((300, 8), np.int8)
    w = np.zeros((8, 16), np.int8)
    with pytest.raises(ValueError) as error:
        tile_gemm(a, w, preset("default"))
    assert str(error.value) == ("GEMM result of 300 x 16 needs 600 accumulator rows from 0, "
                                "but the accumulator has 512")
