# amaranth: UnusedElaboratable=no
"""The instruction fetcher against AXIRam: words in order with their addresses, the ending
(OVERRUN or FAULT) where the golden model's rules put it, stop, restart and throughput."""

import random
import re
from dataclasses import dataclass

import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from dma_slave import BusMonitor, Window, make_config

from jalapeno.isa import INSTRUCTION_BYTES
from rtl.bus.axi import Burst, Resp
from rtl.bus.stream_sim import simulate, stream_get
from rtl.config import PRESETS, preset
from rtl.core.fetch import Fetch, FetchKind, fetched_layout
from rtl.dma.read_engine import AXI_CACHE, AXI_PROT
from sim.axi_ram import AXIRam

MEM = 8192


@dataclass
class Edge:
    """What the bench saw at one clock edge (values before it)."""
    start: int
    stop: int
    busy: int
    ar_valid: int
    ar_ready: int
    ar_fields: tuple
    instr_valid: int
    instr_ready: int
    instr_bits: int
    r_error: int


class FetchBench:
    """A :class:`Fetch` on an :class:`AXIRam` of ``memory``, a :class:`BusMonitor` on its
    AR and R channels, and a record of every edge."""

    def __init__(self, cfg, memory, *, seed, latency=0, stall=0.0, window=None, slverr=(),
                 decerr=()):
        self.cfg, self.seed, self.memory = cfg, seed, bytes(memory)
        self.dut = dut = Fetch(cfg)
        self.ram = AXIRam(addr_width=cfg.addr_width, data_width=cfg.bus_width, id_width=1,
                          size=len(memory), read_latency=latency, stall=stall, seed=seed,
                          slverr=slverr, decerr=decerr, init=self.memory)
        self.top = Module()
        self.top.submodules.dut = dut
        self.top.submodules.ram = self.ram
        wiring.connect(self.top, dut.ar, self.ram.bus.ar)
        wiring.connect(self.top, self.ram.bus.r, dut.r)
        self.window = Window(*(window or (0, len(memory))))
        self.monitor = BusMonitor(cfg, self.window, ar=dut.ar, r=dut.r)
        self.edges = []
        self.rng = random.Random(seed + 4000)

    @property
    def where(self):
        return f"seed {self.seed}"

    async def watch(self, ctx):
        d = self.dut
        ar = d.ar
        while True:
            _, _, *v = await ctx.tick().sample(
                d.start, d.stop, d.busy, ar.valid, ar.ready,
                ar.addr, ar.id, ar.len, ar.size, ar.burst, ar.lock, ar.cache, ar.prot,
                d.instr.valid, d.instr.ready, d.instr.payload.as_value(),
                d.r.valid & d.r.ready & (d.r.resp != Resp.OKAY))
            start, stop, busy, ar_valid, ar_ready, *rest = v
            self.edges.append(Edge(start, stop, busy, ar_valid, ar_ready, tuple(rest[:8]),
                                   *rest[8:]))

    def set_window(self, ctx, base, limit):
        ctx.set(self.dut.window_base, base)
        ctx.set(self.dut.window_limit, limit)
        self.window.set(self.monitor.cycle, base, limit)

    async def start(self, ctx, base, length):
        ctx.set(self.dut.base, base)
        ctx.set(self.dut.length, length)
        ctx.set(self.dut.start, 1)
        await ctx.tick()
        ctx.set(self.dut.start, 0)

    async def collect(self, ctx, *, backpressure=0.0, limit=None):
        """Take beats of ``instr`` up to and including the ending (or ``limit`` beats)."""
        got = []
        while limit is None or len(got) < limit:
            p = await stream_get(ctx, self.dut.instr, rng=self.rng, backpressure=backpressure)
            kind = FetchKind(p.kind)
            got.append((kind, p.addr, p.word if kind == FetchKind.WORD else None))
            if kind != FetchKind.WORD:
                break
        return got

    async def idle(self, ctx, cycles=400):
        """Wait for ``busy`` to fall; then ``instr`` must stay quiet for a while."""
        for _ in range(cycles):
            if not ctx.get(self.dut.busy):
                break
            await ctx.tick()
        assert not ctx.get(self.dut.busy), f"{self.where}: busy stays high"
        for _ in range(8):
            _, _, valid, busy = await ctx.tick().sample(self.dut.instr.valid, self.dut.busy)
            assert not valid and not busy, f"{self.where}: instr offered after the ending"

    def run(self, *testbenches, timeout=20_000):
        async def init(ctx):
            self.set_window(ctx, *self.window.current)

        simulate(self.top, init, *testbenches, background=[self.watch, self.monitor.run],
                 timeout=timeout)
        self.check_rules()

    def check_rules(self):
        """AR fields as the DMA's; ``instr`` held until taken unless ``stop`` drops it; no
        more reads outstanding than :attr:`Fetch.OUTSTANDING`; from the edge an error
        response arrives until the next ``start``, no AR newly offered."""
        cfg = self.cfg
        failed = None  # the edge of the first error response since the last start
        for n, e in enumerate(self.edges):
            if e.start:
                failed = None
            if failed is not None and e.ar_valid:
                offered = self.edges[n - 1].ar_valid and not self.edges[n - 1].ar_ready
                assert offered, \
                    f"{self.where}: AR offered at edge {n} after an error response at {failed}"
            if e.r_error and failed is None:
                failed = n
        shift = cfg.bus_bytes.bit_length() - 1
        beats = INSTRUCTION_BYTES // cfg.bus_bytes
        for n, e in enumerate(self.edges):
            if e.ar_valid:
                _, ar_id, length, size, burst, lock, cache, prot = e.ar_fields
                assert (ar_id, length, size, burst, lock, cache, prot) == \
                    (0, beats - 1, shift, Burst.INCR, 0, AXI_CACHE, AXI_PROT), \
                    f"{self.where}: AR fields {e.ar_fields} at edge {n}"
            if n and self.edges[n - 1].instr_valid and not self.edges[n - 1].instr_ready \
                    and not self.edges[n - 1].stop:
                prev = self.edges[n - 1]
                assert e.instr_valid and e.instr_bits == prev.instr_bits, \
                    f"{self.where}: instr changed before it was taken, edge {n}"
        assert self.monitor.max_outstanding <= Fetch.OUTSTANDING, self.where

    def program(self, base, length):
        """The ARs a program of ``length`` instructions at ``base`` would issue."""
        return [(base + i * INSTRUCTION_BYTES, INSTRUCTION_BYTES // self.cfg.bus_bytes)
                for i in range(length)]

    def expected(self, base, length, window):
        """The golden model's view: the beats of ``instr`` and, for a bus error, the index of
        the failing instruction (else ``None``)."""
        cfg = self.cfg
        beats, shift = INSTRUCTION_BYTES // cfg.bus_bytes, cfg.bus_bytes.bit_length() - 1
        mask = (1 << cfg.addr_width) - 1
        out = []
        for i in range(length):
            a = base + i * INSTRUCTION_BYTES
            if not window[0] <= a <= window[1] - INSTRUCTION_BYTES:
                return out + [(FetchKind.FAULT, a & mask, None)], None
            if self.ram.response(a, beats - 1, shift, Burst.INCR) != Resp.OKAY:
                return out + [(FetchKind.FAULT, a & mask, None)], i
            word = int.from_bytes(self.memory[a:a + INSTRUCTION_BYTES], "little")
            out.append((FetchKind.WORD, a, word))
        return out + [(FetchKind.OVERRUN, (base + length * INSTRUCTION_BYTES) & mask, None)], None

    def check_ars(self, ars, base, length, window, bus_error):
        """The ARs of one program: exactly the instructions before the ending; after a bus
        error at instruction ``k``, it and at most ``OUTSTANDING - 1`` more."""
        expected, _ = self.expected(base, length, window)
        reads = len(expected) - 1
        everything = self.program(base, length)
        if bus_error is None:
            assert ars == everything[:reads], f"{self.where}: ARs {ars}"
        else:
            assert bus_error + 1 <= len(ars) <= bus_error + Fetch.OUTSTANDING, \
                f"{self.where}: {len(ars)} ARs for a bus error at instruction {bus_error}"
            assert ars == everything[:len(ars)], f"{self.where}: ARs {ars}"


def random_memory(seed, size=MEM):
    return random.Random(seed).randbytes(size)


def run_programs(cfg, programs, *, seed, backpressure=0.0, size=MEM, **kwargs):
    """Run ``programs`` (``(base, length, window)``) one after another, each after the last
    has gone idle; check each one's ``instr`` beats and ARs against the golden rules."""
    bench = FetchBench(cfg, random_memory(seed, size), seed=seed, **kwargs)
    results = []

    async def bench_program(ctx):
        for base, length, window in programs:
            bench.set_window(ctx, *window)
            first_ar = len(bench.monitor.ars)
            await bench.start(ctx, base, length)
            got = await bench.collect(ctx, backpressure=backpressure)
            await bench.idle(ctx)
            expected, bus_error = bench.expected(base, length, window)
            where = f"{bench.where}, program at {base:#x} of {length}, window {window}"
            assert got == expected, f"{where}: got {got[:3]}..., expected {expected[:3]}..."
            bench.check_ars(bench.monitor.ars[first_ar:], base, length, window, bus_error)
            results.append(got)

    bench.run(bench_program)
    assert len(results) == len(programs)
    return bench, results


# -- whole programs -----------------------------------------------------------------------------

TRAFFIC = [
    pytest.param(32, 0, 0.0, 0.0, id="bus32-lat0"),
    pytest.param(64, 3, 0.3, 0.3, id="bus64-lat3-stall"),
    pytest.param(128, 1, 0.5, 0.5, id="bus128-lat1-stall"),
    pytest.param(64, 20, 0.1, 0.0, id="bus64-lat20"),
]


def random_programs(seed, count, *, size=MEM):
    """Programs with random bases and lengths (0 to 24), half of them under a full window,
    the rest under a random one that may cut them anywhere."""
    rng = random.Random(seed)
    programs = []
    for _ in range(count):
        length = rng.randint(0, 24)
        base = rng.randrange(0, size - length * INSTRUCTION_BYTES + 1, INSTRUCTION_BYTES)
        if rng.random() < 0.5:
            window = (0, size)
        else:
            end = base + length * INSTRUCTION_BYTES
            lo = rng.choice([0, rng.randint(0, end)])
            window = (lo, rng.randint(lo, size))
        programs.append((base, length, window))
    return programs


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("bus_width", "latency", "stall", "backpressure"), TRAFFIC)
def test_random_programs(bus_width, latency, stall, backpressure, seed):
    """Seeded random programs back to back under random windows, AXI stalls, read latency
    and ``instr`` backpressure, with a SLVERR and a DECERR range in memory: each gives its
    words with their addresses in order, then the OVERRUN or FAULT the golden rules give,
    reads exactly the instructions before it (after a bus error, at most
    ``OUTSTANDING - 1`` more), and goes idle."""
    cfg = make_config(bus_width, addr_width=16)
    rng = random.Random(seed + 100)
    slverr = [(a, a + 1) for a in [rng.randrange(MEM)]]
    decerr = [(a, a + 40) for a in [rng.randrange(MEM - 40)]]
    programs = random_programs(seed, 8)
    _, results = run_programs(cfg, programs, seed=seed, latency=latency, stall=stall,
                              backpressure=backpressure, slverr=slverr, decerr=decerr)
    words = sum(kind == FetchKind.WORD for got in results for kind, _, _ in got)
    assert words > 20, f"seed {seed}: only {words} words fetched; the test exercises little"


@pytest.mark.parametrize("bus_width", [32, 64, 128])
def test_program_then_overrun(bus_width):
    """A 20-instruction program: 20 words at base, base + 32, ..., then OVERRUN at
    base + 640, and no AR but the program's."""
    cfg = make_config(bus_width)
    bench, (got,) = run_programs(cfg, [(0x1a0, 20, (0, MEM))], seed=3, latency=2, stall=0.2,
                                 backpressure=0.2)
    assert [addr for _, addr, _ in got] == [0x1a0 + 32 * i for i in range(21)]
    assert got[-1][0] == FetchKind.OVERRUN
    assert bench.monitor.ars == bench.program(0x1a0, 20)


def test_low_base_bits_ignored():
    """A base with low bits set is taken as its 32-byte-aligned address."""
    cfg = make_config(64)
    bench = FetchBench(cfg, random_memory(4), seed=4)
    out = []

    async def run(ctx):
        await bench.start(ctx, 0x21f, 3)
        out.extend(await bench.collect(ctx))

    bench.run(run)
    expected, _ = bench.expected(0x200, 3, (0, MEM))
    assert out == expected


def test_length_zero():
    """``length`` 0: OVERRUN at base within three edges of start, and no AR."""
    cfg = make_config(64)
    bench = FetchBench(cfg, random_memory(5), seed=5)
    out = []

    async def run(ctx):
        ctx.set(bench.dut.instr.ready, 1)
        await bench.start(ctx, 0x440, 0)
        for _ in range(3):
            _, _, valid, payload = await ctx.tick().sample(bench.dut.instr.valid,
                                                           bench.dut.instr.payload)
            if valid:
                out.append((FetchKind(payload.kind), payload.addr))
                break
        ctx.set(bench.dut.instr.ready, 0)
        await bench.idle(ctx)

    bench.run(run)
    assert out == [(FetchKind.OVERRUN, 0x440)]
    assert bench.monitor.ars == []


# -- faults -------------------------------------------------------------------------------------

@pytest.mark.parametrize("cut", [0, 1, 16, 31])
def test_window_end_cuts_program(cut):
    """The window ends ``cut`` bytes into instruction 5: the words of instructions 0-4, then
    FAULT at instruction 5, whose bytes are never read (nor anything after it)."""
    cfg = make_config(64)
    base = 0x800
    window = (0x100, base + 5 * INSTRUCTION_BYTES + cut)
    bench, (got,) = run_programs(cfg, [(base, 12, window)], seed=6 + cut, latency=4,
                                 backpressure=0.3)
    assert [kind for kind, _, _ in got] == [FetchKind.WORD] * 5 + [FetchKind.FAULT]
    assert got[-1][1] == base + 5 * INSTRUCTION_BYTES
    assert bench.monitor.ars == bench.program(base, 5)


def test_window_starts_after_base():
    """The window starts one byte after the program: FAULT at base at once, no AR."""
    cfg = make_config(32)
    bench, (got,) = run_programs(cfg, [(0x400, 4, (0x401, MEM))], seed=7)
    assert got == [(FetchKind.FAULT, 0x400, None)]
    assert bench.monitor.ars == []


def test_window_to_top_of_address_space():
    """A 16-bit address space wholly in the window: the top instruction is fetched, and the
    next one, at 2**16, is a FAULT (reported at 0) instead of a read wrapping to 0."""
    cfg = make_config(64, addr_width=16)
    top = 1 << 16
    bench, (got,) = run_programs(cfg, [(top - 64, 4, (0, top))], seed=8, size=top)
    assert [(kind, addr) for kind, addr, _ in got] == \
        [(FetchKind.WORD, top - 64), (FetchKind.WORD, top - 32), (FetchKind.FAULT, 0)]
    assert bench.monitor.ars == bench.program(top - 64, 2)


@pytest.mark.parametrize("error", ["slverr", "decerr"])
@pytest.mark.parametrize(("index", "offset", "latency"), [(6, 0, 3), (6, 31, 3), (0, 8, 0)])
def test_bus_error_faults_its_instruction(error, index, offset, latency):
    """Byte ``offset`` of instruction ``index`` answers SLVERR or DECERR: the words before
    it, then FAULT at it; no word after it, although later bursts may have been issued (an
    error on instruction 0 arrives while there is room for more, and none is issued)."""
    cfg = make_config(64)
    base = 0x600
    bad = base + index * INSTRUCTION_BYTES + offset
    bench, (got,) = run_programs(cfg, [(base, 16, (0, MEM))], seed=9, latency=latency,
                                 backpressure=0.4, **{error: [(bad, bad + 1)]})
    assert [kind for kind, _, _ in got] == [FetchKind.WORD] * index + [FetchKind.FAULT]
    assert got[-1][1] == base + index * INSTRUCTION_BYTES


def test_bus_error_on_first_instruction():
    """A DECERR on instruction 0 (beyond the end of memory): FAULT at base, nothing else."""
    cfg = make_config(128)
    bench, (got,) = run_programs(cfg, [(MEM - 32, 3, (0, 2 * MEM))], seed=10)
    assert [(kind, addr) for kind, addr, _ in got] == [(FetchKind.WORD, MEM - 32),
                                                      (FetchKind.FAULT, MEM)]


# -- control ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [11, 12, 13, 14])
@pytest.mark.parametrize("latency", [0, 6])
def test_stop_drains_and_restarts(latency, seed):
    """``stop`` at a random edge of a long program while words are being taken (``ready``
    high 70% of cycles) and reads are in flight: the words taken before it are the
    program's first ones; from the stop edge no AR is offered anew (one already offered may
    still be taken), ``instr`` stays low, every outstanding R beat is taken and ``busy``
    falls; a new ``start`` then runs a different program completely."""
    cfg = make_config(64)
    bench = FetchBench(cfg, random_memory(seed), seed=seed, latency=latency, stall=0.3)
    marks = {}
    second = []

    async def run(ctx):
        rng = random.Random(seed)
        instr = bench.dut.instr
        await bench.start(ctx, 0x200, 60)
        for _ in range(rng.randint(8, 40)):
            ctx.set(instr.ready, rng.random() < 0.7)
            await ctx.tick()
        ctx.set(instr.ready, 0)
        ctx.set(bench.dut.stop, 1)
        await ctx.tick()
        ctx.set(bench.dut.stop, 0)
        await bench.idle(ctx)
        marks["restart"] = len(bench.monitor.ars)
        await bench.start(ctx, 0x1000, 7)
        second.extend(await bench.collect(ctx, backpressure=0.3))
        await bench.idle(ctx)

    bench.run(run)
    where = f"{bench.where}, latency {latency}"
    stops = [n for n, e in enumerate(bench.edges) if e.stop]
    starts = [n for n, e in enumerate(bench.edges) if e.start]
    assert len(stops) == 1 and len(starts) == 2, where
    s, restart = stops[0], starts[1]
    mask = (1 << 256) - 1
    taken = [(e.instr_bits & mask, e.instr_bits >> 256 & 0xffffffff)
             for e in bench.edges[:s] if e.instr_valid and e.instr_ready]
    program, _ = bench.expected(0x200, 60, (0, MEM))
    assert taken == [(word, addr) for _, addr, word in program[:len(taken)]], where
    after = bench.edges[s:restart]
    taken_after = sum(e.ar_valid and e.ar_ready for e in after)
    assert taken_after <= bench.edges[s].ar_valid, f"{where}: {taken_after} ARs after stop"
    assert all(e.ar_fields[0] == bench.edges[s].ar_fields[0] for e in after if e.ar_valid), \
        f"{where}: a new AR after stop"
    assert not any(e.instr_valid for e in after[1:]), f"{where}: instr after stop"
    assert bench.monitor.outstanding == 0, f"{where}: R beats left untaken"
    assert any(not e.busy for e in after), f"{where}: busy never fell"
    reads_before = sum(e.ar_valid and e.ar_ready for e in bench.edges[:s])
    assert reads_before > len(taken), f"{where}: nothing was in flight at stop"
    expected, _ = bench.expected(0x1000, 7, (0, MEM))
    assert second == expected, where
    assert bench.monitor.ars[marks["restart"]:] == bench.program(0x1000, 7), where


def test_start_while_busy_ignored():
    """A second ``start`` (other base and length) while a program runs changes nothing."""
    cfg = make_config(32)
    bench = FetchBench(cfg, random_memory(14), seed=14, latency=2)
    got = []

    async def run(ctx):
        await bench.start(ctx, 0x300, 10)
        got.extend(await bench.collect(ctx, limit=2))
        await bench.start(ctx, 0x1300, 3)
        got.extend(await bench.collect(ctx))
        await bench.idle(ctx)

    bench.run(run)
    expected, _ = bench.expected(0x300, 10, (0, MEM))
    assert got == expected
    assert bench.monitor.ars == bench.program(0x300, 10)


def test_stop_while_idle_and_after_ending():
    """``stop`` while idle does nothing; after an ending is delivered ``start`` works again
    without one."""
    cfg = make_config(64)
    bench = FetchBench(cfg, random_memory(15), seed=15)
    got = []

    async def run(ctx):
        ctx.set(bench.dut.stop, 1)
        await ctx.tick()
        ctx.set(bench.dut.stop, 0)
        for base, length in ((0x40, 2), (0x80, 1)):
            await bench.start(ctx, base, length)
            got.append(await bench.collect(ctx))
            await bench.idle(ctx)

    bench.run(run)
    assert got == [bench.expected(0x40, 2, (0, MEM))[0], bench.expected(0x80, 1, (0, MEM))[0]]


@pytest.mark.parametrize("ending", ["overrun", "fault"])
def test_stop_drops_pending_ending(ending):
    """An OVERRUN or FAULT offered but not taken is withdrawn by ``stop``: ``instr.valid``
    and ``busy`` fall, and the next program runs normally."""
    cfg = make_config(64)
    window = (0, MEM) if ending == "overrun" else (0, 0x100 + 64)
    bench = FetchBench(cfg, random_memory(17), seed=17, window=window)
    got = []

    async def run(ctx):
        await bench.start(ctx, 0x100, 2 if ending == "overrun" else 5)
        got.extend(await bench.collect(ctx, limit=2))
        for _ in range(20):
            await ctx.tick()
        assert ctx.get(bench.dut.instr.valid) and ctx.get(bench.dut.busy)
        kind = FetchKind.OVERRUN if ending == "overrun" else FetchKind.FAULT
        assert FetchKind(ctx.get(bench.dut.instr.payload.kind)) == kind
        ctx.set(bench.dut.stop, 1)
        await ctx.tick()
        ctx.set(bench.dut.stop, 0)
        await bench.idle(ctx, cycles=1)
        bench.set_window(ctx, 0, MEM)
        await bench.start(ctx, 0x200, 3)
        got.extend(await bench.collect(ctx))

    bench.run(run)
    assert got == bench.expected(0x100, 2, window)[0][:2] + bench.expected(0x200, 3, (0, MEM))[0]


# -- throughput ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bus_width", [32, 64, 128])
def test_throughput(bus_width):
    """64 instructions, an always-ready slave with no extra latency and ``instr`` always
    ready: from the start edge to the OVERRUN taken, within 10% of 64 * beats cycles."""
    cfg = make_config(bus_width)
    length = 64
    bench = FetchBench(cfg, random_memory(16), seed=16)
    got = []

    async def run(ctx):
        ctx.set(bench.dut.instr.ready, 1)
        await bench.start(ctx, 0x0, length)
        while True:
            _, _, valid, payload = await ctx.tick().sample(bench.dut.instr.valid,
                                                           bench.dut.instr.payload)
            if valid:
                got.append((FetchKind(payload.kind), payload.addr, payload.word))
                if payload.kind != FetchKind.WORD:
                    break

    bench.run(run)
    starts = [n for n, e in enumerate(bench.edges) if e.start]
    ends = [n for n, e in enumerate(bench.edges) if e.instr_valid and e.instr_ready]
    cycles = ends[-1] - starts[0]
    ideal = length * INSTRUCTION_BYTES // cfg.bus_bytes
    print(f"bus {bus_width}: {length} instructions in {cycles} cycles (ideal {ideal})")
    expected, _ = bench.expected(0, length, (0, MEM))
    assert [(k, a, w if k == FetchKind.WORD else None) for k, a, w in got] == expected
    assert cycles <= 1.1 * ideal, f"{cycles} cycles for {ideal} beats"


# -- construction -------------------------------------------------------------------------------

def test_ports():
    cfg = preset("default")
    dut = Fetch(cfg)
    members = dut.signature.members
    assert Fetch.OUTSTANDING == 4
    assert {name: (m.flow, m.shape) for name, m in members.items() if m.is_port} == {
        "start": (wiring.In, 1), "base": (wiring.In, 32), "length": (wiring.In, 32),
        "window_base": (wiring.In, 32), "window_limit": (wiring.In, 33), "stop": (wiring.In, 1),
        "busy": (wiring.Out, 1),
    }
    assert members["instr"].flow == wiring.Out
    assert members["instr"].signature == stream.Signature(fetched_layout(cfg))
    assert fetched_layout(cfg).size == 256 + 32 + 2
    assert [k.value for k in FetchKind] == [0, 1, 2]
    assert members["ar"].flow == wiring.Out and members["r"].flow == wiring.In
    assert len(dut.ar.id) == 1 and len(dut.r.data) == cfg.bus_width


def test_construction_errors():
    message = re.escape("config must be a JalapenoConfig, not 'default'")
    with pytest.raises(TypeError, match=f"^{message}$"):
        Fetch("default")
    with pytest.raises(TypeError, match=f"^{message}$"):
        fetched_layout("default")


@pytest.mark.parametrize("name", list(PRESETS))
def test_converts_to_verilog(name):
    text = verilog.convert(Fetch(preset(name)), name="fetch")
    assert "module fetch" in text
    assert re.search(r"output \[\d+:0\] ar__addr", text)
