"""cocotb bench of the matrix unit against the golden model.

Seeded random tiles and GEMMs, partial tiles, zero sizes, extremes and random stalls on every
stream; and the utilization measurement that ``make bench`` reports.
"""

import cocotb
import numpy as np

from verification.models.matrix_unit import Tile, tile_gemm

from .matrix_unit_tb import TB, random_tile
from .reports import write_report

SEEDS = [11, 12, 13]


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_random_tiles(dut, seed, stress):
    """Random tiles, M 1..300 and partial K and N, into random accumulator rows."""
    tb = TB(dut, seed=seed, idle=0.3 if stress else 0.0, backpressure=0.5 if stress else 0.0)
    await tb.start()
    tb.submit(random_tile(tb.rng, tb.config) for _ in range(12))
    await tb.compute()
    await tb.check_accumulator()


@cocotb.test()
@cocotb.parametrize(seed=SEEDS)
async def run_test_gemm(dut, seed):
    """Whole GEMMs larger than the array, tiled, equal to an int64 NumPy matmul."""
    tb = TB(dut, seed=seed, idle=0.2, backpressure=0.3)
    await tb.start()
    rows, cols = tb.config.rows, tb.config.cols
    m = int(tb.rng.integers(1, 40))
    k = int(tb.rng.integers(1, 3 * rows + 1))
    n = int(tb.rng.integers(1, 3 * cols + 1))
    a = tb.rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = tb.rng.integers(-128, 128, (k, n), dtype=np.int8)
    tiles, gather = tile_gemm(a, w, tb.config)
    tb.submit(tiles)
    await tb.compute()
    got = gather(await tb.read_rows(0, tb.config.acc_depth))
    expected = a.astype(np.int64) @ w.astype(np.int64)
    assert np.array_equal(got, expected), f"seed {seed}: GEMM {m}x{k}x{n} differs from NumPy"


@cocotb.test()
async def run_test_extremes(dut):
    """-128 * -128 accumulated over a long K, 127 * -128, all zeros and alternating signs."""
    tb = TB(dut, seed=1, idle=0.1, backpressure=0.2)
    await tb.start()
    cfg = tb.config
    full = (cfg.rows, cfg.cols)

    def const_tile(a_value, w_value, *, m, addr, accumulate):
        return Tile(a=np.full((m, cfg.rows), a_value, np.int8), w=np.full(full, w_value, np.int8),
                    acc_addr=addr, accumulate=accumulate)

    long_k = 4096 // cfg.rows  # K = 4096: every lane reaches 4096 * 128 * 128 = 2**26
    tb.submit(const_tile(-128, -128, m=3, addr=0, accumulate=i > 0) for i in range(long_k))
    tb.submit([const_tile(127, -128, m=5, addr=8, accumulate=False),
               const_tile(0, 0, m=5, addr=16, accumulate=False)])
    sign = np.where(np.indices((7, cfg.rows)).sum(axis=0) % 2, -128, 127).astype(np.int8)
    wsign = np.where(np.indices(full).sum(axis=0) % 2, 127, -128).astype(np.int8)
    tb.submit([Tile(a=sign, w=wsign, acc_addr=24, accumulate=False)])
    await tb.compute()
    assert tb.model.acc[0, 0] == 4096 * 128 * 128
    await tb.check_accumulator()


@cocotb.test()
async def run_test_zero_sizes(dut):
    """Tiles with M, K or N zero do nothing harmful between ordinary tiles."""
    tb = TB(dut, seed=2, idle=0.2, backpressure=0.2)
    await tb.start()
    cfg = tb.config
    tiles = []
    for m, k, n in [(4, 0, cfg.cols), (0, cfg.rows, cfg.cols), (5, cfg.rows, 0), (0, 0, 0)]:
        tiles.append(random_tile(tb.rng, cfg))
        tiles.append(random_tile(tb.rng, cfg, m=m, k=k, n=n))
    tb.submit(tiles)
    await tb.compute()
    await tb.check_accumulator()


@cocotb.test()
@cocotb.parametrize(seed=SEEDS)
async def run_test_back_to_back(dut, seed):
    """Tiles back to back: one- or two-row tiles reuse the weight banks as fast as the drain
    allows, and longer tiles each start at the row the previous one ended on, so the
    accumulator updates one row in two consecutive cycles."""
    tb = TB(dut, seed=seed)
    await tb.start()
    cfg = tb.config
    tiles = []
    for i in range(40):
        tile = random_tile(tb.rng, cfg, m=int(tb.rng.integers(1, 3)))
        tiles.append(Tile(a=tile.a, w=tile.w, acc_addr=5, accumulate=i % 7 != 0))
    m = cfg.rows + cfg.cols + 4  # long enough that the next tile's weights load unseen
    addr = 0
    for _ in range(12):
        tile = random_tile(tb.rng, cfg, m=m)
        tiles.append(Tile(a=tile.a, w=tile.w, acc_addr=addr, accumulate=True))
        addr = (addr + m - 1) % cfg.acc_depth
    tb.submit(tiles)
    await tb.compute()
    await tb.check_accumulator()


async def measure(tb, m, tiles=16):
    """Run ``tiles`` full weight tiles of ``m`` rows with no stalls, check the accumulator and
    return the cycles (first command offered to last result written) and the utilization
    (useful MACs over cycles x rows x cols)."""
    cfg = tb.config
    tb.macs = 0
    tb.submit(random_tile(tb.rng, cfg, m=m, k=cfg.rows, n=cfg.cols) for _ in range(tiles))
    cycles = await tb.compute()
    await tb.check_accumulator()
    return {"m": m, "tiles": tiles, "macs": tb.macs, "cycles": cycles,
            "utilization": tb.macs / (cycles * cfg.macs_per_cycle)}


@cocotb.test()
async def run_bench_utilization(dut):
    """M = 256 over 16 consecutive full weight tiles with no stalls: weight loads must hide
    behind compute (utilization >= 0.97). Written to ``utilization.json`` for ``make bench``."""
    tb = TB(dut, seed=3)
    await tb.start()
    cfg = tb.config
    report = {"preset": cfg.name, "rows": cfg.rows, "cols": cfg.cols, **await measure(tb, 256)}
    write_report("utilization.json", report)
    assert report["utilization"] >= 0.97, f"utilization below 0.97: {report}"


@cocotb.test()
async def run_bench_sweep(dut):
    """Utilization against M, for the plot in ``make bench`` (``sweep.json``)."""
    tb = TB(dut, seed=4)
    await tb.start()
    write_report("sweep.json", [await measure(tb, m) for m in (1, 4, 16, 32, 64, 128, 256)])
