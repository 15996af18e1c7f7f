"""The DMA testbench: a ``dma_system`` top (the DMA and its scratchpad) between the cocotb AXI4
slave memory and a host that sends descriptors, takes ``done`` reports and reads the
scratchpad back through its compute read port.

The golden model is a NumPy copy of external memory and of the scratchpad, updated with the
bursts of :func:`verification.models.dma.reference_bursts` (the splitting rules of
``docs/dma.md``: rows into INCR bursts at 256 beats and 4 KiB boundaries) as each descriptor
completes. Every check compares whole arrays, so
the bytes around and between every destination are checked unchanged.

The golden local space is the scratchpad's bytes followed, from ``acc_base``, by the image
of the accumulator rows (:func:`verification.models.dma.acc_image`) that
:class:`AccumulatorServer` serves on the top's ``acc_read``/``acc_data`` in place of the
matrix unit, so STOREs from either space use the same golden copy.

The scratchpad keeps its contents across resets and so across the tests of one simulator
run; a test first fills the scratchpad region it uses with a LOAD of known bytes
(:meth:`TB.fill`), and compares only bytes it has filled.
"""

import functools

import numpy as np

from rtl.bus.axi import BURST_BOUNDARY
from rtl.dma.descriptor import DmaError, descriptor_layout
from sim.axi_ram import check_ranges
from sim.dma_system import DmaSystem
from verification.axi_ram import AxiRamModel
from verification.models.dma import (
    Desc,
    acc_image,
    bus_outcome,
    copy_bursts,
    first_difference,
    reference_bursts,
)

from .base import BenchTB
from .streams import Clocking, StreamSink, StreamSource, pack_lanes

__all__ = ["TB", "STRESS", "AccumulatorServer"]

#: Stimulus of the stress-off and stress-on runs: read latency drawn per AR, the fraction of
#: stalled cycles on every AXI channel, idle cycles between descriptors (and readback
#: requests), and backpressure on ``done`` (and readback data).
STRESS = {
    False: {"read_latency": (0, 2), "stall": 0.0, "idle": 0.0, "backpressure": 0.0},
    True: {"read_latency": (0, 24), "stall": 0.3, "idle": 0.3, "backpressure": 0.3},
}


class Pins:
    """A :class:`Clocking` driver for plain inputs: values set, and one-cycle pulses, applied
    after the next rising edge."""

    def __init__(self):
        self._now, self._next = {}, {}

    def set(self, handle, value):
        self._now[handle] = value

    def pulse(self, handle):
        self._now[handle], self._next[handle] = 1, 0

    def drive(self):
        if self._now or self._next:
            writes, self._now, self._next = self._now, self._next, {}
            for handle, value in writes.items():
                handle.value = value

    def sample(self):
        pass


class AccumulatorServer:
    """The accumulator memory behind the top's ``acc_read``/``acc_data``, as the matrix unit
    serves it: each requested row of ``rows`` (``acc_depth x cols`` int32) offered from the
    cycle after its request, in order, with random stalls on both streams."""

    def __init__(self, ports, rows, *, rng, stall):
        self.rows = rows
        self._read = StreamSink(ports, "acc_read", rng=rng, backpressure=stall)
        self._data = StreamSource(ports, "acc_data", rng=rng, idle=stall)

    def drive(self):
        self._read.drive()
        self._data.drive()

    def sample(self):
        self._read.sample()
        self._data.sample()
        self._data.send(pack_lanes(self.rows[row], "<i4") for row in self._read.received)
        self._read.received.clear()


class Engine:
    """One engine's control port (``load`` or ``store``) from the host's side."""

    def __init__(self, tb, name, *, idle, backpressure):
        ports = functools.partial(tb.ports, name)
        self.name = name
        self.desc = StreamSource(ports, "desc", rng=tb.pattern, idle=idle)
        self.done = StreamSink(ports, "done", rng=tb.pattern, backpressure=backpressure)
        self.clear = ports("clear")
        self._busy, self._error = ports("busy"), ports("error")
        self.sent = 0
        self.log = None  # the AXI log of its bursts

    @property
    def busy(self):
        return bool(self._busy.value)

    @property
    def error(self):
        return DmaError(self._error.value.to_unsigned())

    @property
    def codes(self):
        return [DmaError(v) for v in self.done.received]

    @property
    def finished(self):
        return len(self.done.received) >= self.sent


class TB(BenchTB):
    """Drives a ``dma_system`` top.

    Parameters
    ----------
    dut : cocotb handle
        The ``dma_system`` top.
    seed : int
        Seeds the data and descriptors (:attr:`rng`) and every stall pattern
        (:attr:`pattern`).
    memory : int
        Bytes of external memory, random at the start.
    window : (int, int)
        The window ``[base, limit)``.
    stress : bool
        The :data:`STRESS` figures to use; ``read_latency`` and ``stall`` override them.
    """

    def __init__(self, dut, *, seed, memory=1 << 18, window=None, stress=False,
                 read_latency=None, stall=None):
        super().__init__(dut, DmaSystem, "dma_system", seed=seed)
        cfg = self.config
        self.nb = cfg.bus_bytes
        figures = STRESS[stress]
        self.window = window or (0, memory)
        init = self.rng.integers(0, 256, memory, dtype=np.uint8)
        self.ram = AxiRamModel(
            self.ports, "bus", size=memory, rng=self.pattern, init=init.tobytes(),
            read_latency=figures["read_latency"] if read_latency is None else read_latency,
            stall=figures["stall"] if stall is None else stall)
        self.initial = init
        self.mem = init.copy()  # golden memory
        # The golden local space: the scratchpad, then the accumulator memory from acc_base.
        self.acc_rows = self.rng.integers(-2**31, 2**31, (cfg.acc_depth, cfg.cols), np.int64)
        self.spad = np.zeros(cfg.acc_base + cfg.acc_bytes, np.uint8)
        self.spad[cfg.acc_base:] = acc_image(self.acc_rows)
        self.known = np.zeros(len(self.spad), bool)  # local bytes the golden knows
        self.known[cfg.acc_base:] = True
        idle, backpressure = figures["idle"], figures["backpressure"]
        self.load = Engine(self, "load", idle=idle, backpressure=backpressure)
        self.store = Engine(self, "store", idle=idle, backpressure=backpressure)
        self.load.log, self.store.log = self.ram.ar_log, self.ram.aw_log
        self.vec_r = StreamSource(self.ports, "vec_r", rng=self.pattern, idle=idle)
        self.vec_data = StreamSink(self.ports, "vec_data", rng=self.pattern,
                                   backpressure=backpressure)
        self.pins = Pins()
        self.acc = AccumulatorServer(self.ports, self.acc_rows, rng=self.pattern,
                                     stall=figures["stall"] if stall is None else stall)
        self.clocking = Clocking(dut.clk, [
            self.ram, self.load.desc, self.load.done, self.store.desc, self.store.done,
            self.vec_r, self.vec_data, self.acc, self.pins])
        self._layout = descriptor_layout(cfg)
        self._spad_error = self.ports("spad_error")
        top = DmaSystem(cfg)
        self.vector_bytes, self.vector_pitch = top.vector_bytes, top.vector_pitch
        self.bursts = {"load": [], "store": []}  # the bursts expected on the bus, in order

    def where(self):
        return f"seed {self.seed}, preset {self.config.name}"

    async def start(self):
        """Set the window, start the clock and reset."""
        for engine in (self.load, self.store):
            engine.clear.value = 0
        self.ports("window_base").value, self.ports("window_limit").value = self.window
        await super().start()

    def error_regions(self, *, slverr=(), decerr=()):
        """Make the memory answer ``SLVERR`` and ``DECERR`` to bursts touching these byte
        ranges ``[lo, hi)`` from now on."""
        limit = 1 << self.config.addr_width
        self.ram.slverr = check_ranges("slverr", slverr, limit)
        self.ram.decerr = check_ranges("decerr", decerr, limit)

    async def clock(self, until, *, limit):
        """Step every driver until ``until()``; a hang fails naming the seed."""
        try:
            await self.clocking.run(until, limit=limit)
        except TimeoutError as error:
            raise TimeoutError(f"{self.where()}: {error}") from None

    async def step(self, cycles=1):
        end = self.clocking.cycle + cycles
        await self.clock(lambda: self.clocking.cycle >= end, limit=cycles)

    # -- descriptors ------------------------------------------------------------------------

    def payload(self, desc):
        return self._layout.const(desc.fields()).as_bits()

    def submit(self, engine, descs):
        """Queue ``descs`` on ``engine`` (``self.load`` or ``self.store``)."""
        engine.desc.send(self.payload(d) for d in descs)
        engine.sent += len(descs)

    async def finish(self, *engines, limit):
        """Step until every descriptor sent to ``engines`` is reported, both engines are
        idle and the memory has answered everything. Returns, per engine, the cycle its last
        report was taken."""
        ends = {}

        def done():
            for engine in engines:
                if engine.name not in ends and engine.finished:
                    ends[engine.name] = self.clocking.cycle
            return len(ends) == len(engines)

        await self.clock(done, limit=limit)
        await self.clock(lambda: not (self.load.busy or self.store.busy) and self.ram.idle,
                         limit=2000)
        return ends

    def limit(self, descs):
        """A generous cycle limit for ``descs``: a hang fails, it never stalls the run."""
        beats = sum(p.beats for d in descs for p in reference_bursts(d, self.nb))
        return 40 * beats + 200 * len(descs) + 2000

    async def run(self, loads=(), stores=(), *, codes=None):
        """Send ``loads`` and ``stores`` at once, wait for every report, require every code
        ``NONE`` (or ``codes``: ``{"load": [...], "store": [...]}``) and update the golden
        model with the descriptors that completed. Returns the cycle of the last report of
        each engine given descriptors."""
        first = {"load": len(self.load.done.received), "store": len(self.store.done.received)}
        self.submit(self.load, loads)
        self.submit(self.store, stores)
        busy = [e for e, descs in ((self.load, loads), (self.store, stores)) if descs]
        ends = await self.finish(*busy, limit=self.limit([*loads, *stores]))
        expected = codes or {"load": [DmaError.NONE] * len(loads),
                             "store": [DmaError.NONE] * len(stores)}
        for engine in (self.load, self.store):
            got = engine.codes[first[engine.name]:]
            assert got == expected[engine.name], \
                f"{self.where()}: {engine.name} reported {got}, expected {expected[engine.name]}"
        for desc, code in zip(loads, expected["load"], strict=True):
            if code == DmaError.NONE:
                self.expect_load(desc)
        for desc, code in zip(stores, expected["store"], strict=True):
            if code == DmaError.NONE:
                self.expect_store(desc)
        return ends

    # -- the golden model -------------------------------------------------------------------

    def expect_load(self, desc, upto=None):
        """Copy ``desc`` (its first ``upto`` bursts) from golden memory to the scratchpad."""
        done = reference_bursts(desc, self.nb)[:upto]
        copy_bursts(done, load=True, memory=self.mem, spad=self.spad)
        for p in done:
            self.known[p.spad:p.spad + p.nbytes] = True
        self.bursts["load"] += done

    def expect_store(self, desc, upto=None):
        """Copy ``desc`` (its first ``upto`` bursts) from the golden local space to memory."""
        done = reference_bursts(desc, self.nb)[:upto]
        for p in done:
            assert self.known[p.spad:p.spad + p.nbytes].all(), \
                f"bench error: {desc} stores local bytes the golden does not know"
        copy_bursts(done, load=False, memory=self.mem, spad=self.spad)
        self.bursts["store"] += done

    async def fill(self, lo, hi, src):
        """Load ``[lo, hi)`` of the scratchpad from memory at ``src``, so the golden knows
        it: rows of 4 KiB that follow each other, then the rest."""
        rows, rest = divmod(hi - lo, 4096)
        descs = [Desc(src, lo, rows, 4096, 4096, 4096)] if rows else []
        if rest:
            descs.append(Desc(src + rows * 4096, lo + rows * 4096, 1, rest, rest, rest))
        await self.run(loads=descs)

    def bus_failure(self, desc):
        """``(index, code)`` of the first burst of ``desc`` the memory answers with an error,
        or ``(number of bursts, NONE)``."""
        return bus_outcome(self.ram.response, reference_bursts(desc, self.nb), self.nb)

    # -- checks -----------------------------------------------------------------------------

    @property
    def memory(self):
        return np.frombuffer(self.ram.memory, np.uint8)

    def check_memory(self):
        """All of external memory equals the golden one, and outside the window the initial
        contents."""
        base, limit = self.window
        outside = np.r_[0:base, limit:self.ram.size]
        assert (self.memory[outside] == self.initial[outside]).all(), \
            f"{self.where()}: memory outside the window changed: " \
            f"{first_difference(self.memory[outside], self.initial[outside])}"
        assert (self.memory == self.mem).all(), \
            f"{self.where()}: memory: {first_difference(self.memory, self.mem)}"

    async def read_spad(self, lo, hi):
        """Scratchpad bytes ``[lo, hi)`` (widened to whole vectors) through ``vec_r``, as
        ``(lo, bytes, mask of the bytes read)``."""
        pitch, nbytes = self.vector_pitch, self.vector_bytes
        lo, hi = lo // pitch * pitch, min(-(-hi // pitch) * pitch, self.config.spad_bytes)
        addrs = range(lo, hi, pitch)
        self.vec_data.received.clear()
        self.vec_r.send(addrs)
        await self.clock(lambda: len(self.vec_data.received) == len(addrs),
                         limit=20 * len(addrs) + 100)
        data = np.zeros(hi - lo, np.uint8)
        mask = np.zeros(hi - lo, bool)
        words = np.frombuffer(b"".join(v.to_bytes(nbytes, "little")
                                       for v in self.vec_data.received), np.uint8)
        for k in range(nbytes):
            data[k::pitch] = words[k::nbytes]
            mask[k::pitch] = True
        return lo, data, mask

    async def check_spad(self, lo, hi):
        """Scratchpad bytes ``[lo, hi)`` equal the golden ones wherever it knows them."""
        lo, data, mask = await self.read_spad(lo, hi)
        mask &= self.known[lo:lo + len(data)]
        expected = self.spad[lo:lo + len(data)]
        assert (data[mask] == expected[mask]).all(), \
            f"{self.where()}: scratchpad [{lo:#x}, {lo + len(data):#x}): " \
            f"{first_difference(np.where(mask, data, 0), np.where(mask, expected, 0), lo)}"

    def check_bus(self):
        """The bursts on the bus were exactly the expected ones, none broke a rule (4 KiB,
        INCR, full width, inside the window, ``w.last``), every W burst had its AW's length,
        and the scratchpad flagged no bad access."""
        nb = self.nb
        for name, log in (("load", self.ram.ar_log), ("store", self.ram.aw_log)):
            got = [(r.addr, r.len + 1) for r in log]
            want = [(p.addr, p.beats) for p in self.bursts[name]]
            if got != want:
                k = next((k for k, (g, w) in enumerate(zip(got, want, strict=False))
                          if g != w), min(len(got), len(want)))
                raise AssertionError(
                    f"{self.where()}: {name} bursts differ from the splitting rules at burst "
                    f"{k} of {len(got)} (expected {len(want)}): got "
                    f"{[(hex(a), n) for a, n in got[k:k + 3]]}, expected "
                    f"{[(hex(a), n) for a, n in want[k:k + 3]]}")
        problems = self.ram.problems(window=self.window, boundary=BURST_BOUNDARY)
        assert not problems, f"{self.where()}: " + "; ".join(problems[:5])
        beats = sum(r.len + 1 for r in self.ram.aw_log)
        assert len(self.ram.w_log) == beats, \
            f"{self.where()}: {len(self.ram.w_log)} W beats for AWs of {beats}"
        assert all(r.size == nb.bit_length() - 1 for r in self.ram.ar_log)
        assert not int(self._spad_error.value), f"{self.where()}: scratchpad error flag set"
