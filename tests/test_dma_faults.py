# amaranth: UnusedElaboratable=no
"""Every fault of both DMA engines: its own error code, nothing outside the window touched,
nothing issued for a descriptor that fails its up-front check, no descriptor taken until
``clear``, and normal work after it."""

import random

import numpy as np
import pytest
from dma_slave import Bench, make_config, random_bytes, wait_until

from rtl.bus.axi import Resp
from rtl.bus.stream_sim import stream_get, stream_put
from rtl.dma.descriptor import DmaError
from rtl.dma.read_engine import ReadEngine
from rtl.dma.write_engine import WriteEngine
from verification.models.dma import (
    Desc,
    bus_outcome,
    copy_bursts,
    expected_code,
    first_difference,
    reference_bursts,
)

MEM = 65536
WINDOW = (0x1000, 0xF000)
ENGINES = [pytest.param(True, id="load"), pytest.param(False, id="store")]


def fault_case(cfg, fault):
    """``(bad descriptor, expected code, RAM error ranges)`` for ``fault``."""
    nb, half = cfg.bus_bytes, cfg.bus_bytes // 2
    base = Desc(0x5000, 0x4000, 4, 300, 512, 512)
    ram = {}
    replace = {
        "misaligned_ext_addr": dict(ext_addr=base.ext_addr + half),
        "misaligned_ext_stride": dict(ext_stride=512 + half),
        "misaligned_spad_addr": dict(spad_addr=base.spad_addr + half),
        "misaligned_spad_stride": dict(spad_stride=512 + half, rows=1),
        "below_window": dict(ext_addr=WINDOW[0] - nb),
        # Rows 0 to 2 fit; only the last one reaches past the limit.
        "past_window": dict(ext_addr=WINDOW[1] - 3 * 512 - 288 + nb),
        # Only the last row reaches past the end of the scratchpad.
        "spad_range": dict(spad_addr=cfg.spad_bytes - 3 * 512 - 256),
        "slverr": {}, "decerr": {}, "window_shrinks": dict(rows=24),
    }[fault]
    bad = Desc(**{**base.fields(), **replace})
    if fault == "slverr":
        ram = dict(slverr=[(0x5400, 0x5410)])  # row 2
    if fault == "decerr":
        ram = dict(decerr=[(0x5700, 0x5701)])  # row 3
    code = {"slverr": DmaError.SLVERR, "decerr": DmaError.DECERR,
            "window_shrinks": DmaError.WINDOW}.get(
                fault, expected_code(bad, cfg.bus_bytes, WINDOW, cfg.spad_bytes))
    return bad, code, ram


FAULTS = {
    "misaligned_ext_addr": DmaError.MISALIGNED, "misaligned_ext_stride": DmaError.MISALIGNED,
    "misaligned_spad_addr": DmaError.MISALIGNED, "misaligned_spad_stride": DmaError.MISALIGNED,
    "below_window": DmaError.WINDOW, "past_window": DmaError.WINDOW,
    "spad_range": DmaError.SPAD_RANGE, "slverr": DmaError.SLVERR, "decerr": DmaError.DECERR,
    "window_shrinks": DmaError.WINDOW,
}
CASES = [pytest.param(64, fault, id=fault) for fault in FAULTS]
CASES += [pytest.param(bw, fault, id=f"{fault}-bus{bw}") for bw in (32, 128)
          for fault in ("misaligned_spad_addr", "past_window", "slverr", "window_shrinks")]


@pytest.mark.parametrize(("bus_width", "fault"), CASES)
@pytest.mark.parametrize("load", ENGINES)
def test_fault(load, bus_width, fault):
    """A good descriptor, the faulty one, then a good one: the faulty one reports its own
    code; the engine then takes no descriptor and holds ``error`` until ``clear`` pulses, and
    the next descriptor works. Memory outside the window is untouched, and the scratchpad
    (LOAD) or memory (STORE) holds exactly the good descriptors plus the bursts of the faulty
    one issued before the fault: none for an up-front fault, those before the failing one for
    a bus error (and, for a STORE, the ones committed after it may or may not have landed),
    those committed before the window shrank."""
    seed = 11
    cfg = make_config(bus_width)
    rng = random.Random(seed)
    memory, spad = random_bytes(rng, MEM), random_bytes(rng, cfg.spad_bytes)
    initial_spad = spad.copy()
    good_a = Desc(0x1000, 0, 2, 100, 128, 128)
    good_c = Desc(0x3000, 0x2000, 3, 77, 96, 96)
    bad, code, ram_errors = fault_case(cfg, fault)
    assert code == FAULTS[fault]
    dut = ReadEngine(cfg) if load else WriteEngine(cfg)
    bench = Bench(cfg, dut, memory=memory, spad=spad, seed=seed, latency=4, stall=0.2,
                  spad_stall=0.2, window=WINDOW, **ram_errors)
    monitor = bench.monitor
    bursts = monitor.ars if load else monitor.aws
    before_bad = []
    state = {}

    async def bench_(ctx):
        await stream_put(ctx, dut.desc, good_a.fields())
        assert await stream_get(ctx, dut.done) == DmaError.NONE
        before_bad.extend(bursts)
        await stream_put(ctx, dut.desc, bad.fields())
        if fault == "window_shrinks":
            await wait_until(ctx, lambda: len(bursts) > len(before_bad))
            bench.set_window(ctx, WINDOW[0], bad.ext_addr + 12 * bad.ext_stride)
        assert await stream_get(ctx, dut.done) == code
        assert ctx.get(dut.error) == code
        state["bad_bursts"] = bursts[len(before_bad):]
        bench.set_window(ctx, *WINDOW)
        # Refused until clear.
        ctx.set(dut.desc.payload, good_c.fields())
        ctx.set(dut.desc.valid, 1)
        for _ in range(20):
            _, _, ready = await ctx.tick().sample(dut.desc.ready)
            assert not ready
        ctx.set(dut.desc.valid, 0)
        assert ctx.get(dut.error) == code
        ctx.set(dut.clear, 1)
        state["clear_edge"] = monitor.cycle
        await ctx.tick()
        ctx.set(dut.clear, 0)
        await ctx.tick()
        assert ctx.get(dut.error) == DmaError.NONE
        await stream_put(ctx, dut.desc, good_c.fields())
        assert await stream_get(ctx, dut.done) == DmaError.NONE
        while ctx.get(dut.busy):
            await ctx.tick()
        state["memory"] = bench.memory(ctx)

    bench.run(bench_, timeout=20_000)

    ref = reference_bursts(bad, cfg.bus_bytes)
    issued = state["bad_bursts"]
    assert issued == [(b.addr, b.beats) for b in ref[:len(issued)]], "not the reference bursts"
    if code in (DmaError.SLVERR, DmaError.DECERR):
        failing, _ = bus_outcome(bench.ram.response, ref, cfg.bus_bytes)
        assert len(issued) > failing
        done_bursts = ref[:failing]
    elif fault == "window_shrinks":
        assert 0 < len(issued) < len(ref)
        done_bursts = ref[:len(issued)]
    else:
        assert issued == [], "a descriptor failing its up-front check issued a burst"
        done_bursts = []

    golden_memory, golden_spad = memory.copy(), initial_spad.copy()
    copy_bursts(reference_bursts(good_a, cfg.bus_bytes), load=load, memory=golden_memory,
                spad=golden_spad)
    copy_bursts(done_bursts, load=load, memory=golden_memory, spad=golden_spad)
    late = golden_memory.copy()  # a store's bursts after the failing one may have landed
    if not load and code in (DmaError.SLVERR, DmaError.DECERR):
        copy_bursts(ref[len(done_bursts) + 1:len(issued)], load=False, memory=late,
                    spad=golden_spad.copy())
    for target in (golden_memory, late):
        copy_bursts(reference_bursts(good_c, cfg.bus_bytes), load=load, memory=target,
                    spad=golden_spad)
    final = state["memory"]
    outside = np.r_[0:WINDOW[0], WINDOW[1]:MEM]
    assert (final[outside] == memory[outside]).all(), "memory outside the window changed"
    if load:
        assert (final == memory).all(), "a load changed memory"
        assert (spad == golden_spad).all(), f"scratchpad {first_difference(spad, golden_spad)}"
    else:
        assert ((final == golden_memory) | (final == late)).all(), \
            f"memory {first_difference(final, golden_memory)}"
        monitor.check_writes()
    if not load and code in (DmaError.SLVERR, DmaError.DECERR):
        # Only the two beats a W skid buffer may hold go out with strobes after the error.
        error_edge = next(e for e, resp in monitor.b_resps if resp != Resp.OKAY)
        strobed = [e for e, strb in monitor.w_strobes
                   if error_edge < e < state["clear_edge"] and strb]
        assert len(strobed) <= 2, f"{len(strobed)} W beats with strobes after the bus error"


async def offer(ctx, port, desc, limit):
    """Offer ``desc`` for at most ``limit`` cycles; whether it was taken."""
    ctx.set(port.desc.payload, desc.fields())
    ctx.set(port.desc.valid, 1)
    for _ in range(limit):
        _, _, ready = await ctx.tick().sample(port.desc.ready)
        if ready:
            break
    ctx.set(port.desc.valid, 0)
    return bool(ready)


@pytest.mark.parametrize("load", ENGINES)
def test_descriptors_taken_after_a_bus_error_report_it(load):
    """Descriptors queued behind one that gets ``SLVERR`` are abandoned and report
    ``SLVERR`` too, one ``done`` each; once the error shows, the engine takes nothing. A
    ``clear`` pulsed while those reports still wait on ``done`` is remembered: the engine
    leaves the error state when the last is taken, and then works."""
    seed = 12
    cfg = make_config(64)
    rng = random.Random(seed)
    memory, spad = random_bytes(rng, MEM), random_bytes(rng, cfg.spad_bytes)
    descs = [Desc(0x1000, 0, 2, 100, 128, 128), Desc(0x5000, 0x4000, 4, 300, 512, 512),
             Desc(0x3000, 0x2000, 3, 77, 96, 96), Desc(0x8000, 0x6000, 1, 1000, 0, 0),
             Desc(0x9000, 0x7000, 2, 8, 16, 16)]
    dut = ReadEngine(cfg) if load else WriteEngine(cfg)
    bench = Bench(cfg, dut, memory=memory, spad=spad, seed=seed, latency=6, window=WINDOW,
                  slverr=[(0x5000, 0x5008)])  # the first burst of descs[1]
    taken, codes = [], []

    async def drive(ctx):
        for desc in descs:
            if not await offer(ctx, dut, desc, 100):
                break
            taken.append(desc)
        await wait_until(ctx, lambda: ctx.get(dut.error) != DmaError.NONE)
        assert ctx.get(dut.error) == DmaError.SLVERR
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for _ in range(10):
            await ctx.tick()
        assert ctx.get(dut.error) == DmaError.SLVERR, "cleared with reports pending"
        assert not ctx.get(dut.desc.ready)
        while len(codes) < len(taken):
            await ctx.tick()
        await ctx.tick()
        assert ctx.get(dut.error) == DmaError.NONE, "clear forgotten"
        await stream_put(ctx, dut.desc, descs[0].fields())
        assert await stream_get(ctx, dut.done) == DmaError.NONE

    async def collect(ctx):
        await wait_until(ctx, lambda: ctx.get(dut.error) != DmaError.NONE)
        for _ in range(30):
            await ctx.tick()
        while len(codes) < len(taken):
            codes.append(await stream_get(ctx, dut.done))

    bench.run(drive, collect)
    assert len(taken) > 2
    assert codes == [DmaError.NONE] + [DmaError.SLVERR] * (len(taken) - 1)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("load", ENGINES)
def test_random_faults_never_hang(load, seed):
    """Seeded random descriptors, a third of them faulty in a random way, against a RAM with
    a SLVERR and a DECERR range, back to back; after every error the driver takes the
    reports and clears. Every descriptor taken gets one ``done``: its own outcome, or, after a
    failing one, that one's code; every burst keeps the rules and the window, and memory
    outside the window is untouched."""
    cfg = make_config(64)
    rng = random.Random(seed)
    memory, spad = random_bytes(rng, MEM), random_bytes(rng, cfg.spad_bytes)
    nb = cfg.bus_bytes
    errors = dict(slverr=[(0x6000, 0x6800)], decerr=[(0xA000, 0xA800)])
    descs = []
    for _ in range(32):
        rows, row_bytes = rng.randint(0, 3), rng.choice([1, 64, 300, 2100])
        stride = -(-row_bytes // nb) * nb + nb * rng.randint(0, 4)
        desc = Desc(nb * rng.randrange(WINDOW[0] // nb, (WINDOW[1] - 8192) // nb),
                    nb * rng.randrange(0, (cfg.spad_bytes - 8192) // nb), rows, row_bytes,
                    stride, stride)
        fault = rng.choice(["none", "none", "misaligned", "window", "spad"])
        if fault == "misaligned":
            field = rng.choice(["ext_addr", "ext_stride", "spad_addr", "spad_stride"])
            desc = Desc(**{**desc.fields(), field: getattr(desc, field) + rng.randint(1, nb - 1)})
        elif fault == "window":
            desc = Desc(**{**desc.fields(), "ext_addr": rng.choice([0, WINDOW[1] - nb])})
        elif fault == "spad":
            desc = Desc(**{**desc.fields(), "spad_addr": cfg.spad_bytes - nb})
        descs.append(desc)
    dut = ReadEngine(cfg) if load else WriteEngine(cfg)
    bench = Bench(cfg, dut, memory=memory, spad=spad, seed=seed, latency=3, stall=0.2,
                  spad_stall=0.2, window=WINDOW, **errors)
    batches = [[]]  # descriptors taken between clears
    codes = [[]]
    state = {}

    async def drive(ctx):
        for desc in descs:
            ctx.set(dut.desc.payload, desc.fields())
            ctx.set(dut.desc.valid, 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.desc.ready)
                if ready:
                    break
                if ctx.get(dut.error) != DmaError.NONE and len(codes[-1]) == len(batches[-1]):
                    batches.append([])
                    codes.append([])
                    ctx.set(dut.clear, 1)
                    await ctx.tick()
                    ctx.set(dut.clear, 0)
            batches[-1].append(desc)
        ctx.set(dut.desc.valid, 0)
        state["offered"] = True

    async def collect(ctx):
        while not state.get("offered") or len(codes[-1]) < len(batches[-1]):
            if len(codes[-1]) < len(batches[-1]):
                codes[-1].append(await stream_get(ctx, dut.done))
            else:
                await ctx.tick()
        while ctx.get(dut.busy):
            await ctx.tick()
        state["memory"] = bench.memory(ctx)

    bench.run(drive, collect, timeout=60_000)
    failures = 0
    for batch, batch_codes in zip(batches, codes, strict=True):
        failed = None
        for desc, code in zip(batch, batch_codes, strict=True):
            if failed is None:
                own = expected_code(desc, cfg.bus_bytes, WINDOW, cfg.spad_bytes)
                if own == DmaError.NONE:
                    _, own = bus_outcome(bench.ram.response, reference_bursts(desc, nb), nb)
                assert code == own, f"seed {seed}: {desc} reported {code}, not {own}"
                failed = None if code == DmaError.NONE else code
            else:
                assert code == failed, f"seed {seed}: {desc} after a failure reported {code}"
        failures += failed is not None
    assert failures >= 3, f"seed {seed}: too few faults exercised"
    outside = np.r_[0:WINDOW[0], WINDOW[1]:MEM]
    assert (state["memory"][outside] == memory[outside]).all(), f"seed {seed}: outside written"
