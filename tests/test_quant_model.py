"""The TFLite fixed-point golden model: primitives, known answers, errors, float agreement.

Bit-exactness against TFLite Micro itself is in ``test_tflite_oracle.py``; here each primitive
is checked against exact integer arithmetic in Python ints and against hand-worked corner cases.
"""

import numpy as np
import pytest

from verification.models.quant import (
    INT32_MAX,
    INT32_MIN,
    AddParams,
    add,
    add_float,
    fully_connected_multipliers,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    requantize,
    requantize_float,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
)
from verification.stimulus import random_int8

SEEDS = range(5)
INT8_GRID = np.arange(-128, 128, dtype=np.int8)


def _random_int32(rng, size):
    """int32 values spread over every magnitude, with the extremes over-represented."""
    magnitude = np.floor(2.0 ** rng.uniform(0, 31, size)).astype(np.int64)
    values = np.where(rng.random(size) < 0.5, -magnitude, magnitude - 1)
    corners = rng.choice([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX], size)
    return np.where(rng.random(size) < 0.1, corners, values)


def _round_half_away(numerator, denominator):
    """Exact ``numerator / denominator`` rounded half away from zero, in Python ints."""
    sign = -1 if numerator < 0 else 1
    return sign * ((2 * abs(numerator) + denominator) // (2 * denominator))


@pytest.mark.parametrize(("a", "b", "expected"), [
    (INT32_MIN, INT32_MIN, INT32_MAX),            # the one overflow: saturates
    (INT32_MIN, INT32_MAX, -INT32_MAX),
    (INT32_MAX, INT32_MAX, INT32_MAX - 1),
    (3, 1 << 30, 2),                              # 1.5 rounds up
    (-3, 1 << 30, -1),                            # -1.5 rounds up too, not away from zero
    (1, 1 << 30, 1),
    (-1, 1 << 30, 0),
    (5, INT32_MAX, 5),
    (0, INT32_MIN, 0),
])
def test_doubling_high_mul_known_answers(a, b, expected):
    assert saturating_rounding_doubling_high_mul(a, b) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_doubling_high_mul_is_round_half_up(seed):
    rng = np.random.default_rng(seed)
    a, b = _random_int32(rng, 2000), _random_int32(rng, 2000)
    got = saturating_rounding_doubling_high_mul(a, b)
    for x, y, z in zip(a.tolist(), b.tolist(), got.tolist(), strict=True):
        want = INT32_MAX if x == y == INT32_MIN else (x * y + (1 << 30)) >> 31
        assert z == want, f"seed {seed}: SRDHM({x}, {y}) = {z}, not {want}"


@pytest.mark.parametrize(("x", "exponent", "expected"), [
    (5, 1, 3), (-5, 1, -3),                       # ties away from zero
    (7, 1, 4), (-7, 1, -4),
    (6, 2, 2), (-6, 2, -2),
    (5, 2, 1), (-5, 2, -1),
    (123, 0, 123), (-123, 0, -123),
    (1 << 30, 31, 1), (-(1 << 30), 31, -1),
    ((1 << 30) - 1, 31, 0),
    (INT32_MIN, 31, -1), (INT32_MAX, 31, 1),
])
def test_rounding_divide_known_answers(x, exponent, expected):
    assert rounding_divide_by_pot(x, exponent) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_rounding_divide_is_round_half_away(seed):
    rng = np.random.default_rng(seed)
    x, exponent = _random_int32(rng, 2000), rng.integers(0, 32, 2000)
    got = rounding_divide_by_pot(x, exponent)
    for v, e, z in zip(x.tolist(), exponent.tolist(), got.tolist(), strict=True):
        assert z == _round_half_away(v, 1 << e), f"seed {seed}: RDBPOT({v}, {e}) = {z}"


@pytest.mark.parametrize(("x", "multiplier", "shift", "expected"), [
    (1, 1 << 30, -1, 1),           # 0.25 rounds twice: to 0.5, then to 1
    (-2, 1 << 30, -1, -1),         # -0.5: away from zero in the second rounding
    (100, 1 << 30, 1, 100),
    (-7, 3 << 29, 0, -5),          # -5.25
    (INT32_MAX, INT32_MAX, 0, INT32_MAX - 1),
    (3, 1 << 30, 30, -(1 << 29)),  # 3 << 30 wraps to -2**30 before the multiply
    (12345, 0, 5, 0),              # a flushed multiplier
])
def test_multiply_by_quantized_multiplier_known_answers(x, multiplier, shift, expected):
    assert multiply_by_quantized_multiplier(x, multiplier, shift) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_multiply_by_quantized_multiplier_within_one_of_exact(seed):
    rng = np.random.default_rng(seed)
    shift = rng.integers(-31, 31, 2000)
    multiplier = rng.integers(1 << 30, 1 << 31, 2000)
    # Inputs small enough that the left shift cannot overflow.
    x = _random_int32(rng, 2000) >> np.maximum(shift, 0)
    got = multiply_by_quantized_multiplier(x, multiplier, shift)
    for v, m, s, z in zip(x.tolist(), multiplier.tolist(), shift.tolist(), got.tolist(),
                          strict=True):
        exact = v * m * 2.0 ** (s - 31)
        assert abs(z - exact) <= 1, f"seed {seed}: MBQM({v}, {m}, {s}) = {z}, not ~{exact}"


@pytest.mark.parametrize(("real", "expected"), [
    (0.0, (0, 0)),
    (1.0, (1 << 30, 1)),
    (0.5, (1 << 30, 0)),
    (0.75, (3 << 29, 0)),
    ((2**30 + 0.5) / 2**31, (2**30 + 1, 0)),      # rounds half away from zero, not to even
    (1 - 2**-40, (1 << 30, 1)),                   # mantissa rounds up to 2**31: halve, shift+1
    (2.0**-32, (1 << 30, -31)),
    (2.0**-32 * (1 - 2**-40), (1 << 30, -31)),    # bumped back into range before the flush
    (2.0**-33, (0, 0)),                           # shift below -31: flushed to zero
    (2.0**40, (1 << 30, 41)),                     # out of range, as TFLite returns it
])
def test_quantize_multiplier_known_answers(real, expected):
    assert quantize_multiplier(real) == expected


@pytest.mark.parametrize("seed", SEEDS)
def test_quantize_multiplier_round_trips(seed):
    rng = np.random.default_rng(seed)
    for real in 2.0 ** rng.uniform(-31, 30, 500):
        multiplier, shift = quantize_multiplier(real)
        assert 1 << 30 <= multiplier < 1 << 31, f"seed {seed}: {real!r}"
        assert abs(multiplier * 2.0 ** (shift - 31) - real) <= real * 2.0**-31, \
            f"seed {seed}: {real!r} -> {multiplier}, {shift}"


def test_fully_connected_multipliers_form_the_product_in_double():
    # float32 scales whose product rounds differently in float32 and in double.
    s_in, s_w = np.float32(0.016369617), np.float32(0.0012400261)
    multipliers, shifts = fully_connected_multipliers(s_in, [s_w, s_w], 1.0)
    assert (multipliers.tolist(), shifts.tolist()) == ([1428397664] * 2, [-15] * 2)
    assert quantize_multiplier(float(s_in * s_w)) == (1428397696, -15)
    assert fully_connected_multipliers(s_in, s_w, 1.0) == (1428397664, -15)


@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_broadcasts_per_channel(seed):
    rng = np.random.default_rng(seed)
    acc = _random_int32(rng, (7, 5)) >> 12
    multiplier = rng.integers(1 << 30, 1 << 31, 5)
    shift = rng.integers(-20, 3, 5)
    got = requantize(acc, multiplier, shift, -3, qmin=-100, qmax=90)
    for c in range(5):
        column = requantize(acc[:, c], multiplier[c], shift[c], -3, qmin=-100, qmax=90)
        assert np.array_equal(got[:, c], column), f"seed {seed}, channel {c}"
    assert got.dtype == np.int8 and got.min() >= -100 and got.max() <= 90, f"seed {seed}"


def test_requantize_wraps_the_zero_point_add_like_int32():
    # MBQM gives INT32_MAX - 1; adding the zero point overflows int32 and wraps negative.
    assert requantize(INT32_MAX, INT32_MAX, 0, 5) == -128
    assert requantize(INT32_MAX, INT32_MAX, 0, 1) == 127


@pytest.mark.parametrize("seed", SEEDS)
def test_requantize_within_one_step_of_float(seed):
    rng = np.random.default_rng(seed)
    scales = 2.0 ** rng.uniform(-24, 4, 16)
    multiplier, shift = np.array([quantize_multiplier(s) for s in scales]).T
    acc = (rng.integers(-(1 << 20), 1 << 20, (500, 16))
           // np.maximum(1, 2.0 ** np.maximum(shift, 0)).astype(np.int64))
    zero_point = int(rng.integers(-128, 128))
    got = requantize(acc, multiplier, shift, zero_point)
    want = requantize_float(acc, scales, zero_point)
    worst = np.abs(got - want).max()
    assert worst <= 1, f"seed {seed}: {worst} steps from float"


def _random_add_params(rng):
    s1, s2 = 2.0 ** rng.uniform(-10, 0, 2)
    s_out = max(s1, s2) * 2.0 ** rng.uniform(-2, 2)
    zp1, zp2, zp_out = (int(z) for z in rng.integers(-128, 128, 3))
    return AddParams.from_scales(s1, zp1, s2, zp2, s_out, zp_out)


def test_add_params_known_answer():
    params = AddParams.from_scales(0.5, 1, 0.25, -2, 1.0, 3)
    assert (params.input1_multiplier, params.input1_shift) == (1 << 30, 0)     # 0.5
    assert (params.input2_multiplier, params.input2_shift) == (1 << 30, -1)    # 0.25
    assert (params.output_multiplier, params.output_shift) == (1 << 30, -19)   # 2**-20
    assert params.input1_scale == 0.5 and params.output_zero_point == 3


@pytest.mark.parametrize("seed", SEEDS)
def test_add_within_one_step_of_float(seed):
    rng = np.random.default_rng(seed)
    params = _random_add_params(rng)
    x1, x2 = INT8_GRID[:, None], INT8_GRID[None, :]
    got = add(x1, x2, params)
    worst = np.abs(got - add_float(x1, x2, params)).max()
    assert got.shape == (256, 256), f"seed {seed}"
    assert worst <= 1, f"seed {seed}: {worst} steps from float with {params}"


@pytest.mark.parametrize("seed", SEEDS)
def test_add_clamps_to_the_activation_range(seed):
    rng = np.random.default_rng(seed)
    params = _random_add_params(rng)
    x1, x2 = random_int8(rng, 300), random_int8(rng, 300)
    relu = add(x1, x2, params, qmin=params.output_zero_point)
    assert np.array_equal(relu, np.maximum(add(x1, x2, params), params.output_zero_point)), \
        f"seed {seed}"


@pytest.mark.parametrize(("call", "message"), [
    (lambda: multiply_by_quantized_multiplier(1, 1 << 30, 31),
     "shift must lie in [-31, 30], not 31"),
    (lambda: requantize([0, 0], 1 << 30, [0, -32], 0),
     "shift must lie in [-31, 30], not -32"),
    (lambda: requantize(0, [1 << 30, (1 << 30) - 1], 0, 0),
     "multiplier must be 0 or lie in [1073741824, 2147483647], not 1073741823"),
    (lambda: multiply_by_quantized_multiplier(1, 1 << 31, 0),
     "multiplier must be 0 or lie in [1073741824, 2147483647], not 2147483648"),
    (lambda: multiply_by_quantized_multiplier(1, -5, 0),
     "multiplier must be 0 or lie in [1073741824, 2147483647], not -5"),
    (lambda: requantize(0, 1 << 30, 0, 128), "zero_point must lie in [-128, 127], not 128"),
    (lambda: requantize(1 << 31, 1 << 30, 0, 0),
     "acc must lie in [-2147483648, 2147483647], not 2147483648"),
    (lambda: requantize(0, 1 << 30, 0, 0, qmin=5, qmax=4),
     "qmin and qmax must satisfy -128 <= qmin <= qmax <= 127, not 5 and 4"),
    (lambda: rounding_divide_by_pot(1, 32), "exponent must lie in [0, 31], not 32"),
    (lambda: saturating_rounding_doubling_high_mul(0, -(1 << 31) - 1),
     "b must lie in [-2147483648, 2147483647], not -2147483649"),
    (lambda: quantize_multiplier(-0.5), "real multiplier must be finite and non-negative, "
                                        "not -0.5"),
    (lambda: quantize_multiplier(float("nan")),
     "real multiplier must be finite and non-negative, not nan"),
    (lambda: fully_connected_multipliers(0.1, [0.5, 0.0], 0.1),
     "weight scale must be a positive finite float32, not 0.0"),
    (lambda: fully_connected_multipliers(0.1, 0.5, 1e39),
     "output scale must be a positive finite float32, not 1e+39"),
    (lambda: AddParams.from_scales(0.5, 0, -0.25, 0, 1.0, 0),
     "input2 scale must be a positive finite float32, not -0.25"),
    (lambda: AddParams.from_scales(0.5, 0, 0.25, -129, 1.0, 0),
     "input2 zero point must lie in [-128, 127], not -129"),
    (lambda: AddParams.from_scales(0.5, 0, 0.25, 0, 2.0**-20, 0),
     "ADD output scale 9.5367431640625e-07 is too small for input scales 0.5 and 0.25: "
     "the sum would be scaled by 1.0, not below 1"),
    (lambda: add([0, 128], 0, AddParams.from_scales(0.5, 0, 0.5, 0, 0.5, 0)),
     "x1 must lie in [-128, 127], not 128"),
])
def test_bad_parameters(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert str(error.value) == message


def test_values_must_be_integers():
    with pytest.raises(TypeError, match=r"^acc must be integers, not float64$"):
        requantize([1.5], 1 << 30, 0, 0)
