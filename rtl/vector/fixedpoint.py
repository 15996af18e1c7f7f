"""Fixed-point building blocks shared by the vector unit's TFLite-exact blocks.

TFLite rescales with ``MultiplyByQuantizedMultiplier`` (a Q0.31 multiplier and a shift) in
requantization, ADD and the activation kernels; :func:`rescale` is its pipelined hardware
form, and :func:`rescale_invalid` flags the parameters TFLite never produces.
"""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = [
    "SHIFT_MIN", "SHIFT_MAX", "SHIFT_WIDTH", "delay", "rescale", "rescale_invalid",
    "register_clamped", "RescalePipeline",
]

#: Shifts a rescale takes (TFLite's ``MultiplyByQuantizedMultiplier``): right by up to 31,
#: left by up to 30. The golden model imports them from here.
SHIFT_MIN, SHIFT_MAX = -31, 30
#: Width of a shift field: holds every shift in ``[SHIFT_MIN, SHIFT_MAX]``, and -32 and 31.
SHIFT_WIDTH = 6


def rescale_invalid(multiplier, shift, width):
    """True for a shift outside ``[SHIFT_MIN, SHIFT_MAX]`` or a nonzero multiplier below
    ``2**(width - 2)`` (``2**30``): parameters ``QuantizeMultiplier`` never produces."""
    return ((shift < SHIFT_MIN) | (shift > SHIFT_MAX)
            | ((multiplier != 0) & ~multiplier[width - 2]))


def delay(m, en, value, shape, cycles, name):
    """``value`` delayed by ``cycles`` enabled clock edges."""
    for stage in range(cycles):
        reg = Signal(shape, name=f"{name}_d{stage + 1}")
        with m.If(en):
            m.d.sync += reg.eq(value)
        value = reg
    return value


def rescale(m, en, x, multiplier, shift, width, name):
    """TFLite's ``MultiplyByQuantizedMultiplier`` of ``x`` over two enabled clock edges.

    ``x`` is shifted left by
    ``max(shift, 0)`` wrapping in ``width`` bits and multiplied (first edge, onto DSP blocks);
    the high half is rounded (second edge); the rounding divide by ``2**max(-shift, 0)`` is
    combinational after it. Returns that ``signed(width)`` result, two edges behind ``x``.
    """
    negative = shift[-1]
    shifted = Signal(signed(width), name=f"{name}_shifted")
    product = Signal(signed(2 * width - 1), name=f"{name}_product")
    high = Signal(signed(width), name=f"{name}_high")
    right = Signal(unsigned(SHIFT_WIDTH - 1), name=f"{name}_right")
    m.d.comb += shifted.eq(x << Mux(negative, 0, shift[:-1]))
    with m.If(en):
        m.d.sync += [
            product.eq(shifted * multiplier),
            right.eq(Mux(negative, -shift, 0)),
            high.eq((product + (1 << (width - 2))) >> (width - 1)),
        ]
    right = delay(m, en, right, unsigned(SHIFT_WIDTH - 1), 1, f"{name}_right")
    mask = Signal(width - 1, name=f"{name}_mask")
    result = Signal(signed(width), name=f"{name}_result")
    m.d.comb += [
        mask.eq((1 << right) - 1),
        result.eq((high >> right) + ((high.as_unsigned() & mask) > (mask >> 1) + high[-1])),
    ]
    return result


def register_clamped(m, en, target, value, low, high, name):
    """Clamp ``value`` to ``[low, high]`` and register it into ``target`` under ``en``."""
    floored = Signal(value.shape(), name=f"{name}_floored")
    m.d.comb += floored.eq(Mux(value < low, low, value))
    with m.If(en):
        m.d.sync += target.eq(Mux(floored > high, high, floored))


class RescalePipeline(wiring.Component):
    """The shell every TFLite-exact vector block shares: ``i`` in, int8 ``o`` out, a sticky
    ``error`` flag and one pipeline enable.

    Subclasses set :attr:`latency` and implement :meth:`datapath`; the shell stalls the whole
    pipeline only while an output is offered and not taken (``i.ready`` is the enable), so
    backpressure never loses or reorders data, and it delays ``valid`` by ``latency``.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``acc_width``, ``in_width``).
    in_layout : callable
        Gives the payload layout of ``i`` for ``config``.

    Attributes
    ----------
    i : In(stream.Signature(in_layout(config)))
        Inputs with their quantization parameters.
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        int8 results in the order their inputs were accepted.
    error : Out(1)
        Set, until reset, by an accepted beat whose parameters TFLite never produces (a shift
        outside ``[SHIFT_MIN, SHIFT_MAX]``, a nonzero multiplier below ``2**30``,
        ``act_min > act_max``). Such a beat still produces an output, of unspecified value.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    latency: int

    def __init__(self, config: JalapenoConfig, in_layout):
        if not isinstance(config, JalapenoConfig):
            raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
        self._config = config
        super().__init__({
            "i": In(stream.Signature(in_layout(config))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(config.in_width), config.cols))),
            "error": Out(1),
        })

    def datapath(self, m, en):
        """Add the datapath to ``m``, advancing under ``en``; return the expression that is
        true when the payload on ``i`` has invalid parameters."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        invalid = self.datapath(m, en)
        with m.If(self.i.valid & en & invalid):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.o.valid.eq(delay(m, en, self.i.valid, 1, self.latency, "valid"))
        return m
