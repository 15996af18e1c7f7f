"""Bit-exact integer model of the vector unit's layernorm, and its float reference.

The unit normalises int8 rows ``x`` of length ``N`` (``1 <= N <= 4096``) quantized with
``(s_x, zp_x)`` and writes int8 rows quantized with ``(s_y, zp_y)``::

    y_i = gamma_i * (X_i - mean(X)) / sqrt(var(X) + epsilon) + beta_i,   X = s_x (x - zp_x)

Since ``X_i - mean(X) = s_x (x_i - mean(x))``, the zero point cancels and the scale moves
into epsilon: with ``S1 = sum x``, ``S2 = sum x**2``, ``d_i = N x_i - S1`` and
``V = N S2 - S1**2 = N**2 var(x)``, the normalised value is exactly
``d_i / sqrt(V + N**2 epsilon / s_x**2)``. Everything below is integer; ``sN``/``uN`` are
signed/unsigned widths the model checks on every value, and ``rnd(u, k)`` is
``(u + 2**k // 2) >> k`` (round half up; ``rnd(u, 0) = u``).

Compiler, once per layer (:meth:`LayerNormParams.from_float`):

- ``E = max(1, round(N**2 epsilon / s_x**2 * 2**16))``: u60, epsilon in ``V`` units, Q.16.
- ``Z = min(16, 17 - bitlen(isqrt(N - 1)))``: fraction bits of the normalised value, 11..16,
  the most that keep ``|z| <= sqrt(N - 1)`` within s18.
- ``G``: the largest shift ``<= 23`` with every ``|round(gamma_i / s_y * 2**G)| < 2**15``;
  ``g_i = round(gamma_i / s_y * 2**G)``: s16 per channel.
- ``b_i = round(beta_i / s_y * 2**8)``: s24 per channel (stored as int32), output LSBs Q.8.

Hardware, per row (two passes over the row and a constant per row):

1. Pass 1, one vector per cycle: ``S1 = sum x_i`` (s20), ``S2 = sum x_i**2`` (u27).
2. ``V = N S2 - S1**2``: u38 (``V = N sum (x_i - mean)**2 <= N**2 127.5**2 < 2**38``).
3. ``D = V * 2**16 + E``: u61, ``D >= 1``.
4. Normalise: ``L = bitlen(D)`` (6 bits, a leading-zero count), ``sh = 2 floor((L - 19) / 2)``
   (-18..42), ``m = D >> sh`` (``D << -sh`` if negative, exact then): u20 in
   ``[2**18, 2**20)``, ``h = (18 + sh) / 2`` (0..30), so ``D ~ m * 4**h / 2**18``.
5. Reciprocal square root of the mantissa: ``r = floor(sqrt(2**54 / m))``: u19 in
   ``[2**17, 2**18]``, i.e. ``2**18 / sqrt(m / 2**18)`` rounded down. A restoring digit
   recurrence, one bit per step from bit 18 down, keeps ``P = m r**2`` (u55) and
   ``Q = m r`` (u39) and accepts bit ``j`` if ``P + Q * 2**(j+1) + m * 4**j <= 2**54`` (a
   59-bit sum): shifts, adds and a compare, no multiplier or table, 19 steps, exact.
6. ``a = N r`` (u31), ``c = S1 r`` (s38), ``k = max(0, h + 10 - Z)`` (0..29). ``k`` is below
   zero only when ``V = 0``, where every ``d_i`` is 0.
7. Pass 2, per lane: ``t = x_i a - c`` (s39, equal to ``d_i r``), ``z = rnd(t, k)`` (s18,
   the normalised value in Q.Z), ``p = z g_i`` (s33), ``v = rnd(p, Z + G - 8)`` (s29, shift
   3..31, output LSBs in Q.8), ``w = v + b_i`` (s30), and
   ``y_i = clamp(zp_y + rnd(w, 8), -128, 127)``.

The single pass 1 is exact because the sums are integers: ``N S2 - S1**2`` has no
cancellation error. :func:`layernorm_error_bound` gives the bound this algorithm meets
against :func:`layernorm_float`; its derivation is in ``docs/layernorm.md``.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "MAX_LENGTH", "EPSILON_FRAC_BITS", "MANTISSA_FRAC_BITS", "RSQRT_FRAC_BITS",
    "OUTPUT_FRAC_BITS", "GAMMA_SHIFT_MAX", "PARAMETER_LIMIT",
    "LayerNormParams", "layernorm", "layernorm_float", "layernorm_error_bound",
    "shift_round", "norm_frac_bits", "normalise", "rsqrt_mantissa",
]

#: Longest row the unit normalises.
MAX_LENGTH = 4096
#: Fraction bits of ``D`` (``F``); even, so that ``sqrt(2**F)`` is a shift.
EPSILON_FRAC_BITS = 16
#: Fraction bits of the normalised mantissa ``m`` (``M``), even; ``m`` is in ``[1, 4)``.
MANTISSA_FRAC_BITS = 18
#: Fraction bits of ``r = 1 / sqrt(m)`` (``R``); ``r`` is in ``(1/2, 1]``.
RSQRT_FRAC_BITS = 18
#: Fraction bits of the output before its final rounding (``T``).
OUTPUT_FRAC_BITS = 8
#: Largest gamma shift ``G``, so that ``Z + G - T`` fits a 5-bit shifter.
GAMMA_SHIFT_MAX = 23
#: Bound on ``|gamma| / s_y`` and ``|beta| / s_y``: keeps ``g`` s16 with ``G >= 0`` and ``b`` s24.
PARAMETER_LIMIT = 2**14
_EPSILON_LIMIT = 2**60
_NORM_FRAC_MAX = 16
_NORM_WIDTH = 18


def _check_width(values, bits, what):
    """Raise ``OverflowError`` unless ``values`` fit ``bits`` signed bits, the RTL's width."""
    limit = 1 << (bits - 1)
    if values.size and (values.min() < -limit or values.max() >= limit):
        raise OverflowError(f"layernorm {what} exceeds {bits} signed bits")


def _frozen(array):
    """``array``, made read-only so that frozen parameters stay frozen."""
    array.flags.writeable = False
    return array


def _check_scale(name, scale):
    """Raise ``ValueError`` unless ``scale`` is positive and finite."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"{name} must be positive and finite, not {scale!r}")


def _check_zero_point(name, zero_point):
    """Raise ``ValueError`` unless ``zero_point`` is an int8 integer."""
    if (isinstance(zero_point, bool) or not isinstance(zero_point, int | np.integer)
            or not -128 <= zero_point <= 127):
        raise ValueError(f"{name} must be an integer in [-128, 127], not {zero_point!r}")


def _check_magnitude(name, values):
    """Raise ``ValueError`` unless every ``|values|`` (a ratio to ``s_y``) is below the limit."""
    largest = float(np.max(np.abs(values)))
    if not largest < PARAMETER_LIMIT:
        raise ValueError(
            f"{name} / output scale must be below {PARAMETER_LIMIT} in magnitude, "
            f"not {largest:.6g}")


def _gamma_shift(ratio):
    """The largest ``G <= GAMMA_SHIFT_MAX`` with ``round(ratio * 2**G)`` within s16."""
    shift = GAMMA_SHIFT_MAX
    while np.max(np.abs(np.rint(ratio * 2.0**shift))) > 2**15 - 1:
        shift -= 1
    return shift


@dataclass(frozen=True, eq=False)
class LayerNormParams:
    """Everything the vector unit needs to normalise rows of one layer, as integers.

    Build it with :meth:`from_float`; the module docstring defines every field.

    Attributes
    ----------
    n : int
        Row length ``N``.
    epsilon : int
        ``E``, epsilon in the variance domain, Q.16 (u60).
    gamma : ndarray, int16, shape (n,)
        ``g``, per-channel scale ``gamma / s_y`` in Q.``gamma_shift``.
    gamma_shift : int
        ``G``, 0..23.
    beta : ndarray, int32, shape (n,)
        ``b``, per-channel offset ``beta / s_y`` in Q.8 output LSBs.
    norm_frac_bits : int
        ``Z``, fraction bits of the normalised value, 11..16.
    output_zero_point : int
        ``zp_y``.
    """

    n: int
    epsilon: int
    gamma: np.ndarray
    gamma_shift: int
    beta: np.ndarray
    norm_frac_bits: int
    output_zero_point: int

    @classmethod
    def from_float(cls, *, gamma, beta, epsilon, input_scale, input_zero_point, output_scale,
                   output_zero_point):
        """Quantize a float layernorm for int8 input ``(s_x, zp_x)`` and output ``(s_y, zp_y)``.

        ``input_zero_point`` is only checked: it cancels in ``x - mean(x)``.

        Raises
        ------
        ValueError
            If gamma and beta are not vectors of one length between 1 and
            :data:`MAX_LENGTH`, a scale is not positive and finite, a zero point is not an
            int8 integer, epsilon is not positive and finite, ``|gamma| / s_y`` or
            ``|beta| / s_y`` reaches :data:`PARAMETER_LIMIT`, or ``N**2 epsilon / s_x**2``
            reaches ``2**44`` (``E`` would not fit u60).
        """
        gamma = np.asarray(gamma, dtype=np.float64)
        beta = np.asarray(beta, dtype=np.float64)
        if gamma.ndim != 1 or gamma.shape != beta.shape:
            raise ValueError(f"gamma and beta must be vectors of the same length, not shapes "
                             f"{gamma.shape} and {beta.shape}")
        n = gamma.size
        if not 1 <= n <= MAX_LENGTH:
            raise ValueError(f"layernorm length must be between 1 and {MAX_LENGTH}, not {n}")
        _check_scale("input scale", input_scale)
        _check_scale("output scale", output_scale)
        _check_zero_point("input zero point", input_zero_point)
        _check_zero_point("output zero point", output_zero_point)
        if not (math.isfinite(epsilon) and epsilon > 0):
            raise ValueError(f"epsilon must be positive and finite, not {epsilon!r}")
        _check_magnitude("gamma", gamma / output_scale)
        _check_magnitude("beta", beta / output_scale)
        epsilon_q = n * n * epsilon / input_scale**2 * 2**EPSILON_FRAC_BITS
        if not epsilon_q < _EPSILON_LIMIT:
            raise ValueError(f"N**2 * epsilon / input scale**2 must be below 2**44, not "
                             f"{epsilon_q / 2**EPSILON_FRAC_BITS:.6g}")
        shift = _gamma_shift(gamma / output_scale)
        return cls(
            n=n,
            epsilon=max(1, round(epsilon_q)),
            gamma=_frozen(np.rint(gamma / output_scale * 2.0**shift).astype(np.int16)),
            gamma_shift=shift,
            beta=_frozen(np.rint(beta / output_scale * 2.0**OUTPUT_FRAC_BITS).astype(np.int32)),
            norm_frac_bits=norm_frac_bits(n),
            output_zero_point=int(output_zero_point),
        )


def norm_frac_bits(n):
    """``Z`` for rows of ``n`` elements: as many fraction bits as the normalised value's
    18 bits leave after its integer part, which grows with ``sqrt(n)``; at most 16."""
    return min(_NORM_FRAC_MAX, _NORM_WIDTH - 1 - math.isqrt(n - 1).bit_length())


def shift_round(values, shift):
    """``rnd(u, k)``: ``u / 2**k`` rounded half up, as an adder and an arithmetic shift.

    ``shift`` (scalar or array, ``>= 0``) broadcasts against ``values``; both int64.
    """
    shift = np.asarray(shift, dtype=np.int64)
    return (values + (np.left_shift(1, shift) >> 1)) >> shift


def _bit_length(values):
    """Bits of each non-negative int64, by the priority-encoder tree a leading-zero count uses."""
    length = np.zeros_like(values)
    for step in (32, 16, 8, 4, 2, 1):
        big = values >= (1 << step)
        values = np.where(big, values >> step, values)
        length += np.where(big, step, 0)
    return length + (values > 0)


def normalise(d):
    """Step 4: split ``D >= 1`` into a mantissa ``m`` in ``[2**18, 2**20)`` and ``h``.

    ``m * 2**sh <= D < (m + 1) * 2**sh`` with ``sh = 2 h - 18`` (exact when ``sh <= 0``).

    Returns
    -------
    m, h : ndarray, int64
    """
    d = np.asarray(d, dtype=np.int64)
    sh = ((_bit_length(d) - MANTISSA_FRAC_BITS - 1) >> 1) << 1
    m = np.where(sh >= 0, d >> np.maximum(sh, 0), d << np.maximum(-sh, 0))
    return m, (MANTISSA_FRAC_BITS + sh) >> 1


def rsqrt_mantissa(m):
    """Step 5: ``floor(sqrt(2**54 / m))`` for mantissas ``m`` in ``[2**18, 2**20)``.

    Raises
    ------
    ValueError
        If a mantissa is out of range.
    """
    m = np.asarray(m, dtype=np.int64)
    if m.size and (m.min() < 2**MANTISSA_FRAC_BITS or m.max() >= 2**(MANTISSA_FRAC_BITS + 2)):
        raise ValueError("rsqrt mantissas must be in [2**18, 2**20)")
    target = 1 << (2 * RSQRT_FRAC_BITS + MANTISSA_FRAC_BITS)
    r = np.zeros_like(m)
    square = np.zeros_like(m)  # P = m r**2
    product = np.zeros_like(m)  # Q = m r
    for j in range(RSQRT_FRAC_BITS, -1, -1):
        trial = square + (product << (j + 1)) + (m << (2 * j))
        take = trial <= target
        square = np.where(take, trial, square)
        product = np.where(take, product + (m << j), product)
        r = np.where(take, r | (1 << j), r)
    return r


def _row_constants(x, params):
    """Pass 1 and steps 2-6: per row ``a``, ``c`` and ``k``, shape ``(rows, 1)``."""
    s1 = x.sum(axis=1, keepdims=True)
    s2 = (x * x).sum(axis=1, keepdims=True)
    _check_width(s1, 20, "sum")
    _check_width(s2, 28, "sum of squares")
    variance = params.n * s2 - s1 * s1
    _check_width(variance, 39, "N**2 variance")
    d = (variance << EPSILON_FRAC_BITS) + params.epsilon
    _check_width(d, 62, "variance plus epsilon")
    m, h = normalise(d)
    r = rsqrt_mantissa(m)
    shift = np.maximum(h + RSQRT_FRAC_BITS - EPSILON_FRAC_BITS // 2 - params.norm_frac_bits, 0)
    return params.n * r, s1 * r, shift


def layernorm(x, params: LayerNormParams):
    """The unit's output for int8 rows ``x`` (shape ``(..., n)``), bit for bit.

    Raises
    ------
    ValueError
        If ``x`` is not int8 with rows of ``params.n``.
    """
    x = np.asarray(x)
    if x.dtype != np.int8 or x.ndim == 0 or x.shape[-1] != params.n:
        raise ValueError(f"layernorm input must be int8 rows of length {params.n}, not "
                         f"{x.dtype} with shape {x.shape}")
    rows = x.reshape(-1, params.n).astype(np.int64)
    a, c, shift = _row_constants(rows, params)
    t = rows * a - c
    _check_width(t, 39, "centred product")
    z = shift_round(t, shift)
    _check_width(z, _NORM_WIDTH, "normalised value")
    p = z * params.gamma.astype(np.int64)
    v = shift_round(p, params.norm_frac_bits + params.gamma_shift - OUTPUT_FRAC_BITS)
    _check_width(v, 29, "scaled value")
    w = v + params.beta
    _check_width(w, 30, "output before rounding")
    y = params.output_zero_point + shift_round(w, OUTPUT_FRAC_BITS)
    return np.clip(y, -128, 127).astype(np.int8).reshape(x.shape)


def layernorm_float(x, *, gamma, beta, epsilon, input_scale, input_zero_point, output_scale,
                    output_zero_point):
    """The float64 reference: dequantize, layernorm, quantize (TFLite's Quantize rounding).

    Rounds ``y / s_y`` half away from zero, adds ``zp_y`` and clamps to int8. Parameters
    are those of :meth:`LayerNormParams.from_float`; ``x`` is int8 of shape ``(..., N)``.
    """
    real = input_scale * (np.asarray(x, dtype=np.float64) - input_zero_point)
    centred = real - real.mean(axis=-1, keepdims=True)
    variance = (centred * centred).mean(axis=-1, keepdims=True)
    y = np.asarray(gamma) * centred / np.sqrt(variance + epsilon) + np.asarray(beta)
    scaled = y / output_scale
    rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
    return np.clip(rounded + output_zero_point, -128, 127).astype(np.int8)


def layernorm_error_bound(params: LayerNormParams):
    """Bound, in output LSBs, on the integer result against the float one before rounding.

    With ``e`` this bound, ``|layernorm(x) - layernorm_float(x)| <= floor(e) + 1`` for every
    element of every row: at most 1 LSB whenever ``e < 1``, as for any layer whose gamma
    keeps ``|gamma| / s_y * sqrt(N - 1)`` below about 2**13. The terms: the relative error
    ``rho`` of ``1 / sqrt(D)`` (epsilon rounding ``2**-F``, mantissa truncation ``2**-M``,
    ``r`` rounded down ``2**-(R-1)``) on ``|z| <= sqrt(N - 1)``; rounding ``z`` to Q.Z and
    gamma to Q.G; and the two Q.8 roundings of ``v`` and ``b``.
    """
    z_max = math.sqrt(params.n - 1)
    gamma_max = float(np.max(np.abs(params.gamma.astype(np.int64)))) / 2**params.gamma_shift
    rho = 2.0**-(RSQRT_FRAC_BITS - 1) + 2.0**-EPSILON_FRAC_BITS + 2.0**-MANTISSA_FRAC_BITS
    return (gamma_max * (z_max * rho + 2.0**-(params.norm_frac_bits + 1))
            + z_max * 2.0**-(params.gamma_shift + 1) + 2.0**-OUTPUT_FRAC_BITS)
