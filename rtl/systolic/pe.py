"""One processing element of the weight-stationary systolic array."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """Multiply an activation by a stationary weight and add it to the partial sum from above.

    The PE holds two weight registers (banks). The bank an activation uses travels with it
    through the array, so a new weight tile can be written into one bank while activations
    of the current tile still flow through the other: back-to-back tiles need no bubble.

    The activation moves one PE to the right and the partial sum one PE down per enabled
    cycle. The partial sum is int32 and wraps on overflow, as the accumulator does.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point; the PE uses ``in_width`` and ``acc_width``.

    Attributes
    ----------
    en : In(1)
        Pipeline advance. When low every register of the PE except the weights holds.
    a_in, bank_in : In
        Activation from the left and the weight bank it is to be multiplied with.
    psum_in : In
        Partial sum from the PE above (zero for the top row).
    a_out, bank_out, psum_out : Out
        Registered activation and bank to the right, registered partial sum downwards.
    w_data : In
        Weight to write.
    w_we : In(2)
        Write enable per bank.
    """

    def __init__(self, config: JalapenoConfig):
        self._config = config
        a_shape = signed(config.in_width)
        p_shape = signed(config.acc_width)
        super().__init__({
            "en": In(1),
            "a_in": In(a_shape),
            "bank_in": In(1),
            "psum_in": In(p_shape),
            "a_out": Out(a_shape),
            "bank_out": Out(1),
            "psum_out": Out(p_shape),
            "w_data": In(a_shape),
            "w_we": In(2),
        })

    def elaborate(self, platform):
        m = Module()
        weight = [Signal(self.w_data.shape(), name=f"weight{b}") for b in range(2)]
        for bank, reg in enumerate(weight):
            with m.If(self.w_we[bank]):
                m.d.sync += reg.eq(self.w_data)
        product = self.a_in * Mux(self.bank_in, weight[1], weight[0])
        with m.If(self.en):
            m.d.sync += [
                self.a_out.eq(self.a_in),
                self.bank_out.eq(self.bank_in),
                self.psum_out.eq(self.psum_in + product),
            ]
        return m
