"""Elementwise int8 tables against TFLite's kernels, bit for bit, and against their float functions.

LOGISTIC, TANH, RELU and RELU6 run on TFLite Micro; GELU, which the TFLite Micro wheel lacks,
and RELU6 with differing input and output quantization (TFLite Micro's RELU6 ignores the output
quantization) run on LiteRT's reference kernels. Every case looks up random int8 tensors and the
whole int8 grid, so the extremes -128 and 127 are always covered.
"""

import math

import numpy as np
import pytest

from verification.models.lut import (
    LOGISTIC_OUTPUT,
    TANH_OUTPUT,
    apply_lut,
    check_lut,
    float_table,
    gelu_float,
    gelu_table,
    logistic_table,
    relu_table,
    tanh_table,
)
from verification.stimulus import random_int8
from verification.tflite.builder import Options
from verification.tflite.oracle import run_litert, run_tflm, unary_model

SEEDS = range(5)
#: Quantizations per seed and op; each runs RANDOM_ELEMENTS random inputs and the int8 grid,
#: so every op sees 5 * 4 * (2304) = 46,080 elements.
CASES_PER_SEED = 4
RANDOM_ELEMENTS = 2048
INT8_GRID = np.arange(-128, 128, dtype=np.int8)


def _quantization(rng, low=-9.0, high=1.0):
    """A float32 scale spread over magnitudes and a random int8 zero point."""
    return float(np.float32(2.0 ** rng.uniform(low, high))), int(rng.integers(-128, 128))


def _inputs(rng):
    return np.concatenate([INT8_GRID, random_int8(rng, RANDOM_ELEMENTS)]).reshape(1, -1)


def _check(run, model, x, table, context):
    got = run(model, [x])
    want = apply_lut(x, table)
    assert got.dtype == np.int8, context
    where = np.flatnonzero(got != want)
    assert where.size == 0, (f"{context}: {where.size} of {x.size} differ, first at input "
                             f"{x.flat[where[0]]}: got {got.flat[where[0]]}, "
                             f"want {want.flat[where[0]]}")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
def test_logistic_and_tanh_match_tflm(op, seed):
    rng = np.random.default_rng(seed)
    build, output_q = {"LOGISTIC": (logistic_table, LOGISTIC_OUTPUT),
                       "TANH": (tanh_table, TANH_OUTPUT)}[op]
    for case in range(CASES_PER_SEED):
        input_q = _quantization(rng)
        x = _inputs(rng)
        _check(run_tflm, unary_model(op, x.shape, input_q, output_q), x, build(input_q),
               f"{op} seed {seed}, case {case}, input {input_q}")


@pytest.mark.parametrize("seed", SEEDS)
def test_relu_matches_tflm(seed):
    rng = np.random.default_rng(seed)
    for case in range(CASES_PER_SEED):
        input_q, output_q = _quantization(rng), _quantization(rng, -7, 0)
        x = _inputs(rng)
        _check(run_tflm, unary_model("RELU", x.shape, input_q, output_q), x,
               relu_table(input_q, output_q), f"RELU seed {seed}, case {case}, "
               f"{input_q} -> {output_q}")


@pytest.mark.parametrize("seed", SEEDS)
def test_relu6_matches_tflm_and_litert(seed):
    rng = np.random.default_rng(seed)
    for case in range(CASES_PER_SEED):
        input_q, output_q = _quantization(rng, -7, -2), _quantization(rng, -7, -2)
        x = _inputs(rng)
        context = f"RELU6 seed {seed}, case {case}, {input_q} -> "
        _check(run_tflm, unary_model("RELU6", x.shape, input_q, input_q), x,
               relu_table(input_q, input_q, max_value=6.0), context + f"{input_q}, TFLM")
        _check(run_litert, unary_model("RELU6", x.shape, input_q, output_q), x,
               relu_table(input_q, output_q, max_value=6.0), context + f"{output_q}, LiteRT")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_matches_litert(approximate, seed):
    rng = np.random.default_rng(seed)
    options = Options("GeluOptions", {"Approximate": approximate})
    for case in range(CASES_PER_SEED):
        input_q, output_q = _quantization(rng, -7, -1), _quantization(rng, -7, -1)
        x = _inputs(rng)
        _check(run_litert, unary_model("GELU", x.shape, input_q, output_q, options), x,
               gelu_table(input_q, output_q, approximate=approximate),
               f"GELU approximate={approximate} seed {seed}, case {case}, "
               f"{input_q} -> {output_q}")


def _logistic(x):
    return 1 / (1 + np.exp(-x))


# GELU is float32 rounded once: half a step, plus float32 error. RELU rounds twice (the
# multiply's rounding, then the right shift's), at most 1/2 + 1/4 step. gemmlowp's
# fixed-point LOGISTIC and TANH are far more precise than a step: measured 0.49999.
FLOAT_BOUNDS = {"LOGISTIC": 0.5 + 1e-3, "TANH": 0.5 + 1e-3, "RELU": 0.75 + 1e-9, "GELU": 0.5 + 1e-4}


@pytest.mark.parametrize("seed", SEEDS)
def test_tables_near_float(seed):
    rng = np.random.default_rng(seed)
    for case in range(CASES_PER_SEED):
        input_q, output_q = _quantization(rng, -7, -1), _quantization(rng, -7, -1)
        tables = {
            "LOGISTIC": (logistic_table(input_q), float_table(_logistic, input_q,
                                                              LOGISTIC_OUTPUT)),
            "TANH": (tanh_table(input_q), float_table(np.tanh, input_q, TANH_OUTPUT)),
            "RELU": (relu_table(input_q, output_q),
                     float_table(lambda v: np.maximum(v, 0), input_q, output_q)),
            "GELU": (gelu_table(input_q, output_q), float_table(gelu_float, input_q, output_q)),
        }
        for op, (table, real) in tables.items():
            error = np.abs(table - real).max()
            assert error < FLOAT_BOUNDS[op], (f"{op} seed {seed}, case {case}: {error} steps "
                                              f"from float")


def test_known_values():
    # Input scale 1/16: the logistic of 0 is exactly one half, tanh of 0 is 0, GELU of 0 is 0.
    assert logistic_table((1 / 16, 0))[128] == 0
    assert tanh_table((1 / 16, 0))[128] == 0
    assert gelu_table((1 / 16, 0), (1 / 16, 5))[128] == 5
    # Far outside the input radius, LOGISTIC and TANH saturate.
    assert logistic_table((1.0, 0))[[0, 255]].tolist() == [-128, 127]
    assert tanh_table((1.0, 0))[[0, 255]].tolist() == [-128, 127]
    # Same quantization: RELU is max(x, zp), RELU6 also clamps at zp + 6 / scale.
    assert np.array_equal(relu_table((0.5, 3), (0.5, 3)), np.maximum(INT8_GRID, 3))
    assert np.array_equal(relu_table((0.5, 3), (0.5, 3), max_value=6.0),
                          np.clip(INT8_GRID, 3, 15))
    assert math.isclose(gelu_float(1.0), 0.8413447460685429)


def test_apply_lut_indexes_by_input_plus_128():
    table = (INT8_GRID[::-1]).copy()
    x = np.array([[-128, 0], [127, 5]])
    assert apply_lut(x, table).tolist() == [[127, -1], [-128, -6]]


def test_lut_errors():
    with pytest.raises(ValueError, match=r"^LUT must be an int8 array, not int64$"):
        check_lut(np.zeros(256, dtype=np.int64))
    with pytest.raises(ValueError, match=r"^LUT must have shape \(256,\), not \(255,\)$"):
        apply_lut([0], np.zeros(255, dtype=np.int8))
    with pytest.raises(ValueError, match=r"^LUT must have shape \(256,\), not \(1, 256\)$"):
        apply_lut([0], np.zeros((1, 256), dtype=np.int8))
    with pytest.raises(ValueError, match=r"^x must lie in \[-128, 127\], not 128$"):
        apply_lut([0, 128], INT8_GRID)
    with pytest.raises(TypeError, match=r"^x must be integers, not float64$"):
        apply_lut([0.5], INT8_GRID)
    with pytest.raises(ValueError, match=r"^input scale must be a positive finite float32, "
                                         r"not 0.0$"):
        logistic_table((0.0, 0))
    with pytest.raises(ValueError, match=r"^output zero point must lie in \[-128, 127\], "
                                         r"not 200$"):
        gelu_table((0.1, 0), (0.1, 200))
