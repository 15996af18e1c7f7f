# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from rtl.vector.requantizer import Requantizer
from verification.models.quant import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    SHIFT_MAX,
    SHIFT_MIN,
    requantize,
)

CONFIGS = [
    pytest.param(JalapenoConfig(rows=2, cols=3, acc_depth=16), id="cols3"),
    pytest.param(JalapenoConfig(rows=2, cols=1, acc_depth=16), id="cols1"),
]
CFG = JalapenoConfig(rows=2, cols=3, acc_depth=16)
MULTIPLIER_MIN = 1 << 30


def random_beat(rng, cols):
    """One input beat, drawn so that the edge values of every field turn up often."""
    def pick(specials, lo, hi):
        return int(rng.choice(specials)) if rng.random() < 0.3 else int(rng.integers(lo, hi + 1))

    data = [pick([INT32_MIN, INT32_MAX, 0, -1, 1], INT32_MIN, INT32_MAX) for _ in range(cols)]
    params = [{
        "multiplier": pick([0, MULTIPLIER_MIN, INT32_MAX], MULTIPLIER_MIN, INT32_MAX),
        "shift": pick([SHIFT_MIN, 0, SHIFT_MAX], SHIFT_MIN, SHIFT_MAX),
        "zero_point": int(rng.integers(INT8_MIN, INT8_MAX + 1)),
    } for _ in range(cols)]
    if rng.random() < 0.3:
        act_min, act_max = INT8_MIN, INT8_MAX
    else:
        act_min, act_max = sorted(int(v) for v in rng.integers(INT8_MIN, INT8_MAX + 1, size=2))
    return {"data": data, "params": params, "act_min": act_min, "act_max": act_max}


def expected(beat):
    params = beat["params"]
    return requantize(beat["data"], [p["multiplier"] for p in params],
                      [p["shift"] for p in params], [p["zero_point"] for p in params],
                      beat["act_min"], beat["act_max"]).tolist()


def good_beat(cols):
    """Valid parameters: 1000 * 0.75 * 2**-3, rounded, plus zero point 5."""
    return {"data": [1000] * cols,
            "params": [{"multiplier": 3 << 29, "shift": -3, "zero_point": 5}] * cols,
            "act_min": INT8_MIN, "act_max": INT8_MAX}


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 'default'$"):
        Requantizer("default")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.2, 0.6)])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_against_model(cfg, idle, backpressure, seed):
    """Random beats, edge values included, come out as ``quant.requantize`` bit for bit and in
    order under random idle cycles on ``i`` and random backpressure on ``o``; valid parameters
    never raise ``error``."""
    rng = np.random.default_rng(seed)
    stall_rng = random.Random(seed)
    dut = Requantizer(cfg)
    beats = [random_beat(rng, cfg.cols) for _ in range(150)]

    async def drive(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i, beat, rng=stall_rng, idle=idle)

    async def check(ctx):
        for index, beat in enumerate(beats):
            payload = await stream_get(ctx, dut.o, rng=stall_rng, backpressure=backpressure)
            assert list(payload) == expected(beat), f"seed {seed}, beat {index}: {beat}"
        for _ in range(dut.latency + 1):
            await ctx.tick()
        assert not ctx.get(dut.o.valid), f"seed {seed}: an output too many"
        assert not ctx.get(dut.error), f"seed {seed}: error raised by valid parameters"

    simulate(dut, drive, check)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_latency_without_stalls(cfg):
    """With ``o.ready`` held high, ``i.ready`` never drops and each output is offered exactly
    ``latency`` cycles after its input was taken, back to back or spaced."""
    rng = np.random.default_rng(0)
    dut = Requantizer(cfg)
    beats = [random_beat(rng, cfg.cols) for _ in range(8)]
    schedule = []
    for beat, gap in zip(beats, [0, 0, 0, 2, 0, 5, 1, 0], strict=True):
        schedule += [None] * gap + [beat]
    taken, offered = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for edge in range(len(schedule) + dut.latency + 2):
            beat = schedule[edge] if edge < len(schedule) else None
            ctx.set(dut.i.valid, beat is not None)
            if beat is not None:
                ctx.set(dut.i.payload, beat)
            _, _, ready, valid, out = await ctx.tick().sample(dut.i.ready, dut.o.valid,
                                                               dut.o.payload)
            assert ready
            if beat is not None:
                taken.append(edge)
            if valid:
                offered.append((edge, list(out)))

    simulate(dut, bench)
    assert dut.latency == 3
    assert [edge - dut.latency for edge, _ in offered] == taken
    assert [out for _, out in offered] == [expected(beat) for beat in beats]


def bad_shift_low(beat):
    beat["params"][-1] = {**beat["params"][-1], "shift": SHIFT_MIN - 1}


def bad_shift_high(beat):
    beat["params"][0] = {**beat["params"][0], "shift": SHIFT_MAX + 1}


def bad_multiplier_one(beat):
    beat["params"][0] = {**beat["params"][0], "multiplier": 1}


def bad_multiplier_below(beat):
    beat["params"][-1] = {**beat["params"][-1], "multiplier": MULTIPLIER_MIN - 1}


def bad_clamp(beat):
    beat["act_min"], beat["act_max"] = 1, 0


@pytest.mark.parametrize("corrupt", [bad_shift_low, bad_shift_high, bad_multiplier_one,
                                     bad_multiplier_below, bad_clamp])
def test_error_flag(corrupt):
    """A bad beat offered but not accepted leaves ``error`` low; once accepted it sets
    ``error`` for good, still yields an output, and the good beats around it come out right."""
    dut = Requantizer(CFG)
    good = good_beat(CFG.cols)
    bad = good_beat(CFG.cols)
    corrupt(bad)
    value = requantize(1000, 3 << 29, -3, 5).item()

    async def drive(ctx):
        await stream_put(ctx, dut.i, good)
        # Fill the pipeline while nothing is taken, then offer the bad beat: not accepted.
        for _ in range(dut.latency - 1):
            await stream_put(ctx, dut.i, good)
        ctx.set(dut.i.payload, bad)
        ctx.set(dut.i.valid, 1)
        for _ in range(4):
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            assert not ready
            assert not ctx.get(dut.error)
        ctx.set(dut.i.valid, 0)
        # Bad parameters without valid are not looked at either.
        for _ in range(2):
            await ctx.tick()
        assert not ctx.get(dut.error)
        await stream_put(ctx, dut.i, bad)
        assert ctx.get(dut.error)
        await stream_put(ctx, dut.i, good)

    async def check(ctx):
        for _ in range(15):
            await ctx.tick()
        outputs = [list(await stream_get(ctx, dut.o)) for _ in range(dut.latency + 2)]
        assert outputs[:dut.latency] == [[value] * CFG.cols] * dut.latency
        assert outputs[-1] == [value] * CFG.cols
        for _ in range(5):
            await ctx.tick()
        assert not ctx.get(dut.o.valid)
        assert ctx.get(dut.error)

    simulate(dut, drive, check)
