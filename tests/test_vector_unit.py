# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth import Shape
from amaranth.back import verilog

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig, preset
from rtl.vector.unit import TableSelect, VectorOp, VectorUnit, vector_in_layout
from verification.models.lut import apply_lut
from verification.stimulus import random_int8

CFG = JalapenoConfig(rows=2, cols=3, acc_depth=16, max_row=40)
FULL = {"act_min": -128, "act_max": 127}


def beat(op, args):
    return {"op": op, "args": {op.field: args}}


def requant(data, shift):
    return beat(VectorOp.REQUANTIZE, {
        "data": data, **FULL,
        "params": [{"multiplier": 1 << 30, "shift": shift, "zero_point": 0}] * len(data)})


def clamp(data, low, high):
    return beat(VectorOp.CLAMP, {"data": data, "act_min": low, "act_max": high})


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not None$"):
        VectorUnit(None)


def test_layout_has_every_operation():
    """One ``args`` member per operation, named by :attr:`VectorOp.field`; the union is as wide
    as its widest member, and the code leaves room for invalid operations."""
    layout = vector_in_layout(CFG)
    args = layout["args"].shape
    assert [name for name, _ in args] == [op.field for op in VectorOp]
    assert args.size == max(field.shape.size for _, field in args)
    assert len(VectorOp) < 1 << Shape.cast(layout["op"].shape).width


@pytest.mark.parametrize("seed", range(3))
def test_operations_switch_in_order(seed):
    """Beats of three operations with different latencies, offered back to back under random
    stalls: results come out in input order, each its own operation's, and the unit is idle
    (``busy`` low, ``error`` low) afterwards."""
    rng = np.random.default_rng(seed)
    stall = random.Random(seed)
    unit = VectorUnit(CFG)
    table = random_int8(rng, 256)
    beats, expected = [], []
    for _ in range(40):
        data = random_int8(rng, CFG.cols)
        kind = rng.integers(0, 3)
        if kind == 0:
            # (16 x) * 0.5 / 2**3 = x, exactly.
            beats.append(requant([int(v) << 4 for v in data], -3))
            expected.append(data.tolist())
        elif kind == 1:
            beats.append(beat(VectorOp.LUT, data.tolist()))
            expected.append(apply_lut(data, table).tolist())
        else:
            beats.append(clamp(data.tolist(), -20, 20))
            expected.append(np.clip(data, -20, 20).tolist())

    async def drive(ctx):
        for index, value in enumerate(table):
            await stream_put(ctx, unit.table, {"select": TableSelect.LUT, "index": index,
                                               "value": int(value) & 0xFF})
        # Writes to the exp table must leave the LUT alone.
        for index in range(256):
            await stream_put(ctx, unit.table, {"select": TableSelect.EXP, "index": index,
                                               "value": 0x7FFF_FFFF})
        for b in beats:
            await stream_put(ctx, unit.i, b, rng=stall, idle=0.3)

    async def check(ctx):
        for index, want in enumerate(expected):
            got = await stream_get(ctx, unit.o, rng=stall, backpressure=0.4)
            assert list(got) == want, f"seed {seed}, result {index}: {beats[index]['op']}"
        for _ in range(10):
            await ctx.tick()
        assert not ctx.get(unit.o.valid), f"seed {seed}: an output too many"
        assert not ctx.get(unit.busy), f"seed {seed}: busy when idle"
        assert not ctx.get(unit.error), f"seed {seed}: error from valid beats"

    simulate(unit, drive, check, timeout=5000)


def test_invalid_operation_and_block_errors():
    """An invalid operation code is taken, produces nothing and sets ``error``; a block's bad
    parameters set it too; only reset clears it."""
    unit = VectorUnit(CFG)
    layout = vector_in_layout(CFG)
    good = clamp([1, 2, 3], -128, 127)

    async def bench(ctx):
        ctx.set(unit.o.ready, 1)
        raw = layout.const(good).as_bits() | (7 << layout["op"].offset)
        ctx.set(unit.i.payload, layout.from_bits(raw))
        ctx.set(unit.i.valid, 1)
        _, _, ready = await ctx.tick().sample(unit.i.ready)
        assert ready
        ctx.set(unit.i.valid, 0)
        for _ in range(4):
            _, _, valid = await ctx.tick().sample(unit.o.valid)
            assert not valid
        assert ctx.get(unit.error)

    simulate(unit, bench)

    unit = VectorUnit(CFG)

    async def bad_clamp(ctx):
        await stream_put(ctx, unit.i, good)
        assert not ctx.get(unit.error)
        await stream_put(ctx, unit.i, clamp([1, 2, 3], 5, 4))
        assert ctx.get(unit.error)

    async def drain(ctx):
        for _ in range(2):
            await stream_get(ctx, unit.o)

    simulate(unit, bad_clamp, drain)


def test_converts_to_verilog():
    assert "module vector_unit" in verilog.convert(VectorUnit(preset("tiny")), name="vector_unit")
