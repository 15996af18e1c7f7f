# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth.back import verilog

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig, preset
from rtl.vector.lut import LutUnit
from verification.models.lut import apply_lut, gelu_table, logistic_table, tanh_table
from verification.stimulus import random_int8

CONFIGS = [
    pytest.param(JalapenoConfig(rows=2, cols=3, acc_depth=16), id="cols3"),
    pytest.param(JalapenoConfig(rows=1, cols=1, acc_depth=2), id="cols1"),
]
THREE_LANES = JalapenoConfig(rows=2, cols=3, acc_depth=16)
TABLES = {
    "logistic": lambda rng: logistic_table((0.0625, 5)),
    "tanh": lambda rng: tanh_table((0.03, -7)),
    "gelu": lambda rng: gelu_table((0.04, -20), (0.02, -110)),
    "random": lambda rng: random_int8(rng, 256),
}
BATCH = 50


def write(index, value):
    return {"index": index, "value": int(value)}


async def load(ctx, unit, table, order):
    for index in order:
        await stream_put(ctx, unit.table, write(int(index), table[index]))


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.0), (0.2, 0.6)])
@pytest.mark.parametrize(("first", "second"), [("logistic", "random"), ("random", "tanh"),
                                                ("gelu", "logistic")])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_stream_against_golden(cfg, first, second, idle, backpressure, seed):
    """A batch looked up in one table, the table reloaded (in random order) from the cycle after
    the batch's last lookup is accepted, while its results may still wait on ``o``, and a
    second batch looked up in the new table: every result is ``apply_lut`` of its own batch's
    table, in order, under random idle cycles on ``i`` and random ``o.ready``."""
    rng = np.random.default_rng(seed)
    stall_rng = random.Random(seed)
    unit = LutUnit(cfg)
    tables = [TABLES[first](rng), TABLES[second](rng)]
    batches = [random_int8(rng, (BATCH, cfg.cols)) for _ in tables]
    assert not np.array_equal(apply_lut(batches[1], tables[0]), apply_lut(batches[1], tables[1]))

    async def drive(ctx):
        for table, batch in zip(tables, batches, strict=True):
            await load(ctx, unit, table, rng.permutation(256))
            for x in batch:
                await stream_put(ctx, unit.i, x.tolist(), rng=stall_rng, idle=idle)

    async def check(ctx):
        for number, (table, batch) in enumerate(zip(tables, batches, strict=True)):
            for index, x in enumerate(batch):
                payload = await stream_get(ctx, unit.o, rng=stall_rng, backpressure=backpressure)
                assert list(payload) == apply_lut(x, table).tolist(), \
                    f"seed {seed}, batch {number}, vector {index}, input {x.tolist()}"
        for _ in range(4):
            await ctx.tick()
        assert not ctx.get(unit.o.valid), f"seed {seed}: a result too many"

    simulate(unit, drive, check)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_every_entry_reachable_in_every_lane(cfg):
    """With 256 distinct entries, all 256 inputs in every lane (lanes rotated against each
    other) return their own entry, back to back."""
    rng = np.random.default_rng(2)
    unit = LutUnit(cfg)
    table = (rng.permutation(256) - 128).astype(np.int8)
    inputs = np.array([[(k + 85 * lane) % 256 - 128 for lane in range(cfg.cols)]
                       for k in range(256)])

    async def drive(ctx):
        await load(ctx, unit, table, range(256))
        for x in inputs:
            await stream_put(ctx, unit.i, x.tolist())

    async def check(ctx):
        results = [list(await stream_get(ctx, unit.o)) for _ in inputs]
        assert results == apply_lut(inputs, table).tolist()
        for lane in range(cfg.cols):
            assert sorted(row[lane] for row in results) == list(range(-128, 128))

    simulate(unit, drive, check)


def run_cycles(unit, schedule):
    """Drive ``schedule`` (per cycle: a lookup vector or None, a table write or None, and
    ``o.ready``) into ``unit``; return the edges at which lookups were taken and the
    ``(edge, result)`` pairs taken from ``o``."""
    taken, results = [], []

    async def bench(ctx):
        for edge, (x, entry, ready) in enumerate(schedule):
            ctx.set(unit.i.valid, x is not None)
            ctx.set(unit.table.valid, entry is not None)
            ctx.set(unit.o.ready, ready)
            if x is not None:
                ctx.set(unit.i.payload, x)
            if entry is not None:
                ctx.set(unit.table.payload, entry)
            _, _, i_ready, table_ready, valid, out = await ctx.tick().sample(
                unit.i.ready, unit.table.ready, unit.o.valid, unit.o.payload)
            assert table_ready
            if x is not None and i_ready:
                taken.append(edge)
            if valid and ready:
                results.append((edge, list(out)))

    simulate(unit, bench)
    return taken, results


def load_schedule(table):
    return [(None, write(index, value), True) for index, value in enumerate(table)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_latency_without_stalls(cfg):
    """Each result is offered exactly ``latency`` cycles after its lookup was taken, one per
    cycle for back-to-back vectors and nothing in between for spaced ones."""
    rng = np.random.default_rng(3)
    unit = LutUnit(cfg)
    table = random_int8(rng, 256)
    inputs = random_int8(rng, (8, cfg.cols))
    schedule = load_schedule(table)
    for x, gap in zip(inputs, [0, 0, 0, 2, 0, 5, 1, 0], strict=True):
        schedule += [(None, None, True)] * gap + [(x.tolist(), None, True)]
    schedule += [(None, None, True)] * (unit.latency + 2)

    taken, results = run_cycles(unit, schedule)
    assert unit.latency == 1
    assert [edge - unit.latency for edge, _ in results] == taken
    assert [out for _, out in results] == apply_lut(inputs, table).tolist()


def test_write_ordering():
    """A lookup taken in the same cycle as a write to its entry gets the old value and the next
    one the new value; a result stalled on ``o`` keeps its value while its entry is rewritten.
    """
    cfg = THREE_LANES
    rng = np.random.default_rng(4)
    unit = LutUnit(cfg)
    old = (rng.permutation(256) - 128).astype(np.int8)
    new = ((old.astype(np.int64) + 129) % 256 - 128).astype(np.int8)
    same, stalled = 10, 200
    lanes = [same - 128, same - 128, stalled - 128]
    schedule = load_schedule(old) + [
        # Same cycle: lanes 0 and 1 look up the entry being written.
        (lanes, write(same, new[same]), True),
        (lanes, None, True),
        # Stalled: the result waits on o while its entry is rewritten under it.
        ([stalled - 128] * cfg.cols, None, True),
        (None, write(stalled, new[stalled]), False),
        (None, None, False),
        (None, None, True),
        ([stalled - 128] * cfg.cols, None, True),
        (None, None, True),
    ]
    table_then = old.copy()
    table_then[same] = new[same]
    table_after = table_then.copy()
    table_after[stalled] = new[stalled]

    assert old[same] != new[same] and old[stalled] != new[stalled]

    taken, results = run_cycles(unit, schedule)
    assert len(taken) == 4
    assert [out for _, out in results] == [
        apply_lut(lanes, old).tolist(),
        apply_lut(lanes, table_then).tolist(),
        [int(table_then[stalled])] * cfg.cols,
        [int(table_after[stalled])] * cfg.cols,
    ]


def test_converts_to_verilog():
    text = verilog.convert(LutUnit(preset("default")), name="lut_unit")
    assert "module lut_unit" in text
    assert "input [63:0] i__payload;" in text and "output [63:0] o__payload;" in text
