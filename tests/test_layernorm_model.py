"""The layernorm golden model: accuracy against float64, its rsqrt, errors, determinism.

``pytest -s tests/test_layernorm_model.py`` prints the error statistics quoted in
``docs/layernorm.md``.
"""

import functools
import math

import numpy as np
import pytest

from verification.models.layernorm import (
    MAX_LENGTH,
    PARAMETER_LIMIT,
    LayerNormParams,
    layernorm,
    layernorm_error_bound,
    layernorm_float,
    normalise,
    rsqrt_mantissa,
    shift_round,
)

SEEDS = range(8)
LAYERS_PER_SEED = 24
ROWS_PER_LAYER = 10
FIXED_LENGTHS = (1, 2, 3, 7, 1023, 1024)


def _layer(rng, n):
    """Float parameters of a random layer: scales, zero points, gamma, beta and epsilon."""
    input_scale = 10 ** rng.uniform(-3, 0)
    gamma = rng.normal(1.0, 0.5, n) * rng.choice([-1, 1], n, p=[0.1, 0.9])
    beta = rng.normal(0.0, 0.4, n)
    # Output scale as calibration picks it, from 4 standard deviations of gamma z plus beta,
    # clipping up to 10x harder or leaving 3x headroom.
    spread = np.max(np.abs(gamma)) * min(4.0, math.sqrt(max(n - 1, 1))) + np.max(np.abs(beta))
    return dict(
        gamma=gamma, beta=beta,
        # epsilon / s_x**2 from negligible to dominating the variance (at most 127.5**2)
        epsilon=10 ** rng.uniform(-8, 4) * input_scale**2,
        input_scale=input_scale, input_zero_point=int(rng.integers(-128, 128)),
        output_scale=spread / 127 * 10 ** rng.uniform(-1, 0.5),
        output_zero_point=int(rng.integers(-32, 33)))


def _rows(rng, n, count):
    """Random int8 rows: uniform, Gaussian around a random centre, or within one step."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return rng.integers(-128, 128, (count, n)).astype(np.int8)
    centre = rng.integers(-128, 128)
    spread = 10 ** rng.uniform(0, 2) if kind == 1 else 0.5
    return np.clip(np.rint(rng.normal(centre, spread, (count, n))), -128, 127).astype(np.int8)


def _extreme_rows(rng, n):
    """Constant rows, both rails, one-hot rows and alternating rails."""
    one_hot = np.zeros((2, n), np.int8)
    one_hot[0, rng.integers(n)] = 127
    one_hot[1, :] = 127
    one_hot[1, rng.integers(n)] = -128
    alternating = np.where(np.arange(n) % 2 == 0, -128, 127).astype(np.int8)
    constant = np.full((1, n), rng.integers(-128, 128), np.int8)
    return np.concatenate([constant, np.full((1, n), -128, np.int8),
                           np.full((1, n), 127, np.int8), one_hot, alternating[None]])


def _compare(x, layer):
    """Absolute integer-vs-float errors of one layer and the bound the model claims."""
    params = LayerNormParams.from_float(**layer)
    errors = np.abs(layernorm(x, params).astype(np.int64) - layernorm_float(x, **layer))
    return errors, math.floor(layernorm_error_bound(params)) + 1


@functools.cache
def _measure(seed):
    """Errors of every output of one seed's rows, the number of rows, and bound breaches."""
    rng = np.random.default_rng(seed)
    lengths = list(FIXED_LENGTHS) + [
        int(round(2 ** rng.uniform(0, 10))) for _ in range(LAYERS_PER_SEED - len(FIXED_LENGTHS))]
    errors, rows, breaches = [], 0, []
    for n in lengths + [MAX_LENGTH]:
        layer = _layer(rng, n)
        x = np.concatenate([_rows(rng, n, ROWS_PER_LAYER), _extreme_rows(rng, n)])
        e, bound = _compare(x, layer)
        errors.append(e.ravel())
        rows += x.shape[0]
        if e.max() > bound:
            breaches.append((n, int(e.max()), bound))
    return np.concatenate(errors), rows, breaches


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_float_reference(seed):
    errors, rows, breaches = _measure(seed)
    mae, worst = errors.mean(), errors.max()
    assert mae <= 0.5 and worst <= 2, (
        f"seed {seed}: {rows} rows, MAE {mae:.4f} LSB, max {worst} LSB")
    assert not breaches, f"seed {seed}: (N, error, claimed bound) {breaches}"


def test_error_statistics_over_all_seeds():
    results = [_measure(seed) for seed in SEEDS]
    errors = np.concatenate([e for e, _, _ in results])
    rows = sum(r for _, r, _ in results)
    random_rows = len(SEEDS) * (LAYERS_PER_SEED + 1) * ROWS_PER_LAYER
    mae, worst = errors.mean(), errors.max()
    print(f"\nlayernorm vs float64, seeds {SEEDS.start}..{SEEDS.stop - 1}: {random_rows} random "
          f"+ {rows - random_rows} extreme rows, {errors.size} outputs, MAE {mae:.5f} LSB, "
          f"max {worst} LSB, {np.mean(errors > 0):.3%} of outputs differ")
    assert random_rows >= 1000
    assert mae <= 0.5 and worst <= 2, f"seeds {list(SEEDS)}: MAE {mae:.4f} LSB, max {worst} LSB"


@pytest.mark.parametrize("n", [1, 2, 13, MAX_LENGTH])
def test_constant_rows_give_beta(n):
    # Variance 0: epsilon alone sets the scale and every output is the quantized beta.
    layer = _layer(np.random.default_rng(n), n)
    params = LayerNormParams.from_float(**layer)
    x = np.stack([np.full(n, v, np.int8) for v in (-128, -1, 0, 5, 127)])
    expected = np.clip(params.output_zero_point
                       + shift_round(params.beta.astype(np.int64), 8), -128, 127)
    assert np.array_equal(layernorm(x, params), np.broadcast_to(expected, x.shape))


@pytest.mark.parametrize("n", [1, 2, MAX_LENGTH])
@pytest.mark.parametrize(("gamma", "beta"), [(1, 1), (1, -1), (-1, 1)])
@pytest.mark.parametrize("epsilon", [1e-30, 1.75e13 / MAX_LENGTH**2])
def test_widths_hold_at_the_parameter_limits(n, gamma, beta, epsilon):
    # |gamma| / s_y and |beta| / s_y just below the limit, the largest |z| (one-hot rows of
    # 4096) and epsilon from nothing to the largest E: no intermediate outgrows its width.
    limit = (PARAMETER_LIMIT - 1) * 0.01
    layer = dict(gamma=np.full(n, gamma * limit), beta=np.full(n, beta * limit),
                 epsilon=epsilon, input_scale=1.0, input_zero_point=0, output_scale=0.01,
                 output_zero_point=0)
    x = _extreme_rows(np.random.default_rng(n), n)
    errors, bound = _compare(x, layer)
    assert errors.max() <= bound, f"N {n}: error {errors.max()} above the claimed {bound}"


def test_rsqrt_whole_mantissa_range():
    m = np.arange(2**18, 2**20, dtype=np.int64)
    exact = np.array([math.isqrt((1 << 54) // int(v)) for v in m])
    assert np.array_equal(rsqrt_mantissa(m), exact)


def test_rsqrt_rejects_unnormalised_mantissas():
    with pytest.raises(ValueError, match=r"^rsqrt mantissas must be in \[2\*\*18, 2\*\*20\)$"):
        rsqrt_mantissa([2**18 - 1])


def test_normalise_and_rsqrt_of_every_variance_magnitude():
    rng = np.random.default_rng(7)
    powers = 1 << np.arange(61, dtype=np.int64)
    d = np.unique(np.concatenate([powers, powers - 1, powers + 1, rng.integers(1, 2**61, 4000)]))
    d = d[d >= 1]
    m, h = normalise(d)
    sh = 2 * h - 18
    assert np.all((m >= 2**18) & (m < 2**20)), "mantissa out of [2**18, 2**20)"
    assert all(int(mi) << int(s) <= int(di) < (int(mi) + 1) << int(s) if s >= 0
               else int(mi) == int(di) << -int(s) for mi, s, di in zip(m, sh, d, strict=True))
    # r * 2**-(18 + h) is 1 / sqrt(D) to within r's floor (2**-17) and m's truncation (2**-19).
    ratio = np.array([float(r) / 2 ** (18 + int(hi)) * math.sqrt(int(di))
                      for r, hi, di in zip(rsqrt_mantissa(m), h, d, strict=True)])
    assert np.all((ratio <= 1 + 2.0**-19 + 1e-12) & (ratio >= 1 - 2.0**-17 - 1e-12)), (
        f"rsqrt ratio in [{ratio.min()!r}, {ratio.max()!r}]")


def test_shift_round_rounds_half_up():
    values = np.array([-6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 5, 6], dtype=np.int64)
    assert shift_round(values, 2).tolist() == [-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2]
    assert shift_round(values, 0).tolist() == values.tolist()


_GOOD = dict(gamma=[1.0, 2.0], beta=[0.0, 0.5], epsilon=1e-5, input_scale=0.1,
             input_zero_point=0, output_scale=0.05, output_zero_point=0)


@pytest.mark.parametrize(("change", "message"), [
    (dict(gamma=[]), "gamma and beta must be vectors of the same length, not shapes (0,) and (2,)"),
    (dict(gamma=[], beta=[]), "layernorm length must be between 1 and 4096, not 0"),
    (dict(gamma=np.ones(4097), beta=np.zeros(4097)),
     "layernorm length must be between 1 and 4096, not 4097"),
    (dict(beta=[0.0]),
     "gamma and beta must be vectors of the same length, not shapes (2,) and (1,)"),
    (dict(gamma=[[1.0, 2.0]]),
     "gamma and beta must be vectors of the same length, not shapes (1, 2) and (2,)"),
    (dict(input_scale=0.0), "input scale must be positive and finite, not 0.0"),
    (dict(output_scale=-1.0), "output scale must be positive and finite, not -1.0"),
    (dict(output_scale=math.inf), "output scale must be positive and finite, not inf"),
    (dict(input_zero_point=128), "input zero point must be an integer in [-128, 127], not 128"),
    (dict(output_zero_point=-129),
     "output zero point must be an integer in [-128, 127], not -129"),
    (dict(output_zero_point=1.5), "output zero point must be an integer in [-128, 127], not 1.5"),
    (dict(epsilon=0.0), "epsilon must be positive and finite, not 0.0"),
    (dict(gamma=[1.0, -1000.0]),
     "gamma / output scale must be below 16384 in magnitude, not 20000"),
    (dict(beta=[0.0, math.nan]), "beta / output scale must be below 16384 in magnitude, not nan"),
    (dict(epsilon=1e7, input_scale=1e-3),
     "N**2 * epsilon / input scale**2 must be below 2**44, not 4e+13"),
])
def test_parameter_errors(change, message):
    with pytest.raises(ValueError) as error:
        LayerNormParams.from_float(**{**_GOOD, **change})
    assert str(error.value) == message


def test_input_must_be_int8_rows_of_the_layer_length():
    params = LayerNormParams.from_float(**_GOOD)
    with pytest.raises(ValueError) as error:
        layernorm(np.zeros((3, 2), np.int16), params)
    assert str(error.value) == ("layernorm input must be int8 rows of length 2, not int16 with "
                                "shape (3, 2)")
    with pytest.raises(ValueError, match=r"^layernorm input must be int8 rows of length 2, not "
                                         r"int8 with shape \(3, 4\)$"):
        layernorm(np.zeros((3, 4), np.int8), params)


def test_params_are_read_only():
    params = LayerNormParams.from_float(**_GOOD)
    with pytest.raises(ValueError, match="read-only"):
        params.gamma[0] = 0


@pytest.mark.parametrize("seed", SEEDS[:3])
def test_deterministic_and_vectorised(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(1, 300))
    params = LayerNormParams.from_float(**_layer(rng, n))
    x = rng.integers(-128, 128, (2, 5, n)).astype(np.int8)
    batched = layernorm(x, params)
    assert np.array_equal(batched, layernorm(x.copy(), params)), f"seed {seed}"
    by_row = np.stack([layernorm(row, params) for row in x.reshape(-1, n)]).reshape(x.shape)
    assert np.array_equal(batched, by_row), f"seed {seed}: vectorised != row by row"
