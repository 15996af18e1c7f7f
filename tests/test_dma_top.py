# amaranth: UnusedElaboratable=no
"""The DMA with both engines on one AXI4 port: loads and stores at once, their throughput
together, its ports and its Verilog."""

import random
import re

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from dma_slave import Bench, fake_accumulator, make_config, random_bytes

from rtl.bus.axi import AXI4Signature
from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import PRESETS, preset
from rtl.dma.descriptor import DmaError, descriptor_layout
from rtl.dma.dma import Dma, engine_control_signature
from sim.axi_ram import AXIRam
from sim.dma_system import DmaSystem
from verification.models.dma import (
    Desc,
    acc_image,
    acc_range,
    expected_code,
    first_difference,
    golden,
    random_descs,
    reference_bursts,
)


def run_both(cfg, loads, stores, *, memory, spad, seed, idle=0.0, backpressure=0.0, **kwargs):
    """Run ``loads`` on ``dut.load`` and ``stores`` on ``dut.store`` at once; return the
    bench, the codes of each and the memory at the end, and the cycles from the first
    descriptor taken to the last done."""
    dut = Dma(cfg)
    bench = Bench(cfg, dut, memory=memory, spad=spad, seed=seed, **kwargs)
    rng = random.Random(seed + 3000)
    result = {"codes": {}, "start": [], "end": []}

    def engine(port, descs, name):
        async def drive(ctx):
            for desc in descs:
                await stream_put(ctx, port.desc, desc.fields(), rng=rng, idle=idle)
                if len(result["start"]) < 2:
                    result["start"].append(bench.monitor.cycle)

        async def collect(ctx):
            result["codes"][name] = [await stream_get(ctx, port.done, rng=rng,
                                                      backpressure=backpressure)
                                     for _ in descs]
            result["end"].append(bench.monitor.cycle)
            while ctx.get(port.busy):
                await ctx.tick()

        return drive, collect

    async def final(ctx):
        while len(result["end"]) < 2 or ctx.get(dut.load.busy) or ctx.get(dut.store.busy):
            await ctx.tick()
        result["memory"] = bench.memory(ctx)

    bench.run(*engine(dut.load, loads, "load"), *engine(dut.store, stores, "store"), final,
              timeout=40_000)
    result["cycles"] = max(result["end"]) - min(result["start"])
    return bench, result


@pytest.mark.parametrize("seed", [1, 2])
def test_loads_and_stores_at_once(seed):
    """Random loads from the lower half of memory into the lower half of the scratchpad, and
    at the same time random stores from the upper half of the scratchpad to the upper half of
    memory, under seeded stalls everywhere: both match the golden copies byte for byte."""
    cfg = make_config(64)
    rng = random.Random(seed)
    size = 65536
    memory, spad = random_bytes(rng, size), random_bytes(rng, cfg.spad_bytes)
    desc_rng = np.random.default_rng(seed)
    loads = random_descs(desc_rng, cfg.bus_bytes, 8, ext=(0x800, 0x8000), spad=(0, 0x8000))
    stores = random_descs(desc_rng, cfg.bus_bytes, 8, ext=(0x8000, 0xF800),
                          spad=(0x8000, 0x10000))
    expected_memory, _ = golden(stores, cfg.bus_bytes, load=False, memory=memory, spad=spad)
    _, expected_spad = golden(loads, cfg.bus_bytes, load=True, memory=memory, spad=spad)
    bench, result = run_both(cfg, loads, stores, memory=memory, spad=spad, seed=seed,
                             latency=3, stall=0.3, spad_stall=0.2, idle=0.2, backpressure=0.3,
                             window=(0x800, 0xF800))
    assert result["codes"] == {"load": [DmaError.NONE] * len(loads),
                               "store": [DmaError.NONE] * len(stores)}
    assert (spad == expected_spad).all(), f"seed {seed}: {first_difference(spad, expected_spad)}"
    final = result["memory"]
    assert (final == expected_memory).all(), \
        f"seed {seed}: {first_difference(final, expected_memory)}"
    assert bench.monitor.ars == [(b.addr, b.beats) for d in loads
                                 for b in reference_bursts(d, cfg.bus_bytes)]
    assert bench.monitor.aws == [(b.addr, b.beats) for d in stores
                                 for b in reference_bursts(d, cfg.bus_bytes)]
    bench.monitor.check_writes()


def system(cfg, memory, rows, *, seed):
    """:class:`DmaSystem` with an :class:`AXIRam` over ``memory`` on its bus and ``rows``
    served as its accumulator memory (a latency of 1 to 4 cycles, ``ready`` 70% of cycles)."""
    dut = DmaSystem(cfg)
    ram = AXIRam(addr_width=cfg.addr_width, data_width=cfg.bus_width, id_width=1,
                 size=len(memory), init=memory.tobytes())
    top = Module()
    top.submodules += [dut, ram]
    wiring.connect(top, dut.bus, ram.bus)
    serve = fake_accumulator(dut, rows, rng=random.Random(seed), latency=(1, 4), ready=0.7)
    return top, dut, ram, serve


async def run_one(ctx, port, desc):
    """Run ``desc`` on an engine ``port``; its code and the cycles to ``done``."""
    await stream_put(ctx, port.desc, desc.fields())
    cycles = 0
    while not ctx.get(port.done.valid):
        await ctx.tick()
        cycles += 1
    return await stream_get(ctx, port.done), cycles


@pytest.mark.parametrize("name", list(PRESETS))
def test_with_the_scratchpad_and_accumulator(name):
    """The DMA with the real :class:`Scratchpad` (:class:`sim.dma_system.DmaSystem`): four
    ragged rows loaded and stored elsewhere come back byte for byte at about a beat per cycle
    each way; STOREs from the accumulator space write int32 rows little-endian (all rows as two
    long rows, part rows with a stride across 4 KiB pages, one lane); a STORE running one byte
    past the accumulator, and a LOAD into the accumulator space, stop with ``SPAD_RANGE`` and
    write nothing."""
    cfg = preset(name)
    nb, pitch, base = cfg.bus_bytes, cfg.acc_row_bytes, cfg.acc_base
    rng = random.Random(10)
    size = 262144
    memory = random_bytes(rng, size)
    rows = np.random.default_rng(10).integers(-2**31, 2**31, (cfg.acc_depth, cfg.cols))
    top, dut, ram, serve = system(cfg, memory, rows, seed=10)
    row_span = min(4000, cfg.spad_bytes // 5) // nb * nb
    row_bytes = row_span - 3
    load = Desc(0x1000, 0x100, 4, row_bytes, 4096, row_span)
    store = Desc(0x8000, 0x100, 4, row_bytes, 4096, row_span)
    half = cfg.acc_bytes // 2
    acc_stores = [Desc(0x20000, base, 2, half, half, half),
                  Desc(0x5FF0 // nb * nb, base + 3 * pitch, 5, pitch - 4, 4096, 2 * pitch),
                  Desc(0xE000, base + pitch, 1, 4, 0, 0)]
    rejected = [("store", Desc(0x30000, base + pitch, 2, half - pitch + 1, half, half)),
                ("load", Desc(0x30000, base, 1, nb, 0, 0))]
    local = np.zeros(base + cfg.acc_bytes, np.uint8)
    local[base:] = acc_image(rows)
    expected = memory.copy()
    for row in range(4):
        expected[0x8000 + row * 4096:][:row_bytes] = memory[0x1000 + row * 4096:][:row_bytes]
    expected, _ = golden(acc_stores, nb, load=False, memory=expected, spad=local)
    cycles = {}

    async def bench(ctx):
        ctx.set(dut.window_limit, size)
        for engine, desc in (("load", load), ("store", store)):
            code, cycles[engine] = await run_one(ctx, getattr(dut, engine), desc)
            assert code == DmaError.NONE, engine
        for desc in acc_stores:
            assert (await run_one(ctx, dut.store, desc))[0] == DmaError.NONE, desc
        for engine, desc in rejected:
            assert expected_code(desc, nb, (0, size), cfg.spad_bytes,
                                 acc=acc_range(cfg) if engine == "store" else None) \
                == DmaError.SPAD_RANGE
            assert (await run_one(ctx, getattr(dut, engine), desc))[0] == DmaError.SPAD_RANGE
            ctx.set(getattr(dut, engine).clear, 1)
            await ctx.tick()
            ctx.set(getattr(dut, engine).clear, 0)
        final = np.frombuffer(ram.contents(ctx), dtype=np.uint8)
        assert (final == expected).all(), first_difference(final, expected)
        assert not ctx.get(dut.spad_error)

    simulate(top, bench, background=[serve], timeout=40_000)
    beats = 4 * -(-row_bytes // nb)
    assert cycles["load"] <= beats / 0.9 and cycles["store"] <= beats / 0.9, cycles


@pytest.mark.parametrize("latency", [0, 20])
def test_throughput_load_and_store_64k_at_once(latency):
    """A 64 KiB contiguous load and a 64 KiB contiguous store at once, 64-bit bus, an
    always-ready slave with ``latency`` cycles of read latency: both done within 0.90 of one
    beat per cycle on each direction."""
    cfg = make_config(64, spad_bytes=131072)
    rng = random.Random(9)
    size = 262144
    memory, spad = random_bytes(rng, size), random_bytes(rng, cfg.spad_bytes)
    loads = [Desc(0, 0, 2, 32768, 32768, 32768)]
    stores = [Desc(0x20000, 0x10000, 2, 32768, 32768, 32768)]
    expected_memory, _ = golden(stores, cfg.bus_bytes, load=False, memory=memory, spad=spad)
    _, expected_spad = golden(loads, cfg.bus_bytes, load=True, memory=memory, spad=spad)
    _, result = run_both(cfg, loads, stores, memory=memory, spad=spad, seed=9,
                         latency=latency, window=(0, size))
    assert (spad == expected_spad).all()
    assert (result["memory"] == expected_memory).all()
    peak = 65536 // cfg.bus_bytes
    cycles = result["cycles"]
    print(f"64 KiB load + 64 KiB store, latency {latency}: {cycles} cycles, "
          f"{peak / cycles:.3f} of peak per direction")
    assert cycles <= peak / 0.9


def test_ports():
    cfg = preset("default")
    dut = Dma(cfg)
    assert dut.signature.members["bus"].signature == AXI4Signature(
        addr_width=32, data_width=64, id_width=1)
    control = engine_control_signature(cfg)
    assert dut.signature.members["load"].signature == control.flip()
    assert set(control.members) == {"desc", "done", "clear", "error", "busy"}
    assert descriptor_layout(cfg).size == 32 + 26 + 16 + 16 + 32 + 26  # local fields: 26 bits


@pytest.mark.parametrize("name", list(PRESETS))
def test_converts_to_verilog(name):
    text = verilog.convert(Dma(preset(name)), name="dma")
    assert "module dma(" in text
    for port in ("bus__ar__addr", "bus__w__strb", "load__desc__valid", "store__done__payload",
                 "spad_w__payload", "spad_r__payload", "window_limit"):
        assert port in text, port


def test_construction_errors():
    message = re.escape("config must be a JalapenoConfig, not 'default'")
    with pytest.raises(TypeError, match=f"^{message}$"):
        Dma("default")
    with pytest.raises(TypeError, match=f"^{message}$"):
        engine_control_signature("default")
