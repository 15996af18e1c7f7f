"""The layernorm unit: int8 rows normalised in integer arithmetic, two passes over each row.

Bit-exact with :func:`verification.models.layernorm.layernorm`; ``docs/layernorm.md`` derives
the algorithm (steps 1-12) and every width used here.
"""

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.utils import ceil_log2

from ..config import JalapenoConfig
from .fixedpoint import delay, register_clamped
from .pipeline import block_ports

__all__ = ["LayerNorm", "layernorm_in_layout"]

#: Largest gamma shift ``G`` a row may carry.
_GAMMA_SHIFT_MAX = 23
#: Largest fraction-bit count ``Z`` of the normalised value (rows of at most 4 elements).
_NORM_FRAC_MAX = 16

# Row-constant sequencer, by step (cycles after a row's last pass-1 beat is taken). Steps 0
# and 1 wait for that beat's lane sums and their accumulation.
_STEP_PRODUCT_NS2 = 2  # product <- N S2
_STEP_PRODUCT_S1S1 = 3  # product <- S1**2; d <- N S2
_STEP_D = 4  # d <- (N S2 - S1**2) 2**16 + E
_STEP_NORMALISE = 5  # h <- index of the highest nonzero bit pair of D
_STEP_MANTISSA = 6  # m <- D 2**(18 - 2h); k; rsqrt state cleared
_STEP_RSQRT = 7  # first of 19 rsqrt steps, bit 18 down to bit 0 of r
_RSQRT_STEPS = 19
_STEP_PRODUCT_C = _STEP_RSQRT + _RSQRT_STEPS  # product <- S1 r
_STEP_PRODUCT_A = _STEP_PRODUCT_C + 1  # c <- product - 2**k / 2; product <- N r, held as a
_ROW_CONSTANT_CYCLES = _STEP_PRODUCT_A + 1


def layernorm_in_layout(config: JalapenoConfig):
    """Payload of one beat of a row: ``cols`` elements in both passes, the per-channel gamma and
    beta of those elements (read in pass 2), and the row's parameters (read on its first beat,
    ignored on every other)."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(config.in_width), config.cols),
        "gamma": data.ArrayLayout(signed(16), config.cols),
        "beta": data.ArrayLayout(signed(24), config.cols),
        "length": unsigned(config.row_length_width),
        "epsilon": unsigned(60),
        "gamma_shift": unsigned(5),
        "output_zero_point": signed(config.in_width),
    })


def _norm_frac_bits(length, max_row):
    """``Z = min(16, 17 - bitlen(isqrt(N - 1)))`` of a row ``length`` (1..``max_row``).

    ``bitlen(isqrt(n)) = ceil(bitlen(n) / 2)``, so ``Z`` is 16 less the number of powers of
    four from 4 up that ``N - 1`` reaches: a few comparators instead of a square root.
    """
    below = length - 1
    steps = [below >= 4**i for i in range(1, 7) if 4**i < max_row]
    return _NORM_FRAC_MAX - sum(steps)


def _highest_set(flags):
    """``(any, index)`` of the highest set bit of ``flags`` (a power-of-two-long list of 1-bit
    values), by a tree of priority encoders: a leading-zero count of logarithmic depth."""
    if len(flags) == 1:
        return flags[0], Const(0, 0)
    half = len(flags) // 2
    low_any, low_index = _highest_set(flags[:half])
    high_any, high_index = _highest_set(flags[half:])
    return low_any | high_any, Cat(Mux(high_any, high_index, low_index), high_any)


def _tree_sum(values):
    """Sum of ``values`` by a balanced adder tree; each level widens its sums by a bit."""
    while len(values) > 1:
        pairs = [values[i] + values[i + 1] for i in range(0, len(values) - 1, 2)]
        values = pairs + values[2 * len(pairs):]
    return values[0]


class LayerNorm(wiring.Component):
    """Layernorm of int8 rows, ``cols`` elements per beat, bit-exact with
    :func:`verification.models.layernorm.layernorm`.

    Each row is streamed in twice. Pass 1 sums ``x`` and ``x**2``: every lane squares its
    element on the multiplier it uses for ``x a`` in pass 2, an adder tree sums the lanes, and
    one accumulator sums the beats. The row constants are then computed once, sequentially,
    with ``i.ready`` low: ``V = N S2 - S1**2`` and ``D = V 2**16 + E``, a leading-zero count
    and a shift normalise ``D`` to a mantissa ``m`` and ``h``, a restoring digit recurrence
    gives ``r = floor(sqrt(2**54 / m))`` one bit per cycle without a multiplier or a table,
    and ``a = N r``, ``c = S1 r`` and ``k``. The four products share one multiplier. Pass 2
    normalises each element: ``z = rnd(x a - c, k)``, ``v = rnd(z g, Z + G - 8)``,
    ``y = clamp(zp + rnd(v + b, 8))``, one beat per cycle through five stages.

    The row's parameters arrive with its first beat. ``Z`` is not among them: the unit derives
    it from ``N``. Two roundings need no adder of their own: ``c`` is stored less ``2**k / 2``,
    and ``zp + rnd(w, 8)`` is ``(w + zp 2**8 + 2**7) >> 8``.

    Without stalls a row takes ``2 ceil(N / cols) + C`` cycles, with ``C =``
    :attr:`row_constant_cycles` ``= 28`` whatever ``cols``: rows go back to back, the next
    row's pass 1 starting the cycle after this row's pass 2 ends, and an output is offered
    :attr:`latency` cycles after its pass-2 beat is taken. Everything, the row constants
    included, advances under one enable that is low only while an output is offered and not
    taken, so backpressure never loses or reorders data.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``in_width``, ``max_row``, ``row_length_width``).

    Attributes
    ----------
    i : In(stream.Signature(layernorm_in_layout(config)))
        Each row twice, pass 1 then pass 2, ``ceil(N / cols)`` beats per pass; lane ``c`` of
        beat ``b`` holds element ``b cols + c``, and lanes past the end of the row are ignored.
        ``length`` (``N``), ``epsilon`` (``E``), ``gamma_shift`` (``G``) and
        ``output_zero_point`` (``zp``) are read on the row's first beat only, ``gamma`` and
        ``beta`` in pass 2 only.
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        ``ceil(N / cols)`` beats per row, produced during pass 2; lanes past the end of the
        row are 0.
    error : Out(1)
        Set, until reset, by a row's first beat with ``N == 0``, ``N > max_row``, ``G > 23``
        or ``E == 0``. That beat is taken and dropped, and the next beat is again a row's
        first beat.
    busy : Out(1)
        High while a row is in progress or an output of a taken beat has not been taken.
    latency : int
        Cycles from taking a pass-2 beat to offering its output, without stalls.
    passes : int
        Times each row is streamed in: 2.
    row_constant_cycles : int
        ``C``: cycles ``i.ready`` is low between a row's passes, computing its constants.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    latency = 5
    passes = 2
    row_constant_cycles = _ROW_CONSTANT_CYCLES

    def __init__(self, config: JalapenoConfig):
        super().__init__(block_ports(config, layernorm_in_layout))
        self._config = config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        cols = cfg.cols
        p = self.i.payload
        en = Signal()
        m.d.comb += en.eq(~self.o.valid | self.o.ready)

        # The row's parameters, taken from its first beat.
        n = Signal(cfg.row_length_width)
        epsilon = Signal(60)
        gamma_shift = Signal(5)
        zero_point = Signal(signed(cfg.in_width))
        norm_frac = Signal(range(_NORM_FRAC_MAX + 1))
        m.d.comb += norm_frac.eq(_norm_frac_bits(n, cfg.max_row))

        # Row constants. ``product`` is the shared multiplier's register, and holds ``a = N r``
        # through pass 2: 38 bits hold ``a`` and ``c``, and ``V < 2**38`` is exact from ``N S2``
        # and ``S1**2`` taken modulo ``2**38``. ``c_round`` is ``c - 2**k / 2``. ``out_shift``
        # (``Z + G - 8``) and ``out_zero_point`` are copies that the next row's first beat
        # cannot overwrite while this row's last outputs are still in the pipeline.
        s1 = Signal(signed(20))
        s2 = Signal(unsigned(27))
        product = Signal(signed(38))
        d = Signal(unsigned(61))
        h = Signal(range(31))
        mant = Signal(unsigned(20))
        remainder = Signal(unsigned(39))
        partial = Signal(unsigned(36))
        r = Signal(unsigned(_RSQRT_STEPS))
        k = Signal(range(30))
        c_round = Signal(signed(39))
        out_shift = Signal(5)
        out_zero_point = Signal(signed(cfg.in_width))
        a = product[:31]

        # ``length``: elements of the row from the current beat on (``N`` on the row's first
        # beat, then ``left``); ``live``: the lanes of the current beat within the row.
        left = Signal(cfg.row_length_width)
        length = Signal(cfg.row_length_width)
        live = Signal(cols)
        m.d.comb += live.eq(Cat(length > c for c in range(cols)))
        step = Signal(range(_ROW_CONSTANT_CYCLES))

        accept = Signal()
        bad = Signal()
        pass2 = Signal()
        first = Signal()
        computing = Signal()
        m.d.comb += accept.eq(self.i.valid & self.i.ready)

        def start_pass1_beat():
            m.d.sync += left.eq(length - cols)
            with m.If(length <= cols):
                m.d.sync += step.eq(0)
                m.next = "CONSTANTS"
            with m.Else():
                m.next = "PASS1"

        with m.FSM():
            with m.State("FIRST"):
                m.d.comb += [
                    first.eq(1),
                    self.i.ready.eq(en),
                    length.eq(p.length),
                    bad.eq((p.length == 0) | (p.length > cfg.max_row)
                           | (p.gamma_shift > _GAMMA_SHIFT_MAX) | (p.epsilon == 0)),
                ]
                with m.If(accept):
                    with m.If(bad):
                        m.d.sync += self.error.eq(1)
                    with m.Else():
                        m.d.sync += [
                            n.eq(p.length),
                            epsilon.eq(p.epsilon),
                            gamma_shift.eq(p.gamma_shift),
                            zero_point.eq(p.output_zero_point),
                        ]
                        start_pass1_beat()
            with m.State("PASS1"):
                m.d.comb += [self.i.ready.eq(en), length.eq(left)]
                with m.If(accept):
                    start_pass1_beat()
            with m.State("CONSTANTS"):
                m.d.comb += computing.eq(1)
                with m.If(en):
                    m.d.sync += step.eq(step + 1)
                    with m.If(step == _ROW_CONSTANT_CYCLES - 1):
                        m.d.sync += left.eq(n)
                        m.next = "PASS2"
            with m.State("PASS2"):
                m.d.comb += [self.i.ready.eq(en), length.eq(left), pass2.eq(1)]
                with m.If(accept):
                    m.d.sync += left.eq(length - cols)
                    with m.If(length <= cols):
                        m.next = "FIRST"

        # Stage 1, shared by both passes: x a (pass 2) or x**2 (pass 1) on each lane's
        # multiplier, lanes past the row's end zeroed.
        pass1_valid = Signal()
        pass1_first = Signal()
        pass2_valid = Signal(self.latency)
        live_1 = Signal(cols)
        elements = [Signal(signed(cfg.in_width), name=f"x_{c}") for c in range(cols)]
        products = [Signal(signed(39), name=f"xa_{c}") for c in range(cols)]
        with m.If(en):
            m.d.sync += [
                pass1_valid.eq(accept & ~pass2 & ~bad),
                pass1_first.eq(first),
                pass2_valid.eq(Cat(accept & pass2, pass2_valid[:-1])),
                live_1.eq(live),
            ]
            for c in range(cols):
                x = Mux(live[c], p.data[c], 0)
                m.d.sync += [
                    elements[c].eq(x),
                    products[c].eq(x * Mux(pass2, a, x)),
                ]

        # Pass 1: the lanes' sums, then their accumulation over the row.
        beat_valid = Signal()
        beat_first = Signal()
        beat_s1 = Signal(signed(cfg.in_width + ceil_log2(cols)))
        beat_s2 = Signal(unsigned(15 + ceil_log2(cols)))
        with m.If(en):
            m.d.sync += [
                beat_valid.eq(pass1_valid),
                beat_first.eq(pass1_first),
                beat_s1.eq(_tree_sum(elements)),
                beat_s2.eq(_tree_sum([prod[:15] for prod in products])),
            ]
            with m.If(beat_valid):
                m.d.sync += [
                    s1.eq(Mux(beat_first, 0, s1) + beat_s1),
                    s2.eq(Mux(beat_first, 0, s2) + beat_s2),
                ]

        # The row constants, one step per enabled cycle. The rsqrt recurrence keeps the
        # documented P = m r**2 and Q = m r as remainder = (2**54 - P) / 4**j (< 2**39) and
        # partial = Q / 2**(j + 1) (< 2**36): bit j is taken when 4 partial + m <= remainder,
        # and every shift is by a constant.
        left_op = Signal(signed(20))
        right_op = Signal(signed(28))
        variance = Signal(unsigned(38))
        candidate = Signal(unsigned(39))
        take = Signal()
        k_unclamped = Signal(range(41))
        m.d.comb += [
            variance.eq(d - product),
            candidate.eq((partial << 2) + mant),
            take.eq(candidate <= remainder),
            k_unclamped.eq(h + 10),
        ]
        pairs = [d[i:i + 2].any() for i in range(0, 61, 2)]
        _, top_pair = _highest_set(pairs + [Const(0)] * (32 - len(pairs)))
        with m.Switch(step):
            with m.Case(_STEP_PRODUCT_NS2):
                m.d.comb += [left_op.eq(n), right_op.eq(s2)]
            with m.Case(_STEP_PRODUCT_S1S1):
                m.d.comb += [left_op.eq(s1), right_op.eq(s1)]
            with m.Case(_STEP_PRODUCT_C):
                m.d.comb += [left_op.eq(s1), right_op.eq(r)]
            with m.Case(_STEP_PRODUCT_A):
                m.d.comb += [left_op.eq(n), right_op.eq(r)]
        with m.If(en & computing):
            with m.Switch(step):
                with m.Case(_STEP_PRODUCT_NS2, _STEP_PRODUCT_C):
                    m.d.sync += product.eq(left_op * right_op)
                with m.Case(_STEP_PRODUCT_S1S1):
                    m.d.sync += [product.eq(left_op * right_op), d.eq(product)]
                with m.Case(_STEP_D):
                    m.d.sync += d.eq((variance << 16) + epsilon)
                with m.Case(_STEP_NORMALISE):
                    m.d.sync += h.eq(top_pair)
                with m.Case(_STEP_MANTISSA):
                    m.d.sync += [
                        mant.eq(Cat(Const(0, 18), d).bit_select(h * 2, 20)),
                        k.eq(Mux(k_unclamped > norm_frac, k_unclamped - norm_frac, 0)),
                        remainder.eq(1 << 18),
                        partial.eq(0),
                    ]
                with m.Case(*range(_STEP_RSQRT, _STEP_RSQRT + _RSQRT_STEPS)):
                    m.d.sync += [
                        r.eq(Cat(take, r[:-1])),
                        remainder.eq((remainder - Mux(take, candidate, 0)) << 2),
                        partial.eq((partial << 1) + Mux(take, mant, 0)),
                    ]
                with m.Case(_STEP_PRODUCT_A):
                    m.d.sync += [
                        c_round.eq(product - ((Const(1) << k) >> 1)),
                        product.eq(left_op * right_op),
                        out_shift.eq(norm_frac + gamma_shift - 8),
                        out_zero_point.eq(zero_point),
                    ]

        # Pass 2, stages 2 to 5.
        live_4 = delay(m, en, live_1, cols, 3, "live")
        half_out = Signal(32)
        out_round = Signal(signed(cfg.in_width + 8))
        m.d.comb += [
            half_out.eq((Const(1) << out_shift) >> 1),
            out_round.eq(Cat(Const(1 << 7, 8), out_zero_point)),
        ]
        for c in range(cols):
            gamma = delay(m, en, p.gamma[c], signed(16), 2, f"gamma_{c}")
            beta = delay(m, en, p.beta[c], signed(24), 3, f"beta_{c}")
            z = Signal(signed(18), name=f"z_{c}")
            zg = Signal(signed(33), name=f"zg_{c}")
            v = Signal(signed(29), name=f"v_{c}")
            w = Signal(signed(30), name=f"w_{c}")
            m.d.comb += v.eq((zg + half_out) >> out_shift)
            with m.If(en):
                m.d.sync += [
                    z.eq((products[c] - c_round) >> k),
                    zg.eq(z * gamma),
                    w.eq(v + beta),
                ]
            register_clamped(m, en, self.o.payload[c], Mux(live_4[c], (w + out_round) >> 8, 0),
                             -128, 127, f"y_{c}")

        m.d.comb += [
            self.o.valid.eq(pass2_valid[-1]),
            self.busy.eq(~first | pass2_valid.any()),
        ]
        return m
