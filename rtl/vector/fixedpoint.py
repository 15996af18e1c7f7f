"""Fixed-point building blocks shared by the vector unit's TFLite-exact blocks.

TFLite rescales with ``MultiplyByQuantizedMultiplier`` (a Q0.31 multiplier and a shift) in
requantization, ADD and the activation kernels; :func:`rescale` is its pipelined hardware
form, and :func:`rescale_invalid` flags the parameters TFLite never produces.
"""

from amaranth import Mux, Signal, signed, unsigned

__all__ = [
    "SHIFT_MIN", "SHIFT_MAX", "SHIFT_WIDTH", "delay", "rescale", "rescale_invalid",
    "register_clamped",
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
