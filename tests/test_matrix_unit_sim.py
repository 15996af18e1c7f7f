# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth import Shape

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from rtl.systolic.matrix_unit import MatrixUnit
from verification.models.matrix_unit import MatrixUnitModel, Tile
from verification.stimulus import random_int8

CONFIGS = [
    pytest.param(JalapenoConfig(rows=4, cols=4, acc_depth=64), id="4x4"),
    pytest.param(JalapenoConfig(rows=2, cols=3, acc_depth=16), id="2x3"),
]


def tile(rng, m, k, n, addr, accumulate):
    return Tile(a=random_int8(rng, (m, k)), w=random_int8(rng, (k, n)), acc_addr=addr,
                accumulate=accumulate)


def tile_list(rng, cfg):
    """The corner cases in a fixed order, then random tiles of every size."""
    depth, rows, cols = cfg.acc_depth, cfg.rows, cfg.cols
    # Long enough for the next tile's weights to load meanwhile, so its first result follows
    # this tile's last one on the very next cycle, into the same row.
    long_m, long_addr = rows + cols + 4, depth // 4
    tiles = [
        tile(rng, 5, rows, cols, 0, False),
        tile(rng, 5, rows - 1, cols, 0, True),        # K < rows into the same rows
        tile(rng, 5, rows, cols - 1, 2, True),        # N < cols, overlapping
        *(tile(rng, 1, rows, cols, 7, i > 0) for i in range(4)),  # M = 1, back to back
        tile(rng, 0, rows, cols, 9, False),           # M = 0: weights only
        tile(rng, 3, 0, cols, 1, False),              # K = 0: zeros written
        tile(rng, 3, rows, 0, 3, False),              # N = 0: nothing written
        tile(rng, 0, 0, 0, 5, True),
        tile(rng, 6, rows, cols, depth - 2, True),    # wraps around the end
        tile(rng, long_m, rows, cols, long_addr, False),
        tile(rng, 3, rows, cols, long_addr + long_m - 1, True),
        tile(rng, depth, rows, cols, depth // 2, True),  # every row, wrapping
    ]
    for _ in range(12):
        m = rng.choice([0, 1, 1, int(rng.integers(2, 12))])
        tiles.append(tile(rng, m, int(rng.integers(0, rows + 1)), int(rng.integers(0, cols + 1)),
                          int(rng.integers(0, depth)), bool(rng.integers(0, 2))))
    return tiles


def padded(rng, rows, width):
    """``rows`` widened to ``width`` lanes with random values the unit must ignore."""
    junk = random_int8(rng, (rows.shape[0], width))
    junk[:, :rows.shape[1]] = rows
    return junk.tolist()


def run_unit(cfg, commands, weights, acts, *, seed, idle=0.0, backpressure=0.0):
    """Feed ``commands``, ``weights`` and ``acts`` to a matrix unit with random idle cycles,
    wait until it is idle, read every accumulator row back under random backpressure and
    return the rows and the ``error`` flag."""
    stall_rng = random.Random(seed)
    dut = MatrixUnit(cfg)
    unfinished = 3
    rows = []

    def driver(stream, beats):
        async def drive(ctx):
            nonlocal unfinished
            for beat in beats:
                await stream_put(ctx, stream, beat, rng=stall_rng, idle=idle)
            unfinished -= 1
        return drive

    async def read_back(ctx):
        while unfinished or ctx.get(dut.busy):
            await ctx.tick()
        for addr in range(cfg.acc_depth):
            await stream_put(ctx, dut.read, addr, rng=stall_rng, idle=idle)

    async def collect(ctx):
        for _ in range(cfg.acc_depth):
            row = await stream_get(ctx, dut.read_data, rng=stall_rng, backpressure=backpressure)
            rows.append(list(row))
        rows.append(ctx.get(dut.error))

    simulate(dut, driver(dut.cmd, commands), driver(dut.weights, weights),
             driver(dut.acts, acts), read_back, collect)
    *acc, error = rows
    return np.array(acc), error


def command(m, k, n, acc_addr, accumulate):
    return {"m": m, "k": k, "n": n, "acc_addr": acc_addr, "accumulate": accumulate}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.5), (0.7, 0.8)])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_tiles_against_model(cfg, idle, backpressure, seed):
    """Tiles through the unit with random idle cycles on every input; afterwards every
    accumulator row, read back under random backpressure, matches the golden model."""
    rng = np.random.default_rng(seed)
    tiles = tile_list(rng, cfg)
    model = MatrixUnitModel(cfg)
    for t in tiles:
        model.run(t)
    acc, error = run_unit(
        cfg,
        [command(t.m, t.k, t.n, t.acc_addr, t.accumulate) for t in tiles],
        [row for t in tiles for row in padded(rng, t.w, cfg.cols)],
        [row for t in tiles for row in padded(rng, t.a, cfg.rows)],
        seed=seed, idle=idle, backpressure=backpressure)
    bad = np.argwhere(acc != model.acc)
    assert not len(bad), f"seed {seed}: first wrong lane (row, lane) {tuple(bad[0])}"
    assert not error


@pytest.mark.parametrize("field", ["k", "n", "m"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_out_of_range_command_sets_error_without_hanging(cfg, field):
    """A command field beyond the unit (the largest value its bits encode) raises ``error``,
    consumes exactly its own beats and leaves the unit in step: the next tile is exact."""
    rng = np.random.default_rng(7)
    layout = MatrixUnit(cfg).cmd.payload.shape()
    big = {name: 2 ** Shape.cast(layout[name].shape).width - 1 for name in ("m", "k", "n")}
    limit = {"m": cfg.acc_depth, "k": cfg.rows, "n": cfg.cols}
    if big[field] == limit[field]:
        pytest.skip(f"every value of {field} that its bits encode is in range")
    bad = dict(m=3, k=cfg.rows, n=cfg.cols) | {field: big[field]}
    good = tile(rng, 5, cfg.rows, cfg.cols, 0, False)
    acc, error = run_unit(
        cfg,
        [command(bad["m"], bad["k"], bad["n"], 1, True),
         command(good.m, good.k, good.n, good.acc_addr, good.accumulate)],
        [*random_int8(rng, (bad["k"], cfg.cols)).tolist(), *good.w.tolist()],
        [*random_int8(rng, (bad["m"], cfg.rows)).tolist(), *good.a.tolist()],
        seed=7)
    model = MatrixUnitModel(cfg)
    model.run(good)
    assert error
    assert np.array_equal(acc[:good.m], model.acc[:good.m])
