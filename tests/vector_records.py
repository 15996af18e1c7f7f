"""VECTOR parameter records for tests: built from :data:`jalapeno.isa.RECORDS` with the unit
models' own parameter helpers, good ones and ones with exactly one bad value (at or just past
the limits ``_RecordCheck`` enforces)."""

import numpy as np

from jalapeno.isa import Opcode, VectorOp, encode, pack_record
from verification.models import lut
from verification.models.core import vector_pitch
from verification.models.layernorm import LayerNormParams
from verification.models.quant import AddParams, quantize_multiplier
from verification.models.softmax import SoftmaxParams, softmax_exp_table
from verification.stimulus import random_int8

__all__ = ["random_record", "BAD_KINDS", "Layout", "vector_word"]

#: The ways each op's record can be bad (LUT's cannot).
BAD_KINDS = {
    VectorOp.REQUANTIZE: ("multiplier", "shift", "clamp"),
    VectorOp.LUT: (),
    VectorOp.CLAMP: ("clamp",),
    VectorOp.ADD: ("multiplier", "shift", "clamp"),
    VectorOp.SOFTMAX: ("exp",),
    VectorOp.LAYERNORM: ("gamma_shift", "epsilon", "beta"),
}


def _pick(rng, options):
    """One of ``options`` (Python integers of any size)."""
    return options[int(rng.integers(len(options)))]


def _act_range(rng):
    if rng.random() < 0.3:
        return -128, 127
    low, high = sorted(int(v) for v in rng.integers(-128, 128, 2))
    return low, high


def _bad_multiplier(rng):
    return _pick(rng, [1, 2**30 - 1, 2**31, 2**32 - 1, int(rng.integers(1, 2**30))])


def _bad_shift(rng):
    return _pick(rng, [-32, 31, -128, 127])


def random_record(rng, op, length, bad=None):
    """A record for ``op`` on rows of ``length``: good if ``bad`` is ``None``, else with the
    one fault ``bad`` (one of :data:`BAD_KINDS`). Good records often sit on the limits
    (multiplier ``2**30`` or ``2**31 - 1``, shift -31 or 30, ``act_min == act_max``, beta
    ``-2**23`` or ``2**23 - 1``, an exp of ``2**31 - 1``, epsilon ``2**60 - 1``).

    Returns
    -------
    ndarray of uint8
    """
    op = VectorOp(op)
    edge = rng.random() < 0.3
    v = {}
    if op in (VectorOp.REQUANTIZE, VectorOp.CLAMP, VectorOp.ADD):
        low, high = _act_range(rng)
        if edge:
            low = high
        if bad == "clamp":
            low, high = (high, low) if low < high else (high + 1, high) if high < 127 else \
                (127, 126)
        v["act_min"], v["act_max"] = low, high
    if op == VectorOp.REQUANTIZE:
        if edge:
            mult, shift = _pick(rng, [2**30, 2**31 - 1, 0]), _pick(rng, [-31, 30, 0])
        else:
            mult, shift = quantize_multiplier(float(10 ** rng.uniform(-5, 0.5)))
        if bad == "multiplier":
            mult = _bad_multiplier(rng)
        elif bad == "shift":
            shift = _bad_shift(rng)
        v.update(multiplier=mult, shift=shift, zero_point=int(rng.integers(-128, 128)))
    elif op == VectorOp.LUT:
        kind = int(rng.integers(3))
        scale, zp = float(rng.uniform(0.01, 0.2)), int(rng.integers(-40, 41))
        v["table"] = (lut.logistic_table((scale, zp)) if kind == 0 else
                      lut.tanh_table((scale, zp)) if kind == 1 else random_int8(rng, 256))
    elif op == VectorOp.ADD:
        s1, s2 = (float(np.float32(rng.uniform(0.005, 0.5))) for _ in range(2))
        s_out = float(np.float32(max(s1, s2) * rng.uniform(0.5, 4.0)))
        zp1, zp2, zp_out = (int(z) for z in rng.integers(-128, 128, 3))
        p = AddParams.from_scales(s1, zp1, s2, zp2, s_out, zp_out)
        for name in ("input1", "input2", "output"):
            v[f"{name}_multiplier"] = getattr(p, f"{name}_multiplier")
            v[f"{name}_shift"] = getattr(p, f"{name}_shift")
            v[f"{name}_zero_point"] = getattr(p, f"{name}_zero_point")
        if bad in ("multiplier", "shift"):
            name = _pick(rng, ["input1", "input2", "output"])
            if bad == "multiplier":
                v[f"{name}_multiplier"] = _bad_multiplier(rng)
            else:
                v[f"{name}_shift"] = _bad_shift(rng)
    elif op == VectorOp.SOFTMAX:
        table = softmax_exp_table(SoftmaxParams.from_scale(
            float(np.float32(rng.uniform(0.002, 0.3))))).astype(np.int64)
        if edge:
            table[int(rng.integers(256))] = 2**31 - 1
        if bad == "exp":
            table[_pick(rng, [0, 255, int(rng.integers(256))])] = _pick(rng, [2**31, 2**32 - 1])
        v["exp_table"] = table
    elif op == VectorOp.LAYERNORM:
        s_x, s_y = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.1))
        p = LayerNormParams.from_float(
            gamma=rng.uniform(0.2, 2.0, length), beta=rng.uniform(-0.5, 0.5, length),
            epsilon=float(10.0 ** rng.uniform(-6, -1)), input_scale=s_x, input_zero_point=0,
            output_scale=s_y, output_zero_point=int(rng.integers(-128, 128)))
        beta = p.beta.astype(np.int64)
        epsilon = p.epsilon
        if edge:
            beta[int(rng.integers(length))] = _pick(rng, [-2**23, 2**23 - 1])
            epsilon = _pick(rng, [1, 2**60 - 1, epsilon])
        v.update(epsilon=epsilon, gamma_shift=p.gamma_shift, gamma=p.gamma,
                 output_zero_point=p.output_zero_point)
        if bad == "gamma_shift":
            v["gamma_shift"] = _pick(rng, [24, 31, 255])
        elif bad == "epsilon":
            v["epsilon"] = _pick(rng, [0, 2**60, 2**64 - 1])
        elif bad == "beta":
            beta[_pick(rng, [0, length - 1, int(rng.integers(length))])] = \
                _pick(rng, [2**23, -2**23 - 1, 2**31 - 1, -2**31])
        v["beta"] = beta
    return pack_record(op, length, v)


class Layout:
    """Allocates pitch-aligned, non-overlapping regions of the scratchpad."""

    def __init__(self, config, start=0):
        self.config, self.pitch, self.next = config, vector_pitch(config), start

    def take(self, nbytes):
        at = self.next
        self.next += -(-nbytes // self.pitch) * self.pitch
        assert self.next <= self.config.spad_bytes, "out of scratchpad"
        return at


def vector_word(config, layout, rng, op, rows, length, *, record, gap=0, spad=None, acc=None,
                **flags):
    """A VECTOR of ``op`` (with token ``flags``) over fresh operands: ``rows`` rows of
    ``length`` with ``gap`` spare vectors between rows; inputs randomised in ``spad`` (and, for
    REQUANTIZE, rows of ``acc``), the record placed in ``spad``."""
    cfg, pitch = config, vector_pitch(config)
    beats = -(-length // cfg.cols)
    stride = (beats + gap) * pitch
    fields = {"op": op, "rows": rows, "length": length, "dst_stride": stride}
    fields["dst"] = layout.take(rows * stride)
    if op == VectorOp.REQUANTIZE:
        step = beats + gap
        first = int(rng.integers(0, cfg.acc_depth - rows * step + 1))
        # Magnitudes from 1 to 2**31, so that some results are inside any clamp range.
        shape = (rows * step, cfg.cols)
        acc[first:first + rows * step] = rng.integers(-2**31, 2**31, shape) >> \
            rng.integers(0, 32, shape)
        fields.update(src=cfg.acc_base + first * cfg.acc_row_bytes,
                      src_stride=step * cfg.acc_row_bytes)
    else:
        fields.update(src=layout.take(rows * stride), src_stride=stride)
        spad[fields["src"]:fields["src"] + rows * stride] = \
            random_int8(rng, rows * stride).view(np.uint8)
    if op == VectorOp.ADD:
        fields.update(src2=layout.take(rows * stride), src2_stride=stride)
        spad[fields["src2"]:fields["src2"] + rows * stride] = \
            random_int8(rng, rows * stride).view(np.uint8)
    fields["params"] = layout.take(len(record))
    spad[fields["params"]:fields["params"] + len(record)] = record
    return encode(Opcode.VECTOR, **fields, **flags)
