"""Bit-exact NumPy model of TFLite's int8 fixed-point arithmetic: requantization and ADD.

Everything here matches TFLite Micro's reference kernels bit for bit, and is checked against the
TFLite Micro interpreter itself in ``tests/test_tflite_oracle.py``. TFLite has two builds of its
requantization step; this is the *double-rounding* one (gemmlowp's
``SaturatingRoundingDoublingHighMul`` then ``RoundingDivideByPOT``), which TFLite Micro compiles
whenever ``TFLITE_SINGLE_ROUNDING`` is not defined, as in its default build and its Python wheel.
The single-rounding build (one 64-bit multiply and one rounding shift) differs by one LSB on
some ties and is not modelled.

Arithmetic is vectorised over int64 arrays, so every int32 intermediate of the C++ is exact.
Where the C++ would overflow int32 (undefined behaviour, which TFLite assumes never happens), the
model wraps modulo 2**32, as the compiled reference does on two's-complement machines.

The ``*_float`` functions are the real-valued results the integer ones approximate, in units of
the output's quantization step and before rounding; the integer results lie within one step of
them.
"""

import math
from dataclasses import dataclass

import numpy as np

from rtl.vector.add import ADD_LEFT_SHIFT
from rtl.vector.fixedpoint import SHIFT_MAX, SHIFT_MIN

__all__ = [
    "INT8_MIN", "INT8_MAX", "INT32_MIN", "INT32_MAX", "SHIFT_MIN", "SHIFT_MAX",
    "ADD_LEFT_SHIFT",
    "saturating_rounding_doubling_high_mul", "rounding_divide_by_pot",
    "multiply_by_quantized_multiplier", "quantize_multiplier", "fully_connected_multipliers",
    "requantize", "requantize_float", "AddParams", "add", "add_float",
    # Building blocks for the other fixed-point models (lut, softmax): argument checks and
    # the unchecked primitives on int64 arrays.
    "check_integers", "check_scale", "wrap32", "srdhm", "rdbpot", "mbqm",
]

INT8_MIN, INT8_MAX = -(1 << 7), (1 << 7) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

_MULTIPLIER_MIN = 1 << 30


def _integer_array(values, name):
    """``values`` as an integer array; floats would be silently truncated, so they are refused."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must be integers, not {array.dtype}")
    return array


def check_integers(values, name, lo, hi):
    """``values`` as an int64 array, after checking that every element lies in ``[lo, hi]``."""
    array = _integer_array(values, name)
    outside = (array < lo) | (array > hi)
    if outside.any():
        raise ValueError(f"{name} must lie in [{lo}, {hi}], not {array[outside].flat[0]}")
    return array.astype(np.int64)


def _multipliers(values):
    """Quantized multipliers as int64, checked to be 0 or in ``[2**30, 2**31)``.

    :func:`quantize_multiplier` only produces such values; anything else is a corrupted
    parameter, not a multiplier TFLite would use.
    """
    array = _integer_array(values, "multiplier")
    bad = (array != 0) & ((array < _MULTIPLIER_MIN) | (array > INT32_MAX))
    if bad.any():
        raise ValueError(f"multiplier must be 0 or lie in [{_MULTIPLIER_MIN}, {INT32_MAX}], "
                         f"not {array[bad].flat[0]}")
    return array.astype(np.int64)


def _activation_range(qmin, qmax):
    """Check a clamping range the way TFLite builds one for int8 outputs."""
    if not INT8_MIN <= qmin <= qmax <= INT8_MAX:
        raise ValueError(f"qmin and qmax must satisfy {INT8_MIN} <= qmin <= qmax <= {INT8_MAX}, "
                         f"not {qmin} and {qmax}")


def check_scale(value, name):
    """A quantization scale as the model stores it: float32, positive and finite."""
    with np.errstate(over="ignore"):
        scale = np.float32(value)
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"{name} must be a positive finite float32, not {value}")
    return float(scale)


def wrap32(values):
    """Reduce int64 values modulo 2**32 into the int32 range, staying int64."""
    return ((values - INT32_MIN) & 0xFFFF_FFFF) + INT32_MIN


def srdhm(a, b):
    """:func:`saturating_rounding_doubling_high_mul` on checked int64 arrays."""
    product = a * b
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    # C++ integer division truncates towards zero; NumPy's shifts floor.
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rdbpot(x, exponent):
    """:func:`rounding_divide_by_pot` on checked int64 arrays."""
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def mbqm(x, multiplier, shift):
    """:func:`multiply_by_quantized_multiplier` on checked int64 arrays."""
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(x << left), multiplier), right)


def saturating_rounding_doubling_high_mul(a, b):
    """gemmlowp's ``SaturatingRoundingDoublingHighMul``: ``round(a * b / 2**31)`` in int32.

    Ties round up, towards positive infinity (the negative nudge and C++'s truncating division
    together make ``-1.5`` round to ``-1``). The one product that does not fit,
    ``INT32_MIN * INT32_MIN``, saturates to ``INT32_MAX``.

    Parameters
    ----------
    a, b : array_like of int
        int32 values; broadcast against each other.

    Returns
    -------
    ndarray of int32

    Raises
    ------
    ValueError
        If a value lies outside the int32 range.
    """
    a = check_integers(a, "a", INT32_MIN, INT32_MAX)
    b = check_integers(b, "b", INT32_MIN, INT32_MAX)
    return srdhm(a, b).astype(np.int32)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp's ``RoundingDivideByPOT``: ``x / 2**exponent`` rounded, ties away from zero.

    Parameters
    ----------
    x : array_like of int
        int32 dividends.
    exponent : int or array_like of int
        Powers of two in ``[0, 31]``; broadcast against ``x``.

    Returns
    -------
    ndarray of int32

    Raises
    ------
    ValueError
        If ``x`` leaves the int32 range or ``exponent`` leaves ``[0, 31]``.
    """
    x = check_integers(x, "x", INT32_MIN, INT32_MAX)
    exponent = check_integers(exponent, "exponent", 0, 31)
    return rdbpot(x, exponent).astype(np.int32)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite's ``MultiplyByQuantizedMultiplier``: ``x * multiplier * 2**(shift - 31)``, rounded.

    The double-rounding variant: ``x`` is first shifted left by ``max(shift, 0)`` (wrapping in
    int32), multiplied with :func:`saturating_rounding_doubling_high_mul`, then divided by
    ``2**max(-shift, 0)`` with :func:`rounding_divide_by_pot`.

    Parameters
    ----------
    x : array_like of int
        int32 values.
    multiplier : int or array_like of int
        Q0.31 multipliers from :func:`quantize_multiplier`: 0 or in ``[2**30, 2**31)``.
    shift : int or array_like of int
        Exponents in ``[SHIFT_MIN, SHIFT_MAX]``.

    Returns
    -------
    ndarray of int32

    Raises
    ------
    ValueError
        If an argument is outside the ranges above.
    """
    x = check_integers(x, "x", INT32_MIN, INT32_MAX)
    multiplier = _multipliers(multiplier)
    shift = check_integers(shift, "shift", SHIFT_MIN, SHIFT_MAX)
    return mbqm(x, multiplier, shift).astype(np.int32)


def quantize_multiplier(real_multiplier):
    """TFLite's ``QuantizeMultiplier``: split a real factor into a Q0.31 multiplier and a shift.

    ``real_multiplier ~= multiplier * 2**(shift - 31)`` with ``multiplier`` in
    ``[2**30, 2**31)``: the mantissa from ``frexp`` is rounded half away from zero to 31 bits,
    a mantissa that rounds up to ``2**31`` is halved and the shift raised, and factors needing a
    shift below -31 are flushed to ``(0, 0)``. Factors of ``2**30`` or more give a shift above
    :data:`SHIFT_MAX`, which TFLite leaves to fail later and so does this model.

    Parameters
    ----------
    real_multiplier : float
        The factor, as the double TFLite computes it.

    Returns
    -------
    multiplier : int
    shift : int

    Raises
    ------
    ValueError
        If ``real_multiplier`` is negative, infinite or NaN.
    """
    real = float(real_multiplier)
    if not (math.isfinite(real) and real >= 0):
        raise ValueError(f"real multiplier must be finite and non-negative, not {real}")
    if real == 0:
        return 0, 0
    mantissa, shift = math.frexp(real)
    # mantissa * 2**31 is exact and has at most 22 fractional bits, so adding 0.5 is exact too.
    fixed = math.floor(mantissa * (1 << 31) + 0.5)
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < SHIFT_MIN:
        return 0, 0
    return fixed, shift


def fully_connected_multipliers(input_scale, weight_scales, output_scale):
    """Requantization multipliers and shifts of an int8 FULLY_CONNECTED, one per weight scale.

    As TFLite Micro's ``CalculateOpDataFullyConnected``: the scales are float32 in the model,
    and ``input_scale * weight_scale / output_scale`` is formed in double, per channel and per
    tensor alike. (TFLite's older per-tensor code multiplied the two scales in float32; the
    pinned TFLite Micro does not, which ``tests/test_tflite_oracle.py`` checks on a case where
    the two differ.)

    Parameters
    ----------
    input_scale, output_scale : float
    weight_scales : float or array_like of float
        One scale per output channel, or one for the whole tensor.

    Returns
    -------
    multipliers : ndarray of int64
    shifts : ndarray of int64
        Same shape as ``weight_scales``.

    Raises
    ------
    ValueError
        If a scale is not a positive finite float32.
    """
    input_scale = check_scale(input_scale, "input scale")
    output_scale = check_scale(output_scale, "output scale")
    weights = np.asarray(weight_scales, dtype=np.float64)
    pairs = [quantize_multiplier(input_scale * check_scale(s, "weight scale") / output_scale)
             for s in weights.flat]
    multipliers, shifts = np.array(pairs, dtype=np.int64).reshape(-1, 2).T
    return multipliers.reshape(weights.shape), shifts.reshape(weights.shape)


def requantize(acc, multiplier, shift, zero_point, qmin=INT8_MIN, qmax=INT8_MAX):
    """int32 accumulators to int8 outputs, as int8 FULLY_CONNECTED does after adding the bias.

    ``clamp(zero_point + multiply_by_quantized_multiplier(acc, multiplier, shift), qmin, qmax)``.
    Per-channel parameters are arrays broadcast along the last axis of ``acc``.

    Parameters
    ----------
    acc : array_like of int
        int32 accumulators, output channels last.
    multiplier, shift : int or array_like of int
        From :func:`quantize_multiplier`, per tensor or per channel.
    zero_point : int or array_like of int
        Output zero point, in the int8 range.
    qmin, qmax : int
        Clamping range of the fused activation; the whole int8 range for none.

    Returns
    -------
    ndarray of int8

    Raises
    ------
    ValueError
        If an argument is outside its range.
    """
    acc = check_integers(acc, "acc", INT32_MIN, INT32_MAX)
    multiplier = _multipliers(multiplier)
    shift = check_integers(shift, "shift", SHIFT_MIN, SHIFT_MAX)
    zero_point = check_integers(zero_point, "zero_point", INT8_MIN, INT8_MAX)
    _activation_range(qmin, qmax)
    scaled = wrap32(mbqm(acc, multiplier, shift) + zero_point)
    return np.clip(scaled, qmin, qmax).astype(np.int8)


def requantize_float(acc, real_multiplier, zero_point, qmin=INT8_MIN, qmax=INT8_MAX):
    """What :func:`requantize` approximates: ``clamp(zero_point + acc * real_multiplier)``.

    Returns
    -------
    ndarray of float64
        Unrounded, in output quantization steps.
    """
    exact = np.asarray(acc, dtype=np.float64) * np.asarray(real_multiplier, dtype=np.float64)
    return np.clip(exact + np.asarray(zero_point, dtype=np.float64), qmin, qmax)


@dataclass(frozen=True)
class AddParams:
    """Quantization of one int8 ADD, and the integer rescaling TFLite derives from it.

    Both inputs are moved up by :data:`ADD_LEFT_SHIFT` bits and rescaled to half the larger
    input scale; their sum is rescaled to the output scale. Build with :meth:`from_scales`.

    Attributes
    ----------
    input1_scale, input2_scale, output_scale : float
        float32 scales, kept for :func:`add_float`.
    input1_zero_point, input2_zero_point, output_zero_point : int
    input1_multiplier, input1_shift, input2_multiplier, input2_shift : int
        Rescaling of each shifted input.
    output_multiplier, output_shift : int
        Rescaling of the sum.
    """

    input1_scale: float
    input1_zero_point: int
    input2_scale: float
    input2_zero_point: int
    output_scale: float
    output_zero_point: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int

    @classmethod
    def from_scales(cls, s1, zp1, s2, zp2, s_out, zp_out):
        """Derive the rescaling as TFLite Micro's ``CalculateOpDataAdd`` does for int8.

        Raises
        ------
        ValueError
            If a scale is not a positive finite float32, a zero point is outside int8, or the
            output scale is so small next to the inputs' that the sum cannot be rescaled down.
        """
        s1, s2, s_out = (check_scale(s, f"{name} scale") for s, name in
                         ((s1, "input1"), (s2, "input2"), (s_out, "output")))
        for zp, name in ((zp1, "input1"), (zp2, "input2"), (zp_out, "output")):
            check_integers(zp, f"{name} zero point", INT8_MIN, INT8_MAX)
        twice_max = 2 * max(s1, s2)
        m1, sh1 = quantize_multiplier(s1 / twice_max)
        m2, sh2 = quantize_multiplier(s2 / twice_max)
        # TFLite's QuantizeMultiplierSmallerThanOneExp: the sum may only be scaled down.
        real_out = twice_max / ((1 << ADD_LEFT_SHIFT) * s_out)
        m_out, sh_out = quantize_multiplier(real_out)
        if real_out >= 1 or sh_out > 0:
            raise ValueError(f"ADD output scale {s_out!r} is too small for input scales {s1!r} "
                             f"and {s2!r}: the sum would be scaled by {real_out!r}, not below 1")
        return cls(s1, int(zp1), s2, int(zp2), s_out, int(zp_out), m1, sh1, m2, sh2, m_out,
                   sh_out)


def add(x1, x2, params: AddParams, qmin=INT8_MIN, qmax=INT8_MAX):
    """int8 ADD as TFLite Micro's reference kernel computes it, with NumPy broadcasting.

    Parameters
    ----------
    x1, x2 : array_like of int
        int8 inputs.
    params : :class:`AddParams`
    qmin, qmax : int
        Clamping range of the fused activation.

    Returns
    -------
    ndarray of int8

    Raises
    ------
    ValueError
        If an input leaves the int8 range or the clamping range is not within int8.
    """
    x1 = check_integers(x1, "x1", INT8_MIN, INT8_MAX)
    x2 = check_integers(x2, "x2", INT8_MIN, INT8_MAX)
    _activation_range(qmin, qmax)
    p = params
    scaled1 = mbqm((x1 - p.input1_zero_point) << ADD_LEFT_SHIFT, p.input1_multiplier,
                    p.input1_shift)
    scaled2 = mbqm((x2 - p.input2_zero_point) << ADD_LEFT_SHIFT, p.input2_multiplier,
                    p.input2_shift)
    raw = mbqm(scaled1 + scaled2, p.output_multiplier, p.output_shift) + p.output_zero_point
    return np.clip(raw, qmin, qmax).astype(np.int8)


def add_float(x1, x2, params: AddParams, qmin=INT8_MIN, qmax=INT8_MAX):
    """What :func:`add` approximates: the real sum of the dequantized inputs, requantized.

    Returns
    -------
    ndarray of float64
        Unrounded, clamped, in output quantization steps.
    """
    p = params
    real = (p.input1_scale * (np.asarray(x1, dtype=np.float64) - p.input1_zero_point)
            + p.input2_scale * (np.asarray(x2, dtype=np.float64) - p.input2_zero_point))
    return np.clip(real / p.output_scale + p.output_zero_point, qmin, qmax)
