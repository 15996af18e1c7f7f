import random

import pytest

from rtl.bus.stream_sim import simulate
from rtl.config import preset
from rtl.systolic.pe import ProcessingElement, psum_shape

CFG = preset("large")
ROWS = [0, 1, 2, 3, 7, 15]


def reachable(row):
    """The range of partial sums entering a PE of ``row``: ``row`` int8 products."""
    return -16256 * row, 16384 * row


def run(bench, row=0):
    """Simulate one PE of array row ``row`` under ``bench(ctx, pe)``."""
    pe = ProcessingElement(CFG, row=row)

    async def testbench(ctx):
        await bench(ctx, pe)

    simulate(pe, testbench)


async def write_weight(ctx, pe, banks, value):
    """Write ``value`` into the banks whose bits are set in ``banks``, over one edge."""
    ctx.set(pe.w_we, banks)
    ctx.set(pe.w_data, value)
    await ctx.tick()
    ctx.set(pe.w_we, 0)


async def step(ctx, pe, *, a, bank, psum, weight, en=1):
    """Present one set of inputs for one edge, ``a * weight`` coming back from the
    multipliers as ``product``; check the PE offers them ``a`` and ``weight`` (the weight of
    ``bank``); return ``(a_out, bank_out, psum_out)``."""
    ctx.set(pe.en, en)
    ctx.set(pe.a_in, a)
    ctx.set(pe.bank_in, bank)
    ctx.set(pe.psum_in, psum)
    ctx.set(pe.product, a * weight)
    assert (ctx.get(pe.mul_a), ctx.get(pe.mul_w)) == (a, weight), "multiplier operands"
    await ctx.tick()
    return ctx.get(pe.a_out), ctx.get(pe.bank_out), ctx.get(pe.psum_out)


def test_banks_written_independently():
    async def bench(ctx, pe):
        await write_weight(ctx, pe, 0b01, 3)
        await write_weight(ctx, pe, 0b10, -5)
        assert await step(ctx, pe, a=7, bank=0, psum=10, weight=3) == (7, 0, 31)
        assert await step(ctx, pe, a=7, bank=1, psum=10, weight=-5) == (7, 1, -25)
        await write_weight(ctx, pe, 0b10, 9)
        assert await step(ctx, pe, a=-2, bank=0, psum=0, weight=3) == (-2, 0, -6)
        assert await step(ctx, pe, a=-2, bank=1, psum=0, weight=9) == (-2, 1, -18)
        await write_weight(ctx, pe, 0b11, 2)
        assert await step(ctx, pe, a=-2, bank=0, psum=1, weight=2) == (-2, 0, -3)
        assert await step(ctx, pe, a=-2, bank=1, psum=1, weight=2) == (-2, 1, -3)

    run(bench)


@pytest.mark.parametrize("bank", [0, 1])
@pytest.mark.parametrize(("a", "w", "psum", "expected"), [
    (-128, -128, 0, 16384),
    (-128, 127, 0, -16256),
    (127, -128, 0, -16256),
    (127, 127, 0, 16129),
    (0, -128, 123, 123),
])
def test_known_answers(bank, a, w, psum, expected):
    async def bench(ctx, pe):
        await write_weight(ctx, pe, 1 << bank, w)
        await write_weight(ctx, pe, 1 << (1 - bank), 0)
        assert await step(ctx, pe, a=a, bank=bank, psum=psum, weight=w) == (a, bank, expected)

    run(bench)


@pytest.mark.parametrize("row", ROWS)
def test_extreme_sums_are_exact(row):
    """The largest and smallest sums a PE of each row can see leave it without wrapping."""
    low, high = reachable(row)

    async def bench(ctx, pe):
        await write_weight(ctx, pe, 0b01, -128)
        await write_weight(ctx, pe, 0b10, 127)
        assert await step(ctx, pe, a=-128, bank=0, psum=high, weight=-128) == \
            (-128, 0, high + 16384)
        assert await step(ctx, pe, a=-128, bank=1, psum=low, weight=127) == \
            (-128, 1, low - 16256)

    run(bench, row)


def test_psum_widths_grow_with_the_row():
    assert [psum_shape(CFG, row).width for row in ROWS] == [16, 17, 18, 18, 19, 20]


def test_en_low_holds_registers_but_not_weights():
    async def bench(ctx, pe):
        await write_weight(ctx, pe, 0b11, 4)
        held = await step(ctx, pe, a=5, bank=1, psum=100, weight=4)
        assert held == (5, 1, 120)
        for value in (-7, 11):
            assert await step(ctx, pe, a=-1, bank=0, psum=-50, weight=4, en=0) == held
            await write_weight(ctx, pe, 0b10, value)
            assert (ctx.get(pe.a_out), ctx.get(pe.bank_out), ctx.get(pe.psum_out)) == held
        assert await step(ctx, pe, a=3, bank=1, psum=1, weight=11) == (3, 1, 34)
        assert await step(ctx, pe, a=3, bank=0, psum=1, weight=4) == (3, 0, 13)

    run(bench)


def random_int8(rng):
    return rng.choice([-128, 127, rng.randint(-128, 127)])


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("row", [0, 3, 15])
def test_random_against_model(row, seed):
    """Random writes, enables and inputs each cycle; a weight written in the same cycle as it
    is used takes effect only from the next cycle on."""
    rng = random.Random(seed)
    low, high = reachable(row)

    async def bench(ctx, pe):
        weight = [0, 0]
        out = (0, 0, 0)
        for cycle in range(200):
            we, w_data, en = rng.randrange(4), random_int8(rng), rng.random() < 0.7
            a, bank = random_int8(rng), rng.randrange(2)
            psum = rng.choice([low, high, rng.randint(low, high)])
            ctx.set(pe.w_we, we)
            ctx.set(pe.w_data, w_data)
            if en:
                out = (a, bank, psum + a * weight[bank])
            got = await step(ctx, pe, a=a, bank=bank, psum=psum, weight=weight[bank], en=en)
            assert got == out, f"seed {seed}, cycle {cycle}"
            weight = [w_data if we >> b & 1 else weight[b] for b in range(2)]

    run(bench, row)
