"""cocotb bench of the core alone (``core``) on the Python AXI RAM
(:class:`verification.axi_ram.AxiRamModel`): the alternative to the RTL memory of
``test_core``, slower (Python every cycle) but with random read latency and stalls on every
AXI channel, and error ranges chosen at run time.

The same host (:class:`~verification.tb.core_tb.CoreTB`) runs the same programs and the
same golden comparison as ``test_core``: a K-tiled GEMM and a tiled one under stress, and a
LOAD that meets a SLVERR range after good instructions.
"""

import cocotb
import numpy as np

from jalapeno.isa import INSTRUCTION_BYTES, CoreError, Opcode, encode
from verification.programs import GemmLayout, gemm_program, tiled_gemm
from verification.stimulus import random_int8

from .core_tb import CoreTB, ModelMemory, check_run, golden_run

#: Bytes of memory, all of it the window and compared.
MEMORY = 1 << 16
PROGRAM = 0x1000
LIMIT = 100_000
#: The memory's stress: read latency drawn per AR, and the stalled fraction of every channel.
LATENCY, STALL = (0, 24), 0.2
SLVERR = ((0xF000, 0xF100),)


async def start(dut, seed, *, slverr=()):
    tb = CoreTB(dut, seed=seed, size=MEMORY, memory=lambda tb: ModelMemory(
        tb, size=MEMORY, read_latency=LATENCY, stall=STALL, slverr=slverr))
    await tb.start()
    return tb


async def check(tb, image, words, what, *, slverr=()):
    golden = golden_run(tb.config, image, words, base=PROGRAM, window=(0, MEMORY),
                        size=MEMORY, slverr=slverr)
    got = await check_run(tb, image, words, golden, base=PROGRAM, window=(0, MEMORY),
                          limit=LIMIT, what=what)
    problems = tb.memory.ram.problems(window=(0, MEMORY))
    assert not problems, f"{tb.where()}, {what}: {problems}"
    return got


@cocotb.test()
async def run_test_gemm_under_stress(dut):
    """:func:`~verification.programs.gemm_program` (8 rows, three K tiles) and a 24 x 24 x 24
    (scaled to the array) :func:`~verification.programs.tiled_gemm`, the memory answering
    with random latency and stalls: the golden model's memory and counters, NumPy's
    products, and no AXI rule broken."""
    tb = await start(dut, 21)
    cfg = tb.config
    m, k_tiles = 8, 3
    a = random_int8(tb.rng, (m, k_tiles * cfg.rows))
    w = random_int8(tb.rng, (k_tiles * cfg.rows, cfg.cols))
    image = tb.rng.integers(0, 256, MEMORY, dtype=np.uint8)
    a_at, w_at, c_at = 0x4000, 0x5000, 0x6000
    image[a_at:a_at + a.size] = a.view(np.uint8).reshape(-1)
    image[w_at:w_at + w.size] = w.view(np.uint8).reshape(-1)
    await check(tb, image, gemm_program(cfg, a_at, w_at, c_at, m, k_tiles), "gemm_program")
    c = tb.read_image(c_at, c_at + m * cfg.acc_row_bytes).view("<i4").reshape(m, -1)[:, :cfg.cols]
    assert np.array_equal(c, a.astype(np.int64) @ w), f"{tb.where()}: gemm_program's C"

    m, k, n = 24, 3 * cfg.rows, 3 * cfg.cols
    a, w = random_int8(tb.rng, (m, k)), random_int8(tb.rng, (k, n))
    layout = GemmLayout.packed(cfg, m, k, n, at=0x4000, align=256)
    words, layout = tiled_gemm(cfg, m, k, n, a_at=layout.a_at, w_at=layout.w_at,
                               c_at=layout.c_at, plan=layout.plan)
    assert PROGRAM + len(words) * INSTRUCTION_BYTES <= layout.a_at and layout.end <= MEMORY
    image = tb.rng.integers(0, 256, MEMORY, dtype=np.uint8)
    layout.place(image, a, w)
    await check(tb, image, words, f"tiled_gemm {m}x{k}x{n}")
    assert np.array_equal(layout.read_c(tb.read_image(0, MEMORY)), a.astype(np.int64) @ w), \
        f"{tb.where()}: tiled_gemm's C"
    delays = tb.memory.ram.read_delays
    assert len(delays) > 50 and max(delays) > 20, f"{tb.where()}: too little stress: {delays}"


@cocotb.test()
async def run_test_slverr(dut):
    """A LOAD meeting a SLVERR range after a good LOAD and STORE stops with DMA_SLVERR at its
    address, as the golden model does, with the memory and counters it gives."""
    tb = await start(dut, 22, slverr=SLVERR)
    load = {"local_addr": 0, "rows": 1, "row_bytes": 64}
    words = [encode(Opcode.LOAD, ext_addr=0x4000, **load),
             encode(Opcode.SYNC, push_next=1),
             encode(Opcode.SYNC, queue=1, pop_prev=1, push_next=1),
             encode(Opcode.STORE, ext_addr=0x6000, rows=1, row_bytes=64, pop_prev=1),
             encode(Opcode.LOAD, ext_addr=SLVERR[0][0] + 0x40, **load)]
    image = tb.rng.integers(0, 256, MEMORY, dtype=np.uint8)
    got = await check(tb, image, words, "SLVERR", slverr=SLVERR)
    assert (got.code, got.addr) == (CoreError.DMA_SLVERR, PROGRAM + 4 * INSTRUCTION_BYTES)
