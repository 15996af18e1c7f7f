"""The softmax unit: TFLite's int8 SOFTMAX over rows, with the exps in a loaded table."""

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In

from ..config import JalapenoConfig
from .fixedpoint import delay
from .lut import lane_tables
from .pipeline import block_ports

__all__ = ["Softmax", "softmax_in_layout", "exp_table_layout"]

#: gemmlowp's Newton-Raphson constants (``one_over_one_plus_x_for_x_in_0_1``), raw Q2.29.
_48_OVER_17 = 1515870810
_MINUS_32_OVER_17 = -1010580540
_INT32_MAX = (1 << 31) - 1
#: Fraction bits the exps lose when they are summed in Q12.19 (``ACCUMULATION_INTEGER_BITS``).
_SUM_SHIFT = 12
#: The output rescale divides by ``2**(_SHIFT_BIAS - headroom_plus_one)``.
_SHIFT_BIAS = _SUM_SHIFT + 31 - 8
#: Enabled edges the sequencer takes from the last beat of pass 2: the sum's last addition,
#: the normalisation, then seven multiplies of two edges each.
_STEPS = 16


def softmax_in_layout(config: JalapenoConfig):
    """Payload of one input beat: ``cols`` int8 elements of a row and the row's ``length``,
    which only the row's first beat carries."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.in_width), config.cols),
        "length": unsigned(config.row_length_width),
    })


def exp_table_layout(config: JalapenoConfig):
    """Payload of one exp-table write: entry ``index`` and its raw Q0.31 ``value``."""
    return data.StructLayout({
        "index": unsigned(config.in_width),
        "value": unsigned(config.acc_width - 1),
    })


def _maximum(m, values, name):
    """The largest of ``values``, through a tree of compares; a Signal per node keeps the
    expression (and the simulator's code for it) linear in the number of values."""
    level = 0
    while len(values) > 1:
        pairs = []
        for k in range(0, len(values) - 1, 2):
            node = Signal.like(values[k], name=f"{name}_{level}_{k // 2}")
            m.d.comb += node.eq(Mux(values[k] > values[k + 1], values[k], values[k + 1]))
            pairs.append(node)
        values = pairs + values[2 * len(pairs):]
        level += 1
    return values[0]


def _window(m, value, amount, width, name):
    """``(value >> amount)[:width]`` as a logarithmic shifter whose stages keep only the bits
    the later stages and the result use."""
    for k in reversed(range(len(amount))):
        stage = Signal(min(len(value), width + (1 << k) - 1), name=f"{name}_{k}")
        m.d.comb += stage.eq(Mux(amount[k], value >> (1 << k), value))
        value = stage
    return value[:width]


class Softmax(wiring.Component):
    """TFLite's int8 SOFTMAX of rows of up to ``max_row`` elements, ``cols`` lanes wide.

    Each row is streamed in three times and comes out as
    ``verification.models.softmax.softmax(row, params, exp_table=table)`` bit for bit, where
    ``table`` is what was loaded on :attr:`table` (the compiler loads
    ``softmax_exp_table(params)``):

    1. Pass 1: each lane keeps the maximum of its elements; the lane maxima are then reduced to
       the row's maximum.
    2. Pass 2: each lane looks up ``exp = table[max - x]`` in its own copy of the table, and
       the lanes add ``RoundingDivideByPOT(exp, 12)`` (Q12.19) to the row's sum. The sum of up
       to 4096 terms of at most ``2**19`` is at most ``2**31``; the model's int32 wrap and
       reinterpretation as unsigned give back that same value, so it is kept unsigned.
    3. Once per row, ``GetReciprocal``: a leading-zero count normalises the sum, then
       gemmlowp's Newton-Raphson ``1 / (1 + x)`` takes seven high multiplies in sequence on one
       shared 32x32 multiplier, giving the row's ``scale``.
    4. Pass 3: each lane looks its exp up again and computes
       ``RoundingDivideByPOT(srdhm(scale, exp), bits_over_unit + 23) - 128``, clamped to int8:
       one 31x31 unsigned multiply per lane (both factors are non-negative), then a rounding
       shift of which only the 9 bits the output needs are selected.

    Two kinds of row give -128 everywhere, and are computed with a scale of 0, which does the
    same: a sum of ``2**28`` or more, whose shift of 32 to 35 rounds every
    ``srdhm(scale, exp)`` to 0, and a sum of 0 (every exp below ``2**11``), whose reciprocal
    gemmlowp makes negative. The saturations inside gemmlowp's iteration (the high multiply of
    ``INT32_MIN`` by itself, the correction times 4) never act on a normalised sum ``d`` in
    ``[1/2, 1)``: the estimate starts within ``1/17`` of ``1/d`` and converges quadratically,
    so it stays in ``(0.9, 2]`` and the corrections are tiny (all ``2**31`` normalised sums
    were also checked exhaustively). The shared multiplier therefore has no saturation logic;
    the final doubling saturates, at an estimate of exactly 2 (a sum that is a power of two).

    So the unit is exact for every table of u31 entries, not only exp tables, entry 0 included.
    It never sees ``diff_min``: the model's exclusion of ``diff < diff_min`` (output -128) is
    reproduced by the zero entries ``softmax_exp_table`` puts there, so a table with nonzero
    entries past index ``-diff_min`` matches the model only on rows with no ``diff`` below
    ``diff_min``.

    Timing: one beat per cycle in every pass. ``i.ready`` drops for one cycle between passes 1
    and 2 (the lane-maximum reduction) and for 15 between passes 2 and 3 (the sum's last
    addition, the normalisation and the reciprocal; the first beat of pass 3 is taken while
    the last Newton-Raphson step completes). Without stalls a row takes
    ``3 * ceil(length / cols) + 16`` (:attr:`row_constant_cycles`) cycles from its first beat
    to the next row's first beat (measured by ``tests/test_softmax_unit.py``), and an output
    is offered four cycles after its pass-3 beat is taken.

    Tables are written as in :class:`~rtl.vector.lut.LutUnit`: every lane has its own copy in
    a synchronous-read memory, a write goes into every copy and lands at the edge that accepts
    it, and a pass-2 or pass-3 beat reads the tables at the edge that accepts it (a write at
    that same edge is not seen). A table may therefore be reloaded from the cycle after a
    row's last pass-3 beat is taken, while its outputs are still on their way, or during the
    next row's pass 1, and must hold from a row's first pass-2 beat to its last pass-3 beat.

    Passes 2 and 3, the sum and the sequencer advance under one enable and stall only while an
    output is offered and not taken, so backpressure never loses or reorders data. Pass 1 and
    the reduction produce nothing for ``o`` and do not wait for it: the next row's pass 1 is
    taken while the previous row's outputs wait.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``max_row``, ``in_width``, ``acc_width``,
        ``row_length_width``).

    Attributes
    ----------
    table : In(stream.Signature(exp_table_layout(config)))
        Exp-table writes, one entry per beat into every lane's copy; always ready. Entry ``k``
        is the raw Q0.31 exp of ``diff = -k``.
    i : In(stream.Signature(softmax_in_layout(config)))
        Rows, each streamed three times with the same elements: ``ceil(length / cols)`` beats
        per pass, lane ``c`` of beat ``b`` holding element ``b * cols + c``. ``length`` is
        read on the first beat of pass 1 only; lanes past the end of the row in a pass's last
        beat are ignored.
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        ``ceil(length / cols)`` beats per row, produced during pass 3; lanes past the end of
        the row are 0.
    error : Out(1)
        Set, until reset, by a row's first beat with ``length`` 0 or above ``max_row``. That
        beat is taken and dropped, and the next beat is again a row's first beat.
    busy : Out(1)
        High while a row is in progress or an output is still to be taken; low only when the
        unit is idle.
    passes : int
        Times each row is streamed in: 3.
    row_constant_cycles : int
        Cycles ``i.ready`` is low per row, between its passes: 16.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    passes = 3
    #: One cycle between passes 1 and 2, ``_STEPS - 1`` between passes 2 and 3.
    row_constant_cycles = _STEPS

    def __init__(self, config: JalapenoConfig):
        ports = block_ports(config, softmax_in_layout)
        super().__init__({"table": In(stream.Signature(exp_table_layout(config))), **ports})
        self._config = config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        cols, width = cfg.cols, cfg.acc_width
        int8_min, int8_max = -(1 << (cfg.in_width - 1)), (1 << (cfg.in_width - 1)) - 1
        en = Signal()
        accept = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            accept.eq(self.i.valid & self.i.ready),
            self.table.ready.eq(1),
        ]

        # Where the beat on i stands in its pass: the row's length, the elements left
        # including this beat, and the lanes that hold one of them.
        length = Signal(cfg.row_length_width)
        remaining = Signal(cfg.row_length_width)
        row_length = Signal(cfg.row_length_width)
        left = Signal(cfg.row_length_width)
        last = Signal()
        lanes = Signal(cols)
        m.d.comb += [
            row_length.eq(length),
            left.eq(remaining),
            last.eq(left <= cols),
            lanes.eq(Cat(left > c for c in range(cols))),
        ]
        with m.If(accept):
            m.d.sync += remaining.eq(Mux(last, row_length, left - cols))

        row_max = Signal(signed(cfg.in_width))
        lane_max = [Signal(signed(cfg.in_width), name=f"lane_max_{c}") for c in range(cols)]
        masked = [Mux(lanes[c], self.i.payload.data[c], int8_min) for c in range(cols)]

        exps = lane_tables(m, self.table, unsigned(width - 1),
                           [row_max - self.i.payload.data[c] for c in range(cols)], en)

        step = Signal(range(_STEPS + 1))
        with m.If(en & (step != 0)):
            m.d.sync += step.eq(Mux(step == _STEPS, 0, step + 1))

        with m.FSM() as fsm:
            with m.State("IDLE"):
                n = self.i.payload.length
                bad = (n == 0) | (n > cfg.max_row)
                m.d.comb += [self.i.ready.eq(1), row_length.eq(n), left.eq(n)]
                with m.If(accept & bad):
                    m.d.sync += self.error.eq(1)
                with m.Elif(accept):
                    m.d.sync += [length.eq(n)] + [lane_max[c].eq(masked[c]) for c in range(cols)]
                    with m.If(last):
                        m.next = "MAX"
                    with m.Else():
                        m.next = "PASS1"
            with m.State("PASS1"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(accept):
                    m.d.sync += [lane_max[c].eq(Mux(masked[c] > lane_max[c], masked[c],
                                                    lane_max[c])) for c in range(cols)]
                    with m.If(last):
                        m.next = "MAX"
            with m.State("MAX"):
                m.d.sync += row_max.eq(_maximum(m, lane_max, "max"))
                m.next = "PASS2"
            with m.State("PASS2"):
                m.d.comb += self.i.ready.eq(en)
                with m.If(accept & last):
                    m.d.sync += step.eq(1)
                    m.next = "RECIP"
            with m.State("RECIP"):
                with m.If(en & (step == _STEPS - 1)):
                    m.next = "PASS3"
            with m.State("PASS3"):
                m.d.comb += self.i.ready.eq(en)
                with m.If(accept & last):
                    m.next = "IDLE"

        # Pass 2: the lanes' exps, rounded to Q12.19, added to the row's sum.
        sum_valid = Signal()
        live = Signal(cols)
        with m.If(en):
            m.d.sync += [sum_valid.eq(accept & fsm.ongoing("PASS2")), live.eq(lanes)]
        total = Signal((cfg.max_row << (width - 1 - _SUM_SHIFT)).bit_length())
        terms = [Mux(live[c], (exps[c] >> _SUM_SHIFT) + exps[c][_SUM_SHIFT - 1], 0)
                 for c in range(cols)]
        with m.If(fsm.ongoing("MAX")):
            m.d.sync += total.eq(0)
        with m.Elif(en & sum_valid):
            m.d.sync += total.eq(total + sum(terms))

        # GetReciprocal. The sum normalised to [2**31, 2**32) is 1 + x of gemmlowp's
        # 1 / (1 + x) in Q1.31; half of it is the iteration's half_denominator. Its leading
        # zeros are headroom_plus_one. The sequencer's steps: 1, the sum's last addition; 2,
        # the normalisation; 3-4, x = 48/17 + srdhm(half_denominator, -32/17); then three
        # times, one_minus = 1 - srdhm(half_denominator, x) and x += 4 srdhm(x, one_minus).
        # A multiply takes its operands at an odd step, and its result is used at the next.
        normal = Signal(32, name="normal")
        m.d.comb += normal.eq(total)
        zeros = []
        for k in (16, 8, 4, 2, 1):
            zero = normal[32 - k:] == 0
            zeros.insert(0, zero)
            shifted = Signal(32, name=f"normal_{k}")
            m.d.comb += shifted.eq(Mux(zero, normal << k, normal))
            normal = shifted
        halve = Signal(5)
        flush = Signal()
        half_denominator = Signal(31)
        x = Signal(signed(32))
        one_minus = Signal(signed(32))
        nr_product = Signal(signed(64))
        nr_high = Signal(signed(32))
        correcting = step.matches(7, 11, 15)
        # SaturatingRoundingDoublingHighMul: floor((a * b + 2**30) / 2**31) for either sign.
        m.d.comb += nr_high.eq((nr_product + (1 << 30)) >> 31)
        with m.If(en):
            m.d.sync += nr_product.eq(
                Mux(correcting, x, half_denominator)
                * Mux(step == 3, _MINUS_32_OVER_17, Mux(correcting, one_minus, x)))
            with m.Switch(step):
                with m.Case(2):
                    # The shift less one, modulo 32: only flushed rows go beyond 31.
                    m.d.sync += [
                        halve.eq(_SHIFT_BIAS - 1 - Cat(zeros)),
                        flush.eq(~normal[31] | (Cat(zeros) < _SHIFT_BIAS - 31)),
                        half_denominator.eq(normal[1:]),
                    ]
                with m.Case(4):
                    m.d.sync += x.eq(_48_OVER_17 + nr_high)
                with m.Case(6, 10, 14):
                    m.d.sync += one_minus.eq((1 << 29) - nr_high)
                with m.Case(8, 12, 16):
                    m.d.sync += x.eq(x + (nr_high << 2))

        # Pass 3: RoundingDivideByPOT(srdhm(scale, exp), shift) - 128 per lane, clamped. Both
        # factors are non-negative and below 2**31, so srdhm's rounding is +product[30], and
        # RoundingDivideByPOT is (window + 1) >> 1 of window = high >> (shift - 1). Only its
        # low 9 bits are selected, and whether it reaches 511 (the clamp's only side) comes
        # from the bits of high above them, through a mask all lanes share. The shift travels
        # with the beat, as scale is read earlier.
        scale = Signal(width - 1)
        m.d.comb += scale.eq(Mux(flush, 0, Mux(x >= 1 << 30, _INT32_MAX, x << 1)))
        late_halve = delay(m, en, halve, halve.shape(), 2, "halve")
        above = Signal(width - 1)
        m.d.comb += above.eq(Cat(late_halve + cfg.in_width + 1 <= k for k in range(width - 1)))
        late = delay(m, en, live, cols, 2, "live")
        for c in range(cols):
            product = Signal(2 * (width - 1), name=f"product_{c}")
            high = Signal(width - 1, name=f"high_{c}")
            window = _window(m, high, late_halve, cfg.in_width + 1, f"window_{c}")
            saturated = (high & above).any() | (window == (1 << (cfg.in_width + 1)) - 1)
            with m.If(en):
                m.d.sync += [
                    product.eq(scale * exps[c]),
                    high.eq((product >> (width - 1)) + product[width - 2]),
                    self.o.payload[c].eq(Mux(~late[c], 0, Mux(saturated, int8_max,
                                                              ((window + 1) >> 1) ^ -int8_min))),
                ]
        out_valid = Signal()
        with m.If(en):
            m.d.sync += out_valid.eq(accept & fsm.ongoing("PASS3"))
        stages = [out_valid]
        for stage in range(3):
            stages.append(delay(m, en, stages[-1], 1, 1, f"valid_{stage}"))
        m.d.comb += [
            self.o.valid.eq(stages[-1]),
            self.busy.eq(~fsm.ongoing("IDLE") | Cat(stages).any()),
        ]
        return m
