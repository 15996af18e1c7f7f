"""The array's int8 products, pipelined as the FPGAs' DSP blocks compute them."""

import operator

from amaranth import Cat, ClockSignal, Const, Module, Mux, ResetSignal, Signal, Value, signed
from amaranth.hdl import Instance
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["Multipliers", "DSP_BLOCKS", "dsp_products", "logic_product"]

#: DSP blocks of each device whose blocks :class:`Multipliers` instantiates, by the name
#: Amaranth's platforms give it: SB_MAC16s of the iCE40 UltraPlus parts (two products each),
#: MULT18X18Ds of the ECP5s (one each).
DSP_BLOCKS = {
    "iCE40UP3K": 4, "iCE40UP5K": 8,
    "LFE5U-12F": 28, "LFE5U-25F": 28, "LFE5U-45F": 72, "LFE5U-85F": 156,
    "LFE5UM-25F": 28, "LFE5UM-45F": 72, "LFE5UM-85F": 156,
    "LFE5UM5G-25F": 28, "LFE5UM5G-45F": 72, "LFE5UM5G-85F": 156,
}

#: Products one DSP block holds, by the ``family`` Amaranth's platforms give.
_PRODUCTS_PER_BLOCK = {"iCE40": 2, "ecp5": 1}


def dsp_products(platform):
    """How many products ``platform``'s DSP blocks hold, or ``None`` without a limit: a
    platform of neither family (simulation) builds its products from flip-flops and a
    multiply, whatever their number.

    Raises
    ------
    ValueError
        If ``platform`` is an iCE40 or ECP5 whose device :data:`DSP_BLOCKS` does not list.
    """
    family = getattr(platform, "family", None)
    if family not in _PRODUCTS_PER_BLOCK:
        return None
    device = platform.device
    if device not in DSP_BLOCKS:
        raise ValueError(f"no DSP block count for the {family} device {device!r}; known: "
                         f"{', '.join(DSP_BLOCKS)}")
    return DSP_BLOCKS[device] * _PRODUCTS_PER_BLOCK[family]

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

#: The ECP5 MULT18X18D's parameters: the A and B input registers and the output register on,
#: all three on clock 0, clock enable 0 and reset 0, reset synchronous; no pipeline register
#: (it would be a third cycle). Every other parameter keeps its default.
_MULT18X18D_PARAMETERS = {
    **{f"REG_{reg}_{port}": value for reg in ("INPUTA", "INPUTB", "OUTPUT")
       for port, value in (("CLK", "CLK0"), ("CE", "CE0"), ("RST", "RST0"))},
    "REG_PIPELINE_CLK": "NONE", "RESETMODE": "SYNC",
}

#: The MULT18X18D's port widths: each operand (and the unused C input), and the product.
_MULT18X18D_IN, _MULT18X18D_OUT = 18, 36


class Multipliers(wiring.Component):
    """``lanes`` signed ``in_width`` x ``in_width`` products, each through two registers: the
    operands taken at an enabled edge come out as their product :data:`LATENCY` enabled edges
    later, and nothing moves while ``en`` is low.

    The two registers are where a DSP block has its own: the input and the product
    registers of an iCE40 SB_MAC16, the input and output registers of an ECP5 MULT18X18D.
    With both inside the block, no path starts or ends in a DSP's combinational logic, so
    nextpnr's timing (which does not model the SB_MAC16's internal delay) is one the board
    meets. Every design point has this latency, so the simulated core runs cycle for cycle as
    the boards do. Yosys moves neither register into either block, so on those two families
    the blocks are instantiated with their registers on (below); elsewhere the registers are
    flip-flops beside a multiply.

    On an iCE40 (a ``platform`` whose ``family`` is ``"iCE40"``, as Amaranth's SiliconBlue
    platforms, the iCEBreaker's among them, spell it) the products are built from
    SB_MAC16 blocks in dual 8x8 mode, two per block: lanes ``2k`` and ``2k + 1`` share block
    ``k``, as the low and high bytes of its A and B inputs, and come out as the low and high
    halves of its O output, each through the block's input and 8x8 product registers. Yosys
    infers one product per SB_MAC16, so the 16 products of a 4x4 array would need 16 blocks,
    and the UP5K has 8. An odd last lane takes the generic registers. The blocks' registers
    reset asynchronously: while ``rst`` is high their products already read 0, where the
    generic ones become 0 at the edge; from the first edge in reset on, the two agree.

    On an ECP5 (``family`` ``"ecp5"``, as Amaranth's Lattice platforms spell it, the ULX3S's
    among them) each lane is one MULT18X18D, its operands sign-extended to 18 bits and its
    product the low ``2 * in_width`` bits of the block's 36; the open flow packs one product
    per block. The block's clock enable is ``en | rst`` so that its synchronous reset acts in
    every reset cycle, as the generic registers' does.

    With ``hard`` false no DSP block is used, on any platform: each product is a tree of
    shifted partial products between the same two registers, which Yosys maps into logic (it
    would put a multiply into a DSP block). The array builds the products its device's
    blocks cannot hold this way (:func:`dsp_products`), so an array larger than the blocks
    still places.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point; the products are ``in_width`` x ``in_width``.
    lanes : int
        Number of products.
    hard : bool
        Whether the products go into the platform's DSP blocks (where it has any).

    Attributes
    ----------
    en : In(1)
        Pipeline advance.
    a, w : In(ArrayLayout(signed(in_width), lanes))
        The operands.
    p : Out(ArrayLayout(signed(2 * in_width), lanes))
        ``a * w`` of the operands taken :data:`LATENCY` enabled edges ago; 0 after reset.

    Raises
    ------
    TypeError
        If ``hard`` is not a bool.
    """

    #: Enabled edges from operands to their product.
    LATENCY = 2

    def __init__(self, config: JalapenoConfig, lanes: int, *, hard: bool = True):
        if not isinstance(hard, bool):
            raise TypeError(f"hard must be a bool, not {hard!r}")
        self._config = config
        self._lanes = lanes
        self._hard = hard
        self._operand = data.ArrayLayout(signed(config.in_width), lanes)
        super().__init__({
            "en": In(1),
            "a": In(self._operand),
            "w": In(self._operand),
            "p": Out(data.ArrayLayout(signed(2 * config.in_width), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        family = getattr(platform, "family", None)
        if not self._hard:
            self._registered(m, range(self._lanes), logic_product)
        elif family == "ecp5":
            self._mult18x18d(m)
        else:
            pairs = self._lanes // 2 if family == "iCE40" else 0
            self._sb_mac16(m, pairs)
            self._registered(m, range(2 * pairs, self._lanes), operator.mul)
        return m

    def _sb_mac16(self, m, pairs):
        """Lanes ``0`` to ``2 * pairs - 1`` on iCE40 SB_MAC16 blocks, two per block."""
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

    def _registered(self, m, lanes, multiply):
        """``lanes`` as flip-flops around ``multiply`` (of two Amaranth values): operand
        registers, then the product's."""
        layout = data.ArrayLayout(signed(self._config.in_width), len(lanes))
        a = Signal(layout, name="a_reg")
        w = Signal(layout, name="w_reg")
        with m.If(self.en):
            for reg, lane in enumerate(lanes):
                m.d.sync += [a[reg].eq(self.a[lane]), w[reg].eq(self.w[lane])]
                m.d.sync += self.p[lane].eq(multiply(a[reg], w[reg]))

    def _mult18x18d(self, m):
        """One ECP5 MULT18X18D per lane, with its input and output registers on."""
        rst = ResetSignal("sync")
        for lane in range(self._lanes):
            a = Signal(signed(_MULT18X18D_IN), name=f"a_{lane}")
            w = Signal(signed(_MULT18X18D_IN), name=f"w_{lane}")
            product = Signal(_MULT18X18D_OUT, name=f"product_{lane}")
            m.d.comb += [a.eq(self.a[lane]), w.eq(self.w[lane]),
                         self.p[lane].eq(product[:2 * self._config.in_width])]
            m.submodules[f"mult{lane}"] = Instance(
                "MULT18X18D",
                **{f"p_{name}": value for name, value in _MULT18X18D_PARAMETERS.items()},
                **{f"i_A{bit}": a[bit] for bit in range(_MULT18X18D_IN)},
                **{f"i_B{bit}": w[bit] for bit in range(_MULT18X18D_IN)},
                **{f"i_C{bit}": Const(0, 1) for bit in range(_MULT18X18D_IN)},
                i_SIGNEDA=1, i_SIGNEDB=1, i_SOURCEA=0, i_SOURCEB=0,
                i_CLK0=ClockSignal("sync"), i_CE0=self.en | rst, i_RST0=rst,
                **{f"o_P{bit}": product[bit] for bit in range(_MULT18X18D_OUT)})


def logic_product(a, w):
    """``a * w`` of two Amaranth values as a sum of partial products, ``a`` shifted by each
    bit of ``w`` (for a signed ``w``, the sign bit's subtracted), added in a balanced tree:
    as many adders deep as the log of the width. Yosys maps it into logic, where it would put
    a multiply into a DSP block."""
    w = Value.cast(w)
    top = len(w) - 1
    terms = [Mux(w[bit], a << bit, 0) for bit in range(top)]
    terms.append(Mux(w[top], -(a << top) if w.shape().signed else a << top, 0))
    while len(terms) > 1:
        terms = [terms[k] + terms[k + 1] if k + 1 < len(terms) else terms[k]
                 for k in range(0, len(terms), 2)]
    return terms[0]
