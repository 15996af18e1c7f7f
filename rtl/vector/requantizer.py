"""The requantizer: int32 accumulators to int8 outputs, bit-exact with TFLite."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["Requantizer", "requant_in_layout"]

#: Shifts a requantization takes (TFLite's ``MultiplyByQuantizedMultiplier``): right by up to
#: 31, left by up to 30. The golden model imports them from here.
SHIFT_MIN, SHIFT_MAX = -31, 30
#: Width of a shift field: holds every shift in ``[SHIFT_MIN, SHIFT_MAX]``, and -32 and 31.
SHIFT_WIDTH = 6


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


def _carried_layout(config: JalapenoConfig):
    """What travels beside the products to the last stage: right shifts, zero points, clamp."""
    return data.StructLayout({
        "right": data.ArrayLayout(unsigned(SHIFT_WIDTH - 1), config.cols),
        "zero_point": data.ArrayLayout(signed(config.in_width), config.cols),
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

        bad_lanes = Cat(
            (lane.shift < SHIFT_MIN) | (lane.shift > SHIFT_MAX)
            | ((lane.multiplier != 0) & ~lane.multiplier[width - 2])
            for lane in (p.params[c] for c in range(cfg.cols)))
        with m.If(self.i.valid & en & (bad_lanes.any() | (p.act_min > p.act_max))):
            m.d.sync += self.error.eq(1)

        carried = [Signal(_carried_layout(cfg), name=f"carried_d{stage}") for stage in (1, 2)]
        with m.If(en):
            m.d.sync += [
                carried[0].act_min.eq(p.act_min),
                carried[0].act_max.eq(p.act_max),
                carried[1].eq(carried[0]),
            ]

        for c in range(cfg.cols):
            lane = p.params[c]
            negative_shift = lane.shift[-1]
            shifted = Signal(signed(width), name=f"shifted_{c}")
            product = Signal(signed(2 * width - 1), name=f"product_{c}")
            high = Signal(signed(width), name=f"high_{c}")
            m.d.comb += shifted.eq(p.data[c] << Mux(negative_shift, 0, lane.shift[:-1]))
            with m.If(en):
                m.d.sync += [
                    product.eq(shifted * lane.multiplier),
                    carried[0].right[c].eq(Mux(negative_shift, -lane.shift, 0)),
                    carried[0].zero_point[c].eq(lane.zero_point),
                    high.eq((product + (1 << (width - 2))) >> (width - 1)),
                ]

            right = carried[1].right[c]
            mask = Signal(width - 1, name=f"mask_{c}")
            rounded = Signal(signed(width), name=f"rounded_{c}")
            offset = Signal(signed(width), name=f"offset_{c}")
            floored = Signal(signed(width), name=f"floored_{c}")
            m.d.comb += [
                mask.eq((1 << right) - 1),
                rounded.eq((high >> right)
                           + ((high.as_unsigned() & mask) > (mask >> 1) + high[-1])),
                offset.eq(rounded + carried[1].zero_point[c]),
                floored.eq(Mux(offset < carried[1].act_min, carried[1].act_min, offset)),
            ]
            with m.If(en):
                m.d.sync += self.o.payload[c].eq(
                    Mux(floored > carried[1].act_max, carried[1].act_max, floored))

        valid = self.i.valid
        for stage in range(self.latency):
            valid_reg = Signal(name=f"valid_d{stage + 1}")
            with m.If(en):
                m.d.sync += valid_reg.eq(valid)
            valid = valid_reg
        m.d.comb += self.o.valid.eq(valid)
        return m
