"""The array's int8 products, pipelined as the FPGAs' DSP blocks compute them."""

from amaranth import Cat, ClockSignal, Const, Module, ResetSignal, Signal, signed
from amaranth.hdl import Instance
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["Multipliers"]

#: Every parameter of the iCE40 SB_MAC16, at the width Yosys's model declares: two signed 8x8
#: products through the input (A, B) and 8x8 product registers, selected onto O; C and D
#: unregistered (and tied to 0), no 16x16 pipeline registers, no adders or accumulators.
_SB_MAC16_PARAMETERS = {name: Const(value, width) for name, value, width in [
    ("MODE_8x8", 1, 1), ("A_SIGNED", 1, 1), ("B_SIGNED", 1, 1),
    ("A_REG", 1, 1), ("B_REG", 1, 1), ("C_REG", 0, 1), ("D_REG", 0, 1),
    ("TOP_8x8_MULT_REG", 1, 1), ("BOT_8x8_MULT_REG", 1, 1),
    ("PIPELINE_16x16_MULT_REG1", 0, 1), ("PIPELINE_16x16_MULT_REG2", 0, 1),
    ("TOPOUTPUT_SELECT", 2, 2), ("BOTOUTPUT_SELECT", 2, 2),
    ("TOPADDSUB_LOWERINPUT", 0, 2), ("TOPADDSUB_UPPERINPUT", 0, 1),
    ("TOPADDSUB_CARRYSELECT", 0, 2), ("BOTADDSUB_LOWERINPUT", 0, 2),
    ("BOTADDSUB_UPPERINPUT", 0, 1), ("BOTADDSUB_CARRYSELECT", 0, 2), ("NEG_TRIGGER", 0, 1),
]}

#: The SB_MAC16's control inputs, all held low: no hold, load, subtraction or carry.
_SB_MAC16_LOW = ["AHOLD", "BHOLD", "CHOLD", "DHOLD", "OHOLDTOP", "OHOLDBOT", "OLOADTOP",
                 "OLOADBOT", "ADDSUBTOP", "ADDSUBBOT", "CI", "ACCUMCI", "SIGNEXTIN"]


class Multipliers(wiring.Component):
    """``lanes`` signed ``in_width`` x ``in_width`` products, each through two registers: the
    operands taken at an enabled edge come out as their product :data:`LATENCY` enabled edges
    later, and nothing moves while ``en`` is low.

    The two registers are where a DSP block has its own: the input and the product
    registers of an iCE40 SB_MAC16 (an ECP5 MULT18X18D's input and output registers). With
    both inside the block, no path starts or ends in a DSP's combinational logic, so
    nextpnr's timing (which does not model the SB_MAC16's internal delay) is one the board
    meets. Every design point has this latency, so the simulated core runs cycle for cycle as
    the boards do. On the iCE40 the blocks are instantiated with their registers on (below);
    elsewhere the registers are flip-flops beside a multiply, and Yosys does not move them
    into an ECP5 MULT18X18D, which would need instantiating the same way.

    On an iCE40 (a ``platform`` whose ``family`` is ``"iCE40"``, as Amaranth's SiliconBlue
    platforms, the iCEBreaker's among them, spell it) the products are built from
    SB_MAC16 blocks in dual 8x8 mode, two per block: lanes ``2k`` and ``2k + 1`` share block
    ``k``, as the low and high bytes of its A and B inputs, and come out as the low and high
    halves of its O output, each through the block's input and 8x8 product registers. Yosys
    infers one product per SB_MAC16, so the 16 products of a 4x4 array would need 16 blocks,
    and the UP5K has 8. An odd last lane takes the generic registers. The blocks' registers
    reset asynchronously: while ``rst`` is high their products already read 0, where the
    generic ones become 0 at the edge; from the first edge in reset on, the two agree.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point; the products are ``in_width`` x ``in_width``.
    lanes : int
        Number of products.

    Attributes
    ----------
    en : In(1)
        Pipeline advance.
    a, w : In(ArrayLayout(signed(in_width), lanes))
        The operands.
    p : Out(ArrayLayout(signed(2 * in_width), lanes))
        ``a * w`` of the operands taken :data:`LATENCY` enabled edges ago; 0 after reset.
    """

    #: Enabled edges from operands to their product.
    LATENCY = 2

    def __init__(self, config: JalapenoConfig, lanes: int):
        self._config = config
        self._lanes = lanes
        self._operand = data.ArrayLayout(signed(config.in_width), lanes)
        super().__init__({
            "en": In(1),
            "a": In(self._operand),
            "w": In(self._operand),
            "p": Out(data.ArrayLayout(signed(2 * config.in_width), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        pairs = self._lanes // 2 if getattr(platform, "family", None) == "iCE40" else 0
        rst = ResetSignal("sync")
        for k in range(pairs):
            lo, hi = 2 * k, 2 * k + 1
            m.submodules[f"mac{k}"] = Instance(
                "SB_MAC16",
                **{f"p_{name}": value for name, value in _SB_MAC16_PARAMETERS.items()},
                **{f"i_{name}": Const(0, 1) for name in _SB_MAC16_LOW},
                i_CLK=ClockSignal("sync"), i_CE=self.en,
                i_IRSTTOP=rst, i_IRSTBOT=rst, i_ORSTTOP=rst, i_ORSTBOT=rst,
                i_A=Cat(self.a[lo], self.a[hi]), i_B=Cat(self.w[lo], self.w[hi]),
                i_C=Const(0, 16), i_D=Const(0, 16),
                o_O=Cat(self.p[lo], self.p[hi]))
        generic = range(2 * pairs, self._lanes)
        layout = data.ArrayLayout(signed(self._config.in_width), len(generic))
        a = Signal(layout, name="a_reg")
        w = Signal(layout, name="w_reg")
        with m.If(self.en):
            for reg, lane in enumerate(generic):
                m.d.sync += [a[reg].eq(self.a[lane]), w[reg].eq(self.w[lane])]
                m.d.sync += self.p[lane].eq(a[reg] * w[reg])
        return m
