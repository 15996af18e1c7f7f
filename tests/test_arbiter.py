# amaranth: UnusedElaboratable=no
"""AxiReadShare: the DMA and the instruction fetch on one AXI4 master port. Reads from both
at once come back to the right master in order, the DMA's writes pass through, the two take
turns, one master alone loses no throughput, and the real DMA and fetcher work through it."""

import random
import re
from itertools import pairwise

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from dma_slave import BusMonitor, SpadModel, Window, make_config, random_bytes

from jalapeno.isa import INSTRUCTION_BYTES
from rtl.bus.arbiter import BUS_ID_WIDTH, SOURCE_DMA, SOURCE_FETCH, AxiReadShare, read_signature
from rtl.bus.axi import AXI4Signature, Burst, Resp
from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import PRESETS, preset
from rtl.core.fetch import Fetch, FetchKind
from rtl.dma.descriptor import DmaError, axi_signature
from rtl.dma.dma import Dma
from rtl.dma.read_engine import AXI_CACHE, AXI_PROT
from sim.axi_ram import AXIRam
from verification.models.dma import first_difference, golden, random_descs

MEM = 16384


def random_bursts(rng, cfg, count, *, lo=0, hi=MEM, max_beats=16):
    """``count`` INCR bursts ``(addr, len, id)`` of 1 to ``max_beats`` full-width beats in
    ``[lo, hi)``, none across 4 KiB, with random IDs."""
    nb = cfg.bus_bytes
    bursts = []
    for _ in range(count):
        addr = rng.randrange(lo, hi - nb + 1, nb)
        room = min(4096 - addr % 4096, hi - addr) // nb
        bursts.append((addr, rng.randint(1, min(max_beats, room)) - 1, rng.randrange(2)))
    return bursts


class ReadMaster:
    """A testbench AXI4 read master on an ``ar``/``r`` pair: offers ``bursts`` in order
    (random idle cycles before each, ``valid`` held until taken), takes R beats under random
    backpressure, and records the edge of every handshake (edges counted from 0 by every
    task, which awaits exactly one tick per step)."""

    def __init__(self, ar, r, bursts, *, rng, idle=0.0, backpressure=0.0):
        self.ar, self.r, self.bursts, self.rng = ar, r, bursts, rng
        self.idle, self.backpressure = idle, backpressure
        self.ar_edges, self.ar_raised, self.beats, self.beat_edges = [], [], [], []

    async def issue(self, ctx):
        ar, edge = self.ar, 0
        for addr, length, ident in self.bursts:
            while self.idle and self.rng.random() < self.idle:
                await ctx.tick()
                edge += 1
            ctx.set(ar.valid, 1)
            self.ar_raised.append(edge)
            for name, value in dict(addr=addr, len=length, id=ident, burst=Burst.INCR,
                                    cache=AXI_CACHE, prot=AXI_PROT).items():
                ctx.set(getattr(ar, name), value)
            ctx.set(ar.size, (len(self.r.data) // 8).bit_length() - 1)
            while True:
                _, _, ready = await ctx.tick().sample(ar.ready)
                edge += 1
                if ready:
                    break
            self.ar_edges.append(edge)
            ctx.set(ar.valid, 0)

    async def receive(self, ctx):
        r, edge = self.r, 0
        total = sum(length + 1 for _, length, _ in self.bursts)
        while len(self.beats) < total:
            ready = self.rng.random() >= self.backpressure
            ctx.set(r.ready, ready)
            _, _, valid, ident, value, resp, last = await ctx.tick().sample(
                r.valid, r.id, r.data, r.resp, r.last)
            edge += 1
            if valid and ready:
                self.beats.append((ident, value, resp, last))
                self.beat_edges.append(edge)
        ctx.set(r.ready, 0)

    def expected(self, ram, memory):
        """Every beat the bursts should bring: ``(id, data, resp, last)``."""
        nb = ram.bytes_per_beat
        shift = nb.bit_length() - 1
        beats = []
        for addr, length, ident in self.bursts:
            resp = ram.response(addr, length, shift, Burst.INCR)
            for k in range(length + 1):
                a = addr + k * nb
                value = int.from_bytes(memory[a:a + nb], "little") if resp == Resp.OKAY else 0
                beats.append((ident, value, resp, int(k == length)))
        return beats


class WriteMaster:
    """A testbench AXI4 write master: AW and W in order on separate tasks, random strobes,
    B taken under random backpressure; :meth:`apply` gives the memory it should leave."""

    def __init__(self, aw, w, b, bursts, *, rng, idle=0.0, backpressure=0.0):
        self.aw, self.w, self.b, self.bursts, self.rng = aw, w, b, bursts, rng
        self.idle, self.backpressure = idle, backpressure
        nb = len(w.strb)
        self.data = [[(rng.getrandbits(8 * nb), rng.getrandbits(nb)) for _ in range(length + 1)]
                     for _, length, _ in bursts]
        self.responses = []

    async def _put(self, ctx, channel, fields):
        while self.idle and self.rng.random() < self.idle:
            await ctx.tick()
        ctx.set(channel.valid, 1)
        for name, value in fields.items():
            ctx.set(getattr(channel, name), value)
        while True:
            _, _, ready = await ctx.tick().sample(channel.ready)
            if ready:
                break
        ctx.set(channel.valid, 0)

    async def issue(self, ctx):
        shift = len(self.w.strb).bit_length() - 1
        for addr, length, ident in self.bursts:
            await self._put(ctx, self.aw, dict(addr=addr, len=length, id=ident, size=shift,
                                               burst=Burst.INCR))

    async def write(self, ctx):
        for (_, length, _), beats in zip(self.bursts, self.data, strict=True):
            for k, (value, strb) in enumerate(beats):
                await self._put(ctx, self.w, dict(data=value, strb=strb, last=k == length))

    async def respond(self, ctx):
        b = self.b
        while len(self.responses) < len(self.bursts):
            ready = self.rng.random() >= self.backpressure
            ctx.set(b.ready, ready)
            _, _, valid, ident, resp = await ctx.tick().sample(b.valid, b.id, b.resp)
            if valid and ready:
                self.responses.append((ident, resp))
        ctx.set(b.ready, 0)

    def apply(self, memory):
        memory = bytearray(memory)
        nb = len(self.w.strb)
        for (addr, _, _), beats in zip(self.bursts, self.data, strict=True):
            for k, (value, strb) in enumerate(beats):
                for j in range(nb):
                    if strb >> j & 1:
                        memory[addr + k * nb + j] = value >> (8 * j) & 0xFF
        return bytes(memory)


class ShareBench:
    """An :class:`AxiReadShare` on an :class:`AXIRam` with two-bit IDs, a bus monitor on the
    shared port, and a record of every AR the port takes: ``(edge, id, addr)``."""

    def __init__(self, cfg, memory, *, seed, latency=0, stall=0.0, slverr=(), decerr=()):
        self.cfg, self.seed, self.memory = cfg, seed, bytes(memory)
        self.dut = dut = AxiReadShare(cfg)
        self.ram = AXIRam(addr_width=cfg.addr_width, data_width=cfg.bus_width,
                          id_width=BUS_ID_WIDTH, size=len(memory), read_latency=latency,
                          stall=stall, seed=seed, slverr=slverr, decerr=decerr, init=self.memory)
        self.top = Module()
        self.top.submodules.dut = dut
        self.top.submodules.ram = self.ram
        wiring.connect(self.top, dut.bus, self.ram.bus)
        bus = dut.bus
        self.monitor = BusMonitor(cfg, Window(0, len(memory)), ar=bus.ar, r=bus.r, aw=bus.aw,
                                  w=bus.w, b=bus.b)
        # The masters' R channels must keep the AXI rules too.
        self.r_monitors = [BusMonitor(cfg, Window(0, len(memory)), r=port.r)
                           for port in (dut.dma, dut.fetch)]
        self.bus_ars = []

    async def watch(self, ctx):
        ar, edge = self.dut.bus.ar, 0
        while True:
            _, _, valid, ready, ident, addr = await ctx.tick().sample(ar.valid, ar.ready, ar.id,
                                                                      ar.addr)
            edge += 1
            if valid and ready:
                self.bus_ars.append((edge, ident, addr))

    def run(self, *testbenches, timeout=20_000):
        simulate(self.top, *testbenches,
                 background=[self.watch, self.monitor.run, *(m.run for m in self.r_monitors)],
                 timeout=timeout)

    def masters(self, dma_bursts, fetch_bursts, *, rng, idle=0.0, backpressure=0.0):
        return [ReadMaster(port.ar, port.r, bursts, rng=rng, idle=idle,
                           backpressure=backpressure)
                for port, bursts in ((self.dut.dma, dma_bursts), (self.dut.fetch, fetch_bursts))]


TRAFFIC = [
    pytest.param(32, 0, 0.0, 0.0, id="bus32-lat0"),
    pytest.param(64, 3, 0.3, 0.3, id="bus64-lat3-stall"),
    pytest.param(128, 1, 0.5, 0.5, id="bus128-lat1-stall"),
    pytest.param(64, 12, 0.1, 0.1, id="bus64-lat12"),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("bus_width", "latency", "stall", "pressure"), TRAFFIC)
def test_concurrent_reads(bus_width, latency, stall, pressure, seed):
    """Both masters issue seeded random read bursts (1-16 beats, random IDs, some over a
    SLVERR or DECERR range) at once, with random idle cycles and R backpressure under AXI
    stalls and latency: each gets exactly its own beats, in its order, with its own ID, data,
    response and ``last``; the shared port carries each AR with ``{source, id}``."""
    cfg = make_config(bus_width, addr_width=16)
    rng = random.Random(seed)
    memory = rng.randbytes(MEM)
    slverr, decerr = [(0x1100, 0x1108)], [(0x2200, 0x2240)]
    bench = ShareBench(cfg, memory, seed=seed, latency=latency, stall=stall, slverr=slverr,
                       decerr=decerr)
    dma_bursts = random_bursts(rng, cfg, 30)
    fetch_bursts = random_bursts(rng, cfg, 30)
    # Some bursts of each meet an error range.
    for bursts in (dma_bursts, fetch_bursts):
        bursts[rng.randrange(30)] = (0x1100 - 2 * cfg.bus_bytes, 3, 1)
        bursts[rng.randrange(30)] = (0x2200, rng.randrange(4), 0)
    masters = bench.masters(dma_bursts, fetch_bursts, rng=random.Random(seed + 1),
                            idle=pressure, backpressure=pressure)
    bench.run(*(task for m in masters for task in (m.issue, m.receive)), timeout=30_000)
    where = f"seed {seed}"
    for name, master in zip(("dma", "fetch"), masters, strict=True):
        expected = master.expected(bench.ram, memory)
        assert len(master.beats) == len(expected), f"{where}: {name} beats"
        for k, (got, want) in enumerate(zip(master.beats, expected, strict=True)):
            assert got == want, f"{where}: {name} beat {k}: {got} != {want}"
    errors = sum(resp != Resp.OKAY for m in masters for _, _, resp, _ in m.beats)
    assert errors, f"{where}: no burst met an error range; the test exercises less"
    # The bus saw every AR, each tagged with its source, each master's in its order.
    for source, bursts in ((SOURCE_DMA, dma_bursts), (SOURCE_FETCH, fetch_bursts)):
        seen = [(ident & 1, addr) for _, ident, addr in bench.bus_ars if ident >> 1 == source]
        assert seen == [(ident, addr) for addr, _, ident in bursts], f"{where}: source {source}"
    assert len(bench.bus_ars) == len(dma_bursts) + len(fetch_bursts)
    # ARs of the two were interleaved on the bus, not one master's after the other's.
    sources = [ident >> 1 for _, ident, _ in bench.bus_ars]
    switches = sum(a != b for a, b in pairwise(sources))
    assert switches >= 10, f"{where}: only {switches} switches between sources"


@pytest.mark.parametrize("seed", [3, 4])
def test_dma_writes_pass_through(seed):
    """The DMA side writes seeded random bursts (random strobes and IDs) to the upper half of
    memory while both sides read the lower half: memory ends as the writes say, every B
    comes back to the DMA with its ID and OKAY, every read gets its data, and every W burst
    matched its AW on the bus."""
    cfg = make_config(64, addr_width=16)
    rng = random.Random(seed)
    memory = rng.randbytes(MEM)
    bench = ShareBench(cfg, memory, seed=seed, latency=2, stall=0.2)
    dma = bench.dut.dma
    writer = WriteMaster(dma.aw, dma.w, dma.b, random_bursts(rng, cfg, 20, lo=MEM // 2),
                         rng=random.Random(seed + 1), idle=0.2, backpressure=0.3)
    readers = bench.masters(random_bursts(rng, cfg, 15, hi=MEM // 2),
                            random_bursts(rng, cfg, 15, hi=MEM // 2),
                            rng=random.Random(seed + 2), idle=0.2, backpressure=0.2)
    final = {}

    async def finish(ctx):
        while len(writer.responses) < len(writer.bursts):
            await ctx.tick()
        final["memory"] = bench.ram.contents(ctx)

    bench.run(writer.issue, writer.write, writer.respond, finish,
              *(task for m in readers for task in (m.issue, m.receive)))
    where = f"seed {seed}"
    assert writer.responses == [(ident, Resp.OKAY) for _, _, ident in writer.bursts], where
    expected = writer.apply(memory)
    assert final["memory"] == expected, f"{where}: memory differs after the writes"
    assert final["memory"] != memory, where
    for master in readers:
        assert master.beats == master.expected(bench.ram, memory), where
    bench.monitor.check_writes()
    assert bench.monitor.aws == [(addr, length + 1) for addr, length, _ in writer.bursts]


@pytest.mark.parametrize("stall", [0.0, 0.4])
def test_round_robin(stall):
    """Both masters always have an AR waiting (40 single-beat bursts each): the shared port
    takes them strictly in turn, and neither waits more than two of its own handshakes'
    worth while the other goes."""
    cfg = make_config(64)
    rng = random.Random(5)
    memory = rng.randbytes(MEM)
    bench = ShareBench(cfg, memory, seed=5, stall=stall)
    bursts = [random_bursts(rng, cfg, 40, max_beats=1) for _ in range(2)]
    masters = bench.masters(*bursts, rng=rng)
    bench.run(*(task for m in masters for task in (m.issue, m.receive)))
    sources = [ident >> 1 for _, ident, _ in bench.bus_ars]
    assert len(sources) == 80
    assert all(a != b for a, b in pairwise(sources)), f"not in turn: {sources}"
    for master in masters:
        assert master.beats == master.expected(bench.ram, memory)
    if not stall:
        # With the port always ready, each master gets an AR every other cycle.
        for master in masters:
            gaps = {b - a for a, b in pairwise(master.ar_edges)}
            assert gaps == {2}, f"AR gaps {gaps}"


@pytest.mark.parametrize("seed", [6, 7])
def test_one_master_does_not_starve_the_other(seed):
    """The DMA streams long bursts back to back (its AR always valid) while the fetch asks
    now and then, the slave stalling and its AR queue filling: between a fetch AR's
    ``valid`` rising and its handshake the DMA gets at most one AR, and the other way
    round."""
    cfg = make_config(64)
    rng = random.Random(seed)
    memory = rng.randbytes(MEM)
    bench = ShareBench(cfg, memory, seed=seed, latency=4, stall=0.2)
    dma = ReadMaster(bench.dut.dma.ar, bench.dut.dma.r, random_bursts(rng, cfg, 60),
                     rng=random.Random(seed + 1))
    fetch = ReadMaster(bench.dut.fetch.ar, bench.dut.fetch.r,
                       random_bursts(rng, cfg, 12, max_beats=4), rng=random.Random(seed + 2),
                       idle=0.95)
    bench.run(*(task for m in (dma, fetch) for task in (m.issue, m.receive)), timeout=40_000)
    assert fetch.beats == fetch.expected(bench.ram, memory)
    assert dma.beats == dma.expected(bench.ram, memory)
    assert fetch.ar_edges[-1] < dma.ar_edges[-1], f"seed {seed}: the fetch did not overlap"
    for waiting, other in ((fetch, dma), (dma, fetch)):
        overtaken = [sum(raised < e < taken for e in other.ar_edges)
                     for raised, taken in zip(waiting.ar_raised, waiting.ar_edges, strict=True)]
        assert max(overtaken) <= 1, f"seed {seed}: an AR waited through {max(overtaken)}"
    assert max(b - a for a, b in zip(fetch.ar_raised, fetch.ar_edges, strict=True)) > 2, \
        f"seed {seed}: the fetch never had to wait; the test exercises less"


@pytest.mark.parametrize("source", ["dma", "fetch"])
def test_single_master_throughput(source):
    """One master alone, the port always ready: 32 single-beat bursts are taken one AR per
    cycle, and their beats and those of eight 8-beat bursts after them arrive one per cycle
    with no bubble."""
    cfg = make_config(64)
    rng = random.Random(8)
    memory = rng.randbytes(MEM)
    bench = ShareBench(cfg, memory, seed=8)
    bursts = random_bursts(rng, cfg, 32, max_beats=1)
    bursts += [(addr // 64 * 64, 7, ident) for addr, _, ident in random_bursts(rng, cfg, 8)]
    masters = bench.masters(bursts if source == "dma" else [],
                            [] if source == "dma" else bursts, rng=rng)
    master = masters[0 if source == "dma" else 1]
    bench.run(master.issue, master.receive)
    assert master.beats == master.expected(bench.ram, memory)
    ar_gaps = {b - a for a, b in pairwise(master.ar_edges[:32])}
    assert ar_gaps == {1}, f"AR gaps {ar_gaps}"
    edges = master.beat_edges
    assert edges[-1] - edges[0] == len(edges) - 1, f"R bubbles: {edges}"
    assert len(edges) == 32 + 8 * 8


def test_combinational_paths():
    """Driven at random without a slave, and looked at within each cycle: ``bus.ar.valid``
    and its payload do not change with ``bus.ar.ready``; an R beat goes to the master its ID
    names with the low ID bit, and ``bus.r.ready`` is that master's ``ready`` alone; AW, W
    and B are the DMA's."""
    cfg = make_config(32, addr_width=16)
    dut = AxiReadShare(cfg)
    bus, dma, fetch = dut.bus, dut.dma, dut.fetch
    rng = random.Random(9)
    seen = {"grants": 0}

    async def bench(ctx):
        ar_fields = ["valid", "id", "addr", "len", "size", "burst", "lock", "cache", "prot"]
        for cycle in range(400):
            for port in (dma, fetch):
                ctx.set(port.ar.valid, rng.random() < 0.7)
                ctx.set(port.ar.addr, rng.randrange(1 << 16))
                ctx.set(port.ar.id, rng.randrange(2))
                ctx.set(port.ar.len, rng.randrange(256))
                ctx.set(port.r.ready, rng.random() < 0.5)
            ctx.set(dma.b.ready, rng.random() < 0.5)
            ctx.set(dma.aw.valid, rng.random() < 0.5)
            ctx.set(dma.aw.addr, rng.randrange(1 << 16))
            ctx.set(dma.aw.id, rng.randrange(2))
            ctx.set(dma.w.valid, rng.random() < 0.5)
            ctx.set(dma.w.data, rng.getrandbits(32))
            r_id = rng.randrange(4)
            ctx.set(bus.r.valid, rng.random() < 0.7)
            ctx.set(bus.r.id, r_id)
            ctx.set(bus.r.data, rng.getrandbits(32))
            ctx.set(bus.b.id, rng.randrange(2))
            ctx.set(bus.b.valid, rng.random() < 0.5)
            for port in ("aw", "w"):
                ctx.set(getattr(bus, port).ready, rng.random() < 0.5)
            views = []
            for ready in (0, 1):
                ctx.set(bus.ar.ready, ready)
                views.append([ctx.get(getattr(bus.ar, f)) for f in ar_fields])
            assert views[0] == views[1], f"cycle {cycle}: bus.ar follows bus.ar.ready"
            ctx.set(bus.ar.ready, rng.random() < 0.6)
            # R steering.
            to_fetch = r_id >> 1
            valid = ctx.get(bus.r.valid)
            assert ctx.get(fetch.r.valid) == (valid and to_fetch)
            assert ctx.get(dma.r.valid) == (valid and not to_fetch)
            target = fetch if to_fetch else dma
            assert ctx.get(target.r.id) == r_id & 1
            assert ctx.get(target.r.data) == ctx.get(bus.r.data)
            assert ctx.get(bus.r.ready) == ctx.get(target.r.ready)
            # AW, W, B.
            assert ctx.get(bus.aw.valid) == ctx.get(dma.aw.valid)
            assert ctx.get(bus.aw.id) == ctx.get(dma.aw.id)
            assert ctx.get(bus.aw.addr) == ctx.get(dma.aw.addr)
            assert ctx.get(dma.aw.ready) == ctx.get(bus.aw.ready)
            assert ctx.get(bus.w.data) == ctx.get(dma.w.data)
            assert ctx.get(dma.w.ready) == ctx.get(bus.w.ready)
            assert ctx.get(dma.b.id) == ctx.get(bus.b.id) & 1
            assert ctx.get(dma.b.valid) == ctx.get(bus.b.valid)
            assert ctx.get(bus.b.ready) == ctx.get(dma.b.ready)
            # At most one master's AR is taken, and only while it is valid.
            d = ctx.get(dma.ar.valid) and ctx.get(dma.ar.ready)
            f = ctx.get(fetch.ar.valid) and ctx.get(fetch.ar.ready)
            assert not (d and f), f"cycle {cycle}: both ARs taken"
            seen["grants"] += d + f
            await ctx.tick()

    simulate(dut, bench)
    assert seen["grants"] > 100


def test_real_dma_and_fetch():
    """The real :class:`Dma` (random loads and stores) and :class:`Fetch` (a program) on one
    AXIRam through the share, at once, under stalls: the scratchpad and memory match the
    golden copies, every descriptor ends ``NONE``, and the program's words all arrive in
    order followed by its OVERRUN."""
    seed = 10
    cfg = make_config(64)
    rng = random.Random(seed)
    size = 65536
    memory, spad = random_bytes(rng, size), random_bytes(rng, cfg.spad_bytes)
    desc_rng = np.random.default_rng(seed)
    loads = random_descs(desc_rng, cfg.bus_bytes, 5, ext=(0x800, 0x8000), spad=(0, 0x8000))
    stores = random_descs(desc_rng, cfg.bus_bytes, 5, ext=(0x8000, 0xC000),
                          spad=(0x8000, 0x10000))
    expected_memory, _ = golden(stores, cfg.bus_bytes, load=False, memory=memory, spad=spad)
    _, expected_spad = golden(loads, cfg.bus_bytes, load=True, memory=memory, spad=spad)
    program_base, program_length = 0xC000, 40

    dma, fetch, share = Dma(cfg), Fetch(cfg), AxiReadShare(cfg)
    ram = AXIRam(addr_width=cfg.addr_width, data_width=cfg.bus_width, id_width=BUS_ID_WIDTH,
                 size=size, read_latency=3, stall=0.2, seed=seed, init=memory.tobytes())
    top = Module()
    top.submodules += [dma, fetch, share, ram]
    wiring.connect(top, dma.bus, share.dma)
    wiring.connect(top, fetch.ar, share.fetch.ar)
    wiring.connect(top, share.fetch.r, fetch.r)
    wiring.connect(top, share.bus, ram.bus)
    model = SpadModel(cfg, spad, random.Random(seed + 1), stall=0.2)
    monitor = BusMonitor(cfg, Window(0, size), ar=share.bus.ar, r=share.bus.r,
                         aw=share.bus.aw, w=share.bus.w, b=share.bus.b)
    stall_rng = random.Random(seed + 2)
    result = {"codes": {}, "fetched": []}

    def engine(port, descs, name):
        async def drive(ctx):
            for desc in descs:
                await stream_put(ctx, port.desc, desc.fields(), rng=stall_rng, idle=0.2)

        async def collect(ctx):
            result["codes"][name] = [await stream_get(ctx, port.done) for _ in descs]
            while ctx.get(port.busy):
                await ctx.tick()

        return drive, collect

    async def program(ctx):
        ctx.set(fetch.window_base, 0)
        ctx.set(fetch.window_limit, size)
        ctx.set(fetch.base, program_base)
        ctx.set(fetch.length, program_length)
        ctx.set(fetch.start, 1)
        await ctx.tick()
        ctx.set(fetch.start, 0)
        while True:
            p = await stream_get(ctx, fetch.instr, rng=stall_rng, backpressure=0.3)
            result["fetched"].append((FetchKind(p.kind), p.addr, p.word))
            if p.kind != FetchKind.WORD:
                break

    async def init(ctx):
        ctx.set(dma.window_base, 0x800)
        ctx.set(dma.window_limit, 0xC000)

    async def final(ctx):
        while len(result["codes"]) < 2 or len(result["fetched"]) <= program_length:
            await ctx.tick()
        while ctx.get(dma.load.busy) or ctx.get(dma.store.busy) or ctx.get(fetch.busy):
            await ctx.tick()
        result["memory"] = np.frombuffer(ram.contents(ctx), dtype=np.uint8).copy()

    async def serve(ctx):
        await model.run(ctx, dma.spad_w, dma.spad_r, dma.spad_rdata)

    simulate(top, init, *engine(dma.load, loads, "load"), *engine(dma.store, stores, "store"),
             program, final, background=[serve, monitor.run], timeout=60_000)
    assert result["codes"] == {"load": [DmaError.NONE] * len(loads),
                               "store": [DmaError.NONE] * len(stores)}
    assert (spad == expected_spad).all(), first_difference(spad, expected_spad)
    assert (result["memory"] == expected_memory).all(), \
        first_difference(result["memory"], expected_memory)
    words = [(FetchKind.WORD, program_base + 32 * i,
              int.from_bytes(memory[program_base + 32 * i:][:32].tobytes(), "little"))
             for i in range(program_length)]
    assert result["fetched"][:-1] == words
    assert result["fetched"][-1][:2] == (FetchKind.OVERRUN,
                                        program_base + program_length * INSTRUCTION_BYTES)
    monitor.check_writes()
    fetch_ars = [a for a in monitor.ars if program_base <= a[0] < program_base + 0x1000]
    assert len(fetch_ars) == program_length


def test_ports():
    cfg = preset("default")
    dut = AxiReadShare(cfg)
    members = dut.signature.members
    assert members["dma"] == wiring.In(axi_signature(cfg))
    assert members["fetch"] == wiring.In(read_signature(cfg))
    assert members["bus"] == wiring.Out(AXI4Signature(addr_width=32, data_width=64, id_width=2))
    assert set(read_signature(cfg).members) == {"ar", "r"}
    # The fetcher's channels are exactly the ones the share expects.
    fetch = Fetch(cfg)
    assert fetch.signature.members["ar"] == read_signature(cfg).members["ar"]
    assert fetch.signature.members["r"] == read_signature(cfg).members["r"]


def test_construction_errors():
    message = re.escape("config must be a JalapenoConfig, not 'default'")
    with pytest.raises(TypeError, match=f"^{message}$"):
        AxiReadShare("default")
    with pytest.raises(TypeError, match=f"^{message}$"):
        read_signature("default")


@pytest.mark.parametrize("name", list(PRESETS))
def test_converts_to_verilog(name):
    text = verilog.convert(AxiReadShare(preset(name)), name="axi_read_share")
    assert "module axi_read_share" in text
    assert re.search(r"output \[1:0\] bus__ar__id", text)
