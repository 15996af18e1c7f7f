"""The requantizer: int32 accumulators to int8 outputs, bit-exact with TFLite."""

from amaranth import Cat, Signal, signed, unsigned
from amaranth.lib import data

from ..config import JalapenoConfig
from .fixedpoint import (
    SHIFT_WIDTH,
    delay,
    register_clamped,
    rescale,
    rescale_invalid,
)
from .pipeline import VectorPipeline

__all__ = ["Requantizer", "requant_in_layout"]


def requant_in_layout(config: JalapenoConfig):
    """Payload of one requantization: ``cols`` int32 lanes, their per-channel parameters and the
    fused activation's clamping range, which all lanes share."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.acc_width), config.cols),
        "params": data.ArrayLayout(data.StructLayout({
            "multiplier": unsigned(config.acc_width - 1),
            "shift": signed(SHIFT_WIDTH),
            "zero_point": signed(config.in_width),
        }), config.cols),
        "act_min": signed(config.in_width),
        "act_max": signed(config.in_width),
    })


class Requantizer(VectorPipeline):
    """``cols`` lanes of TFLite's int8 requantization, one vector per cycle.

    Lane ``c`` computes :func:`verification.models.quant.requantize` of ``data[c]`` with the
    lane's ``multiplier``, ``shift`` and ``zero_point`` and the shared ``act_min``/``act_max``,
    bit for bit: ``data[c]`` is shifted left by ``max(shift, 0)`` wrapping in int32, multiplied
    with ``SaturatingRoundingDoublingHighMul``, divided by ``2**max(-shift, 0)`` with
    ``RoundingDivideByPOT``, offset by the zero point (wrapping in int32) and clamped.
    ``multiplier`` is unsigned and below ``2**31``, so the one product the high multiply
    saturates, ``INT32_MIN * INT32_MIN``, cannot occur, and its rounding reduces to
    ``floor((a * b + 2**30) / 2**31)`` for either sign.

    Three stages: the left shift and the 32x31 multiply, which maps onto DSP blocks; the
    rounding of the high half; the rounding divide, zero point and clamp. The whole pipeline
    advances together: it stalls only while an output is offered and not taken, so output
    backpressure never loses or reorders data; ``i.ready`` is the pipeline enable.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``acc_width``, ``in_width``).

    Attributes
    ----------
    i : In(stream.Signature(requant_in_layout(config)))
        Accumulator vectors with their requantization parameters.
    o, error, busy
        As in :class:`~rtl.vector.pipeline.VectorPipeline`.
    """

    latency = 3

    def __init__(self, config: JalapenoConfig):
        super().__init__(config, requant_in_layout)

    def datapath(self, m, en):
        cfg = self._config
        width = cfg.acc_width
        p = self.i.payload
        # Bits of the parameters no later stage reads are left for synthesis to prune.
        late = delay(m, en, p, requant_in_layout(cfg), 2, "params")
        for c in range(cfg.cols):
            lane = p.params[c]
            scaled = rescale(m, en, p.data[c], lane.multiplier, lane.shift, width, f"lane{c}")
            offset = Signal(signed(width), name=f"offset_{c}")  # wraps in int32, as TFLite
            m.d.comb += offset.eq(scaled + late.params[c].zero_point)
            register_clamped(m, en, self.o.payload[c], offset, late.act_min, late.act_max,
                             f"lane{c}")
        bad_lanes = Cat(rescale_invalid(p.params[c].multiplier, p.params[c].shift, width)
                        for c in range(cfg.cols))
        return bad_lanes.any() | (p.act_min > p.act_max)
