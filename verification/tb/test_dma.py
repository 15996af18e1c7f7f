"""cocotb bench of the DMA with its scratchpad (``dma_system``) against the AXI4 slave model.

Random 2-D descriptors (1-byte rows, ragged rows, rows crossing 4 KiB boundaries, strides
longer than rows, rows of more than 256 beats, empty ones) are loaded into the scratchpad
and stored back to another memory region, in turn and at once, with and without random read
latency and stalls on every channel; random STOREs read int32 rows from the accumulator
space; each fault (outside the window, misaligned, past the scratchpad or the accumulator,
SLVERR, DECERR) on each engine gives its own code, leaves memory outside the window
untouched, and the engine works again after ``clear``. Every run compares all of
memory and the scratchpad region it used with the golden copies, the bursts with the
splitting rules, and the memory model's ``problems()``. ``run_bench_throughput`` measures
64 KiB transfers against one beat per cycle.
"""

from dataclasses import replace

import cocotb

from rtl.dma.descriptor import DmaError
from verification.models.dma import (
    Desc,
    acc_range,
    expected_code,
    random_descs,
    reference_bursts,
    span,
)

from .dma_tb import TB
from .reports import write_report

SEEDS = [1, 2, 3]
MEMORY = 1 << 18
#: How many descriptors a random run draws for each engine.
COUNT = 12


class Layout:
    """Where a test puts things, for a ``nb``-byte bus: a window that is not 4 KiB aligned,
    inside it a region the scratchpad is filled from (``fill``), one loads read (``src``) and
    one stores write (``dst``, 4 KiB pages at the same offsets as ``src``), and a scratchpad
    region of 2,048 beats (all of tiny's) at a random place (``spad``)."""

    def __init__(self, rng, cfg):
        nb = cfg.bus_bytes
        self.window = (0x2000 + 3 * nb, 0x3D000 - 5 * nb)
        base = self.window[0]
        self.fill = base
        self.src = (base + 0x8000, base + 0x1C000)
        self.dst = (base + 0x1C000, self.window[1] - nb)
        size = min(cfg.spad_bytes, 2048 * nb)
        lo = nb * int(rng.integers(0, (cfg.spad_bytes - size) // nb + 1))
        self.spad = (lo, lo + size)


async def start(dut, seed, stress, **kwargs):
    tb = TB(dut, seed=seed, memory=MEMORY, stress=stress, **kwargs)
    layout = Layout(tb.rng, tb.config)
    tb.window = layout.window
    await tb.start()
    return tb, layout


def mirror(desc, offset):
    """``desc`` as a STORE of the same scratchpad bytes to ``offset`` bytes further on."""
    return desc if desc.empty else replace(desc, ext_addr=desc.ext_addr + offset)


def spad_end(descs, nb, lo):
    """The end of the scratchpad bytes ``descs`` touch (from ``lo``), and a beat more."""
    return max([lo, *(span(d, nb, ext=False)[1] for d in descs if not d.empty)]) + nb


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_load_then_store(dut, seed, stress):
    """Random loads into a filled scratchpad region, checked there byte for byte through the
    compute read port; then each load mirrored as a store of the same scratchpad bytes to
    the same page offsets of another memory region, and random stores of the region to a
    third: all of memory checked."""
    tb, layout = await start(dut, seed, stress)
    nb, lo = tb.nb, layout.spad[0]
    loads = random_descs(tb.rng, nb, COUNT, ext=layout.src, spad=layout.spad)
    hi = spad_end(loads, nb, lo)
    await tb.fill(lo, hi, layout.fill)
    await tb.run(loads=loads)
    await tb.check_spad(lo, hi)
    offset = layout.dst[0] - layout.src[0]
    mirrored = [mirror(d, offset) for d in loads]
    end = max(span(d, nb)[1] for d in mirrored if not d.empty)
    extra = random_descs(tb.rng, nb, COUNT // 2, ext=(end, layout.dst[1]), spad=(lo, hi),
                         required=())
    await tb.run(stores=mirrored + extra)
    tb.check_memory()
    for load, store in zip(loads, mirrored, strict=True):
        for p in reference_bursts(load, nb):
            moved = tb.memory[p.addr + offset:p.addr + offset + p.nbytes]
            assert (moved == tb.memory[p.addr:p.addr + p.nbytes]).all(), \
                f"{tb.where()}: {store} does not reproduce {load}"
    tb.check_bus()


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_at_once(dut, seed, stress):
    """Random loads into one half of the scratchpad region while random stores write the
    other half to memory: both engines busy together, both exact."""
    tb, layout = await start(dut, seed, stress)
    nb, (lo, hi) = tb.nb, layout.spad
    mid = (lo + hi) // 2
    loads = random_descs(tb.rng, nb, COUNT, ext=layout.src, spad=(lo, mid))
    stores = random_descs(tb.rng, nb, COUNT, ext=layout.dst, spad=(mid, hi))
    loads_end, stores_end = spad_end(loads, nb, lo), spad_end(stores, nb, mid)
    await tb.run(loads=[Desc(layout.fill, lo, 1, loads_end - lo, 0, 0),
                        Desc(layout.fill + mid - lo, mid, 1, stores_end - mid, 0, 0)])
    reads_before = len(tb.ram.ar_log)
    await tb.run(loads=loads, stores=stores)
    reads = [r.cycle for r in tb.ram.ar_log[reads_before:]]
    writes = [r.cycle for r in tb.ram.aw_log]
    assert reads and writes and min(reads) < max(writes) and min(writes) < max(reads), \
        f"{tb.where()}: loads and stores did not overlap on the bus"
    tb.check_memory()
    await tb.check_spad(lo, loads_end)
    await tb.check_spad(mid, stores_end)
    tb.check_bus()


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_accumulator_stores(dut, seed, stress):
    """Random STOREs from the accumulator space (int32 rows, little-endian, as the scratchpad
    reads them from the accumulator memory), while random LOADs fill the scratchpad: all of
    memory and the loaded region checked."""
    tb, layout = await start(dut, seed, stress)
    nb, cfg, (lo, hi) = tb.nb, tb.config, layout.spad
    stores = random_descs(tb.rng, nb, COUNT, ext=layout.dst, spad=acc_range(cfg))
    loads = random_descs(tb.rng, nb, COUNT, ext=layout.src, spad=(lo, hi))
    await tb.run(loads=loads, stores=stores)
    tb.check_memory()
    await tb.check_spad(lo, spad_end(loads, nb, lo))
    tb.check_bus()


def fault_cases(tb, layout, engine):
    """``(name, descriptor, code)`` of each fault on ``engine``, of the fits at both window
    edges and of a good descriptor after them; and the address of the second row of the
    SLVERR descriptor (the DECERR one is the same 16 KiB on)."""
    nb, (base, limit) = tb.nb, layout.window
    spad_lo = layout.spad[0]
    pitch, acc_hi = tb.config.acc_row_bytes, acc_range(tb.config)[1]
    at = layout.dst[0] if engine == "store" else layout.src[0]

    def ending_at(end, rows=2, row_bytes=3 * nb + 1, stride=8 * nb):
        return Desc(end - (rows - 1) * stride - -(-row_bytes // nb) * nb, spad_lo, rows,
                    row_bytes, stride, stride)

    ragged = Desc(at, spad_lo, 2, 5 * nb + 3, 8 * nb, 6 * nb)
    long_row = 300 * nb  # two or more bursts per row
    bad_row = Desc(at + 0x4000, spad_lo, 2, long_row, long_row + 4 * nb, long_row)
    row1 = bad_row.ext_addr + bad_row.ext_stride
    return [
        ("fits the window's top", ending_at(limit), DmaError.NONE),
        ("fits the window's base", Desc(base, spad_lo + nb, 1, 2 * nb, 0, 0), DmaError.NONE),
        ("one beat past the window", ending_at(limit + nb), DmaError.WINDOW),
        ("one beat below the window", Desc(base - nb, spad_lo, 1, 2 * nb, 0, 0),
         DmaError.WINDOW),
        ("wholly outside the window", Desc(limit + 0x100, spad_lo, 1, 64, 64, 64),
         DmaError.WINDOW),
        ("misaligned external address", Desc(at + nb // 2 + 1, spad_lo, 1, 8, 8, 8),
         DmaError.MISALIGNED),
        ("misaligned scratchpad stride", Desc(at, spad_lo, 2, 8, 8 * nb, 8 * nb + 2),
         DmaError.MISALIGNED),
        ("past the scratchpad", Desc(at, tb.config.spad_bytes - nb, 1, nb + 1, 0, 0),
         DmaError.SPAD_RANGE),
        ("past the accumulator", Desc(at, acc_hi - 2 * nb, 2, nb + 1, nb, nb),
         DmaError.SPAD_RANGE),
        ("the accumulator's last rows", Desc(at, acc_hi - 2 * pitch, 2, pitch, 8 * nb, pitch),
         DmaError.SPAD_RANGE if engine == "load" else DmaError.NONE),
        ("SLVERR", bad_row, DmaError.SLVERR),
        ("DECERR", replace(bad_row, ext_addr=bad_row.ext_addr + 0x4000), DmaError.DECERR),
        ("good after all that", ragged, DmaError.NONE),
    ], row1


@cocotb.test()
@cocotb.parametrize(engine=["load", "store"], stress=[False, True])
async def run_test_faults(dut, engine, stress):
    """Each fault in turn on one engine: it reports its own code on ``done`` and ``error``;
    an up-front fault issues no burst; a SLVERR or DECERR load writes the bursts before the
    failing one and nothing after; a failing store writes the bursts before it, not the
    failing one, and later bytes either not at all or as stored; memory outside the window
    never changes. While stopped the engine takes no descriptor; after ``clear`` the one
    waiting runs correctly."""
    seed = 7 + stress
    tb, layout = await start(dut, seed, stress)
    nb = tb.nb
    cases, row1 = fault_cases(tb, layout, engine)
    # The failing burst is the second row's second: bytes 270 beats into the row.
    slverr = (row1 + 270 * nb, row1 + 270 * nb + 1)
    decerr = (slverr[0] + 0x4000, slverr[0] + 0x4000 + nb)
    tb.error_regions(slverr=[slverr], decerr=[decerr])
    lo, hi = layout.spad
    await tb.fill(lo, hi, layout.fill)
    port = getattr(tb, engine)
    good = Desc(layout.src[0] + 0x10000 if engine == "load" else layout.dst[0] + 0x10000,
                lo + 64 * nb, 3, 7 * nb + 1, 9 * nb, 8 * nb)
    for name, desc, code in cases:
        what = f"{tb.where()}, {engine}, {name}"
        issued = len(port.log)
        upfront = DmaError.NONE if code in (DmaError.SLVERR, DmaError.DECERR) else code
        acc = acc_range(tb.config) if engine == "store" else None
        assert expected_code(desc, nb, tb.window, tb.config.spad_bytes, acc=acc) == upfront, \
            f"bench error: the golden model does not find {name} {upfront}"
        if code == DmaError.NONE:
            await tb.run(**{f"{engine}s": [desc]})
            continue
        await tb.run(**{f"{engine}s": [desc]}, codes={"load": [], "store": [], engine: [code]})
        assert port.error == code, f"{what}: error shows {port.error}"
        assert not port.busy, f"{what}: busy while stopped"
        failed, bus_code = tb.bus_failure(desc)
        if code in (DmaError.SLVERR, DmaError.DECERR):
            assert bus_code == code, f"bench error: {name} meets {bus_code}"
            sent = [(r.addr, r.len + 1) for r in port.log[issued:]]
            expected = [(p.addr, p.beats) for p in reference_bursts(desc, nb)]
            assert failed < len(sent) and sent == expected[:len(sent)], \
                f"{what}: bursts {sent} are not those of the descriptor up to the failing one"
            if engine == "load":
                tb.expect_load(desc, upto=failed)
            else:
                tb.expect_store(desc, upto=failed)
                later = reference_bursts(desc, nb)[failed + 1:len(sent)]
                expect_partial(tb, later, what)
            tb.bursts[engine] += reference_bursts(desc, nb)[failed:len(sent)]
        else:
            assert len(port.log) == issued, f"{what}: issued a burst"
        tb.check_memory()
        if engine == "load":
            await tb.check_spad(*around(tb, desc))
        # Stopped: the next descriptor waits until clear.
        tb.submit(port, [good])
        await tb.step(30)
        assert port.desc.pending == 1 and len(port.log) == len(tb.bursts[engine]), \
            f"{what}: took a descriptor before clear"
        tb.pins.pulse(port.clear)
        await tb.finish(port, limit=tb.limit([good]))
        assert port.codes[-1] == DmaError.NONE and port.error == DmaError.NONE, \
            f"{what}: after clear the engine reported {port.codes[-1]}"
        (tb.expect_load if engine == "load" else tb.expect_store)(good)
        tb.check_memory()
        if engine == "load":
            await tb.check_spad(*around(tb, good))
    tb.check_bus()


def around(tb, desc):
    """The scratchpad bytes ``desc`` may write, and two beats either side; the scratchpad's
    last two beats for a descriptor above it."""
    lo, hi = span(desc, tb.nb, ext=False)
    hi = min(hi + 2 * tb.nb, tb.config.spad_bytes)
    return min(max(lo - 2 * tb.nb, 0), hi - 2 * tb.nb), hi


def expect_partial(tb, later, what):
    """Bursts committed after a failing store's: each byte either unchanged or stored.
    The golden memory takes what happened."""
    for p in later:
        got = tb.memory[p.addr:p.addr + p.nbytes]
        old = tb.mem[p.addr:p.addr + p.nbytes]
        new = tb.spad[p.spad:p.spad + p.nbytes]
        assert ((got == old) | (got == new)).all(), \
            f"{what}: a burst after the failing one wrote bytes that are neither old nor new"
        tb.mem[p.addr:p.addr + p.nbytes] = got


#: The figures ``run_bench_throughput`` measures: 64 KiB each way.
BENCH_BYTES = 65536
BENCH_LATENCIES = (0, 20)
BENCH_TARGET = 0.90


@cocotb.test()
async def run_bench_throughput(dut):
    """64 KiB contiguous reads, writes and both at once, from a memory answering with 0 and
    with 20 cycles of read latency and never stalling: bytes per cycle from offering the
    descriptor to taking its ``done``, as a fraction of the bus's one beat per cycle (per
    direction when both run). Writes ``throughput.json``; every case must reach 0.90.

    The LOAD is 16 rows of 4 KiB from contiguous memory, each into the same 4 KiB of the
    scratchpad (the tiny preset's scratchpad is 8 KiB); the STORE the next 4 KiB of the
    scratchpad, 16 times, to contiguous memory. Rows fall on 4 KiB pages, where bursts are
    split anyway, so the bursts are those of one 64 KiB row."""
    tb = TB(dut, seed=3, memory=MEMORY, stall=0.0)
    await tb.start()
    cfg, nb = tb.config, tb.nb
    rows = BENCH_BYTES // 4096
    load = Desc(0x10000, 0, rows, 4096, 4096, 0)
    store = Desc(0x30000, 4096, rows, 4096, 4096, 0)
    await tb.fill(4096, 8192, 0x8000)
    report = {"preset": cfg.name, "bus_width": cfg.bus_width, "bus_bytes": nb,
              "bytes": BENCH_BYTES, "target": BENCH_TARGET, "cases": []}
    for latency in BENCH_LATENCIES:
        tb.ram.read_latency = (latency, latency)
        for case, loads, stores in (("read", [load], []), ("write", [], [store]),
                                    ("both", [load], [store])):
            start = tb.clocking.cycle
            ends = await tb.run(loads=loads, stores=stores)
            point = {"case": case, "latency": latency}
            for name, end in ends.items():
                cycles = end - start
                point[name] = {"cycles": cycles, "bytes_per_cycle": BENCH_BYTES / cycles,
                               "fraction_of_peak": BENCH_BYTES / cycles / nb}
            point["fraction_of_peak"] = min(point[name]["fraction_of_peak"] for name in ends)
            report["cases"].append(point)
    tb.check_memory()
    await tb.check_spad(0, 8192)
    tb.check_bus()
    write_report("throughput.json", report)
    for point in report["cases"]:
        assert point["fraction_of_peak"] >= BENCH_TARGET, f"below {BENCH_TARGET}: {point}"
