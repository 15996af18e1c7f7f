"""The systolic array alone in a board's place of :class:`~fpga.soc.BoardSoC`: the clock its
datapath reaches by itself, for any array size (``make bitstream BOARD=ulx3s ARRAY=12x12``).

The board's clock is met only when the core's control and the array both meet it; this top
routes the array alone, on the same board, PLL, tools and options, so the two can be told
apart, and the array size that gives the most GMAC/s can be chosen from routed figures.
"""

from amaranth import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.config import JalapenoConfig
from rtl.systolic.array import SystolicArray

from .soc import StatusLayout

__all__ = ["ArrayProbe"]


class ArrayProbe(wiring.Component):
    """:class:`~rtl.systolic.array.SystolicArray` fed from a shift register, its results
    folded into an LED.

    Every operand, bank, weight write and valid comes from a 257-bit linear-feedback shift
    register with the UART's receive line folded into its feedback, through one LUT (a bit
    XORed with its neighbour), so no input is constant and none of the array is optimised
    away. The results are always taken, as the core's accumulator always takes them (its
    ``update.ready`` is 1), so the array's pipeline enable is constant as in the core. Each
    accepted result is registered and folded into the ``irq`` LED by a tree of registered
    4-input XORs: every path outside the array starts and ends at a flip-flop with one LUT
    between them, and the array's own paths are what the routed clock measures.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point of the array (``rows``, ``cols``, widths).

    Members
    -------
    array : SystolicArray
        The array under test.
    rx : In(1)
        The UART receive line, folded into the shift register.
    tx : Out(1)
        A bit of the shift register.
    status : Out(StatusLayout())
        ``irq``: the folded results; ``heartbeat``: a result is in flight.
    """

    #: Length of the shift register: more bits than a 16 x 16 array's inputs.
    LFSR_BITS = 257
    #: The shift register's second feedback tap.
    LFSR_TAP = 245

    def __init__(self, config: JalapenoConfig):
        self.array = SystolicArray(config)
        super().__init__({"rx": In(1), "tx": Out(1), "status": Out(StatusLayout())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self.array
        # Any seed but zero works; the golden ratio's bits (64 of them, repeated) keep the
        # array busy from the first cycle, where a seed of short period (001 repeated) shifts
        # in zeros until the taps have passed it.
        seed = int("9e3779b97f4a7c15" * 5, 16) % (1 << self.LFSR_BITS)
        lfsr = Signal(self.LFSR_BITS, init=seed)
        feedback = lfsr[-1] ^ lfsr[self.LFSR_TAP - 1] ^ self.rx
        m.d.sync += lfsr.eq(Cat(feedback, lfsr[:-1]))
        # The array takes each bit XORed with its neighbour: a bit taken as it is would make
        # the array's input register a copy of the register's next bit, which Yosys merges,
        # tying the array's inputs to the shift register's place on the die. Arrays wider
        # than 16 x 16 take the bits more than once.
        width = max(len(array.acts.payload.as_value()), len(array.weights.payload.as_value()) + 1)
        bits = (lfsr ^ lfsr.rotate_left(1)).replicate(-(-width // self.LFSR_BITS))
        m.d.comb += [
            array.acts.payload.eq(bits), array.acts.valid.eq(lfsr[-1]),
            array.weights.payload.eq(bits[1:]), array.weights.valid.eq(lfsr[-2]),
            array.results.ready.eq(1),
            self.tx.eq(lfsr[0]),
        ]

        folded = Signal(len(array.results.payload.as_value()))
        with m.If(array.results.valid):
            m.d.sync += folded.eq(array.results.payload.as_value())
        while len(folded) > 1:
            level = Signal((len(folded) + 3) // 4)
            m.d.sync += [level[i].eq(folded[4 * i:4 * i + 4].xor()) for i in range(len(level))]
            folded = level
        m.d.sync += [self.status.irq.eq(folded), self.status.heartbeat.eq(array.busy)]
        return m
