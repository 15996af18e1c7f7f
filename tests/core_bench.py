"""The core in the Amaranth simulator: :class:`~rtl.core.core.Core` on an
:class:`~sim.axi_ram.AXIRam`, driven through its CSRs as a host would, and the golden model
(:class:`~verification.models.core.CoreModel`) on the same memory image."""

from dataclasses import dataclass

import numpy as np
from amaranth import Module
from amaranth.lib import wiring

from jalapeno import csr
from jalapeno.isa import INSTRUCTION_BYTES, CoreError
from rtl.bus.arbiter import BUS_ID_WIDTH
from rtl.bus.stream_sim import simulate
from rtl.core.core import Core
from sim.axi_ram import AXIRam
from verification.models.core import CoreModel
from verification.programs import place_program

__all__ = ["Outcome", "CoreSession", "run_core", "run_golden", "read_csr", "write_csr"]


@dataclass
class Outcome:
    """What a run left: the code and address, the counters and all of memory."""

    code: CoreError
    addr: int
    counters: dict
    memory: np.ndarray
    cycles: int


async def _write(ctx, bus, offset, value):
    ctx.set(bus.aw.addr, offset)
    ctx.set(bus.aw.valid, 1)
    ctx.set(bus.w.data, value)
    ctx.set(bus.w.strb, 0xF)
    ctx.set(bus.w.valid, 1)
    ctx.set(bus.b.ready, 1)
    aw_done = w_done = False
    while True:
        _, _, aw_ready, w_ready, b_valid = await ctx.tick().sample(
            bus.aw.ready, bus.w.ready, bus.b.valid)
        aw_done |= bool(aw_ready)
        w_done |= bool(w_ready)
        if aw_done:
            ctx.set(bus.aw.valid, 0)
        if w_done:
            ctx.set(bus.w.valid, 0)
        if b_valid:
            ctx.set(bus.b.ready, 0)
            return


async def _read(ctx, bus, offset):
    ctx.set(bus.ar.addr, offset)
    ctx.set(bus.ar.valid, 1)
    ctx.set(bus.r.ready, 1)
    while True:
        _, _, ar_ready, r_valid, data = await ctx.tick().sample(
            bus.ar.ready, bus.r.valid, bus.r.data)
        if ar_ready:
            ctx.set(bus.ar.valid, 0)
        if r_valid:
            ctx.set(bus.r.ready, 0)
            return data


async def write_csr(ctx, bus, name, value):
    """Write ``value`` to the register or 64-bit pair ``name``."""
    if name in {r.name for r in csr.REGISTERS}:
        await _write(ctx, bus, csr.register(name).offset, value)
        return
    lo, hi = csr.split64(value)
    await _write(ctx, bus, csr.register(f"{name}_LO").offset, lo)
    await _write(ctx, bus, csr.register(f"{name}_HI").offset, hi)


async def read_csr(ctx, bus, name):
    """The register or 64-bit pair ``name``."""
    if name in {r.name for r in csr.REGISTERS}:
        return await _read(ctx, bus, csr.register(name).offset)
    lo = await _read(ctx, bus, csr.register(f"{name}_LO").offset)
    return csr.join64(lo, await _read(ctx, bus, csr.register(f"{name}_HI").offset))


class CoreSession:
    """One elaborated core on its memory, running programs one after another in one
    simulation (elaboration is the slow part). Scratchpad and accumulator contents carry over
    from one program to the next.

    Parameters
    ----------
    config : JalapenoConfig
    memory : ndarray of uint8
        The RAM's initial contents.
    latency, stall, seed, slverr, decerr
        As :class:`~sim.axi_ram.AXIRam`'s.
    """

    def __init__(self, config, memory, *, latency=0, stall=0.0, seed=0, slverr=(), decerr=()):
        self.config = config
        self.core = Core(config)
        self.ram = AXIRam(addr_width=config.addr_width, data_width=config.bus_width,
                          id_width=BUS_ID_WIDTH, size=len(memory), read_latency=latency,
                          stall=stall, seed=seed, slverr=slverr, decerr=decerr,
                          init=memory.tobytes())
        self.top = Module()
        self.top.submodules.core, self.top.submodules.ram = self.core, self.ram
        wiring.connect(self.top, self.core.bus, self.ram.bus)

    def place(self, ctx, base, words):
        """Write a program into the RAM."""
        nb = self.config.bus_bytes
        data = np.zeros(-(-(len(words) * INSTRUCTION_BYTES) // nb) * nb, np.uint8)
        place_program(data, 0, words)
        for k in range(0, len(data), nb):
            ctx.set(self.ram.data[(base + k) // nb],
                    int.from_bytes(data[k:k + nb].tobytes(), "little"))

    def memory(self, ctx):
        return np.frombuffer(self.ram.contents(ctx), np.uint8).copy()

    async def run(self, ctx, base, length, window, *, limit=200_000):
        """Run the program of ``length`` instructions at ``base`` through the CSRs, as a
        host would, and wait for the interrupt (at most ``limit`` cycles)."""
        bus = self.core.csr
        await write_csr(ctx, bus, "PROGRAM_BASE", base)
        await write_csr(ctx, bus, "PROGRAM_LENGTH", length)
        await write_csr(ctx, bus, "WINDOW_BASE", window[0])
        await write_csr(ctx, bus, "WINDOW_LIMIT", window[1])
        await write_csr(ctx, bus, "IRQ_ENABLE", 0b11)
        await write_csr(ctx, bus, "CONTROL", csr.pack("CONTROL", start=1))
        cycles = 0
        while not ctx.get(self.core.irq):
            await ctx.tick()
            cycles += 1
            assert cycles < limit, f"no interrupt after {limit} cycles"
        code = CoreError(await read_csr(ctx, bus, "ERROR_CODE"))
        addr = await read_csr(ctx, bus, "ERROR_ADDR")
        counters = {name: await read_csr(ctx, bus, name) for name in csr.counter_names()}
        await write_csr(ctx, bus, "IRQ_STATUS", 0b11)
        return Outcome(code, addr, counters, None, cycles)


def run_core(config, memory, words, *, base, window, timeout=200_000, **kwargs):
    """Place ``words`` at ``base`` in a copy of ``memory`` and run them on the RTL core.

    Returns
    -------
    Outcome
    """
    memory = memory.copy()
    place_program(memory, base, words)
    session = CoreSession(config, memory, **kwargs)
    result = {}

    async def host(ctx):
        result["outcome"] = await session.run(ctx, base, len(words), window, limit=timeout)
        result["outcome"].memory = session.memory(ctx)

    simulate(session.top, host, timeout=timeout + 10_000)
    return result["outcome"]


def run_golden(config, memory, words, *, base, window, slverr=(), decerr=()):
    """The same run on the golden model."""
    memory = memory.copy()
    place_program(memory, base, words)
    model = CoreModel(config, memory, window=window, slverr=slverr, decerr=decerr)
    result = model.run(base, len(words))
    return Outcome(result.code, result.error_addr, result.counters, memory, 0)
