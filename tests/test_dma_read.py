# amaranth: UnusedElaboratable=no
"""The read engine (LOAD) against AXIRam and a golden scratchpad."""

import random
import re

import numpy as np
import pytest
from dma_slave import make_config, random_bytes, run_descriptors

from rtl.dma.descriptor import DmaError
from rtl.dma.read_engine import ReadEngine
from verification.models.dma import Desc, first_difference, golden, random_descs, reference_bursts

MEM = 65536
WINDOW = (0x800, MEM - 0x800)
TRAFFIC = [
    pytest.param(32, 0, 0.0, id="bus32-lat0"),
    pytest.param(64, 3, 0.3, id="bus64-lat3-stall"),
    pytest.param(128, 1, 0.5, id="bus128-lat1-stall"),
    pytest.param(64, 20, 0.1, id="bus64-lat20"),
]


def check_loads(cfg, descs, *, seed, window=WINDOW, **kwargs):
    rng = random.Random(seed)
    memory, spad = random_bytes(rng, MEM), random_bytes(rng, cfg.spad_bytes)
    _, expected = golden(descs, cfg.bus_bytes, load=True, memory=memory, spad=spad)
    run = run_descriptors(cfg, ReadEngine(cfg), descs, memory=memory, spad=spad, seed=seed,
                          window=window, **kwargs)
    where = f"seed {seed}"
    assert run.codes == [DmaError.NONE] * len(descs), where
    assert (spad == expected).all(), f"{where}: scratchpad {first_difference(spad, expected)}"
    assert (run.memory == memory).all(), f"{where}: a read changed memory"
    bursts = [(b.addr, b.beats) for d in descs for b in reference_bursts(d, cfg.bus_bytes)]
    assert run.bench.monitor.ars == bursts, f"{where}: bursts differ from the splitting rules"
    return run


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("bus_width", "latency", "stall"), TRAFFIC)
def test_random_loads(bus_width, latency, stall, seed):
    """Seeded random descriptors (1-byte and ragged rows, strides wider than rows, 4 KiB
    crossings, rows over 256 beats, zero-size ones) back to back, under seeded stalls on every
    AXI channel and the scratchpad, idle cycles on ``desc`` and backpressure on ``done``:
    every byte of the scratchpad (destinations and the guard bytes around them) matches the
    golden copy, and the ARs are exactly the reference bursts."""
    cfg = make_config(bus_width, addr_width=16 if bus_width == 32 else 32)
    descs = random_descs(np.random.default_rng(seed), cfg.bus_bytes, 10, ext=WINDOW,
                         spad=(0, cfg.spad_bytes), addr_width=cfg.addr_width)
    check_loads(cfg, descs, seed=seed, latency=latency, stall=stall, spad_stall=stall,
                idle=stall, backpressure=stall)


def test_zero_size_descriptors_move_nothing():
    """Zero rows or zero bytes: done with ``NONE``, in order among the others, no AR."""
    cfg = make_config(64)
    empty = [Desc(0x1000, 0, 0, 8, 8, 8), Desc(0x1000, 0, 3, 0, 8, 8),
             Desc(0x1001, 3, 0, 5, 1, 1)]  # misaligned, but moving nothing
    run = check_loads(cfg, empty, seed=5)
    assert run.bench.monitor.ars == []
    real = Desc(0x2000, 64, 2, 100, 128, 128)
    check_loads(cfg, [empty[0], real, empty[1], real, empty[2]], seed=6, latency=5)


def test_reads_outstanding():
    """With 20 cycles of read latency, short bursts keep at least 4 reads in flight."""
    cfg = make_config(64)
    descs = [Desc(0x1000, 0, 32, 64, 256, 64)]
    run = check_loads(cfg, descs, seed=7, latency=20)
    assert run.bench.monitor.max_outstanding >= 4


@pytest.mark.parametrize("latency", [0, 20])
def test_throughput_64k(latency):
    """64 KiB contiguous (two 32 KiB rows) on a 64-bit bus with an always-ready slave: within
    0.90 of one beat per cycle from taking the descriptor to its done."""
    cfg = make_config(64)
    descs = [Desc(0, 0, 2, 32768, 32768, 32768)]
    run = check_loads(cfg, descs, seed=8, latency=latency, window=(0, MEM))
    cycles = run.end - run.start
    peak = MEM // cfg.bus_bytes
    print(f"64 KiB load, latency {latency}: {cycles} cycles, {peak / cycles:.3f} of peak")
    assert cycles <= peak / 0.9


def test_construction_errors():
    message = re.escape("config must be a JalapenoConfig, not 'default'")
    with pytest.raises(TypeError, match=f"^{message}$"):
        ReadEngine("default")
