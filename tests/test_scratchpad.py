# amaranth: UnusedElaboratable=no
import random
from collections import deque

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib.wiring import connect
from dma_slave import fake_accumulator

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig, preset
from rtl.dma.scratchpad import Scratchpad
from rtl.systolic.accumulator import AccumulatorMemory
from verification.models.dma import acc_image

PRESET_NAMES = ["tiny", "default", "large"]
#: Shapes beyond the presets: a vector wider than a bus word, with rows padded past ``cols * 4``
#: bytes; a vector narrower than a word (``vector_bytes`` 3, pitch 4); two and four
#: accumulator rows per bus word; four banks; an accumulator larger than the scratchpad, which
#: leaves a gap of bad addresses between the two spaces.
CUSTOM = {
    "wide": (JalapenoConfig(name="wide", rows=16, cols=12, acc_depth=64, spad_bytes=4096), 2),
    "narrow": (JalapenoConfig(name="narrow", rows=2, cols=3, acc_depth=16, bus_width=128,
                              spad_bytes=1024), 4),
    "two_rows": (JalapenoConfig(name="two_rows", rows=4, cols=2, acc_depth=32, bus_width=128,
                                spad_bytes=2048), 2),
    "four_rows": (JalapenoConfig(name="four_rows", rows=1, cols=1, acc_depth=8, bus_width=128,
                                 spad_bytes=1024), 1),
    "gap": (JalapenoConfig(name="gap", rows=2, cols=8, acc_depth=64, spad_bytes=1024), 2),
}
SHAPES = [pytest.param(name, id=name) for name in PRESET_NAMES + list(CUSTOM)]


def make(name):
    if name in CUSTOM:
        cfg, banks = CUSTOM[name]
        return Scratchpad(cfg, banks=banks)
    return Scratchpad(preset(name))


def zero_rows(cfg):
    return np.zeros((cfg.acc_depth, cfg.cols), np.int64)


class Golden:
    """The scratchpad bytes and the accumulator rows as the DMA sees them."""

    def __init__(self, spad, rows=None):
        cfg = spad.config
        rows = zero_rows(cfg) if rows is None else rows
        self.spad = spad
        self.mem = np.zeros(cfg.spad_bytes, np.uint8)
        self.acc = acc_image(rows)

    def write(self, beat):
        cfg = self.spad.config
        if beat["addr"] % cfg.bus_bytes:
            return
        for k in range(cfg.bus_bytes):
            if beat["strb"] >> k & 1:
                self.mem[beat["addr"] + k] = beat["data"] >> 8 * k & 0xff

    def vector(self, addr):
        if addr % self.spad.vector_pitch:
            return [0] * self.spad.vector_bytes
        return self.mem[addr:addr + self.spad.vector_bytes].view(np.int8).tolist()

    def word(self, addr):
        cfg, spad = self.spad.config, self.spad
        if addr % cfg.bus_bytes:
            return 0
        if addr < cfg.spad_bytes:
            return int.from_bytes(self.mem[addr:addr + cfg.bus_bytes].tobytes(), "little")
        if spad.config.acc_base <= addr < spad.config.acc_base + spad.config.acc_bytes:
            offset = addr - spad.config.acc_base
            return int.from_bytes(self.acc[offset:offset + cfg.bus_bytes].tobytes(), "little")
        return 0


def beat(spad, addr, data, strb=None):
    """A DMA write of ``data`` at ``addr``, all strobes unless ``strb``."""
    strb = (1 << spad.config.bus_bytes) - 1 if strb is None else strb
    return {"addr": addr, "data": data, "strb": strb}


def fill(spad, byte):
    """A bus word of ``byte`` repeated."""
    return int.from_bytes(bytes([byte]) * spad.config.bus_bytes, "little")


def state_before(spad, writes, edge, rows=None):
    """The golden model after the scheduled ``(edge, beat)`` writes landed before ``edge``: each
    is taken at its scheduled edge (DMA writes are always taken when offered) and lands at the
    next one."""
    golden = Golden(spad, rows)
    for at, w in writes:
        if at + 1 < edge:
            golden.write(w)
    return golden


def random_rows(rng, cfg):
    return rng.integers(-2**31, 2**31, size=(cfg.acc_depth, cfg.cols), dtype=np.int64)


def monitor(spad, golden, log):
    """A background testbench that updates ``golden`` at every edge and appends to ``log["vec"]``
    and ``log["dma"]``, in acceptance order, for every vector and DMA read, what it would return
    if issued at each edge after its acceptance up to the one before its response leaves
    (``"seen"``: ``(edge, value)`` pairs, each seeing the writes landed at earlier edges only, a
    write landing at the edge after the one that takes it; see :func:`check_reads`). It also
    counts in ``log["conflicts"]`` the edges at which both readers asked for one bank, and in
    ``log["collisions"]`` the reads whose bytes were written between their acceptance and their
    response."""
    cfg = spad.config

    def spot(addr, size):
        if addr >= cfg.spad_bytes or addr % size:
            return None
        return addr // spad.bank_bytes, addr // spad.line_bytes

    readers = {"vec": (spad.vec_r, spad.vec_data, spad.vector_pitch, golden.vector),
               "dma": (spad.dma_r, spad.dma_rdata, cfg.bus_bytes, golden.word)}
    open_reads = {name: deque() for name in readers}

    async def watch(ctx):
        edge = 0
        landing = None  # the write taken at the edge before, which lands at this one
        while True:
            signals = [signal for request, response, *_ in readers.values()
                       for signal in (request.valid, request.ready, request.payload,
                                      response.valid, response.ready)]
            (_, _, w_valid, w_beat, *sampled) = await ctx.tick().sample(
                spad.dma_w.valid, spad.dma_w.payload, *signals)
            asked = {}
            for k, (name, (_, _, unit, value)) in enumerate(readers.items()):
                valid, ready, addr, out_valid, out_ready = sampled[5 * k:5 * k + 5]
                asked[name] = spot(addr, unit) if valid else None
                reads = open_reads[name]
                if out_valid and out_ready:
                    read = reads.popleft()
                    first = read["seen"][0][1] if read["seen"] else None
                    log["collisions"] += any(seen != first for _, seen in read["seen"])
                for read in reads:
                    read["seen"].append((edge, value(read["addr"])))
                if valid and ready:
                    reads.append({"addr": addr, "seen": []})
                    log[name].append(reads[-1])
            if asked["vec"] and asked["dma"] and asked["vec"][0] == asked["dma"][0]:
                log["conflicts"] += 1
            if landing:
                golden.write(landing)
            landing = w_valid and {"addr": w_beat.addr, "data": w_beat.data, "strb": w_beat.strb}
            edge += 1

    return watch


def check_reads(got, log, seed, name):
    """The responses ``got`` of one reader against the monitor's ``log[name]``: a read sees the
    memory as it is at the edge it is issued from its entry register, after its acceptance edge
    and before its response edge, and reads are issued in order, one per edge. Each response
    must then be the value of such an edge later than the edge chosen for the read before it
    (the earliest that fits is chosen, which leaves the most choice to the reads that
    follow)."""
    issued = -1
    assert len(got) == len(log), f"seed {seed}: {len(got)} {name} responses, {len(log)} reads"
    for k, (value, read) in enumerate(zip(got, log, strict=True)):
        edges = [edge for edge, seen in read["seen"] if edge > issued and seen == value]
        assert edges, f"seed {seed}: {name} read {k} of address {read['addr']:#x}: {value} " \
            f"is none of {[seen for edge, seen in read['seen'] if edge > issued]}"
        issued = edges[0]


def hot_addresses(spad, unit, rng, count, *, lines=3):
    """Addresses of ``unit`` bytes in the first ``lines`` lines of every bank, so that reads
    often find written data and ports often meet in one bank."""
    per_line = spad.line_bytes // unit
    return [int(rng.integers(spad.banks)) * spad.bank_bytes
            + int(rng.integers(lines)) * spad.line_bytes + int(rng.integers(per_line)) * unit
            for _ in range(count)]


def first_mismatch(got, expected):
    return next((i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a != b), None)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("name", SHAPES)
def test_concurrent_against_golden(name, seed):
    """Random DMA writes with random strobes, random DMA reads of both spaces and random vector
    reads, all at once under random idle cycles, backpressure and accumulator latency, match
    the golden byte array read at each read's issue edge (:func:`check_reads`), in order;
    ``error`` stays low."""
    rng = np.random.default_rng(seed)
    stall = random.Random(seed)
    spad = make(name)
    cfg = spad.config
    rows = random_rows(rng, cfg)
    golden = Golden(spad, rows)
    writes = [{"addr": addr, "data": int.from_bytes(rng.bytes(cfg.bus_bytes), "little"),
               "strb": int(rng.integers(1 << cfg.bus_bytes))}
              for addr in hot_addresses(spad, cfg.bus_bytes, rng, 120)]
    acc_words = spad.config.acc_bytes // cfg.bus_bytes
    dma_reads = [addr if rng.random() < 0.7 else
                 spad.config.acc_base + int(rng.integers(acc_words)) * cfg.bus_bytes
                 for addr in hot_addresses(spad, cfg.bus_bytes, rng, 80)]
    vec_reads = hot_addresses(spad, spad.vector_pitch, rng, 120)
    log = {"vec": [], "dma": [], "conflicts": 0, "collisions": 0}
    got = {"vec": [], "dma": []}

    async def write(ctx):
        for beat in writes:
            await stream_put(ctx, spad.dma_w, beat, rng=stall, idle=0.3)

    async def dma_read(ctx):
        for addr in dma_reads:
            await stream_put(ctx, spad.dma_r, addr, rng=stall, idle=0.3)

    async def dma_take(ctx):
        for _ in dma_reads:
            got["dma"].append(await stream_get(ctx, spad.dma_rdata, rng=stall, backpressure=0.3))

    async def vec_read(ctx):
        for addr in vec_reads:
            await stream_put(ctx, spad.vec_r, addr, rng=stall, idle=0.2)

    async def vec_take(ctx):
        for _ in vec_reads:
            got["vec"].append(list(await stream_get(ctx, spad.vec_data, rng=stall,
                                                    backpressure=0.3)))
        for _ in range(6):
            await ctx.tick()
        assert not ctx.get(spad.error), f"seed {seed}: error raised by good addresses"

    simulate(spad, write, dma_read, dma_take, vec_read, vec_take,
             background=[monitor(spad, golden, log),
                         fake_accumulator(spad, rows, rng=stall, latency=(1, 5), ready=0.6)])
    check_reads(got["vec"], log["vec"], seed, "vector")
    check_reads(got["dma"], log["dma"], seed, "DMA")
    assert log["conflicts"] >= 3 and log["collisions"] >= 3, \
        f"seed {seed}: {log['conflicts']} conflicts, {log['collisions']} collisions"


@pytest.mark.parametrize("name", SHAPES)
def test_accumulator_words(name):
    """Every bus word of the accumulator space, in random order under random accumulator latency
    and backpressure, is its rows' int32 lanes as little-endian bytes, each row at
    ``acc_row_bytes`` with zero padding."""
    seed = 7
    rng = np.random.default_rng(seed)
    stall = random.Random(seed)
    spad = make(name)
    cfg = spad.config
    rows = random_rows(rng, cfg)
    golden = Golden(spad, rows)
    words = rng.permutation(spad.config.acc_bytes // cfg.bus_bytes)[:96]
    addrs = [spad.config.acc_base + int(word) * cfg.bus_bytes for word in words]

    async def ask(ctx):
        for addr in addrs:
            await stream_put(ctx, spad.dma_r, addr, rng=stall, idle=0.2)

    async def take(ctx):
        for addr in addrs:
            word = await stream_get(ctx, spad.dma_rdata, rng=stall, backpressure=0.3)
            assert word == golden.word(addr), f"seed {seed}: address {addr:#x}"

    simulate(spad, ask, take,
             background=[fake_accumulator(spad, rows, rng=stall, latency=(1, 6), ready=0.7)])


def test_accumulator_byte_layout():
    """On ``default``, lane ``c`` of row ``r`` is the little-endian int32 at byte
    ``acc_base + 32 r + 4 c``: the bytes of a known row, word by word."""
    spad = Scratchpad(preset("default"))
    rows = zero_rows(spad.config)
    rows[5] = [0x04030201, -1, 0x7fffffff, -2**31, 0, 1, -2, 0x0a0b0c0d]
    expected = [0xffffffff_04030201, 0x80000000_7fffffff, 0x00000001_00000000,
                0x0a0b0c0d_fffffffe]
    got = []

    async def ask(ctx):
        for k in range(4):
            await stream_put(ctx, spad.dma_r, spad.config.acc_base + 5 * 32 + 8 * k)

    async def take(ctx):
        for _ in range(4):
            got.append(await stream_get(ctx, spad.dma_rdata))

    simulate(spad, ask, take, background=[fake_accumulator(spad, rows)])
    assert spad.config.acc_base == 65536 and spad.config.acc_row_bytes == 32
    assert got == expected


def _row_word(values, k):
    """Bus word ``k`` of an accumulator row of int32 ``values`` (two lanes a word)."""
    return int.from_bytes(np.asarray(values[2 * k:2 * k + 2], "<i4").tobytes(), "little")


def counter(spad, reads):
    """A background process appending to ``reads`` for every accumulator row read taken."""
    async def count(ctx):
        while True:
            _, _, valid, ready = await ctx.tick().sample(spad.acc_read.valid,
                                                         spad.acc_read.ready)
            if valid and ready:
                reads.append(1)
    return count


def test_accumulator_row_read_once():
    """A row's four words cost one accumulator read while the requests stay on it; the kept
    copy is used until another row is asked for or ``acc_flush``: a row changed behind a kept
    copy reads old bytes without a flush, new ones after it."""
    spad = Scratchpad(preset("default"))
    base, rows = spad.config.acc_base, zero_rows(spad.config)
    rows[5] = np.arange(8) + 100
    reads, got = [], []

    async def ask(ctx):
        for k in range(4):
            await stream_put(ctx, spad.dma_r, base + 5 * 32 + 8 * k)
        for _ in range(8):
            await ctx.tick()
        rows[5] = np.arange(8) + 200  # the array writes row 5
        await stream_put(ctx, spad.dma_r, base + 5 * 32)  # still the kept copy
        ctx.set(spad.acc_flush, 1)
        await ctx.tick()
        ctx.set(spad.acc_flush, 0)
        await stream_put(ctx, spad.dma_r, base + 5 * 32 + 8)

    async def take(ctx):
        for _ in range(6):
            got.append(await stream_get(ctx, spad.dma_rdata))

    simulate(spad, ask, take,
             background=[fake_accumulator(spad, rows), counter(spad, reads)])
    old, new = np.arange(8) + 100, np.arange(8) + 200
    assert got == [_row_word(old, k) for k in range(4)] + \
        [_row_word(old, 0), _row_word(new, 1)]
    assert len(reads) == 2


def test_acc_flush_with_requests_waiting():
    """``acc_flush`` applies to the requests accepted after it, in request order: requests
    accepted into the entry register before it (behind a full response queue) still read the
    kept copy of the row, those accepted after it read the row afresh; a flush followed by a
    scratchpad read ends the copy's use as well."""
    spad = Scratchpad(preset("default"))
    base, rows = spad.config.acc_base, zero_rows(spad.config)
    rows[5] = np.arange(8) + 100
    row5 = base + 5 * 32
    reads, got = [], []
    release = 30

    async def flush(ctx):
        ctx.set(spad.acc_flush, 1)
        await ctx.tick()
        ctx.set(spad.acc_flush, 0)

    async def ask(ctx):
        await stream_put(ctx, spad.dma_r, row5)  # read and kept
        for _ in range(6):
            await ctx.tick()
        # dma_rdata is not taken now: four requests fill the response order queue, two more
        # wait in the entry register, which is then full.
        for k in [1, 2, 3, 0, 1, 2]:
            await stream_put(ctx, spad.dma_r, row5 + 8 * k)
        await ctx.tick()
        assert not ctx.get(spad.dma_r.ready), "the entry register should be full"
        rows[5] = np.arange(8) + 200  # the array writes row 5
        await flush(ctx)
        for k in [3, 0]:
            await stream_put(ctx, spad.dma_r, row5 + 8 * k)
        for _ in range(8):
            await ctx.tick()
        rows[5] = np.arange(8) + 300
        await flush(ctx)
        await stream_put(ctx, spad.dma_r, 0)
        await stream_put(ctx, spad.dma_r, row5 + 8)

    async def take(ctx):
        got.append(await stream_get(ctx, spad.dma_rdata))
        for _ in range(release):
            await ctx.tick()
        for _ in range(10):
            got.append(await stream_get(ctx, spad.dma_rdata))

    simulate(spad, ask, take,
             background=[fake_accumulator(spad, rows), counter(spad, reads)])
    old, new, newer = (np.arange(8) + offset for offset in (100, 200, 300))
    assert got == [_row_word(old, k) for k in [0, 1, 2, 3, 0, 1, 2]] + \
        [_row_word(new, 3), _row_word(new, 0), 0, _row_word(newer, 1)]
    assert len(reads) == 3


@pytest.mark.parametrize("name", ["tiny", "four_rows"])
def test_with_accumulator_memory(name):
    """Connected to a real :class:`AccumulatorMemory` (the matrix unit's read port shapes),
    rows overwritten through its update port read back through the DMA read port."""
    spad = make(name)
    cfg = spad.config
    acc = AccumulatorMemory(cfg)
    top = Module()
    top.submodules.spad = spad
    top.submodules.acc = acc
    connect(top, spad.acc_read, acc.read)
    connect(top, acc.read_data, spad.acc_data)
    rng = np.random.default_rng(3)
    rows = random_rows(rng, cfg)
    golden = Golden(spad, rows)
    addrs = [spad.config.acc_base + word * cfg.bus_bytes
             for word in range(spad.config.acc_bytes // cfg.bus_bytes)][:64]

    async def bench(ctx):
        for r in range(cfg.acc_depth):
            await stream_put(ctx, acc.update, {"addr": r, "data": rows[r].tolist(),
                                               "accumulate": 0, "lanes": (1 << cfg.cols) - 1})
        for _ in range(3):
            await ctx.tick()
        for addr in addrs:
            await stream_put(ctx, spad.dma_r, addr)

    async def take(ctx):
        for addr in addrs:
            assert await stream_get(ctx, spad.dma_rdata) == golden.word(addr), hex(addr)

    simulate(top, bench, take)


def run_schedule(spad, *, writes=(), dma_reads=(), vec_reads=(), cycles, rows=None,
                 vec_ready=lambda edge: True):
    """Offer each port's ``(first_edge, payload)`` beats in order from their edges on, take
    every output beat (``vec_data`` when ``vec_ready(edge)``), serve the accumulator with
    latency 2; return, per port, the edges at which its requests were taken and the
    ``(edge, value)`` outputs."""
    queues = {"w": deque(writes), "r": deque(dma_reads), "v": deque(vec_reads)}
    ports = {"w": spad.dma_w, "r": spad.dma_r, "v": spad.vec_r}
    taken = {key: [] for key in queues}
    out = {"vec": [], "dma": []}

    async def bench(ctx):
        ctx.set(spad.dma_rdata.ready, 1)
        for edge in range(cycles):
            ctx.set(spad.vec_data.ready, vec_ready(edge))
            for key, queue in queues.items():
                offer = bool(queue) and queue[0][0] <= edge
                ctx.set(ports[key].valid, offer)
                if offer:
                    ctx.set(ports[key].payload, queue[0][1])
            _, _, *sampled = await ctx.tick().sample(
                *(ports[key].ready for key in queues), spad.vec_data.valid,
                spad.vec_data.ready, spad.vec_data.payload, spad.dma_rdata.valid,
                spad.dma_rdata.payload)
            for key, ready in zip(queues, sampled[:3], strict=True):
                if ready and queues[key] and queues[key][0][0] <= edge:
                    queues[key].popleft()
                    taken[key].append(edge)
            v_valid, v_ready, vector, d_valid, word = sampled[3:]
            if v_valid and v_ready:
                out["vec"].append((edge, list(vector)))
            if d_valid:
                out["dma"].append((edge, word))
        assert not any(queues.values()), "requests left over"

    rows = zero_rows(spad.config) if rows is None else rows
    simulate(spad, bench, background=[fake_accumulator(spad, rows)])
    return taken, out


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_full_throughput(name):
    """A vector per cycle from bank 0 while the DMA writes a word per cycle into banks 0 and 1
    and reads a word per cycle from bank 1: every request is taken at the edge it is offered,
    vectors leave two edges later and words three edges later, back to back, each with the
    bytes of the writes landed before its issue (the edge after its acceptance). Then
    accumulator words, one per cycle, as fast."""
    spad = make(name)
    cfg = spad.config
    n = 24
    rng = np.random.default_rng(5)
    rows = random_rows(rng, cfg)
    writes = [(k, beat(spad, (k % 2) * spad.bank_bytes + k // 2 * cfg.bus_bytes,
                       int.from_bytes(rng.bytes(cfg.bus_bytes), "little"))) for k in range(n)]
    vec_reads = [(k, k // 4 * spad.vector_pitch) for k in range(n)]
    spad_reads = [(k, spad.bank_bytes + k // 4 * cfg.bus_bytes) for k in range(n)]
    acc_reads = [(n + k, spad.config.acc_base + k * cfg.bus_bytes) for k in range(n)]
    taken, out = run_schedule(spad, writes=writes, vec_reads=vec_reads,
                              dma_reads=spad_reads + acc_reads, cycles=2 * n + 6, rows=rows)
    assert taken == {"w": list(range(n)), "v": list(range(n)), "r": list(range(2 * n))}
    assert [edge for edge, _ in out["vec"]] == [k + spad.latency for k in range(n)]
    assert [edge for edge, _ in out["dma"]] == [k + 3 for k in range(2 * n)]
    assert [vector for _, vector in out["vec"]] == \
        [state_before(spad, writes, k + 1).vector(addr) for k, addr in vec_reads]
    assert [word for _, word in out["dma"]] == \
        [state_before(spad, writes, k + 1, rows).word(addr)
         for k, addr in spad_reads + acc_reads]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("name", SHAPES)
def test_dma_read_latency_and_throughput(name, seed):
    """Back-to-back DMA reads of random scratchpad words, with random writes and, in another
    bank, random vector reads at the same time: every read is taken at the edge it is offered,
    one per edge, and its word leaves three edges after that, back to back, with the bytes of
    the writes landed before its issue (the edge after its acceptance)."""
    rng = np.random.default_rng(seed)
    spad = make(name)
    cfg = spad.config
    n, start = int(rng.integers(8, 33)), int(rng.integers(0, 6))
    # Vector reads in bank 0 when there are several banks, DMA reads in the others.
    dma_banks = range(1, spad.banks) if spad.banks > 1 else range(1)
    words_per_bank = spad.bank_bytes // cfg.bus_bytes
    lines = min(words_per_bank, 4 * spad.line_bytes // cfg.bus_bytes)
    dma_reads = [(start + k, int(rng.choice(dma_banks)) * spad.bank_bytes
                  + int(rng.integers(lines)) * cfg.bus_bytes) for k in range(n)]
    vec_reads = [(edge, int(rng.integers(4)) * spad.vector_pitch)
                 for edge in range(start + n + 2) if spad.banks > 1 and rng.random() < 0.7]
    writes = [(edge, beat(spad, int(rng.choice(dma_banks)) * spad.bank_bytes
                          + int(rng.integers(lines)) * cfg.bus_bytes,
                          int.from_bytes(rng.bytes(cfg.bus_bytes), "little"),
                          int(rng.integers(1 << cfg.bus_bytes))))
              for edge in range(start + n + 2) if rng.random() < 0.6]
    taken, out = run_schedule(spad, writes=writes, vec_reads=vec_reads, dma_reads=dma_reads,
                              cycles=start + n + 8)
    assert taken["r"] == [edge for edge, _ in dma_reads], f"seed {seed}: {taken['r']}"
    assert taken["v"] == [edge for edge, _ in vec_reads], f"seed {seed}: {taken['v']}"
    assert [edge for edge, _ in out["dma"]] == [edge + 3 for edge, _ in dma_reads], \
        f"seed {seed}: words left at {[edge for edge, _ in out['dma']]}"
    expected = [state_before(spad, writes, edge + 1).word(addr) for edge, addr in dma_reads]
    index = first_mismatch([word for _, word in out["dma"]], expected)
    assert index is None, f"seed {seed}: DMA read {index} of {dma_reads[index][1]:#x}"


def test_accumulator_rows_per_word_throughput():
    """With four accumulator rows per bus word, a word takes four row reads, one per cycle,
    from the edge after its acceptance (both requests wait in the entry register)."""
    spad = make("four_rows")
    reads = [(0, spad.config.acc_base + k * 16) for k in range(2)]
    taken, out = run_schedule(spad, dma_reads=reads, cycles=14)
    assert taken["r"] == [0, 1]
    # Row reads at edges 1-4 and 5-8, each row two edges later.
    assert [edge for edge, _ in out["dma"]] == [4 + 2, 8 + 2]


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_conflicts(name):
    """Same bank, same edge (both reads arbitrate the edge after their acceptance): the vector
    read is issued, the DMA read one edge later (its word leaves two edges after its issue).
    Different banks: both at once. Neither loses data."""
    spad = make(name)
    writes = [(0, beat(spad, 0, fill(spad, 0x3c))),
              (1, beat(spad, spad.bank_bytes, fill(spad, 0xa5)))]
    taken, out = run_schedule(spad, writes=writes, vec_reads=[(4, 0), (8, spad.bank_bytes)],
                              dma_reads=[(4, 0), (8, 0)], cycles=16)
    assert taken["v"] == [4, 8]
    assert taken["r"] == [4, 8]
    assert [edge for edge, _ in out["dma"]] == [6 + 2, 9 + 2]
    golden = state_before(spad, writes, 3)
    assert [v for _, v in out["vec"]] == [golden.vector(0), golden.vector(spad.bank_bytes)]
    assert [w for _, w in out["dma"]] == [golden.word(0)] * 2


def test_dma_read_never_starves():
    """Vector reads of bank 0 every cycle hold off a DMA read of bank 0 for
    ``DMA_READ_MAX_WAIT`` edges; at the next it wins, and the vector read waits that one edge
    in its entry register, which then takes no request at the edge after. Both DMA reads are
    accepted at once into the entry register; the first arbitrates from the edge after its
    acceptance, the second from the edge after the first's issue."""
    spad = make("default")
    wait = Scratchpad.DMA_READ_MAX_WAIT
    taken, out = run_schedule(spad, vec_reads=[(0, 8 * (k % 4)) for k in range(20)],
                              dma_reads=[(2, 16), (2, 24)], cycles=40)
    assert taken["r"] == [2, 3]
    stalls = [3 + wait, 3 + 2 * wait + 1]
    assert [edge for edge, _ in out["dma"]] == [edge + 2 for edge in stalls]
    assert taken["v"] == [edge for edge in range(22) if edge - 1 not in stalls]
    assert len(out["vec"]) == 20


@pytest.mark.parametrize("name", ["default", "narrow", "wide"])
def test_read_during_write(name):
    """A read issued at the edge a write lands on its bytes (the edge after the one that takes
    the write) returns the old bytes and one issued the edge after the new ones, on both read
    ports; both are issued at the edge after their acceptance (so one accepted at the write's
    landing edge sees the new bytes). A vector stalled on ``vec_data`` keeps its value while
    its bytes are rewritten and its bank serves DMA reads."""
    spad = make(name)
    a, b, c, d = (beat(spad, 0, fill(spad, byte)) for byte in (0x5a, 0xc3, 0x0f, 0x81))
    writes = [(0, a), (5, b), (9, c), (13, d)]
    other = 8 * spad.config.bus_bytes
    taken, out = run_schedule(
        spad, writes=writes, vec_reads=[(5, 0), (6, 0), (11, 0)],
        dma_reads=[(9, 0), (10, 0), (12, other), (13, 0), (14, 0), (16, 0)],
        vec_ready=lambda edge: edge < 12 or edge > 16, cycles=24)
    assert taken == {"w": [0, 5, 9, 13], "v": [5, 6, 11], "r": [9, 10, 12, 13, 14, 16]}
    state = [state_before(spad, writes, edge) for edge in (2, 7, 11, 15)]
    assert out["vec"] == [(7, state[0].vector(0)), (8, state[1].vector(0)),
                          (17, state[2].vector(0))]
    assert out["dma"] == [(12, state[1].word(0)), (13, state[2].word(0)), (15, 0),
                          (16, state[2].word(0)), (17, state[3].word(0)),
                          (19, state[3].word(0))]
    assert len({state[k].word(0) for k in range(4)}) == 4


@pytest.mark.parametrize("name", ["tiny", "narrow", "gap"])
def test_error_flag(name):
    """Misaligned writes write nothing; misaligned vector reads and misaligned or out-of-range
    DMA reads return zeros, in order among good responses. ``error`` rises with the first bad
    request accepted and stays; bad addresses offered without ``valid`` are not looked at."""
    spad = make(name)
    cfg = spad.config
    good = beat(spad, 0, fill(spad, 0xff))
    golden = Golden(spad)
    golden.write(good)
    cases = [("dma_w", beat(spad, cfg.bus_bytes // 2, 0)), ("dma_w", beat(spad, 1, 0)),
             ("vec_r", spad.vector_pitch // 2), ("vec_r", spad.vector_pitch + 1),
             ("dma_r", 1), ("dma_r", spad.config.acc_base + 2)]
    if spad.config.acc_bytes < spad.config.acc_base:
        cases += [("dma_r", spad.config.acc_base + spad.config.acc_bytes),
                  ("dma_r", (1 << spad.config.local_addr_width) - cfg.bus_bytes)]
    if spad.config.acc_base > cfg.spad_bytes:
        cases += [("dma_r", cfg.spad_bytes), ("dma_r", spad.config.acc_base - cfg.bus_bytes)]
    for port, payload in cases:
        got = {"vec": [], "dma": []}

        async def bench(ctx, port=port, payload=payload, got=got):
            await stream_put(ctx, spad.dma_w, good)
            ctx.set(getattr(spad, port).payload, payload)
            for _ in range(3):
                await ctx.tick()
            assert not ctx.get(spad.error), f"{port} {payload}: error without valid"
            for addr in (0, payload if port == "vec_r" else 0, 0):
                await stream_put(ctx, spad.vec_r, addr)
                got["vec"].append(list(await stream_get(ctx, spad.vec_data)))
            for addr in (0, payload if port == "dma_r" else 0, 0):
                await stream_put(ctx, spad.dma_r, addr)
                got["dma"].append(await stream_get(ctx, spad.dma_rdata))
            if port == "dma_w":
                await stream_put(ctx, spad.dma_w, payload)
                await stream_put(ctx, spad.dma_r, 0)
                got["dma"].append(await stream_get(ctx, spad.dma_rdata))
            assert ctx.get(spad.error), f"{port} {payload}: no error"
            await stream_put(ctx, spad.dma_w, good)
            for _ in range(3):
                await ctx.tick()
            assert ctx.get(spad.error), f"{port} {payload}: error not sticky"

        simulate(spad, bench, background=[fake_accumulator(spad, zero_rows(cfg))])
        vector, word = golden.vector(0), golden.word(0)
        assert got["vec"] == [vector, [0] * len(vector) if port == "vec_r" else vector,
                              vector], (port, payload)
        # A bad write of zeros over word 0 would show here had it been written.
        assert got["dma"] == [word, 0 if port == "dma_r" else word, word] + \
            ([word] if port == "dma_w" else []), (port, payload)


def test_geometry():
    """Line, bank and address-space geometry of every preset and of the custom shapes."""
    table = {name: (s.vector_bytes, s.vector_pitch, s.line_bytes, s.banks, s.bank_bytes,
                    s.config.acc_row_bytes, s.config.acc_base, s.config.local_addr_width)
             for name in PRESET_NAMES + list(CUSTOM) for s in [make(name)]}
    assert table == {
        "tiny": (4, 4, 4, 2, 4096, 16, 8192, 14),
        "default": (8, 8, 8, 2, 32768, 32, 65536, 17),
        "large": (16, 16, 16, 2, 65536, 64, 131072, 18),
        "wide": (16, 16, 16, 2, 2048, 64, 4096, 13),
        "narrow": (3, 4, 16, 4, 256, 16, 1024, 11),
        "two_rows": (4, 4, 16, 2, 1024, 8, 2048, 12),
        "four_rows": (1, 1, 16, 1, 1024, 4, 1024, 11),
        "gap": (8, 8, 8, 2, 512, 32, 2048, 12),
    }
    big = JalapenoConfig(rows=4, cols=64, acc_depth=1024, spad_bytes=1024)
    assert (big.acc_bytes, big.acc_base, big.local_addr_width) == (262144, 262144, 19)


def test_construction_errors():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 'default'$"):
        Scratchpad("default")
    with pytest.raises(TypeError, match=r"^banks must be an integer, not 2\.0$"):
        Scratchpad(preset("tiny"), banks=2.0)
    with pytest.raises(TypeError, match=r"^banks must be an integer, not True$"):
        Scratchpad(preset("tiny"), banks=True)
    for banks in (0, 3, 4096):
        with pytest.raises(ValueError,
                           match=rf"^banks must be a power of two from 1 to 2048, not {banks}$"):
            Scratchpad(preset("tiny"), banks=banks)
    Scratchpad(preset("tiny"), banks=2048)
    with pytest.raises(ValueError, match=r"^the accumulator memory \(2 rows of 4 bytes\) must be "
                                         r"at least one bus word \(16 bytes\)$"):
        Scratchpad(JalapenoConfig(rows=1, cols=1, acc_depth=2, bus_width=128))


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_verilog(name):
    spad = make(name)
    text = verilog.convert(spad, name=f"scratchpad_{name}")
    for port in ("dma_w__payload", "dma_r__payload", "dma_rdata__payload", "vec_r__payload",
                 "vec_data__payload", "acc_read__payload", "acc_data__payload", "error"):
        assert port in text
