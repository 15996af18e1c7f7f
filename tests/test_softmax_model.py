"""int8 SOFTMAX against TFLite Micro bit for bit, its exp-table form, extremes, float, errors."""

import numpy as np
import pytest

from verification.models.softmax import (
    SOFTMAX_OUTPUT,
    SoftmaxParams,
    softmax,
    softmax_exp_table,
    softmax_float,
)
from verification.stimulus import random_int8
from verification.tflite.builder import Options
from verification.tflite.oracle import run_tflm, unary_model

SEEDS = range(5)
#: Row lengths drawn from: 1, non-multiples of 8, multiples of 8, longer than 256.
DEPTHS = (1, 2, 3, 5, 7, 8, 9, 13, 16, 31, 64, 100, 257, 300)
#: Models per seed, each about ELEMENTS_PER_MODEL elements: 5 * 6 * ~2000 = ~60,000 in all.
MODELS_PER_SEED = 6
ELEMENTS_PER_MODEL = 2000
#: Worst distance from the float softmax, in output steps: one rounding plus fixed-point error.
FLOAT_BOUND = 0.5 + 1e-3


def _params(rng):
    """Random float32 input scale, zero point and beta, with beta * scale spread widely."""
    scale = float(np.float32(2.0 ** rng.uniform(-8, 0)))
    beta = float(np.float32(2.0 ** rng.uniform(-2, 2)))
    return scale, int(rng.integers(-128, 128)), beta


def _run_tflm(x, scale, zero_point, beta):
    model = unary_model("SOFTMAX", x.shape, (scale, zero_point), SOFTMAX_OUTPUT,
                        Options("SoftmaxOptions", {"Beta": beta}))
    return run_tflm(model, [x])


def _check(x, scale, zero_point, beta, context):
    params = SoftmaxParams.from_scale(scale, beta)
    got = _run_tflm(x, scale, zero_point, beta)
    want = softmax(x, params)
    where = np.argwhere(got != want)
    assert where.size == 0, (f"{context}, {params}: {len(where)} of {x.size} differ, first at "
                             f"{tuple(where[0])}: got {got[tuple(where[0])]}, "
                             f"want {want[tuple(where[0])]}")
    table = softmax(x, params, exp_table=softmax_exp_table(params))
    assert np.array_equal(table, want), f"{context}, {params}: exp table form differs"
    error = np.abs(want - softmax_float(x, params)).max()
    assert error < FLOAT_BOUND, f"{context}, {params}: {error} steps from float"
    return x.size


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_matches_tflm(seed):
    rng = np.random.default_rng(seed)
    for case in range(MODELS_PER_SEED):
        depth = int(rng.choice(DEPTHS))
        x = random_int8(rng, (max(1, ELEMENTS_PER_MODEL // depth), depth))
        _check(x, *_params(rng), f"seed {seed}, case {case}, depth {depth}")


def _extreme_rows(depth):
    one_hot = np.full((depth, depth), -128, dtype=np.int8)
    np.fill_diagonal(one_hot, 127)
    return np.concatenate([
        np.full((1, depth), -128, np.int8), np.full((1, depth), 127, np.int8),
        np.full((1, depth), 5, np.int8), one_hot,
        np.where(one_hot == 127, -128, 127).astype(np.int8),
    ])


@pytest.mark.parametrize("seed", SEEDS)
def test_softmax_extremes_match_tflm(seed):
    rng = np.random.default_rng(seed)
    for depth in (1, 3, 8, 17):
        _check(_extreme_rows(depth), *_params(rng), f"seed {seed}, extremes, depth {depth}")


def test_softmax_known_values():
    params = SoftmaxParams.from_scale(0.1, 1.0)
    # Constant rows share out evenly: 1/4 is 64 steps above -128; a single element is 1.
    assert softmax(np.full((2, 4), 7), params).tolist() == [[-64] * 4] * 2
    assert softmax([[-128]], params).tolist() == [[127]]
    # Differences beyond diff_min get exactly the output's zero.
    assert params.diff_min == -248
    assert softmax([[127, -128]], params).tolist() == [[127, -128]]
    table = softmax_exp_table(params)
    assert table[0] == 2**31 - 1 and table[249:].tolist() == [0] * 7


def test_softmax_huge_beta_keeps_only_the_maximum():
    # beta * scale * 2**26 is capped at 2**31 - 1: left shift 31 and diff_min 0.
    params = SoftmaxParams.from_scale(100.0, 1e3)
    assert (params.input_multiplier, params.input_left_shift, params.diff_min) == (
        2**31 - 1, 31, 0)
    x = np.array([[3, 3, 2, -128]], dtype=np.int8)
    assert np.array_equal(softmax(x, params), _run_tflm(x, 100.0, 0, 1e3))


def test_softmax_errors():
    with pytest.raises(ValueError, match=r"^softmax beta \* input scale must exceed 2\*\*-26, "
                                         r"not 1\.0 \* 9\.313225746154785e-10$"):
        SoftmaxParams.from_scale(2.0**-30, 1.0)
    with pytest.raises(ValueError, match=r"^beta must be a positive finite float32, not -1$"):
        SoftmaxParams.from_scale(0.1, -1)
    params = SoftmaxParams.from_scale(0.1)
    with pytest.raises(ValueError, match=r"^x must lie in \[-128, 127\], not -129$"):
        softmax([[-129]], params)
    with pytest.raises(ValueError, match=r"^exp table must have shape \(256,\), not \(8,\)$"):
        softmax([[0]], params, exp_table=np.zeros(8, np.int32))
