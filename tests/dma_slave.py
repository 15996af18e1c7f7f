"""The far side of the DMA tests: the AXI4 slave (:class:`sim.axi_ram.AXIRam`), a scratchpad
model, a bus monitor that checks every burst, and the golden model of a descriptor.

Every DMA test builds a :class:`Bench` around one engine (``ReadEngine``, ``WriteEngine`` or
``Dma``): the engine's AXI channels go to an ``AXIRam`` (latency, seeded stalls on every
channel, error ranges), its scratchpad ports to :class:`SpadModel` (random backpressure and
latency), and :class:`BusMonitor` watches the bus. Swapping the slave means changing
:meth:`Bench.__init__` only.
"""

import random
from dataclasses import dataclass

import numpy as np
from amaranth import Module
from amaranth.lib import wiring

from rtl.bus.axi import BURST_BOUNDARY, MAX_BURST_BEATS, Burst, Resp
from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from rtl.dma.descriptor import DmaError
from sim.axi_ram import AXIRam

__all__ = ["make_config", "Desc", "RefBurst", "reference_bursts", "expected_code", "bus_outcome",
           "copy_bursts", "Bench", "SpadModel", "BusMonitor", "random_descs", "wait_until",
           "random_bytes", "Run", "run_descriptors", "golden", "first_difference"]


def make_config(bus_width, *, addr_width=32, spad_bytes=65536):
    return JalapenoConfig(rows=2, cols=2, acc_depth=16, bus_width=bus_width,
                          addr_width=addr_width, spad_bytes=spad_bytes)


@dataclass(frozen=True)
class Desc:
    ext_addr: int
    spad_addr: int
    rows: int
    row_bytes: int
    ext_stride: int
    spad_stride: int

    def fields(self):
        return dict(self.__dict__)


@dataclass(frozen=True)
class RefBurst:
    """A burst the splitting rules give: external ``addr``, ``beats``, scratchpad ``spad``,
    and ``nbytes`` of it that are moved (less than ``beats * bus_bytes`` at a row's end)."""
    addr: int
    beats: int
    spad: int
    nbytes: int


def reference_bursts(cfg, desc):
    """The bursts of ``desc``: each row split at 256 beats and at every 4 KiB boundary."""
    nb = cfg.bus_bytes
    bursts = []
    for row in range(desc.rows):
        addr = desc.ext_addr + row * desc.ext_stride
        spad = desc.spad_addr + row * desc.spad_stride
        left = desc.row_bytes
        while left > 0:
            beats = min(-(-left // nb), MAX_BURST_BEATS,
                        (BURST_BOUNDARY - addr % BURST_BOUNDARY) // nb)
            nbytes = min(left, beats * nb)
            bursts.append(RefBurst(addr, beats, spad, nbytes))
            addr, spad, left = addr + beats * nb, spad + beats * nb, left - nbytes
    return bursts


def expected_code(cfg, desc, window):
    """The up-front outcome of ``desc`` with the window ``(base, limit)``."""
    nb = cfg.bus_bytes
    if desc.rows == 0 or desc.row_bytes == 0:
        return DmaError.NONE
    if any(v % nb for v in (desc.ext_addr, desc.ext_stride, desc.spad_addr, desc.spad_stride)):
        return DmaError.MISALIGNED
    ext_end = desc.ext_addr + (desc.rows - 1) * desc.ext_stride + -(-desc.row_bytes // nb) * nb
    if desc.ext_addr < window[0] or ext_end > window[1]:
        return DmaError.WINDOW
    if desc.spad_addr + (desc.rows - 1) * desc.spad_stride + desc.row_bytes > cfg.spad_bytes:
        return DmaError.SPAD_RANGE
    return DmaError.NONE


def bus_outcome(ram, bursts):
    """``(index, code)`` of the first of ``bursts`` the RAM answers with an error, or
    ``(len(bursts), NONE)``."""
    shift = ram.bytes_per_beat.bit_length() - 1
    for index, burst in enumerate(bursts):
        resp = ram.response(burst.addr, burst.beats - 1, shift, Burst.INCR)
        if resp != Resp.OKAY:
            return index, DmaError.SLVERR if resp == Resp.SLVERR else DmaError.DECERR
    return len(bursts), DmaError.NONE


def copy_bursts(bursts, *, load, memory, spad):
    """Apply ``bursts`` to the golden ``memory`` and ``spad`` (numpy byte arrays)."""
    for b in bursts:
        if load:
            spad[b.spad:b.spad + b.nbytes] = memory[b.addr:b.addr + b.nbytes]
        else:
            memory[b.addr:b.addr + b.nbytes] = spad[b.spad:b.spad + b.nbytes]


def random_descs(rng, cfg, count, *, ext=(0, 65536), spad=None, big=False):
    """``count`` valid descriptors with disjoint destinations (and sources) inside ``ext`` and
    the scratchpad: 1-byte rows, ragged rows, strides wider than rows, 4 KiB crossings, rows
    of more than 256 beats when ``big``, and zero-size ones."""
    nb = cfg.bus_bytes
    spad = (0, cfg.spad_bytes) if spad is None else spad
    ext_at, spad_at = ext[0], spad[0]
    descs = []
    for _ in range(count):
        kind = rng.choice(["one", "small", "ragged", "beats", "big" if big else "small", "zero"])
        row_bytes = {"one": 1, "small": rng.randint(1, 3 * nb), "ragged": rng.randint(1, 400),
                     "beats": nb * rng.randint(1, 40), "zero": rng.choice([0, 5]),
                     "big": MAX_BURST_BEATS * nb + rng.randint(1, 3 * nb)}[kind]
        rows = 0 if kind == "zero" and row_bytes else rng.randint(1, 3)
        span = -(-row_bytes // nb) * nb
        ext_stride = span + nb * rng.choice([0, 0, 1, 5])
        spad_stride = span + nb * rng.choice([0, 1, 3])
        ext_len = max(rows - 1, 0) * ext_stride + span
        spad_len = max(rows - 1, 0) * spad_stride + span
        if rng.random() < 0.3:  # start just short of a 4 KiB boundary
            boundary = -(-(ext_at + nb) // BURST_BOUNDARY) * BURST_BOUNDARY
            ext_at = max(ext_at, boundary - nb * rng.randint(1, 4))
        ext_at += nb * rng.randint(0, 3)
        spad_at += nb * rng.randint(0, 3)
        if ext_at + ext_len + nb > ext[1] or spad_at + spad_len + nb > spad[1]:
            break
        descs.append(Desc(ext_at, spad_at, rows, row_bytes, ext_stride, spad_stride))
        ext_at += ext_len + nb
        spad_at += spad_len + nb
    return descs


async def wait_until(ctx, condition):
    while not condition():
        await ctx.tick()


class SpadModel:
    """The scratchpad as a numpy byte array behind the engine's ``spad_w`` (writes, random
    ``ready``) and ``spad_r``/``spad_rdata`` (reads, random ``ready``, ``latency`` cycles at
    least, then random gaps; in order). A read sees every write taken at an earlier edge."""

    def __init__(self, cfg, contents, rng, *, stall=0.0, latency=1):
        self.cfg, self.bytes, self.rng = cfg, contents, rng
        self.stall, self.latency = stall, latency
        self.writes = 0

    def _word(self, addr):
        nb = self.cfg.bus_bytes
        return int.from_bytes(self.bytes[addr:addr + nb].tobytes(), "little")

    async def run(self, ctx, w=None, r=None, rdata=None):
        cfg, rng, nb = self.cfg, self.rng, self.cfg.bus_bytes
        queue, cycle, offering = [], 0, False
        sigs = []
        if w is not None:
            sigs += [w.valid, w.ready, w.payload.addr, w.payload.data, w.payload.strb]
        if r is not None:
            sigs += [r.valid, r.ready, r.payload, rdata.valid, rdata.ready]
        while True:
            if w is not None:
                ctx.set(w.ready, rng.random() >= self.stall)
            if r is not None:
                ctx.set(r.ready, rng.random() >= self.stall)
                if not offering and queue and queue[0][0] <= cycle and rng.random() >= self.stall:
                    ctx.set(rdata.payload, queue[0][1])
                    ctx.set(rdata.valid, 1)
                    offering = True
            _, _, *got = await ctx.tick().sample(*sigs)
            cycle += 1
            if w is not None:
                valid, ready, addr, value, strb, *got = got
                if valid and ready:
                    assert addr % nb == 0 and addr < cfg.spad_bytes, f"spad_w address {addr}"
                    for k in range(nb):
                        if strb >> k & 1:
                            self.bytes[addr + k] = value >> (8 * k) & 0xFF
                    self.writes += 1
            if r is not None:
                r_valid, r_ready, addr, d_valid, d_ready = got
                if d_valid and d_ready:
                    queue.pop(0)
                    ctx.set(rdata.valid, 0)
                    offering = False
                if r_valid and r_ready:
                    assert addr % nb == 0 and addr < cfg.spad_bytes, f"spad_r address {addr}"
                    queue.append((cycle + self.latency - 1, self._word(addr)))


class Window:
    """The window the bench drives, with its history, so bursts are judged by the window in
    force when they were committed."""

    def __init__(self, base, limit):
        self.history = [(0, base, limit)]

    def set(self, cycle, base, limit):
        self.history.append((cycle, base, limit))

    @property
    def current(self):
        return self.history[-1][1:]

    def allows(self, cycle, lo, hi):
        """Whether ``[lo, hi)`` was inside the window in force at any of the three cycles
        before ``cycle``, when a burst whose ``valid`` rose at ``cycle`` was checked."""
        start = cycle - 3
        windows = [w for c, *w in self.history if c <= start][-1:]
        windows += [w for c, *w in self.history if start < c <= cycle]
        return any(base <= lo and hi <= limit for base, limit in windows)


class BusMonitor:
    """Checks every cycle of the AXI channels present: ``valid`` and the payload held until
    taken; every AR and AW ``INCR``, full-width, at most 256 beats, inside one 4 KiB page and
    inside the window; every W burst as long as its AW with ``last`` on its final beat.
    Records the bursts, the most reads outstanding and the cycles of the first and last data
    beats."""

    def __init__(self, cfg, window, *, ar=None, r=None, aw=None, w=None, b=None):
        self.cfg, self.window = cfg, window
        self.channels = {k: v for k, v in dict(ar=ar, r=r, aw=aw, w=w, b=b).items() if v}
        self.ars, self.aws, self.w_bursts = [], [], []
        self.outstanding = self.max_outstanding = 0
        self.cycle = 0
        self.beats = {"r": [], "w": []}
        self.w_strobes, self.b_resps = [], []  # (edge, strb), (edge, resp)

    def _fields(self, name):
        ch = self.channels[name]
        extra = {"ar": ["addr", "len", "size", "burst"], "aw": ["addr", "len", "size", "burst"],
                 "r": ["last"], "w": ["last", "data", "strb"], "b": ["resp"]}[name]
        return [ch.valid, ch.ready] + [getattr(ch, f) for f in extra]

    async def run(self, ctx):
        names = list(self.channels)
        sigs = [self._fields(n) for n in names]
        flat = [s for group in sigs for s in group]
        previous = {n: None for n in names}
        since = {}
        w_beats = 0
        shift = self.cfg.bus_bytes.bit_length() - 1
        while True:
            _, _, *got = await ctx.tick().sample(*flat)
            self.cycle += 1
            at = 0
            for name, group in zip(names, sigs, strict=True):
                values = got[at:at + len(group)]
                at += len(group)
                valid, ready, *payload = values
                prev = previous[name]
                if prev is not None and prev[0] and not prev[1]:
                    assert valid and payload == prev[2:], \
                        f"{name}: valid or payload changed before the handshake, cycle {self.cycle}"
                previous[name] = values
                if valid and name not in since:
                    since[name] = self.cycle
                if not (valid and ready):
                    continue
                first = since.pop(name)
                if name in ("ar", "aw"):
                    addr, length, size, burst = payload
                    end = addr + ((length + 1) << shift)
                    assert burst == Burst.INCR and size == shift, f"{name} {payload}"
                    assert addr % BURST_BOUNDARY + ((length + 1) << shift) <= BURST_BOUNDARY, \
                        f"{name} at {addr:#x} of {length + 1} beats crosses 4 KiB"
                    assert self.window.allows(first, addr, end), \
                        f"{name} [{addr:#x}, {end:#x}) outside the window {self.window.current}"
                    (self.ars if name == "ar" else self.aws).append((addr, length + 1))
                    if name == "ar":
                        self.outstanding += 1
                        self.max_outstanding = max(self.max_outstanding, self.outstanding)
                elif name == "r":
                    self.beats["r"].append(self.cycle)
                    self.outstanding -= payload[0]
                elif name == "b":
                    self.b_resps.append((self.cycle, payload[0]))
                elif name == "w":
                    self.beats["w"].append(self.cycle)
                    self.w_strobes.append((self.cycle, payload[2]))
                    w_beats += 1
                    if payload[0]:
                        self.w_bursts.append(w_beats)
                        w_beats = 0

    def check_writes(self):
        """Every W burst matched its AW."""
        assert self.w_bursts == [n for _, n in self.aws][:len(self.w_bursts)]
        assert len(self.w_bursts) == len(self.aws), "W bursts missing"


class Bench:
    """An engine (``ReadEngine``, ``WriteEngine`` or ``Dma``), an ``AXIRam`` of ``size`` bytes
    initialised from ``memory``, the scratchpad model over ``spad`` and a bus monitor."""

    def __init__(self, cfg, dut, *, memory, spad, seed, latency=0, stall=0.0, spad_stall=0.0,
                 spad_latency=1, window=None, slverr=(), decerr=()):
        self.cfg, self.dut, self.seed = cfg, dut, seed
        self.ram = AXIRam(addr_width=cfg.addr_width, data_width=cfg.bus_width, id_width=1,
                          size=len(memory), read_latency=latency, stall=stall, seed=seed,
                          slverr=slverr, decerr=decerr, init=memory.tobytes())
        self.spad = SpadModel(cfg, spad, random.Random(seed + 1000), stall=spad_stall,
                              latency=spad_latency)
        self.window = Window(*(window or (0, len(memory))))
        self.top = Module()
        self.top.submodules.dut = dut
        self.top.submodules.ram = self.ram
        bus = dut.bus if hasattr(dut, "bus") else dut
        ram = self.ram.bus
        names = [n for n in ("ar", "r", "aw", "w", "b") if hasattr(bus, n)]
        for name in names:
            if name in ("r", "b"):
                wiring.connect(self.top, getattr(ram, name), getattr(bus, name))
            else:
                wiring.connect(self.top, getattr(bus, name), getattr(ram, name))
        self.monitor = BusMonitor(cfg, self.window, **{n: getattr(bus, n) for n in names})

    def set_window(self, ctx, base, limit):
        ctx.set(self.dut.window_base, base)
        ctx.set(self.dut.window_limit, limit)
        self.window.set(self.monitor.cycle, base, limit)

    def memory(self, ctx):
        return np.frombuffer(self.ram.contents(ctx), dtype=np.uint8).copy()

    def run(self, *testbenches, timeout=20_000):
        dut = self.dut

        async def serve(ctx):
            if hasattr(dut, "spad_w") and hasattr(dut, "spad_r"):
                await self.spad.run(ctx, dut.spad_w, dut.spad_r, dut.spad_rdata)
            elif hasattr(dut, "spad_w"):
                await self.spad.run(ctx, w=dut.spad_w)
            else:
                await self.spad.run(ctx, r=dut.spad_r, rdata=dut.spad_rdata)

        async def init(ctx):
            self.set_window(ctx, *self.window.current)

        simulate(self.top, init, *testbenches, background=[serve, self.monitor.run],
                 timeout=timeout)


def random_bytes(rng, count):
    return np.frombuffer(rng.randbytes(count), dtype=np.uint8).copy()


@dataclass
class Run:
    """What :func:`run_descriptors` saw: the bench, the ``done`` codes in order, the memory at
    the end, and the edges at which the first descriptor was taken and the last done."""
    bench: Bench
    codes: list
    memory: np.ndarray
    start: int
    end: int


def run_descriptors(cfg, dut, descs, *, memory, spad, seed, idle=0.0, backpressure=0.0,
                    port=None, timeout=20_000, **bench_kwargs):
    """Offer ``descs`` to ``port`` (``dut`` itself, or ``dut.load``/``dut.store`` of a
    ``Dma``) back to back under random idle cycles, take every ``done`` under random
    backpressure, wait for ``busy`` to fall, and return a :class:`Run`; ``spad`` is updated
    in place."""
    port = dut if port is None else port
    bench = Bench(cfg, dut, memory=memory, spad=spad, seed=seed, **bench_kwargs)
    rng = random.Random(seed + 2000)
    run = Run(bench, [], None, None, None)

    async def drive(ctx):
        for desc in descs:
            await stream_put(ctx, port.desc, desc.fields(), rng=rng, idle=idle)
            if run.start is None:
                run.start = bench.monitor.cycle

    async def collect(ctx):
        for _ in descs:
            run.codes.append(await stream_get(ctx, port.done, rng=rng,
                                              backpressure=backpressure))
        run.end = bench.monitor.cycle
        await ctx.tick()
        while ctx.get(port.busy):
            await ctx.tick()
        run.memory = bench.memory(ctx)

    bench.run(drive, collect, timeout=timeout)
    return run


def golden(cfg, descs, *, load, memory, spad):
    """Golden memory and scratchpad after ``descs`` all complete."""
    memory, spad = memory.copy(), spad.copy()
    for desc in descs:
        copy_bursts(reference_bursts(cfg, desc), load=load, memory=memory, spad=spad)
    return memory, spad


def first_difference(actual, expected):
    where = np.flatnonzero(actual != expected)
    return f"{len(where)} bytes differ, first at {where[0]:#x}" if len(where) else "equal"
