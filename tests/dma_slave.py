"""The far side of the DMA tests: the AXI4 slave (:class:`sim.axi_ram.AXIRam`), a scratchpad
model, and a bus monitor that checks every burst. The golden model of a descriptor (its bursts,
error code and copy) is :mod:`verification.models.dma`.

Every DMA test builds a :class:`Bench` around one engine (``ReadEngine``, ``WriteEngine`` or
``Dma``): the engine's AXI channels go to an ``AXIRam`` (latency, seeded stalls on every
channel, error ranges), its scratchpad ports to :class:`SpadModel` (random backpressure and
latency), and :class:`BusMonitor` watches the bus. Swapping the slave means changing
:meth:`Bench.__init__` only.
"""

import random
from collections import deque
from dataclasses import dataclass

import numpy as np
from amaranth import Module
from amaranth.lib import wiring

from rtl.bus.axi import BURST_BOUNDARY, Burst
from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from sim.axi_ram import AXIRam

__all__ = ["make_config", "Bench", "SpadModel", "BusMonitor", "wait_until", "random_bytes", "Run",
           "run_descriptors", "fake_accumulator"]


def make_config(bus_width, *, addr_width=32, spad_bytes=65536):
    return JalapenoConfig(rows=2, cols=2, acc_depth=16, bus_width=bus_width,
                          addr_width=addr_width, spad_bytes=spad_bytes)


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
        """Whether ``[lo, hi)`` was inside the window in force at any of the four cycles
        before ``cycle``, when a burst whose ``valid`` rose at ``cycle`` was checked (against
        the window of the cycle before its commit)."""
        start = cycle - 4
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


def fake_accumulator(spad, rows, *, rng=None, latency=(2, 2), ready=1.0, depth=3):
    """A background testbench serving the ``acc_read``/``acc_data`` ports of ``spad`` (a
    :class:`~rtl.dma.scratchpad.Scratchpad` or a top exposing them) from ``rows``, as the matrix
    unit's accumulator memory would: each row ``latency`` (a
    random range) cycles after its request, in order, ``acc_read.ready`` high with probability
    ``ready`` while fewer than ``depth`` responses wait."""

    async def serve(ctx):
        pending = deque()
        edge = 0
        while True:
            take = len(pending) < depth and (ready == 1.0 or rng.random() < ready)
            ctx.set(spad.acc_read.ready, take)
            offer = bool(pending) and pending[0][0] <= edge
            ctx.set(spad.acc_data.valid, offer)
            if offer:
                ctx.set(spad.acc_data.payload, rows[pending[0][1]].tolist())
            _, _, valid, row, taken = await ctx.tick().sample(
                spad.acc_read.valid, spad.acc_read.payload, spad.acc_data.ready)
            if offer and taken:
                pending.popleft()
            if valid and take:
                low, high = latency
                delay = low if low == high else rng.randint(low, high)
                pending.append((edge + delay, row))
            edge += 1

    return serve
