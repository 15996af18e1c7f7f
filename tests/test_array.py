import random

import numpy as np
import pytest

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from rtl.systolic.array import SystolicArray
from verification.models.matrix_unit import wrap_int32
from verification.stimulus import random_int8

CONFIGS = [
    pytest.param(JalapenoConfig(rows=3, cols=4, acc_depth=2), id="3x4"),
    pytest.param(JalapenoConfig(rows=4, cols=2, acc_depth=2), id="4x2"),
]
TAG_BITS = 8


def product(a, w):
    return wrap_int32(a.astype(np.int64) @ w.astype(np.int64)).tolist()


def act(a, bank, tag):
    return {"data": a.tolist(), "bank": bank, "tag": tag}


def weight_row(w, row, bank):
    return {"data": w[row].tolist(), "row": row, "bank": bank}


async def load(ctx, array, bank, w):
    for row in range(w.shape[0]):
        await stream_put(ctx, array.weights, weight_row(w, row, bank))


def result(payload):
    return list(payload.data), payload.tag


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.2, 0.6)])
@pytest.mark.parametrize("switch_banks", [False, True], ids=["bank0", "switching"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_against_numpy(cfg, switch_banks, idle, backpressure, seed):
    """Both banks preloaded with different weights; each vector uses bank 0, or a random bank,
    and must come out as its own ``a @ W[bank]`` with its tag, in order, under random idle
    cycles on ``acts`` and random ``results.ready``."""
    rng = np.random.default_rng(seed)
    stall_rng = random.Random(seed)
    array = SystolicArray(cfg, tag_shape=TAG_BITS)
    weights = [random_int8(rng, (cfg.rows, cfg.cols)) for _ in range(2)]
    acts = random_int8(rng, (60, cfg.rows))
    banks = rng.integers(0, 2, size=len(acts)) if switch_banks else np.zeros(len(acts), int)

    async def drive(ctx):
        for bank, w in enumerate(weights):
            await load(ctx, array, bank, w)
        for index, (a, bank) in enumerate(zip(acts, banks, strict=True)):
            await stream_put(ctx, array.acts, act(a, int(bank), index % 2**TAG_BITS),
                             rng=stall_rng, idle=idle)

    async def check(ctx):
        for index, (a, bank) in enumerate(zip(acts, banks, strict=True)):
            payload = await stream_get(ctx, array.results, rng=stall_rng, backpressure=backpressure)
            assert result(payload) == (product(a, weights[bank]), index % 2**TAG_BITS), \
                f"seed {seed}, vector {index}"
        for _ in range(cfg.rows + cfg.cols):
            await ctx.tick()
        assert not ctx.get(array.results.valid), f"seed {seed}: a result too many"
        assert not ctx.get(array.busy)

    simulate(array, drive, check)


def run_cycles(array, schedule):
    """Drive ``schedule`` (per cycle: an activation or None, a weight row or None) into
    ``array`` with ``results.ready`` held high; return the edges at which activations were
    taken and the ``(edge, result)`` pairs the array offered."""
    taken, offered = [], []

    async def bench(ctx):
        ctx.set(array.results.ready, 1)
        for edge in range(len(schedule) + array.latency + 2):
            payload, row = schedule[edge] if edge < len(schedule) else (None, None)
            ctx.set(array.acts.valid, payload is not None)
            ctx.set(array.weights.valid, row is not None)
            if payload is not None:
                ctx.set(array.acts.payload, payload)
            if row is not None:
                ctx.set(array.weights.payload, row)
            _, _, acts_ready, weights_ready, valid, out = await ctx.tick().sample(
                array.acts.ready, array.weights.ready, array.results.valid,
                array.results.payload)
            assert acts_ready and weights_ready
            if payload is not None:
                taken.append(edge)
            if valid:
                offered.append((edge, result(out)))

    simulate(array, bench)
    return taken, offered


@pytest.mark.parametrize("cfg", CONFIGS)
def test_latency_without_stalls(cfg):
    """Each result is offered exactly ``latency`` cycles after its activation was taken (the
    input register, the skew, the two registers of the products and the deskew), at one
    result per cycle for back-to-back vectors and nothing in between for spaced ones."""
    rng = np.random.default_rng(0)
    array = SystolicArray(cfg, tag_shape=TAG_BITS)
    w = random_int8(rng, (cfg.rows, cfg.cols))
    acts = random_int8(rng, (8, cfg.rows))
    schedule = [(None, weight_row(w, row, 1)) for row in range(cfg.rows)]
    gaps = [0, 0, 0, 2, 0, 5, 1, 0]
    for index, (a, gap) in enumerate(zip(acts, gaps, strict=True)):
        schedule += [(None, None)] * gap + [(act(a, 1, index), None)]

    taken, offered = run_cycles(array, schedule)
    assert array.latency == cfg.rows + cfg.cols + 2
    assert [edge - array.latency for edge, _ in offered] == taken
    assert [out for _, out in offered] == [(product(a, w), index) for index, a in enumerate(acts)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_bank_rewritten_behind_its_last_activation(cfg):
    """Bank 0 is rewritten from the very cycle its last activation is taken, a row per cycle,
    while bank 1 keeps the array busy; vectors in flight keep the old weights and the vector
    right after the last row write gets the new ones."""
    rng = np.random.default_rng(1)
    array = SystolicArray(cfg, tag_shape=TAG_BITS)
    old, other, new = (random_int8(rng, (cfg.rows, cfg.cols)) for _ in range(3))
    last_old = 5
    first_write = last_old
    first_new = first_write + cfg.rows
    schedule = [(None, weight_row(w, row, bank))
                for bank, w in enumerate([old, other]) for row in range(cfg.rows)]
    expected = []
    for cycle, a in enumerate(random_int8(rng, (first_new + 3, cfg.rows))):
        if cycle <= last_old:
            bank, w = 0, old
        else:
            bank, w = (1, other) if cycle < first_new else (0, new)
        row = cycle - first_write
        write = weight_row(new, row, 0) if 0 <= row < cfg.rows else None
        schedule.append((act(a, bank, cycle), write))
        expected.append((product(a, w), cycle))

    _, offered = run_cycles(array, schedule)
    assert [out for _, out in offered] == expected
