"""Bit-exact NumPy model of TFLite's int8 SOFTMAX, and the exp table the compiler loads for it.

The algorithm is TFLite's reference integer softmax (``reference/softmax.h``, the int8 -> int8
path TFLite Micro runs), over the last axis:

1. ``PreprocessSoftmaxScaling`` turns ``beta * input_scale * 2**26`` (capped at ``2**31 - 1``)
   into ``input_multiplier`` and ``input_left_shift``; ``CalculateInputRadius`` gives
   ``diff_min``, below which an element's exp is taken as zero.
2. Per row, ``diff = x - max(row)`` is rescaled to Q5.26 and ``exp_on_negative_values`` gives
   its exp in Q0.31; the sum of exps is accumulated in Q12.19.
3. ``GetReciprocal`` (gemmlowp's Newton-Raphson ``1 / (1 + x)``) gives the row's scale, and
   each ``exp * scale`` is rounded to the output quantization, fixed at ``1/256, -128``.

``diff`` takes only the 256 values ``0, -1, ..., -255``, so step 2's exps are a table,
:func:`softmax_exp_table`, that the compiler computes from the scale and beta; the hardware
then needs only a max, a lookup, a sum, one reciprocal per row and a multiply per element.
:func:`softmax` computes either way and the two agree exactly (``tests/test_softmax_model.py``).
"""

import math
from dataclasses import dataclass

import numpy as np

from verification.models.lut import exp_on_negative_values, one_over_one_plus_x_for_x_in_0_1
from verification.models.quant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    check_integers,
    check_scale,
    quantize_multiplier,
    rdbpot,
    srdhm,
    wrap32,
)

__all__ = [
    "SOFTMAX_OUTPUT", "SCALED_DIFF_INTEGER_BITS", "ACCUMULATION_INTEGER_BITS",
    "SoftmaxParams", "softmax_exp_table", "softmax", "softmax_from_table", "softmax_float",
]

#: Output quantization (scale, zero point) TFLite requires of int8 SOFTMAX.
SOFTMAX_OUTPUT = (1 / 256, -128)
SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12
#: ``diff = x - max(row)`` lies in ``[-EXP_TABLE_SIZE + 1, 0]``.
EXP_TABLE_SIZE = 1 << 8


@dataclass(frozen=True)
class SoftmaxParams:
    """Quantization of one int8 SOFTMAX and the integer parameters TFLite derives from it.

    Build with :meth:`from_scale`.

    Attributes
    ----------
    input_scale, beta : float
        float32 values as the model stores them, kept for :func:`softmax_float`.
    input_multiplier, input_left_shift : int
        Rescaling of ``x - max(row)`` to Q5.26 (``MultiplyByQuantizedMultiplierGreaterThanOne``).
    diff_min : int
        Differences below this get an exp of zero (``-CalculateInputRadius(5, shift)``).
    """

    input_scale: float
    beta: float
    input_multiplier: int
    input_left_shift: int
    diff_min: int

    @classmethod
    def from_scale(cls, input_scale, beta=1.0):
        """Derive the parameters as TFLite Micro's ``CalculateSoftmaxParams`` does for int8.

        Raises
        ------
        ValueError
            If the input scale or beta is not a positive finite float32, or their product is
            too small for ``QuantizeMultiplierGreaterThanOne`` (``beta * scale * 2**26 <= 1``).
        """
        input_scale = check_scale(input_scale, "input scale")
        beta = check_scale(beta, "beta")
        real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), INT32_MAX * 1.0)
        if real <= 1:
            raise ValueError(f"softmax beta * input scale must exceed 2**-26, not "
                             f"{beta!r} * {input_scale!r}")
        multiplier, left_shift = quantize_multiplier(real)
        radius = math.floor(((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                            * math.ldexp(1.0, 31 - SCALED_DIFF_INTEGER_BITS - left_shift))
        return cls(input_scale, beta, multiplier, left_shift, -radius)


def _exps(diff, params):
    """Q0.31 exp of each ``diff <= 0``, zero below ``diff_min``, computed as TFLite does."""
    valid = diff >= params.diff_min
    shifted = wrap32(np.where(valid, diff, 0) << params.input_left_shift)
    rescaled = srdhm(shifted, params.input_multiplier)
    exps = exp_on_negative_values(rescaled, SCALED_DIFF_INTEGER_BITS)
    return np.where(valid, exps, 0)


def softmax_exp_table(params: SoftmaxParams):
    """The exps of every possible ``diff``: entry ``k`` is the raw Q0.31 exp of ``diff = -k``.

    Entries below ``diff_min`` are 0, which :func:`softmax` treats exactly as TFLite treats an
    excluded element.

    Returns
    -------
    ndarray of int32, shape (256,)
    """
    return _exps(-np.arange(EXP_TABLE_SIZE, dtype=np.int64), params).astype(np.int32)


def _bit_length(values):
    """Bits of each positive int64 value below ``2**53``."""
    return np.frexp(values.astype(np.float64))[1].astype(np.int64)


def softmax(x, params: SoftmaxParams, *, exp_table=None):
    """int8 SOFTMAX over the last axis, as TFLite Micro's reference kernel computes it.

    The exps of every possible difference come from :func:`softmax_exp_table` (or
    ``exp_table``), which is exactly what TFLite computes element by element: its entries below
    ``diff_min`` are 0, and an exp of 0 gives the output -128 that TFLite gives an excluded
    element.

    Parameters
    ----------
    x : array_like of int
        int8 inputs, rows along the last axis (any length from 1).
    params : :class:`SoftmaxParams`
    exp_table : ndarray of int32, shape (256,), optional
        From :func:`softmax_exp_table`, as the hardware holds it.

    Returns
    -------
    ndarray of int8
        Quantized with :data:`SOFTMAX_OUTPUT`.

    Raises
    ------
    ValueError
        If ``x`` leaves the int8 range or ``exp_table`` does not have 256 entries.
    """
    return softmax_from_table(x, softmax_exp_table(params) if exp_table is None else exp_table)


def softmax_from_table(x, exp_table):
    """int8 SOFTMAX over the last axis given only the exp table, as the vector unit computes
    it (:func:`softmax` for the table of some :class:`SoftmaxParams`).

    Raises
    ------
    ValueError
        If ``x`` leaves the int8 range or ``exp_table`` does not have 256 entries.
    """
    x = check_integers(x, "x", INT8_MIN, INT8_MAX)
    diff = x - x.max(axis=-1, keepdims=True)
    exp_table = np.asarray(exp_table)
    if exp_table.shape != (EXP_TABLE_SIZE,):
        raise ValueError(f"exp table must have shape ({EXP_TABLE_SIZE},), "
                         f"not {exp_table.shape}")
    exps = exp_table.astype(np.int64)[-diff]
    # The Q12.19 accumulator wraps in int32 like the C++ (only rows of 4096 or more can).
    total = wrap32(rdbpot(exps, ACCUMULATION_INTEGER_BITS).sum(axis=-1, keepdims=True))
    # GetReciprocal: normalise the sum to [1, 2) and take 1 / (1 + (sum - 1)).
    unsigned = total & 0xFFFF_FFFF
    headroom_plus_one = 32 - _bit_length(unsigned)
    bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one
    shifted_sum_minus_one = wrap32(((unsigned << headroom_plus_one) & 0xFFFF_FFFF) - (1 << 31))
    scale = one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    out = rdbpot(srdhm(scale, exps), bits_over_unit + 31 - 8) + SOFTMAX_OUTPUT[1]
    return np.clip(out, INT8_MIN, INT8_MAX).astype(np.int8)


def softmax_float(x, params: SoftmaxParams):
    """What :func:`softmax` approximates: ``softmax(beta * s * x)`` in output steps, unrounded.

    Returns
    -------
    ndarray of float64
    """
    real = params.beta * params.input_scale * np.asarray(x, dtype=np.float64)
    e = np.exp(real - real.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return np.clip(p / SOFTMAX_OUTPUT[0] + SOFTMAX_OUTPUT[1], INT8_MIN, INT8_MAX)
