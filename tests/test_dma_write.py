# amaranth: UnusedElaboratable=no
"""The write engine (STORE) against AXIRam and a golden external memory."""

import random
import re

import numpy as np
import pytest
from dma_slave import make_config, random_bytes, run_descriptors

from rtl.dma.descriptor import DmaError
from rtl.dma.write_engine import WriteEngine
from verification.models.dma import Desc, first_difference, golden, random_descs, reference_bursts

MEM = 65536
WINDOW = (0x800, MEM - 0x800)
TRAFFIC = [
    pytest.param(32, 0.0, 1, id="bus32"),
    pytest.param(64, 0.3, 2, id="bus64-stall"),
    pytest.param(128, 0.5, 1, id="bus128-stall"),
    pytest.param(64, 0.1, 6, id="bus64-spad6"),
]


def check_stores(cfg, descs, *, seed, window=WINDOW, **kwargs):
    rng = random.Random(seed)
    memory, spad = random_bytes(rng, MEM), random_bytes(rng, cfg.spad_bytes)
    expected, _ = golden(descs, cfg.bus_bytes, load=False, memory=memory, spad=spad)
    before = spad.copy()
    run = run_descriptors(cfg, WriteEngine(cfg), descs, memory=memory, spad=spad, seed=seed,
                          window=window, **kwargs)
    where = f"seed {seed}"
    assert run.codes == [DmaError.NONE] * len(descs), where
    assert (run.memory == expected).all(), \
        f"{where}: memory {first_difference(run.memory, expected)}"
    assert (spad == before).all(), f"{where}: a store changed the scratchpad"
    bursts = [(b.addr, b.beats) for d in descs for b in reference_bursts(d, cfg.bus_bytes)]
    assert run.bench.monitor.aws == bursts, f"{where}: bursts differ from the splitting rules"
    run.bench.monitor.check_writes()
    return run


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(("bus_width", "stall", "spad_latency"), TRAFFIC)
def test_random_stores(bus_width, stall, spad_latency, seed):
    """Seeded random descriptors (1-byte and ragged rows, strides wider than rows, 4 KiB
    crossings, rows over 256 beats, zero-size ones) back to back, under seeded stalls on every
    AXI channel and on the scratchpad's read port (with ``spad_latency`` cycles of latency),
    idle cycles on ``desc`` and backpressure on ``done``: every byte of memory (destinations,
    the bytes a partial last beat leaves alone, and everything else) matches the golden copy;
    the AWs are exactly the reference bursts and every W burst matches its AW."""
    cfg = make_config(bus_width, addr_width=16 if bus_width == 32 else 32)
    descs = random_descs(np.random.default_rng(seed), cfg.bus_bytes, 16, ext=WINDOW,
                         spad=(0, cfg.spad_bytes), addr_width=cfg.addr_width)
    check_stores(cfg, descs, seed=seed, stall=stall, spad_stall=stall,
                 spad_latency=spad_latency, idle=stall, backpressure=stall)


def test_zero_size_descriptors_move_nothing():
    """Zero rows or zero bytes: done with ``NONE``, in order among the others, no AW."""
    cfg = make_config(64)
    empty = [Desc(0x1000, 0, 0, 8, 8, 8), Desc(0x1000, 0, 3, 0, 8, 8),
             Desc(0x1001, 3, 0, 5, 1, 1)]  # misaligned, but moving nothing
    run = check_stores(cfg, empty, seed=5)
    assert run.bench.monitor.aws == []
    real = Desc(0x2000, 64, 2, 100, 128, 128)
    check_stores(cfg, [empty[0], real, empty[1], real, empty[2]], seed=6, stall=0.2)


@pytest.mark.parametrize("spad_latency", [1, 3])
def test_throughput_64k(spad_latency):
    """64 KiB contiguous (two 32 KiB rows) on a 64-bit bus with an always-ready slave and an
    always-ready scratchpad of ``spad_latency`` cycles: within 0.90 of one beat per cycle from
    taking the descriptor to its done (the B of the last burst)."""
    cfg = make_config(64)
    descs = [Desc(0, 0, 2, 32768, 32768, 32768)]
    run = check_stores(cfg, descs, seed=8, spad_latency=spad_latency, window=(0, MEM))
    cycles = run.end - run.start
    peak = MEM // cfg.bus_bytes
    print(f"64 KiB store, scratchpad latency {spad_latency}: {cycles} cycles, "
          f"{peak / cycles:.3f} of peak")
    assert cycles <= peak / 0.9


def test_construction_errors():
    message = re.escape("config must be a JalapenoConfig, not None")
    with pytest.raises(TypeError, match=f"^{message}$"):
        WriteEngine(None)
