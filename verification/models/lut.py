"""int8 -> int8 elementwise functions as 256-entry tables, built as TFLite's kernels compute them.

Any elementwise int8 function is a table ``table[x + 128]`` (ARCHITECTURE.md section 2): the
compiler builds it from the quantization and loads it, the hardware looks it up. The builders
here make the tables that reproduce TFLite's int8 kernels bit for bit:

* :func:`logistic_table` and :func:`tanh_table` run TFLite Micro's
  ``reference_integer_ops::Logistic`` / ``Tanh`` on every int8 input: the input is rescaled to
  gemmlowp Q4.27 by ``input_multiplier`` and ``input_left_shift``, inputs beyond
  ``input_range_radius`` saturate, the rest go through gemmlowp's fixed-point ``logistic`` /
  ``tanh`` (:func:`fixed_logistic`, :func:`fixed_tanh`) and are rounded to the fixed output
  quantization, ``1/256, -128`` and ``1/128, 0``.
* :func:`relu_table` is TFLite Micro's int8 RELU and RELU6, and LiteRT's RELU6: requantize by
  ``input_scale / output_scale``, clamp to ``[zp_out, zp_out + round(6 / s_out)]``.
* :func:`gelu_table` is TFLite's own GELU kernel, itself a table built in float32
  (``LUTPopulate`` over ``GeluTransform`` / ``GeluTransformApproximate``).

The gemmlowp fixed-point primitives (:func:`exp_on_negative_values` and the Newton-Raphson
reciprocals) are also used by :mod:`verification.models.softmax`. Like
:mod:`verification.models.quant`, they compute on int64 arrays and wrap where the C++ would
wrap in int32.
"""

import math

import numpy as np

from verification.models.quant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    check_integers,
    check_scale,
    mbqm,
    quantize_multiplier,
    rdbpot,
    srdhm,
    wrap32,
)

__all__ = [
    "LUT_SIZE", "LOGISTIC_OUTPUT", "TANH_OUTPUT",
    "apply_lut", "check_lut", "float_table",
    "exp_on_negative_values", "one_over_one_plus_x_for_x_in_0_1", "fixed_logistic",
    "fixed_tanh", "activation_input_params",
    "logistic_table", "tanh_table", "relu_table", "gelu_table", "gelu_float",
]

LUT_SIZE = 1 << 8
#: Output quantization (scale, zero point) TFLite requires of int8 LOGISTIC and TANH.
LOGISTIC_OUTPUT = (1 / 256, -128)
TANH_OUTPUT = (1 / 128, 0)
#: Integer bits of the Q4.27 format LOGISTIC and TANH rescale their input to.
_INPUT_INTEGER_BITS = 4
_INT8_GRID = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64)

# gemmlowp's constants, as raw values of their fixed-point formats.
_EXP_MINUS_ONE_EIGHTH = 1895147668      # exp(-1/8), Q0.31
_ONE_THIRD = 715827883                  # 1/3, Q0.31
_48_OVER_17 = 1515870810                # 48/17, Q2.29
_MINUS_32_OVER_17 = -1010580540         # -32/17, Q2.29
#: exp(-2**k), Q0.31, for the barrel shifter of ``exp_on_negative_values``.
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def check_lut(table):
    """Check that ``table`` is a 256-entry int8 table and return it as an int8 array.

    Raises
    ------
    ValueError
        If ``table`` is not an int8 array of shape ``(256,)``.
    """
    table = np.asarray(table)
    if table.dtype != np.int8:
        raise ValueError(f"LUT must be an int8 array, not {table.dtype}")
    if table.shape != (LUT_SIZE,):
        raise ValueError(f"LUT must have shape ({LUT_SIZE},), not {table.shape}")
    return table


def apply_lut(x, table):
    """Look every int8 element of ``x`` up in ``table``: ``table[x + 128]``.

    Parameters
    ----------
    x : array_like of int
        int8 values, any shape.
    table : ndarray of int8, shape (256,)

    Returns
    -------
    ndarray of int8
        Same shape as ``x``.

    Raises
    ------
    ValueError
        If ``x`` leaves the int8 range or ``table`` is not a 256-entry int8 table.
    """
    table = check_lut(table)
    x = check_integers(x, "x", INT8_MIN, INT8_MAX)
    return table[x - INT8_MIN]


def float_table(function, input_q, output_q):
    """What a table approximates: ``function(dequant(x))`` in output steps, clamped, unrounded.

    Returns
    -------
    ndarray of float64, shape (256,)
    """
    (s_in, zp_in), (s_out, zp_out) = input_q, output_q
    real = function(np.float64(np.float32(s_in)) * (_INT8_GRID - zp_in))
    return np.clip(real / np.float64(np.float32(s_out)) + zp_out, INT8_MIN, INT8_MAX)


# gemmlowp fixed point. ``raw`` arguments are int64 arrays holding int32 values.

def _saturating_shift_left(x, exponent):
    """gemmlowp's ``SaturatingRoundingMultiplyByPOT<exponent>`` for ``exponent > 0``."""
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _rounding_half_sum(a, b):
    total = a + b
    total = total + np.where(total >= 0, 1, -1)
    return np.where(total >= 0, total // 2, -((-total) // 2))


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    x = wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(srdhm(wrap32(x4_over_4 + x3), _ONE_THIRD) + x2), 1)
    return wrap32(_EXP_MINUS_ONE_EIGHTH + srdhm(_EXP_MINUS_ONE_EIGHTH, wrap32(x + poly)))


def exp_on_negative_values(raw, integer_bits):
    """gemmlowp's ``exp_on_negative_values``: ``exp(a)`` for ``a <= 0``, Q0.31 result.

    Parameters
    ----------
    raw : array_like of int
        Raw int32 values of ``a`` in Q\\ ``integer_bits``.(31 - ``integer_bits``).
    integer_bits : int
        In ``[0, 31)``.

    Returns
    -------
    ndarray of int64
        Raw Q0.31 values; ``exp(0)`` is ``2**31 - 1``.
    """
    a = np.asarray(raw, dtype=np.int64)
    fractional_bits = 31 - integer_bits
    quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    rescaled = a_mod_quarter_minus_quarter
    if integer_bits > 0:
        rescaled = _saturating_shift_left(rescaled, integer_bits)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(rescaled)
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = (remainder >> (fractional_bits + exponent)) & 1
            result = np.where(bit == 1, srdhm(result, multiplier), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_raphson_reciprocal(a):
    """``1 / (1 + a)`` for Q0.31 ``a`` in ``[0, 1)``, in Q2.29, as gemmlowp iterates it."""
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = wrap32(_48_OVER_17 + srdhm(half_denominator, _MINUS_32_OVER_17))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + _saturating_shift_left(srdhm(x, one_minus), 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(raw):
    """gemmlowp's ``one_over_one_plus_x_for_x_in_0_1``: Q0.31 in, Q0.31 out (int64 array)."""
    return _saturating_shift_left(_newton_raphson_reciprocal(np.asarray(raw, np.int64)), 1)


def _one_minus_x_over_one_plus_x_for_x_in_0_1(a):
    return _saturating_shift_left(wrap32(_newton_raphson_reciprocal(a) - (1 << 29)), 2)


def fixed_logistic(raw, integer_bits=_INPUT_INTEGER_BITS):
    """gemmlowp's ``logistic``: raw Q\\ ``integer_bits`` input, raw Q0.31 output (int64)."""
    a = np.asarray(raw, dtype=np.int64)
    positive = a > 0
    magnitude = np.where(positive, a, -a)
    if_positive = one_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(-magnitude, integer_bits))
    if_negative = wrap32(INT32_MAX - if_positive)
    return np.where(a == 0, 1 << 30, np.where(positive, if_positive, if_negative))


def fixed_tanh(raw, integer_bits=_INPUT_INTEGER_BITS):
    """gemmlowp's ``tanh``: raw Q\\ ``integer_bits`` input, raw Q0.31 output (int64)."""
    a = np.asarray(raw, dtype=np.int64)
    negative = a < 0
    # ExactMulByPot<1> doubles the value by reinterpreting the raw bits with one more
    # integer bit.
    t = _one_minus_x_over_one_plus_x_for_x_in_0_1(
        exp_on_negative_values(np.where(negative, a, -a), integer_bits + 1))
    return np.where(a == 0, 0, np.where(negative, -t, t))


def activation_input_params(input_scale):
    """``input_multiplier``, ``input_left_shift``, ``input_range_radius`` of int8 LOGISTIC/TANH.

    As TFLite Micro's ``CalculateArithmeticOpDataLogistic`` and ``tanh.cc``: the factor
    ``input_scale * 2**27`` (to Q4.27) is split by ``frexp``, and ``CalculateInputRadius``
    bounds the inputs whose rescaled value stays below 15 in magnitude.

    Raises
    ------
    ValueError
        If ``input_scale`` is not a positive finite float32.
    """
    real = check_scale(input_scale, "input scale") * (1 << (31 - _INPUT_INTEGER_BITS))
    mantissa, left_shift = math.frexp(real)
    # A float32 scale times a power of two has 24 significant bits: this product is exact.
    multiplier = int(mantissa * (1 << 31))
    radius = math.floor(((1 << _INPUT_INTEGER_BITS) - 1)
                        * math.ldexp(1.0, 31 - _INPUT_INTEGER_BITS - left_shift))
    return multiplier, left_shift, radius


def _integer_activation_table(input_q, function, output_shift, output_zero_point):
    multiplier, left_shift, radius = activation_input_params(input_q[0])
    check_integers(input_q[1], "input zero point", INT8_MIN, INT8_MAX)
    diff = _INT8_GRID - int(input_q[1])
    inside = (diff > -radius) & (diff < radius)
    rescaled = mbqm(np.where(inside, diff, 0), multiplier, left_shift)
    out = rdbpot(function(rescaled), output_shift) + output_zero_point
    out = np.where(inside, out, np.where(diff > 0, INT8_MAX, INT8_MIN))
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def logistic_table(input_q):
    """Table of TFLite Micro's int8 LOGISTIC for input quantization ``(scale, zero_point)``.

    The output quantization is fixed at :data:`LOGISTIC_OUTPUT`.

    Raises
    ------
    ValueError
        If the scale is not a positive finite float32 or the zero point is outside int8.
    """
    return _integer_activation_table(input_q, fixed_logistic, 31 - 8, LOGISTIC_OUTPUT[1])


def tanh_table(input_q):
    """Table of TFLite Micro's int8 TANH; output quantization fixed at :data:`TANH_OUTPUT`.

    Raises
    ------
    ValueError
        As :func:`logistic_table`.
    """
    return _integer_activation_table(input_q, fixed_tanh, 31 - 7, TANH_OUTPUT[1])


def relu_table(input_q, output_q, *, max_value=None):
    """Table of int8 RELU (``max_value=None``) or RELU6 (``max_value=6.0``), requantizing.

    As TFLite Micro's ``CalculateReluOpData`` / ``ReluQuantized``: ``input_scale /
    output_scale`` in double becomes a quantized multiplier, and the requantized value is
    clamped to ``[zp_out, zp_out + roundf(max_value / s_out)]`` within int8. With equal input
    and output quantization this is TFLite Micro's RELU6 clamp as well.

    Raises
    ------
    ValueError
        If a scale is not a positive finite float32 or a zero point is outside int8.
    """
    (s_in, zp_in), (s_out, zp_out) = input_q, output_q
    s_in, s_out = check_scale(s_in, "input scale"), check_scale(s_out, "output scale")
    zp_in = int(check_integers(zp_in, "input zero point", INT8_MIN, INT8_MAX))
    zp_out = int(check_integers(zp_out, "output zero point", INT8_MIN, INT8_MAX))
    multiplier, shift = quantize_multiplier(s_in / s_out)
    low = max(INT8_MIN, zp_out)
    high = INT8_MAX
    if max_value is not None:
        steps = np.float32(max_value) / np.float32(s_out)
        high = min(INT8_MAX, zp_out + int(math.copysign(math.floor(abs(steps) + 0.5), steps)))
    out = zp_out + mbqm(_INT8_GRID - zp_in, multiplier, shift)
    return np.clip(out, low, high).astype(np.int8)


_SQRT_2_OVER_PI = np.float32(2 / math.sqrt(math.pi) * math.sqrt(0.5))
_MINUS_SQRT_HALF = np.float32(-math.sqrt(0.5))


def _gelu_exact_f32(x):
    erfc = np.array([math.erfc(float(v)) for v in x * _MINUS_SQRT_HALF], dtype=np.float32)
    return np.float32(0.5) * x * erfc


def _gelu_approximate_f32(x):
    inner = x + np.float32(0.044715) * x * x * x
    tanh = np.tanh((_SQRT_2_OVER_PI * inner).astype(np.float64)).astype(np.float32)
    return np.float32(0.5) * x * (np.float32(1) + tanh)


def _round_half_away(values):
    """C's ``roundf``: to the nearest integer, ties away from zero (float32 in and out)."""
    exact = values.astype(np.float64)
    whole = np.trunc(exact)
    return (whole + np.sign(exact) * (np.abs(exact - whole) >= 0.5)).astype(np.float32)


def gelu_float(x, approximate=False):
    """The GELU of real ``x``: ``x * Phi(x)``, or its tanh approximation, in float64."""
    x = np.asarray(x, dtype=np.float64)
    if approximate:
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * np.vectorize(math.erfc)(-x / math.sqrt(2))


def gelu_table(input_q, output_q, *, approximate=False):
    """Table of TFLite's int8 GELU, built in float32 as its ``LUTPopulate`` does.

    ``dequantized = s_in * (x - zp_in)``, ``GeluTransform`` (``0.5 * x * erfc(-x / sqrt 2)``)
    or ``GeluTransformApproximate`` (``0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``),
    then ``roundf(y * (1 / s_out)) + zp_out`` clamped to int8, every step in float32. ``erfc``
    and ``tanh`` are evaluated in double and rounded to float32, standing in for the C
    library's ``erfcf`` / ``tanhf``.

    Raises
    ------
    ValueError
        If a scale is not a positive finite float32 or a zero point is outside int8.
    """
    (s_in, zp_in), (s_out, zp_out) = input_q, output_q
    s_in = np.float32(check_scale(s_in, "input scale"))
    s_out = np.float32(check_scale(s_out, "output scale"))
    zp_in = int(check_integers(zp_in, "input zero point", INT8_MIN, INT8_MAX))
    zp_out = int(check_integers(zp_out, "output zero point", INT8_MIN, INT8_MAX))
    x = s_in * (_INT8_GRID - zp_in).astype(np.float32)
    y = _gelu_approximate_f32(x) if approximate else _gelu_exact_f32(x)
    scaled = y * (np.float32(1) / s_out)
    rounded = _round_half_away(scaled)
    quantized = (rounded + np.float32(zp_out)).astype(np.int64)
    return np.clip(quantized, INT8_MIN, INT8_MAX).astype(np.int8)
