"""The requantizer: int32 accumulators to int8 outputs, bit-exact with TFLite."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig
from .fixedpoint import SHIFT_WIDTH, delay, rescale, rescale_invalid

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


class Requantizer(wiring.Component):
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
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        int8 vectors in the order their inputs were accepted.
    error : Out(1)
        Set, until reset, by an accepted beat whose parameters TFLite never produces: a shift
        outside ``[SHIFT_MIN, SHIFT_MAX]``, a nonzero multiplier below ``2**30`` or
        ``act_min > act_max``. Such a beat still produces an output, of unspecified value.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config: JalapenoConfig):
        if not isinstance(config, JalapenoConfig):
            raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(requant_in_layout(config))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.in_width), config.cols))),
            "error": Out(1),
        })

    @property
    def latency(self):
        """Enabled cycles from accepting an input vector to offering its output."""
        return 3

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        width = cfg.acc_width
        p = self.i.payload
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]

        bad_lanes = Cat(rescale_invalid(p.params[c].multiplier, p.params[c].shift, width)
                        for c in range(cfg.cols))
        with m.If(self.i.valid & en & (bad_lanes.any() | (p.act_min > p.act_max))):
            m.d.sync += self.error.eq(1)

        # Bits of the parameters no later stage reads are left for synthesis to prune.
        late = delay(m, en, p, requant_in_layout(cfg), 2, "params")
        for c in range(cfg.cols):
            lane = p.params[c]
            scaled = rescale(m, en, p.data[c], lane.multiplier, lane.shift, width, f"lane{c}")
            offset = Signal(signed(width), name=f"offset_{c}")  # wraps in int32, as TFLite
            floored = Signal(signed(width), name=f"floored_{c}")
            m.d.comb += [
                offset.eq(scaled + late.params[c].zero_point),
                floored.eq(Mux(offset < late.act_min, late.act_min, offset)),
            ]
            with m.If(en):
                m.d.sync += self.o.payload[c].eq(Mux(floored > late.act_max, late.act_max, floored))

        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, 1, self.latency, "valid"))
        return m
