"""The demo: one random GEMM, larger than the array, through the RTL matrix unit.

Writes ``demo.json`` (shape, bit-exact check, cycles, utilization, simulation speed) for
``python -m sim.demo`` to print.
"""

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np

from verification.models.matrix_unit import tile_gemm

from .matrix_unit_tb import TB

SEED = int(os.environ.get("JALAPENO_SEED", "2026"))


@cocotb.test()
async def run_demo(dut):
    """A random int8 GEMM tiled onto the unit and compared with NumPy bit for bit."""
    tb = TB(dut, seed=SEED)
    await tb.start()
    cfg = tb.config
    m, k, n = 64, 8 * cfg.rows, 6 * cfg.cols
    a = tb.rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = tb.rng.integers(-128, 128, (k, n), dtype=np.int8)
    tiles, gather = tile_gemm(a, w, cfg)
    tb.submit(tiles)
    wall = time.perf_counter()
    cycles = await tb.compute()
    wall = time.perf_counter() - wall
    got = gather(await tb.read_rows(0, cfg.acc_depth))
    expected = a.astype(np.int64) @ w.astype(np.int64)
    mismatches = int(np.count_nonzero(got != expected))
    report = {
        "preset": cfg.name, "rows": cfg.rows, "cols": cfg.cols, "seed": SEED,
        "m": m, "k": k, "n": n, "tiles": len(tiles), "macs": tb.macs, "cycles": cycles,
        "utilization": tb.macs / (cycles * cfg.macs_per_cycle),
        "mismatches": mismatches, "sim_cycles_per_second": cycles / wall,
    }
    Path(os.environ["JALAPENO_OUT"], "demo.json").write_text(json.dumps(report, indent=2))
    assert mismatches == 0, f"seed {SEED}: {mismatches} of {m * n} results differ from NumPy"
