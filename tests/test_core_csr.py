# amaranth: UnusedElaboratable=no
# (Blocks whose construction must be refused, and the Counters of blocks only constructed, are
# never elaborated.)
"""The core's CSR block in the Amaranth simulator, through a randomised AXI4-Lite master: every
register of :mod:`jalapeno.csr` as the map says, the pulses, the run state and the counters."""

import dataclasses
import random
import re

import pytest
from amaranth import Const, Shape, Value
from amaranth.back import verilog
from amaranth.hdl import _ir
from amaranth.lib import stream, wiring

from jalapeno import csr
from jalapeno.csr import Access, Register
from jalapeno.isa import CoreError, Queue
from rtl.bus.axi import AXI4LiteSignature, Resp
from rtl.bus.stream_sim import simulate
from rtl.config import PRESETS, JalapenoConfig, preset
from rtl.core.csr import BUS_ADDR_WIDTH, Counter, CsrBlock, counts_layout, finish_layout

# Address widths around the edges: the 32 bits of every preset, 16, one that uses _HI, and 64
# (where WINDOW_LIMIT's and ERROR_ADDR's extra bit does not fit the two registers); the
# smallest also with the smallest queues.
CUSTOM = {
    "aw16": JalapenoConfig(rows=1, cols=1, acc_depth=2, bus_width=32, addr_width=16,
                           spad_bytes=1024, max_row=1, queue_depth=2),
    "aw40": JalapenoConfig(rows=3, cols=5, acc_depth=64, read_fifo_depth=7, bus_width=128,
                           addr_width=40, spad_bytes=4096, max_row=100),
    "aw64": JalapenoConfig(rows=64, cols=64, acc_depth=65536, read_fifo_depth=16, bus_width=128,
                           addr_width=64, spad_bytes=1 << 20, max_row=4096),
}
CONFIGS = {**PRESETS, **CUSTOM}
ORDERS = ("aw_first", "w_first", "together")
ALL = 0xFFFF_FFFF


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def reg(name):
    return csr.register(name)


def expected_reset(register, config):
    """What ``register`` reads after reset on the block built for ``config``."""
    if register.reset is None:
        return csr.config_registers(config)[register.name]
    return 0 if register.access is Access.WO else register.reset


def byte_mask(strb):
    return sum(0xFF << 8 * i for i in range(4) if strb >> i & 1)


class Master:
    """A randomised AXI4-Lite master on ``bus`` (the block's slave port, seen from outside).

    Every write raises ``aw`` and ``w`` in one of :data:`ORDERS` after random idle cycles;
    every response is taken either with ``ready`` raised early or only once ``valid`` has been
    seen (so a ``valid`` waiting for ``ready`` would hang the run), after random backpressure.
    Responses must be ``OKAY``, ``b`` must not come before both ``aw`` and ``w`` were taken
    and ``r`` not before ``ar`` was.
    """

    def __init__(self, bus, rng, seed, *, idle=0.3, backpressure=0.4, alone=True):
        self.bus, self.rng, self.seed = bus, rng, seed
        self.idle, self.backpressure = idle, backpressure
        self.alone = alone  # whether the checks across read and write channels hold

    async def _stall(self, ctx, probability):
        while self.rng.random() < probability:
            await ctx.tick()

    async def _send(self, ctx, channels):
        """Raise ``valid`` on each of ``{channel: fields}`` at once and hold each until taken."""
        for channel, fields in channels.items():
            for name, value in fields.items():
                ctx.set(getattr(channel, name), value)
            ctx.set(channel.valid, 1)
        pending = list(channels)
        while pending:
            _, _, b_valid, r_valid, *ready = await ctx.tick().sample(
                self.bus.b.valid, self.bus.r.valid, *(ch.ready for ch in pending))
            if self.alone:
                assert not b_valid, f"seed {self.seed}: B before its write was taken"
            if self.bus.ar in channels:
                assert not r_valid, f"seed {self.seed}: R before AR was taken"
            for channel, taken in zip(list(pending), ready, strict=True):
                if taken:
                    ctx.set(channel.valid, 0)
                    pending.remove(channel)

    async def _response(self, ctx, channel, *fields):
        if self.rng.random() < 0.5:
            while True:  # ready low until valid is seen
                _, _, valid = await ctx.tick().sample(channel.valid)
                if valid:
                    break
        await self._stall(ctx, self.backpressure)
        ctx.set(channel.ready, 1)
        while True:
            _, _, valid, *values = await ctx.tick().sample(channel.valid, *fields)
            if valid:
                break
        ctx.set(channel.ready, 0)
        return values

    async def write(self, ctx, addr, data, strb=0xF, order=None):
        bus = self.bus
        order = order or self.rng.choice(ORDERS)
        aw = {bus.aw: {"addr": addr, "prot": self.rng.randrange(8)}}
        w = {bus.w: {"data": data, "strb": strb}}
        phases = {"aw_first": [aw, w], "w_first": [w, aw], "together": [{**aw, **w}]}[order]
        for phase in phases:
            await self._stall(ctx, self.idle)
            await self._send(ctx, phase)
        (resp,) = await self._response(ctx, bus.b, bus.b.resp)
        assert resp == Resp.OKAY, f"seed {self.seed}: write of {addr:#x} got {resp}"

    async def read(self, ctx, addr):
        bus = self.bus
        await self._stall(ctx, self.idle)
        await self._send(ctx, {bus.ar: {"addr": addr, "prot": self.rng.randrange(8)}})
        data, resp = await self._response(ctx, bus.r, bus.r.data, bus.r.resp)
        assert resp == Resp.OKAY, f"seed {self.seed}: read of {addr:#x} got {resp}"
        return data

    async def write_reg(self, ctx, name, data, strb=0xF):
        await self.write(ctx, reg(name).offset, data, strb)

    async def read_reg(self, ctx, name):
        return await self.read(ctx, reg(name).offset)

    async def read_all(self, ctx):
        return {r.name: await self.read(ctx, r.offset) for r in csr.REGISTERS}


def protocol_monitor(dut, seed, pulses=None):
    """A background testbench: a response whose ``valid`` is not taken stays valid and
    unchanged, and (with ``pulses``) the edges where ``start`` and ``soft_reset`` are high are
    recorded in ``pulses["start"]`` and ``pulses["soft_reset"]``."""
    b, r = dut.bus.b, dut.bus.r

    async def monitor(ctx):
        previous, edge = None, 0
        while True:
            _, _, *now = await ctx.tick().sample(b.valid, b.ready, b.resp, r.valid, r.ready,
                                                 r.data, r.resp, dut.start, dut.soft_reset)
            if previous is not None:
                for lo, hi in ((0, 3), (3, 7)):
                    if previous[lo] and not previous[lo + 1]:
                        assert now[lo] and now[lo + 2:hi] == previous[lo + 2:hi], \
                            f"seed {seed}: a response changed before it was taken"
            if pulses is not None:
                for name, value in zip(("start", "soft_reset"), now[7:], strict=True):
                    if value:
                        pulses[name].append(edge)
            previous, edge = now, edge + 1

    return monitor


def run(dut, bench, seed, *, pulses=None, timeout=50_000, background=()):
    simulate(dut, bench, background=(protocol_monitor(dut, seed, pulses), *background),
             timeout=timeout)


async def settle(ctx, cycles=3):
    for _ in range(cycles):
        await ctx.tick()


def verilog_ports(component):
    """The ports of ``component`` for :func:`verilog.convert`, without the constant members
    (the ``ready`` of the ``always_ready`` ``finish``), which cannot be ports."""
    ports = {}
    for path, member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if not isinstance(value, Const):
            direction = (_ir.PortDirection.Input if member.flow == wiring.In
                         else _ir.PortDirection.Output)
            ports["__".join(map(str, path))] = (value, direction)
    return ports


# -- the ports ----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_ports(name):
    config = CONFIGS[name]
    dut = CsrBlock(config)
    aw = config.addr_width
    widths = {"start": 1, "soft_reset": 1, "program_base": aw, "program_length": 32,
              "window_base": aw, "window_limit": aw + 1, "irq": 1, "busy": 1, "queue_busy": 3}
    members = dut.signature.members
    assert {n: Shape.cast(members[n].shape).width for n in widths} == widths
    assert {n for n in widths if members[n].flow == wiring.In} == {"busy", "queue_busy"}
    assert members["bus"].flow == wiring.In
    assert members["bus"].signature.flip() == AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH,
                                                         data_width=32)
    assert (1 << BUS_ADDR_WIDTH) >= csr.CSR_BYTES
    assert members["finish"].flow == wiring.In
    assert members["finish"].signature.flip() == stream.Signature(finish_layout(config),
                                                                  always_ready=True)
    assert members["counts"].shape == counts_layout(config)
    assert set(dut.counters) == set(csr.counter_names())


@pytest.mark.parametrize("name", CONFIGS)
def test_layouts(name):
    config = CONFIGS[name]
    counts = counts_layout(config)
    assert [n for n, _ in counts] == [n.lower() for n in csr.counter_names()]
    most = {"macs": config.rows * config.cols, "dma_read_bytes": config.bus_bytes,
            "dma_write_bytes": config.bus_bytes, "instructions": len(Queue) + 1}
    assert set(most) <= {n for n, _ in counts}
    for field_name, field in counts:
        limit = most.get(field_name, 1)
        assert (1 << field.width) > limit >= 1 << (field.width - 1), field_name
    finish = finish_layout(config)
    assert finish["code"].width == 8 and max(CoreError) < 1 << 8
    assert finish["addr"].width == config.addr_width + 1


def test_construction_errors(monkeypatch):
    for make in (CsrBlock, counts_layout, finish_layout):
        with raises_exactly(TypeError, "config must be a JalapenoConfig, not 64"):
            make(64)
    with raises_exactly(TypeError, "width must be an integer, not 8.0"):
        Counter(8.0, 1)
    with raises_exactly(TypeError, "inc_width must be an integer, not True"):
        Counter(8, True)
    with raises_exactly(ValueError, "width must be at least 1, not 0"):
        Counter(0, 1)
    with raises_exactly(ValueError, "inc_width must be at most width (4), not 5"):
        Counter(4, 5)
    # A register added to the map without hardware is refused, not silently left out.
    extra = (Register("SCRATCH", 0x0F0, Access.RW, "x"), Register("EXTRA_LO", 0x0F8,
                                                                  Access.RO, "y"))
    monkeypatch.setattr(csr, "REGISTERS", (*csr.REGISTERS, *extra))
    with raises_exactly(ValueError, "CsrBlock has no hardware for CSRs SCRATCH, EXTRA_LO"):
        CsrBlock(preset("tiny"))


# -- the map's helpers for the hardware -----------------------------------------------------------

def test_held_while_busy_is_the_program_and_window():
    assert csr.HELD_WHILE_BUSY == {
        "PROGRAM_BASE_LO", "PROGRAM_BASE_HI", "PROGRAM_LENGTH", "WINDOW_BASE_LO",
        "WINDOW_BASE_HI", "WINDOW_LIMIT_LO", "WINDOW_LIMIT_HI"}
    assert all(reg(name).access is Access.RW for name in csr.HELD_WHILE_BUSY)


def test_address_quantities():
    for name in csr.ADDRESSES:
        assert reg(f"{name}_LO").offset + 4 == reg(f"{name}_HI").offset
    config = CUSTOM["aw40"]
    assert [csr.address_width(n, config) for n in csr.ADDRESSES] == [41, 40, 40, 41]
    with raises_exactly(ValueError, "'CYCLES' is not an address CSR; choose one of "
                                    "ERROR_ADDR, PROGRAM_BASE, WINDOW_BASE, WINDOW_LIMIT"):
        csr.address_width("CYCLES", config)


@pytest.mark.parametrize(("config", "name", "mask"), [
    ("aw40", "PROGRAM_BASE_LO", 0xFFFF_FFE0),
    ("aw40", "PROGRAM_BASE_HI", 0xFF),
    ("aw40", "WINDOW_LIMIT_HI", 0x1FF),
    ("aw40", "ERROR_ADDR_HI", 0x1FF),
    ("aw16", "PROGRAM_BASE_LO", 0xFFE0),
    ("aw16", "WINDOW_BASE_LO", 0xFFFF),
    ("aw16", "WINDOW_LIMIT_LO", 0x1_FFFF),
    ("aw16", "WINDOW_LIMIT_HI", 0),
    ("tiny", "WINDOW_LIMIT_HI", 1),
    ("tiny", "WINDOW_BASE_HI", 0),
    ("aw64", "WINDOW_LIMIT_HI", ALL),
    ("aw64", "PROGRAM_BASE_HI", ALL),
    ("tiny", "PROGRAM_LENGTH", ALL),
    ("tiny", "CYCLES_HI", ALL),
    ("tiny", "IRQ_ENABLE", 0b11),
    ("tiny", "STATUS", 0x707),
])
def test_implemented_mask(config, name, mask):
    assert csr.implemented_mask(name, CONFIGS[config]) == mask
    assert csr.implemented_mask(reg(name), CONFIGS[config]) == mask


# -- reading -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_reset_values_and_discovery(name):
    """Every register reads its reset value (the configuration registers the design point's),
    the outputs are idle, and the configuration read over the bus rebuilds the design point."""
    config, seed = CONFIGS[name], sum(map(ord, name))
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)

    async def bench(ctx):
        values = await master.read_all(ctx)
        for register in csr.REGISTERS:
            want = expected_reset(register, config)
            assert values[register.name] == want, \
                f"seed {seed}: {register.name} read {values[register.name]:#x}, not {want:#x}"
        assert values["ID"] == csr.MAGIC
        assert csr.unpack("VERSION", values["VERSION"]) == dict(
            zip(("major", "minor"), csr.MAP_VERSION, strict=True))
        assert csr.config_from_registers(values) == dataclasses.replace(config,
                                                                        name="discovered")
        outputs = ("start", "soft_reset", "program_base", "program_length", "window_base",
                   "window_limit", "irq")
        assert all(ctx.get(getattr(dut, port)) == 0 for port in outputs)

    run(dut, bench, seed)


def test_unmapped_offsets_read_zero_and_ignore_writes():
    """Every word offset of the 4 KiB port that no register has reads 0, OKAY; all ones
    written to each changes nothing; the low two address bits select the same word."""
    config, seed = preset("default"), 11
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed, idle=0.05, backpressure=0.05)
    mapped = {r.offset for r in csr.REGISTERS}
    holes = [offset for offset in range(0, csr.CSR_BYTES + 16, 4) if offset not in mapped]
    # Every register's offset one window up, where a decoder of 8 bits would alias it.
    holes += [csr.CSR_BYTES + r.offset for r in csr.REGISTERS] + [0x800, 0xFFC]
    pulses = {"start": [], "soft_reset": []}

    async def bench(ctx):
        for offset in holes:
            await master.write(ctx, offset, ALL)
        for offset in holes:
            assert await master.read(ctx, offset) == 0, f"seed {seed}: offset {offset:#x}"
        values = await master.read_all(ctx)
        assert values == {r.name: expected_reset(r, config) for r in csr.REGISTERS}
        assert await master.read(ctx, reg("ID").offset + 3) == csr.MAGIC

    run(dut, bench, seed, pulses=pulses, timeout=100_000)
    assert pulses == {"start": [], "soft_reset": []}, f"seed {seed}"


# -- RW registers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_rw_round_trip_with_masks_and_strobes(name):
    """Random values with random strobes into the RW registers read back as the strobed bytes
    merged into the old value, masked to the implemented bits, and reach the output ports."""
    config, seed = CONFIGS[name], 100 + sum(map(ord, name))
    rng = random.Random(seed)
    dut = CsrBlock(config)
    master = Master(dut.bus, rng, seed)
    rw = [r for r in csr.REGISTERS if r.access is Access.RW]
    model = {r.name: r.reset for r in rw}

    def quantity(prefix):
        if prefix in model:
            return model[prefix]
        return csr.join64(model[f"{prefix}_LO"], model[f"{prefix}_HI"])

    async def bench(ctx):
        for step in range(60):
            register = rng.choice(rw)
            data = rng.choice([ALL, 0, rng.getrandbits(32)])
            strb = rng.choice([0xF, 0xF, 0, rng.randrange(16)])
            await master.write_reg(ctx, register.name, data, strb)
            bm = byte_mask(strb)
            model[register.name] = ((model[register.name] & ~bm) | (data & bm)) \
                & csr.implemented_mask(register, config)
            check = rng.choice(rw)
            got = await master.read_reg(ctx, check.name)
            assert got == model[check.name], \
                f"seed {seed}, step {step}: {check.name} read {got:#x}, not {model[check.name]:#x}"
            for port in ("PROGRAM_BASE", "PROGRAM_LENGTH", "WINDOW_BASE", "WINDOW_LIMIT"):
                assert ctx.get(getattr(dut, port.lower())) == quantity(port), \
                    f"seed {seed}, step {step}: {port.lower()}"
        values = await master.read_all(ctx)
        assert {n: values[n] for n in model} == model, f"seed {seed}"

    run(dut, bench, seed, timeout=100_000)


def test_address_registers_keep_their_implemented_bits():
    """All ones into every address register: ``addr_width`` bits stay (``WINDOW_LIMIT`` one
    more, so ``2**addr_width``, the top of the address space, is a limit), ``PROGRAM_BASE``
    without its low 5."""
    config, seed = CUSTOM["aw40"], 5
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)

    async def bench(ctx):
        for name in ("PROGRAM_BASE", "WINDOW_BASE", "WINDOW_LIMIT"):
            for half in ("LO", "HI"):
                await master.write_reg(ctx, f"{name}_{half}", ALL)
        assert ctx.get(dut.program_base) == (1 << 40) - 32
        assert ctx.get(dut.window_base) == (1 << 40) - 1
        assert ctx.get(dut.window_limit) == (1 << 41) - 1
        await master.write_reg(ctx, "WINDOW_LIMIT_LO", 0)
        await master.write_reg(ctx, "WINDOW_LIMIT_HI", 0x100)
        assert ctx.get(dut.window_limit) == 1 << 40
        assert await master.read_reg(ctx, "WINDOW_LIMIT_HI") == 0x100
        await master.write_reg(ctx, "PROGRAM_LENGTH", ALL)
        assert ctx.get(dut.program_length) == ALL

    run(dut, bench, seed)


def test_program_and_window_hold_while_busy():
    """While ``busy`` is high the program and window registers ignore writes and ``IRQ_ENABLE``
    does not; once it falls they take writes again."""
    config, seed = preset("tiny"), 21
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)

    async def bench(ctx):
        ctx.set(dut.busy, 1)
        for name in csr.HELD_WHILE_BUSY:
            await master.write_reg(ctx, name, ALL)
        await master.write_reg(ctx, "IRQ_ENABLE", ALL)
        for name in csr.HELD_WHILE_BUSY:
            assert await master.read_reg(ctx, name) == 0, f"seed {seed}: {name}"
        assert await master.read_reg(ctx, "IRQ_ENABLE") == 0b11
        assert ctx.get(dut.program_base) == ctx.get(dut.window_limit) == 0
        ctx.set(dut.busy, 0)
        for name in sorted(csr.HELD_WHILE_BUSY):
            await master.write_reg(ctx, name, ALL)
            assert await master.read_reg(ctx, name) == csr.implemented_mask(name, config), \
                f"seed {seed}: {name}"

    run(dut, bench, seed)


# -- RO, WO and W1C registers ---------------------------------------------------------------------

def test_read_only_registers_ignore_writes():
    """All ones written to every RO register, and to CONTROL with neither action set (reads
    0), change no register, raise no pulse and no output."""
    config, seed = preset("large"), 31
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)
    pulses = {"start": [], "soft_reset": []}

    async def bench(ctx):
        ro = [r for r in csr.REGISTERS if r.access is Access.RO]
        assert len(ro) > 20
        for register in ro:
            await master.write(ctx, register.offset, ALL)
        await master.write_reg(ctx, "CONTROL", ALL & ~csr.register("CONTROL").mask)
        await settle(ctx)
        values = await master.read_all(ctx)
        assert values == {r.name: expected_reset(r, config) for r in csr.REGISTERS}
        assert not ctx.get(dut.irq)

    run(dut, bench, seed, pulses=pulses)
    assert pulses == {"start": [], "soft_reset": []}, f"seed {seed}"


def test_control_pulses():
    """``start`` and ``soft_reset`` are one-cycle pulses, one per write that asks for them;
    ``start`` is ignored while busy and when ``soft_reset`` is written with it; unstrobed bytes
    ask for nothing; CONTROL reads 0."""
    config, seed = preset("default"), 41
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)
    pulses = {"start": [], "soft_reset": []}
    control = reg("CONTROL")
    start, soft = csr.pack(control, start=1), csr.pack(control, soft_reset=1)

    async def bench(ctx):
        steps = [
            (0, start, 0xF, (1, 0)),
            (0, start, 0xE, (1, 0)),           # byte 0 not strobed
            (1, start, 0xF, (1, 0)),           # busy
            (0, start | soft, 0xF, (1, 1)),    # soft_reset wins
            (1, soft, 0xF, (1, 2)),            # soft_reset works while busy
            (0, start | 0xFFFF_FF00, 0x1, (2, 2)),
            (0, ALL, 0xF, (2, 3)),
            (0, start, 0xF, (3, 3)),
        ]
        for index, (busy, data, strb, counts) in enumerate(steps):
            ctx.set(dut.busy, busy)
            await master.write_reg(ctx, "CONTROL", data, strb)
            await settle(ctx)
            assert (len(pulses["start"]), len(pulses["soft_reset"])) == counts, \
                f"seed {seed}, step {index}: {pulses}"
        assert await master.read_reg(ctx, "CONTROL") == 0

    run(dut, bench, seed, pulses=pulses)
    for name, edges in pulses.items():
        assert all(b - a > 1 for a, b in zip(edges, edges[1:], strict=False)), \
            f"{name} longer than a cycle"


def test_start_clears_the_run_but_not_irq_status():
    """A start clears STATUS.done/error, ERROR_CODE, ERROR_ADDR and the counters but leaves
    IRQ_STATUS, the program, the window and IRQ_ENABLE; a soft reset clears IRQ_STATUS too."""
    config, seed = preset("tiny"), 51
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)
    control = reg("CONTROL")

    async def finish(ctx, code, addr):
        ctx.set(dut.finish.payload, {"code": code, "addr": addr})
        ctx.set(dut.finish.valid, 1)
        await ctx.tick()
        ctx.set(dut.finish.valid, 0)

    async def bench(ctx):
        kept = {"PROGRAM_BASE_LO": 0x1000, "PROGRAM_LENGTH": 7, "WINDOW_BASE_LO": 0x800,
                "WINDOW_LIMIT_LO": 0x8000, "IRQ_ENABLE": 0b11}
        for name, value in kept.items():
            await master.write_reg(ctx, name, value)
        await finish(ctx, CoreError.NONE, 0)
        await finish(ctx, CoreError.DMA_WINDOW, 0x1040)
        ctx.set(dut.counts, {"cycles": 1, "macs": 16})
        await settle(ctx, 5)
        ctx.set(dut.counts, {})
        before = await master.read_all(ctx)
        assert csr.unpack("STATUS", before["STATUS"])["error"] == 1
        assert before["CYCLES_LO"] == 5 and before["MACS_LO"] == 80
        assert before["ERROR_ADDR_LO"] == 0x1040 and before["IRQ_STATUS"] == 0b11

        await master.write_reg(ctx, "CONTROL", csr.pack(control, start=1))
        after = await master.read_all(ctx)
        cleared = {"STATUS", "ERROR_CODE", "ERROR_ADDR_LO", "CYCLES_LO", "MACS_LO"}
        assert all(after[name] == 0 for name in cleared), f"seed {seed}: {after}"
        assert {name: after[name] for name in kept} == kept
        assert after["IRQ_STATUS"] == 0b11 and ctx.get(dut.irq)

        await master.write_reg(ctx, "CONTROL", csr.pack(control, soft_reset=1))
        after = await master.read_all(ctx)
        assert after["IRQ_STATUS"] == 0 and not ctx.get(dut.irq)
        assert {name: after[name] for name in kept} == kept

    run(dut, bench, seed)


def test_irq_event_wins_over_its_clear():
    """A run ending at the very edge that a W1C write clears its IRQ_STATUS bit leaves the bit
    set: the new event is not lost."""
    dut = CsrBlock(preset("tiny"))
    bus = dut.bus
    master = Master(bus, random.Random(0), 0)

    async def bench(ctx):
        ctx.set(dut.finish.payload, {"code": CoreError.NONE, "addr": 0})
        ctx.set(dut.finish.valid, 1)
        await ctx.tick()
        ctx.set(dut.finish.valid, 0)
        ctx.set(dut.bus.b.ready, 1)
        for ends_then, want in ((True, 0b01), (False, 0)):
            ctx.set(bus.aw.addr, reg("IRQ_STATUS").offset)
            ctx.set(bus.w.data, ALL)
            ctx.set(bus.w.strb, 0xF)
            ctx.set(bus.aw.valid, 1)
            ctx.set(bus.w.valid, 1)
            _, _, aw_taken, w_taken = await ctx.tick().sample(bus.aw.ready, bus.w.ready)
            assert aw_taken and w_taken
            ctx.set(bus.aw.valid, 0)
            ctx.set(bus.w.valid, 0)
            ctx.set(dut.finish.valid, ends_then)  # the edge performing the write
            _, _, b_valid = await ctx.tick().sample(bus.b.valid)
            assert not b_valid
            ctx.set(dut.finish.valid, 0)
            _, _, b_valid = await ctx.tick().sample(bus.b.valid)
            assert b_valid
            assert csr.unpack("STATUS", await master.read_reg(ctx, "STATUS"))["done"] == 1
            assert await master.read_reg(ctx, "IRQ_STATUS") == want, f"ends then: {ends_then}"

    run(dut, bench, 0)


def test_back_to_back_starts_with_a_prompt_core():
    """The fastest master, holding AW and W valid with start set (the next write issued
    before the first's B) and B always ready: a core that raises ``busy`` at the edge after
    the ``start`` pulse sees one pulse, as the second write is performed after that."""
    dut = CsrBlock(preset("tiny"))
    bus = dut.bus
    pulses = {"start": [], "soft_reset": []}

    async def core(ctx):
        while True:
            _, _, start = await ctx.tick().sample(dut.start)
            if start:
                ctx.set(dut.busy, 1)

    async def bench(ctx):
        ctx.set(bus.aw.addr, reg("CONTROL").offset)
        ctx.set(bus.w.data, csr.pack("CONTROL", start=1))
        ctx.set(bus.w.strb, 0xF)
        ctx.set(bus.b.ready, 1)
        taken = {"aw": 0, "w": 0, "b": 0}
        for _ in range(20):
            ctx.set(bus.aw.valid, taken["aw"] < 2)
            ctx.set(bus.w.valid, taken["w"] < 2)
            _, _, *handshakes = await ctx.tick().sample(
                bus.aw.valid & bus.aw.ready, bus.w.valid & bus.w.ready, bus.b.valid)
            for channel, happened in zip(taken, handshakes, strict=True):
                taken[channel] += happened
        assert taken == {"aw": 2, "w": 2, "b": 2}

    run(dut, bench, 0, pulses=pulses, background=(core,))
    assert len(pulses["start"]) == 1, pulses


@pytest.mark.parametrize("name", ["tiny", "aw40", "aw64"])
def test_finish_status_error_and_irq(name):
    """Random run endings, W1C clears and IRQ_ENABLE values: STATUS, ERROR_CODE, ERROR_ADDR
    and IRQ_STATUS follow a model, and ``irq`` is high exactly while IRQ_STATUS & IRQ_ENABLE
    is nonzero."""
    config, seed = CONFIGS[name], 60 + config_index(name)
    rng = random.Random(seed)
    dut = CsrBlock(config)
    master = Master(dut.bus, rng, seed)
    control = reg("CONTROL")
    addr_bits = csr.address_width("ERROR_ADDR", config)
    top = min(1 << config.addr_width, (1 << 64) - 1)  # just past a window at the top
    state = {"done": 0, "error": 0, "code": 0, "addr": 0, "irq_status": 0, "irq_enable": 0}

    async def check(ctx, step):
        values = {n: await master.read_reg(ctx, n) for n in (
            "STATUS", "ERROR_CODE", "ERROR_ADDR_LO", "ERROR_ADDR_HI", "IRQ_STATUS",
            "IRQ_ENABLE")}
        status = csr.unpack("STATUS", values["STATUS"])
        got = {"done": status["done"], "error": status["error"],
               "code": values["ERROR_CODE"],
               "addr": csr.join64(values["ERROR_ADDR_LO"], values["ERROR_ADDR_HI"]),
               "irq_status": values["IRQ_STATUS"], "irq_enable": values["IRQ_ENABLE"]}
        assert got == state, f"seed {seed}, step {step}"
        assert ctx.get(dut.irq) == bool(state["irq_status"] & state["irq_enable"]), \
            f"seed {seed}, step {step}: irq"

    async def bench(ctx):
        for step in range(40):
            action = rng.choice(["done", "error", "error", "w1c", "enable", "start"])
            if action in ("done", "error"):
                code = CoreError.NONE if action == "done" else rng.choice(list(CoreError)[1:])
                addr = rng.choice([0, top, rng.getrandbits(addr_bits) % (top + 1)])
                ctx.set(dut.finish.payload, {"code": code, "addr": addr})
                ctx.set(dut.finish.valid, 1)
                await ctx.tick()
                ctx.set(dut.finish.valid, 0)
                if action == "done":
                    state["done"] = 1
                    state["irq_status"] |= 0b01
                else:
                    state.update(error=1, code=code, addr=addr)
                    state["irq_status"] |= 0b10
            elif action == "w1c":
                data, strb = rng.getrandbits(32), rng.randrange(16)
                await master.write_reg(ctx, "IRQ_STATUS", data, strb)
                state["irq_status"] &= ~(data & byte_mask(strb))
            elif action == "enable":
                value = rng.getrandbits(32)
                await master.write_reg(ctx, "IRQ_ENABLE", value)
                state["irq_enable"] = value & 0b11
            else:
                await master.write_reg(ctx, "CONTROL", csr.pack(control, start=1))
                state.update(done=0, error=0, code=0, addr=0)
            await check(ctx, step)

    run(dut, bench, seed, timeout=100_000)


def config_index(name):
    return list(CONFIGS).index(name)


@pytest.mark.parametrize("name", ["tiny", "large"])
def test_status_shows_busy_and_queues(name):
    config, seed = CONFIGS[name], 70
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)

    async def bench(ctx):
        for busy in (0, 1):
            for queues in range(8):
                ctx.set(dut.busy, busy)
                ctx.set(dut.queue_busy, queues)
                status = csr.unpack("STATUS", await master.read_reg(ctx, "STATUS"))
                want = {"busy": busy, "done": 0, "error": 0,
                        **{f"{q.name.lower()}_busy": queues >> q & 1 for q in Queue}}
                assert status == want, f"busy {busy}, queues {queues:03b}"

    run(dut, bench, seed)


# -- counters ------------------------------------------------------------------------------------

def test_counter_alone_carries_wraps_and_clears():
    """A narrow :class:`Counter` against a model every cycle: each increment added one edge
    late, the carry into the upper half, the wrap at ``2**width`` and ``clear`` winning over
    both the increment it comes with and the one on its way."""
    seed = 81
    rng = random.Random(seed)
    dut = Counter(8, 3)

    async def bench(ctx):
        model = pending = 0
        for cycle in range(600):
            inc, clear = rng.randrange(8), int(rng.random() < 0.02)
            ctx.set(dut.inc, inc)
            ctx.set(dut.clear, clear)
            await ctx.tick()
            model, pending = (0, 0) if clear else ((model + pending) % 256, inc)
            assert ctx.get(dut.value) == model, f"seed {seed}, cycle {cycle}"

    simulate(dut, bench)


@pytest.mark.parametrize("name", ["tiny", "default", "large"])
def test_counters_count_and_clear(name):
    """Random ``counts`` for a while: every counter reads the sum of its field, apart from the
    others; a start clears them all; so does a soft reset after more counting."""
    config, seed = CONFIGS[name], 90 + config_index(name)
    rng = random.Random(seed)
    dut = CsrBlock(config)
    master = Master(dut.bus, rng, seed)
    layout = counts_layout(config)
    names = csr.counter_names()

    async def count(ctx, cycles):
        totals = dict.fromkeys(names, 0)
        for _ in range(cycles):
            counts = {n: rng.randrange(1 << layout[n.lower()].width) for n in names}
            ctx.set(dut.counts, {n.lower(): v for n, v in counts.items()})
            await ctx.tick()
            for n, v in counts.items():
                totals[n] += v
        ctx.set(dut.counts, {})
        await ctx.tick()  # the last increment lands
        return totals

    async def read_counters(ctx):
        return {n: csr.join64(await master.read_reg(ctx, f"{n}_LO"),
                              await master.read_reg(ctx, f"{n}_HI")) for n in names}

    async def bench(ctx):
        for action in ("start", "soft_reset"):
            totals = await count(ctx, 200)
            assert len(set(totals.values())) > len(names) // 2  # tell the counters apart
            assert await read_counters(ctx) == totals, f"seed {seed}"
            await master.write_reg(ctx, "CONTROL", csr.pack("CONTROL", **{action: 1}))
            assert await read_counters(ctx) == dict.fromkeys(names, 0), \
                f"seed {seed}: after {action}"

    run(dut, bench, seed, timeout=100_000)


def test_counters_carry_across_lo_and_hi():
    """Each counter preloaded just below a 2**32 carry (and MACS below the 2**64 wrap) reads
    the carried value through its _LO and _HI registers."""
    config, seed = preset("large"), 99
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)
    names = csr.counter_names()
    layout = counts_layout(config)

    async def bench(ctx):
        preload = {n: (i + 1 << 32) - 2 for i, n in enumerate(names)}
        for n, value in preload.items():
            ctx.set(dut.counters[n].value, value)
        incs = {n: (1 << layout[n.lower()].width) - 1 for n in names}
        ctx.set(dut.counts, {n.lower(): v for n, v in incs.items()})
        for _ in range(3):
            await ctx.tick()
        ctx.set(dut.counts, {})
        await ctx.tick()  # the last increment lands
        for n in names:
            want = preload[n] + 3 * incs[n]
            lo = await master.read_reg(ctx, f"{n}_LO")
            hi = await master.read_reg(ctx, f"{n}_HI")
            assert csr.split64(want) == (lo, hi), f"{n}: {hi:#x}_{lo:08x}, not {want:#x}"
            assert hi == names.index(n) + 1
        ctx.set(dut.counters["MACS"].value, (1 << 64) - 2)
        ctx.set(dut.counts, {"macs": 5})
        await ctx.tick()
        ctx.set(dut.counts, {})
        await ctx.tick()
        assert await master.read_reg(ctx, "MACS_HI") == 0
        assert await master.read_reg(ctx, "MACS_LO") == 3

    run(dut, bench, seed)


# -- the bus itself -------------------------------------------------------------------------------

def test_reads_and_writes_independent_under_stress():
    """A writer and a reader at once, both random with heavy backpressure: the reader's
    constant registers always read right, and once it is done every written value reads
    back; nothing hangs."""
    config, seed = preset("default"), 111
    dut = CsrBlock(config)
    # Each master checks only its own channels: the other's responses come when they come.
    writer = Master(dut.bus, random.Random(seed), seed, idle=0.5, backpressure=0.6,
                    alone=False)
    reader = Master(dut.bus, random.Random(seed + 1), seed, idle=0.5, backpressure=0.6,
                    alone=False)
    constants = {r.name: expected_reset(r, config) for r in csr.REGISTERS
                 if r.name in ("ID", "VERSION", *csr.CONFIG_NAMES)}
    last, reads_done = {}, []

    async def write(ctx):
        rng = writer.rng
        for _ in range(60):
            name = rng.choice(["PROGRAM_LENGTH", "WINDOW_BASE_LO", "IRQ_ENABLE"])
            value = rng.getrandbits(32)
            await writer.write_reg(ctx, name, value)
            last[name] = value & csr.implemented_mask(name, config)
        while not reads_done:
            await ctx.tick()
        assert len(last) == 3
        for name, value in last.items():
            assert await writer.read_reg(ctx, name) == value, f"seed {seed}: {name}"

    async def read(ctx):
        rng = reader.rng
        for index in range(80):
            name = rng.choice(list(constants))
            assert await reader.read_reg(ctx, name) == constants[name], \
                f"seed {seed}, read {index}: {name}"
        reads_done.append(True)

    simulate(dut, write, read, background=(protocol_monitor(dut, seed),), timeout=100_000)


def test_write_waits_for_both_halves_while_reads_go_on():
    """AW alone is held while reads are answered; the write lands only when W comes, and B
    is offered only then."""
    config, seed = preset("tiny"), 121
    dut = CsrBlock(config)
    master = Master(dut.bus, random.Random(seed), seed)
    bus = dut.bus

    async def bench(ctx):
        before = 0
        for first, second, value in ((bus.aw, bus.w, 0x1234), (bus.w, bus.aw, 0x5678)):
            ctx.set(bus.aw.addr, reg("PROGRAM_LENGTH").offset)
            ctx.set(bus.w.data, value)
            ctx.set(bus.w.strb, 0xF)
            ctx.set(first.valid, 1)
            _, _, taken = await ctx.tick().sample(first.ready)
            assert taken
            ctx.set(first.valid, 0)
            for _ in range(3):
                assert await master.read_reg(ctx, "ID") == csr.MAGIC
                assert not ctx.get(bus.b.valid)
            assert ctx.get(dut.program_length) == before
            assert not ctx.get(first.ready)  # one write at a time
            ctx.set(second.valid, 1)
            _, _, taken = await ctx.tick().sample(second.ready)
            assert taken
            ctx.set(second.valid, 0)
            ctx.set(bus.b.ready, 1)
            _, _, b_valid = await ctx.tick().sample(bus.b.valid)
            assert not b_valid  # the write is performed first
            _, _, b_valid, resp = await ctx.tick().sample(bus.b.valid, bus.b.resp)
            assert b_valid and resp == Resp.OKAY
            ctx.set(bus.b.ready, 0)
            assert ctx.get(dut.program_length) == value
            before = value

    run(dut, bench, seed)


# -- Verilog -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PRESETS)
def test_converts_to_verilog(name):
    dut = CsrBlock(preset(name))
    text = verilog.convert(dut, name=f"csr_{name}", ports=verilog_ports(dut))
    assert f"module csr_{name}" in text
    for port in ("bus__aw__valid", "bus__r__data", "finish__payload", "counts", "irq",
                 "window_limit"):
        assert port in text, port
