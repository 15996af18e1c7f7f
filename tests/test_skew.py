# amaranth: UnusedElaboratable=no
# (A Skew whose constructor raises is never elaborated; Amaranth would warn on collecting it.)

import random
import re

import pytest
from amaranth import signed

from rtl.bus.stream_sim import simulate
from rtl.systolic.skew import Skew


def run(dut, bench):
    async def testbench(ctx):
        await bench(ctx)

    simulate(dut, testbench)


def delays(lanes, descending):
    return [lanes - 1 - lane if descending else lane for lane in range(lanes)]


@pytest.mark.parametrize("descending", [False, True])
def test_lane_emerges_after_its_delay_in_enabled_cycles(descending):
    """An impulse on every lane, then zeros, with enable low on every other cycle: lane ``i``
    shows its impulse exactly when ``delay(i)`` enabled edges have passed."""
    lanes = 4
    dut = Skew(lanes=lanes, shape=signed(8), descending=descending)
    impulse = [10, -20, 30, -40]
    expected_delays = delays(lanes, descending)
    assert [dut.delay(lane) for lane in range(lanes)] == expected_delays

    async def bench(ctx):
        ctx.set(dut.i, impulse)
        ctx.set(dut.en, 1)
        enabled_edges = 0
        for cycle in range(2 * lanes + 2):
            shown = [impulse[lane] if expected_delays[lane] == enabled_edges else 0
                     for lane in range(lanes)]
            assert list(ctx.get(dut.o)) == shown, f"cycle {cycle}"
            await ctx.tick()
            enabled_edges += ctx.get(dut.en)
            ctx.set(dut.i, [0] * lanes)
            ctx.set(dut.en, cycle % 2)

    run(dut, bench)


@pytest.mark.parametrize("descending", [False, True])
def test_en_low_freezes(descending):
    """With enable low the delay lines hold; only the undelayed lane follows its input."""
    lanes = 3
    dut = Skew(lanes=lanes, shape=signed(8), descending=descending)

    async def bench(ctx):
        ctx.set(dut.en, 1)
        for value in (1, 2, 3):
            ctx.set(dut.i, [value] * lanes)
            await ctx.tick()
        frozen = list(ctx.get(dut.o))
        ctx.set(dut.en, 0)
        for value in (7, 8, 9):
            ctx.set(dut.i, [value] * lanes)
            await ctx.tick()
            assert list(ctx.get(dut.o)) == [
                value if delay == 0 else frozen[lane]
                for lane, delay in enumerate(delays(lanes, descending))]

    run(dut, bench)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("lanes", [1, 2, 5])
@pytest.mark.parametrize("descending", [False, True])
def test_random_against_delay_lines(descending, lanes, seed):
    """Random vectors under a random enable against a model that keeps every vector taken."""
    rng = random.Random(seed)
    dut = Skew(lanes=lanes, shape=signed(32), descending=descending)

    async def bench(ctx):
        taken = [[0] * lanes] * lanes
        for cycle in range(120):
            vector = [rng.randint(-2**31, 2**31 - 1) for _ in range(lanes)]
            en = rng.random() < 0.6
            ctx.set(dut.i, vector)
            ctx.set(dut.en, en)
            expected = [vector[lane] if delay == 0 else taken[-delay][lane]
                        for lane, delay in enumerate(delays(lanes, descending))]
            assert list(ctx.get(dut.o)) == expected, f"seed {seed}, cycle {cycle}"
            await ctx.tick()
            if en:
                taken.append(vector)

    run(dut, bench)


@pytest.mark.parametrize("lanes", [0, -1, True, 2.0, "4", None])
def test_bad_lanes(lanes):
    message = f"Skew lanes must be a positive integer, not {lanes!r}"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        Skew(lanes=lanes, shape=8)


def test_bad_shape():
    message = "Array layout element shape must be a shape-castable object, not 'int8'"
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        Skew(lanes=2, shape="int8")
