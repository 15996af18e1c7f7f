"""The int8 golden models against TFLite's own interpreters, on single-op models built here.

TFLite Micro is the oracle: the golden models must equal it bit for bit. LiteRT is the second
opinion. Its ADD equals the golden model bit for bit too, but its reference per-channel
FULLY_CONNECTED requantizes in double, ``round(acc * scale)``, rather than with the fixed-point
multiplier, so there it is checked against that float computation exactly and against the golden
model to within one step.
"""

import math
from dataclasses import dataclass

import numpy as np
import pytest

from verification.models.quant import (
    INT32_MAX,
    INT32_MIN,
    AddParams,
    add,
    fully_connected_multipliers,
    requantize,
)
from verification.stimulus import random_int8
from verification.tflite.builder import Options
from verification.tflite.oracle import (
    add_model,
    fully_connected_model,
    run_litert,
    run_tflm,
    unary_model,
)

SEEDS = range(5)
#: FULLY_CONNECTED outputs compared per seed and interpreter: 50,000 or more over the seeds.
FC_ELEMENTS_PER_SEED = 10000
#: ADD parameter sets per seed, each run on all 65,536 pairs of int8 inputs.
ADD_CASES_PER_SEED = 3
#: Effective scales of the first channels of every per-channel model: a shift of -31, a
#: multiplier flushed to zero, a shift of 30.
EXTREME_EXPONENTS = (-31.5, -33.5, 29.5)
#: float32's largest mantissa: with power-of-two scales, a multiplier of 2**31 - 128.
MAX_MANTISSA = 2 - 2.0**-23
INT8_GRID = np.arange(-128, 128, dtype=np.int8)


@dataclass(frozen=True)
class FcCase:
    """One int8 FULLY_CONNECTED: operands, quantization, and what the golden model makes of it."""

    x: np.ndarray
    weights: np.ndarray
    weight_scales: np.ndarray
    bias: np.ndarray
    input_q: tuple
    output_q: tuple

    @property
    def acc(self):
        """int32 accumulators with bias, as TFLite forms them (exact in int64)."""
        x = self.x.astype(np.int64) - self.input_q[1]
        return x @ self.weights.T.astype(np.int64) + self.bias

    @property
    def multipliers(self):
        return fully_connected_multipliers(self.input_q[0], self.weight_scales, self.output_q[0])

    @property
    def real_scales(self):
        """Per-channel ``input_scale * weight_scale / output_scale``, in double."""
        s_in, s_out = (np.float64(np.float32(q[0])) for q in (self.input_q, self.output_q))
        return s_in * self.weight_scales.astype(np.float64) / s_out

    def model(self):
        return fully_connected_model(len(self.x), self.input_q, self.weights, self.weight_scales,
                                     self.bias, self.output_q)

    def golden(self):
        return requantize(self.acc, *self.multipliers, self.output_q[1])


def _fc_case(rng, index):
    """A random FULLY_CONNECTED: even ``index`` has power-of-two scales, every fourth one scale.

    Power-of-two input and output scales make the effective scales exact, so rounding ties are
    common and a channel can be given a multiplier of exactly ``2**31 - 128``.
    """
    pow2 = index % 2 == 0
    per_tensor = index % 4 == 3
    draw = rng.integers if pow2 else rng.uniform
    m, k = int(rng.integers(8, 65)), int(rng.integers(1, 65))
    n = 1 if per_tensor else int(rng.integers(4, 33))
    s_in, s_out = (np.float32(2.0 ** draw(-12, 3)) for _ in range(2))
    # TFLite Micro refuses per-tensor models whose bias scale is far from input * weight scale
    # relative to the output scale, which happens for effective scales far above 1.
    exponents = np.asarray(draw(-35, 10 if per_tensor else 29, n), dtype=np.float64)
    mantissas = np.ones(n)
    if not per_tensor:
        exponents[:3] = EXTREME_EXPONENTS
        if pow2:
            mantissas[3] = MAX_MANTISSA
    weight_scales = (mantissas * 2.0**exponents * s_out / s_in).astype(np.float32)
    x, weights = random_int8(rng, (m, k)), random_int8(rng, (n, k))
    zp_in, zp_out = (int(z) for z in rng.integers(-128, 128, 2))
    # Bias of every magnitude, as large as the int32 accumulator allows.
    products = (x.astype(np.int64) - zp_in) @ weights.T.astype(np.int64)
    headroom = INT32_MAX - int(np.abs(products).max())
    magnitude = np.minimum(headroom, np.floor(2.0 ** rng.uniform(0, 31, n)))
    bias = (rng.choice([-1, 1], n) * magnitude).astype(np.int32)
    return FcCase(x, weights, weight_scales, bias, (s_in, zp_in), (s_out, zp_out))


def _first_difference(got, want, where, case=None):
    """Failure message naming the first output that differs, with its requantization inputs."""
    bad = np.argwhere(got != want)
    index = tuple(bad[0])
    message = (f"{where}: {len(bad)} of {want.size} outputs differ; first at {index}: "
               f"oracle {got[index]}, golden model {want[index]}")
    if case is not None:
        multipliers, shifts = (np.broadcast_to(a, want.shape[-1:]) for a in case.multipliers)
        channel = index[-1]
        message += (f", acc {case.acc[index]}, multiplier {multipliers[channel]}, "
                    f"shift {shifts[channel]}")
    return message


def _round_half_away(values):
    """``std::round`` on doubles, exactly: ties away from zero."""
    whole = np.trunc(values)
    return whole + np.sign(values) * (np.abs(values - whole) >= 0.5)


def _single_rounding(acc, multiplier, shift):
    """TFLite's other build (``TFLITE_SINGLE_ROUNDING``): one rounding of a 64-bit product."""
    total = 31 - np.asarray(shift, dtype=np.int64)
    return (acc * multiplier + (np.int64(1) << (total - 1))) >> total


@pytest.mark.parametrize("seed", SEEDS)
def test_fully_connected_matches_tflm(seed):
    rng = np.random.default_rng(seed)
    compared, wrapped, index, multipliers, shifts = 0, 0, 0, set(), set()
    while compared < FC_ELEMENTS_PER_SEED:
        case = _fc_case(rng, index)
        got, want = run_tflm(case.model(), [case.x]), case.golden()
        assert np.array_equal(got, want), _first_difference(got, want, f"seed {seed}, model "
                                                                       f"{index}", case)
        compared += want.size
        multipliers.update(np.ravel(case.multipliers[0]).tolist())
        shifts.update(np.ravel(case.multipliers[1]).tolist())
        shifted = case.acc << np.maximum(case.multipliers[1], 0)
        wrapped += np.count_nonzero((shifted < INT32_MIN) | (shifted > INT32_MAX))
        index += 1
    assert {-31, 30} <= shifts, f"seed {seed}: shift extremes not covered, only {shifts}"
    assert 0 in multipliers and max(multipliers) >= 2**31 - 256, \
        f"seed {seed}: no flushed or near-2**31 multiplier"
    assert wrapped > 0, f"seed {seed}: no left shift overflowed int32"


def test_fully_connected_rounds_twice_like_tflm():
    # Effective scales of 1/4, 1/8 and 1/16 on every int8 input: exact, so ties abound.
    x = INT8_GRID.reshape(-1, 1)
    case = FcCase(x, np.array([[1], [-1], [3]], np.int8), np.float32([0.5, 0.25, 0.125]),
                  np.int32([0, 1, -1]), (0.5, 0), (1.0, 0))
    got, want = run_tflm(case.model(), [x]), case.golden()
    assert np.array_equal(got, want), _first_difference(got, want, "ties", case)
    once = np.clip(_single_rounding(case.acc, *case.multipliers), -128, 127)
    assert np.any(once != want), "single rounding should change an output"


def test_per_tensor_fully_connected_forms_the_product_in_double():
    # Scales whose product rounds differently in float32 (multiplier 1428397696) and in double
    # (1428397664), with accumulators around the one where that changes the output.
    x = INT8_GRID.reshape(-1, 1)
    case = FcCase(x, np.ones((1, 1), np.int8), np.float32([0.0012400261]),
                  np.int32([1206970]), (0.016369617, 0), (1.0, 0))
    assert [int(a[0]) for a in case.multipliers] == [1428397664, -15]
    got, want = run_tflm(case.model(), [x]), case.golden()
    assert np.array_equal(got, want), _first_difference(got, want, "per-tensor", case)
    float32_product = requantize(case.acc, 1428397696, -15, 0)
    assert np.any(float32_product != want), "the float32 product should change an output"


def test_multiplier_that_rounds_up_to_2_31():
    # 8401075 * 16752319 / 2**48 is 0.5 * (1 - 2**-33.4): its 31-bit mantissa rounds to 2**31.
    x = INT8_GRID.reshape(-1, 1)
    case = FcCase(x, np.ones((2, 1), np.int8), np.float32([16752319 / 2**24, 0.25]),
                  np.int32([0, 0]), (8401075 / 2**24, 0), (1.0, 0))
    assert case.multipliers[0][0] == 2**30 and case.multipliers[1][0] == 0
    got, want = run_tflm(case.model(), [x]), case.golden()
    assert np.array_equal(got, want), _first_difference(got, want, "2**31 mantissa", case)


def test_multiplier_mantissa_tie_rounds_away_from_zero():
    # (2**23 + 1) * 257 * 2**15 / 2**48 has a 31-bit mantissa of exactly 1077936256.5, which
    # std::round takes to ...257 (round-half-even would give ...256); one accumulator shows it.
    x = INT8_GRID.reshape(-1, 1)
    case = FcCase(x, np.ones((1, 1), np.int8), np.float32([257 * 2**15 / 2**24]),
                  np.int32([61625252]), ((2**23 + 1) / 2**24, 0), (2.0**19, 0))
    assert [int(a[0]) for a in case.multipliers] == [1077936257, -20]
    got, want = run_tflm(case.model(), [x]), case.golden()
    assert np.array_equal(got, want), _first_difference(got, want, "mantissa tie", case)
    assert np.any(requantize(case.acc, 1077936256, -20, 0) != want), "the tie should show"


@pytest.mark.parametrize("seed", SEEDS)
def test_fully_connected_second_opinion_litert(seed):
    rng = np.random.default_rng(seed)
    compared, index = 0, 0
    while compared < FC_ELEMENTS_PER_SEED:
        case = _fc_case(rng, index)
        index += 1
        if case.weight_scales.size == 1:
            continue                   # LiteRT's per-tensor path is not this float computation
        got, want = run_litert(case.model(), [case.x]), case.golden()
        # Where the golden model's left shift stays clear of int32 overflow (and LiteRT's
        # double-to-int32 conversion is defined).
        defined = np.abs(case.acc) * 2.0 ** np.maximum(case.multipliers[1], 0) < 2**30
        in_float = np.clip(_round_half_away(case.acc * case.real_scales) + case.output_q[1],
                           -128, 127)
        where = f"seed {seed}, model {index - 1}"
        assert np.array_equal(got[defined], in_float[defined]), f"{where}: not round(acc * s)"
        steps = np.abs(got.astype(np.int64) - want)[defined]
        assert steps.max(initial=0) <= 1, f"{where}: LiteRT {steps.max()} steps from golden"
        compared += np.count_nonzero(defined)


def _add_case(rng, index):
    """Random ADD quantization: power-of-two scales, any scales, or extreme ratios in turn."""
    kind = index % 3
    if kind == 0:
        s1, s2 = 2.0 ** rng.integers(-10, 1, 2)
        s_out = max(s1, s2) * 2.0 ** rng.integers(-3, 3)
    elif kind == 1:
        s1, s2 = 2.0 ** rng.uniform(-10, 0, 2)
        s_out = max(s1, s2) * 2.0 ** rng.uniform(-3, 3)
    else:
        # One input 2**-33 times the other flushes its multiplier to zero; the output scale is
        # near the smallest ADD can rescale to.
        s1, s2 = rng.permutation([2.0 ** rng.uniform(-4, 0), 2.0 ** rng.uniform(-40, -33)])
        s_out = max(s1, s2) * 2.0 ** rng.uniform(-18.9, -17)
    zp1, zp2, zp_out = (int(z) for z in rng.integers(-128, 128, 3))
    return AddParams.from_scales(s1, zp1, s2, zp2, s_out, zp_out)


def _run_add(run, params):
    x1 = np.repeat(INT8_GRID[:, None], 256, axis=1)
    model = add_model(x1.shape, (params.input1_scale, params.input1_zero_point),
                      (params.input2_scale, params.input2_zero_point),
                      (params.output_scale, params.output_zero_point))
    return run(model, [x1, x1.T.copy()]), add(x1, x1.T, params)


@pytest.mark.parametrize("run", [run_tflm, run_litert], ids=["tflm", "litert"])
@pytest.mark.parametrize("seed", SEEDS)
def test_add_matches_interpreter(seed, run):
    rng = np.random.default_rng(seed)
    for index in range(ADD_CASES_PER_SEED):
        params = _add_case(rng, index)
        got, want = _run_add(run, params)
        assert np.array_equal(got, want), \
            _first_difference(got, want, f"seed {seed}, case {index}, {params}")


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


# The quantization TFLite requires of each op's int8 output, and its float function.
UNARY_OPS = {
    "LOGISTIC": ((1 / 256, -128), None, lambda x: 1 / (1 + np.exp(-x))),
    "TANH": ((1 / 128, 0), None, np.tanh),
    "SOFTMAX": ((1 / 256, -128), Options("SoftmaxOptions", {"Beta": 1.0}), _softmax),
    "GELU": ((4.2 / 128, -124), Options("GeluOptions", {"Approximate": False}), _gelu),
}


@pytest.mark.parametrize("op", UNARY_OPS)
def test_unary_models_run(op):
    # Not yet golden models: the builder makes these ops, the interpreters run them, and the
    # results lie within ~1 step of the float function on every int8 input.
    output_q, options, function = UNARY_OPS[op]
    x = INT8_GRID.reshape(1, -1)
    model = unary_model(op, x.shape, (1 / 16, 0), output_q, options)
    got = run_litert(model, [x])
    if op != "GELU":
        assert np.array_equal(run_tflm(model, [x]), got), f"{op}: TFLite Micro and LiteRT differ"
    real = (got.astype(np.int64) - output_q[1]) * output_q[0]
    steps = np.abs(real - function(x / 16)) / output_q[0]
    assert steps.max() < 1.25, f"{op}: {steps.max()} steps from float"


def test_tflite_micro_wheel_has_no_gelu():
    # When this fails, a new wheel has a GELU kernel and can be the GELU oracle.
    model = unary_model("GELU", (1, 4), (1 / 16, 0), (4.2 / 128, -124),
                        UNARY_OPS["GELU"][1])
    with pytest.raises(RuntimeError, match="^TFLM failed to allocate tensors$"):
        run_tflm(model, [np.zeros((1, 4), np.int8)])
