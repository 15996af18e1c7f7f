"""One processing element of the weight-stationary systolic array."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..config import JalapenoConfig

__all__ = ["ProcessingElement", "psum_shape"]


def psum_shape(config: JalapenoConfig, row: int):
    """Shape that holds any partial sum leaving array row ``row`` exactly.

    That sum has ``row + 1`` int8 x int8 products, each in ``[-2**14 + 128, 2**14]``, so it
    fits in ``2 * in_width + ceil_log2(row + 1)`` signed bits and can never wrap. Narrow
    partial sums save a third of each PE's adder and registers against int32.
    """
    return signed(2 * config.in_width + ceil_log2(row + 1))


class ProcessingElement(wiring.Component):
    """Add an activation times a stationary weight to the partial sum from above.

    The PE holds two weight registers (banks). The bank an activation uses travels with it
    through the array, so a new weight tile can be written into one bank while activations
    of the current tile still flow through the other: back-to-back tiles need no bubble.

    The product itself is the array's (:class:`~rtl.systolic.multipliers.Multipliers`, the
    FPGAs' DSP blocks): the PE offers the activation and its weight as ``mul_a`` and
    ``mul_w`` and adds ``product`` when it returns, ``Multipliers.LATENCY`` enabled cycles
    later. The partial sum from above arrives just as late, since every PE of the column
    above waited as long, so the sums meet the products they belong with.

    The activation moves one PE to the right and the partial sum one PE down per enabled
    cycle. The partial sum is as wide as :func:`psum_shape` of the PE's row, so it is exact.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point; the PE uses ``in_width``.
    row : int
        Row of the array the PE sits in; sets the widths of ``psum_in`` and ``psum_out``.

    Attributes
    ----------
    en : In(1)
        Pipeline advance. When low every register of the PE except the weights holds.
    a_in, bank_in : In
        Activation from the left and the weight bank it is to be multiplied with.
    psum_in : In(psum_shape(config, max(row - 1, 0)))
        Partial sum from the PE above (zero for the top row).
    a_out, bank_out, psum_out : Out
        Registered activation and bank to the right, registered partial sum downwards:
        ``psum_in + product``.
    mul_a, mul_w : Out(signed(in_width))
        The multiplier's operands: ``a_in`` and the weight of bank ``bank_in``.
    product : In(signed(2 * in_width))
        The product of the operands offered ``Multipliers.LATENCY`` enabled cycles earlier.
    w_data : In
        Weight to write.
    w_we : In(2)
        Write enable per bank.
    """

    def __init__(self, config: JalapenoConfig, *, row: int = 0):
        self._config = config
        a_shape = signed(config.in_width)
        super().__init__({
            "en": In(1),
            "a_in": In(a_shape),
            "bank_in": In(1),
            "psum_in": In(psum_shape(config, max(row - 1, 0))),
            "a_out": Out(a_shape),
            "bank_out": Out(1),
            "psum_out": Out(psum_shape(config, row)),
            "w_data": In(a_shape),
            "w_we": In(2),
            "mul_a": Out(a_shape),
            "mul_w": Out(a_shape),
            "product": In(signed(2 * config.in_width)),
        })

    def elaborate(self, platform):
        m = Module()
        weight = [Signal(self.w_data.shape(), name=f"weight{b}") for b in range(2)]
        for bank, reg in enumerate(weight):
            with m.If(self.w_we[bank]):
                m.d.sync += reg.eq(self.w_data)
        m.d.comb += [self.mul_a.eq(self.a_in),
                     self.mul_w.eq(Mux(self.bank_in, weight[1], weight[0]))]
        with m.If(self.en):
            m.d.sync += [
                self.a_out.eq(self.a_in),
                self.bank_out.eq(self.bank_in),
                self.psum_out.eq(self.psum_in + self.product),
            ]
        return m
