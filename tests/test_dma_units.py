# amaranth: UnusedElaboratable=no
"""The parts of a DMA engine on their own: the up-front check and the burst splitter."""

import random
import re

import pytest
from dma_slave import make_config

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from rtl.dma.burst import BurstSplitter
from rtl.dma.check import DescriptorCheck
from rtl.dma.control import EngineControl
from rtl.dma.descriptor import LOCAL_WIDTH, DmaError, checked_layout, descriptor_layout
from rtl.dma.front import EngineFront
from verification.models.dma import Desc, acc_range, expected_code, reference_bursts

CFG = make_config(64, spad_bytes=16384)
TOP = 1 << 32
# (descriptor, window, expected code): precedence, exact fits and one beat over.
CHECKS = [
    (Desc(0x1001, 3, 0, 5, 1, 1), (0, 0), DmaError.NONE),               # empty: nothing checked
    (Desc(0x1000, 0, 4, 0, 8, 8), (0, 0), DmaError.NONE),
    (Desc(0x1004, 0, 2, 8, 8, 8), (0x2000, 0x3000), DmaError.MISALIGNED),  # before WINDOW
    (Desc(0x1000, 0, 2, 8, 12, 8), (0, TOP - 1), DmaError.MISALIGNED),
    (Desc(0x1000, 4, 2, 8, 8, 8), (0, TOP - 1), DmaError.MISALIGNED),
    (Desc(0x1000, 0, 2, 8, 8, 4), (0, TOP - 1), DmaError.MISALIGNED),
    (Desc(0x1000, 0, 1, 8, 12, 4), (0, TOP - 1), DmaError.MISALIGNED),  # strides, one row
    (Desc(0x1000, 16376, 1, 16, 8, 8), (0, 0x1008), DmaError.WINDOW),  # before SPAD_RANGE
    (Desc(0x1000, 16376, 1, 16, 8, 8), (0, TOP - 1), DmaError.SPAD_RANGE),
    (Desc(0x1000, 16376, 1, 8, 8, 8), (0x1000, 0x1008), DmaError.NONE),  # exact fits
    (Desc(0x1000, 0, 1, 9, 8, 8), (0x1000, 0x1010), DmaError.NONE),  # 9 bytes are 2 beats
    (Desc(0x1000, 0, 1, 9, 8, 8), (0x1000, 0x100F), DmaError.WINDOW),
    (Desc(0x0FF8, 0, 1, 8, 8, 8), (0x1000, 0x2000), DmaError.WINDOW),
    (Desc(0x1000, 0, 3, 8, 0x100, 8), (0x1000, 0x1208), DmaError.NONE),
    (Desc(0x1000, 0, 3, 8, 0x100, 8), (0x1000, 0x1207), DmaError.WINDOW),  # last row only
    (Desc(0x1000, 0, 3, 8, 8, 0x1FFC), (0, TOP - 1), DmaError.MISALIGNED),
    (Desc(0x1000, 0, 3, 16, 8, 0x1FF8), (0, TOP - 1), DmaError.NONE),
    (Desc(0x1000, 0, 3, 17, 8, 0x1FF8), (0, TOP - 1), DmaError.SPAD_RANGE),
    # The products at full width: no wrap around the address space.
    (Desc(0x1000, 0, 0xFFFF, 8, 0x10000, 0), (0, TOP - 1), DmaError.NONE),
    (Desc(0x1000, 0, 0xFFFF, 8, 0x10008, 0), (0, TOP - 1), DmaError.WINDOW),
    (Desc(TOP - 8, 0, 0xFFFF, 8, TOP - 8, 0), (0, TOP - 1), DmaError.WINDOW),
    (Desc(0, 0, 0xFFFF, 8, 0, 0x2000), (0, TOP - 1), DmaError.SPAD_RANGE),
]


def run_checks(dut, cases, *, acc=None):
    """Each case on ``dut``: the golden model and the RTL give its code, offered on
    ``checked`` exactly ``1 + bit_length(rows - 1)`` cycles after ``desc`` is taken (the
    window driven two cycles before: it acts one cycle after it is driven, and its change
    holds ``checked`` back in the cycle after that)."""
    async def bench(ctx):
        ctx.set(dut.checked.ready, 1)
        for desc, window, code in cases:
            # the golden model agrees
            assert expected_code(desc, CFG.bus_bytes, window, CFG.spad_bytes, acc=acc) == code, \
                desc
            ctx.set(dut.window_base, window[0])
            ctx.set(dut.window_limit, window[1])
            await ctx.tick().repeat(2)
            await stream_put(ctx, dut.desc, desc.fields())
            cycles = 1
            while not ctx.get(dut.checked.valid):
                await ctx.tick()
                cycles += 1
            empty = desc.rows == 0 or desc.row_bytes == 0
            if not empty:
                assert cycles == 1 + (desc.rows - 1).bit_length(), desc
            result = ctx.get(dut.checked.payload)
            assert (result.code, result.empty) == (code, empty), desc
            await ctx.tick()

    simulate(dut, bench)


def test_check_known_answers():
    """Each outcome and its precedence (empty, then MISALIGNED, WINDOW, SPAD_RANGE)."""
    run_checks(DescriptorCheck(CFG), CHECKS)


# The accumulator memory of CFG: 16 rows of 8 bytes from local address 16384, the top of the
# scratchpad; (descriptor, code of a STORE; a LOAD gets SPAD_RANGE for all of them).
ACC_BASE = CFG.acc_base
ACC_CHECKS = [
    (Desc(0x1000, ACC_BASE, 2, 8, 8, 8), DmaError.NONE),
    (Desc(0x1000, ACC_BASE, 16, 8, 8, 8), DmaError.NONE),                # every row, exactly
    (Desc(0x1000, ACC_BASE, 1, 128, 128, 0), DmaError.NONE),             # the same as one row
    (Desc(0x1000, ACC_BASE + 8, 16, 8, 8, 8), DmaError.SPAD_RANGE),      # one row past the end
    (Desc(0x1000, ACC_BASE, 1, 129, 8, 8), DmaError.SPAD_RANGE),         # one byte past it
    (Desc(0x1000, ACC_BASE - 8, 2, 8, 8, 8), DmaError.SPAD_RANGE),       # across both spaces
    (Desc(0x1000, 2 * ACC_BASE - 8, 1, 8, 8, 8), DmaError.SPAD_RANGE),   # top of the space
    (Desc(0x1000, 0, 2, 8, 8, ACC_BASE), DmaError.SPAD_RANGE),           # a stride across
]


@pytest.mark.parametrize("store", [True, False], ids=["store", "load"])
def test_check_accumulator_space(store):
    """A STORE's check (``accumulator=True``) accepts local extents wholly inside the
    accumulator memory and nothing else above the scratchpad; a LOAD's rejects them all."""
    assert (CFG.acc_base, CFG.acc_bytes, CFG.local_addr_width) == (16384, 128, 15)
    cases = [(desc, (0, TOP - 1), code if store else DmaError.SPAD_RANGE)
             for desc, code in ACC_CHECKS]
    run_checks(DescriptorCheck(CFG, accumulator=store), cases,
               acc=acc_range(CFG) if store else None)


@pytest.mark.parametrize("bus_width", [32, 64, 128])
def test_splitter_matches_reference(bus_width):
    """Random descriptors (row lengths from 1 byte to over 256 beats, addresses near 4 KiB
    boundaries) split exactly as :func:`reference_bursts` says, with the strobes of a row's
    last beat and ``last`` on a descriptor's final burst, under backpressure on ``bursts``."""
    cfg = make_config(bus_width)
    nb = cfg.bus_bytes
    rng = random.Random(bus_width)
    descs = []
    for _ in range(30):
        row_bytes = rng.choice([1, nb, nb + 1, 255, 4096, 256 * nb, 256 * nb + 3, 5000])
        stride = nb * rng.randint(0, 5000)
        descs.append(Desc(rng.randrange(0, 1 << 20, nb) + rng.choice([0, 4096 - 2 * nb]),
                          rng.randrange(0, 4096, nb), rng.randint(1, 3), row_bytes, stride,
                          nb * rng.randint(0, 8)))
    dut = BurstSplitter(cfg)
    checked = checked_layout(cfg)
    expected = []
    for desc in descs:
        refs = reference_bursts(desc, cfg.bus_bytes)
        for index, b in enumerate(refs):
            expected.append((b.addr, b.beats, b.spad, b.strobes(nb)[-1], index == len(refs) - 1))

    async def drive(ctx):
        ctx.set(dut.window_limit, (1 << cfg.addr_width) - 1)
        ctx.set(dut.drained, 1)
        for desc in descs:
            await stream_put(ctx, dut.checked, checked.const(
                {"desc": desc.fields(), "code": DmaError.NONE, "empty": 0}))

    async def take(ctx):
        for index, want in enumerate(expected):
            got = await stream_get(ctx, dut.bursts, rng=rng, backpressure=0.3)
            assert (got.addr, got.len + 1, got.spad, got.tail, got.last) == want, index

    simulate(dut, drive, take, timeout=100_000)


def test_construction_errors():
    message = re.escape("config must be a JalapenoConfig, not 64")
    for make in (DescriptorCheck, BurstSplitter, descriptor_layout):
        with pytest.raises(TypeError, match=f"^{message}$"):
            make(64)
    with pytest.raises(TypeError, match=f"^{message}$"):
        EngineFront(64, max_pending=4)
    with pytest.raises(TypeError, match=r"^max_pending must be an integer, not 2\.0$"):
        EngineControl(max_pending=2.0)
    with pytest.raises(ValueError, match=r"^max_pending must be at least 1, not 0$"):
        EngineFront(CFG, max_pending=0)


def test_local_fields_hold_every_local_address():
    """The largest local space a configuration can have (1 MiB scratchpad, 65,536 accumulator
    rows of 64 lanes) still has addresses below ``2**LOCAL_WIDTH``, with a bit to spare for
    one past it."""
    big = JalapenoConfig(rows=1, cols=64, acc_depth=65536, spad_bytes=1 << 20)
    assert big.local_addr_width == 25 < LOCAL_WIDTH
