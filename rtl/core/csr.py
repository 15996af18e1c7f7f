"""The core's control and status registers: an AXI4-Lite slave built from the register map of
:mod:`jalapeno.csr`, the one definition of their offsets, access kinds, fields and resets."""

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from jalapeno import csr
from jalapeno.csr import Access
from jalapeno.isa import CoreError, Queue

from ..bus.axi import AXI4LiteSignature, Resp
from ..config import JalapenoConfig

__all__ = ["BUS_ADDR_WIDTH", "Counter", "CsrBlock", "counts_layout", "finish_layout"]

#: Address bits of the CSR block's AXI4-Lite port: the fewest :class:`AXI4LiteSignature`
#: allows (one 4 KiB page), above the 8 that :data:`jalapeno.csr.CSR_BYTES` needs. Offsets
#: from ``CSR_BYTES`` up are unmapped like the holes below it.
BUS_ADDR_WIDTH = 12

#: The most each performance counter grows in one cycle, where that is more than 1: the
#: array's MACs, a bus word, and an instruction retired by each queue plus END (the queues run
#: concurrently).
_PER_CYCLE = {
    "MACS": lambda config: config.macs_per_cycle,
    "DMA_READ_BYTES": lambda config: config.bus_bytes,
    "DMA_WRITE_BYTES": lambda config: config.bus_bytes,
    "INSTRUCTIONS": lambda config: len(Queue) + 1,
}
#: Bits of a 64-bit quantity (a ``_LO``/``_HI`` pair).
_PAIR_BITS = 2 * csr.DATA_BITS
#: The read-only registers that hold a constant (their reset value), not state.
_CONSTANTS = ("ID", "VERSION")
#: The read-only registers that show the state of a run.
_RUN_STATE = ("STATUS", "ERROR_CODE", "ERROR_ADDR_LO", "ERROR_ADDR_HI")
#: The registers whose values leave the block on a port of that name (lower case).
_PORTS = ("PROGRAM_BASE", "PROGRAM_LENGTH", "WINDOW_BASE", "WINDOW_LIMIT")


def _check_config(config):
    if not isinstance(config, JalapenoConfig):
        raise TypeError(f"config must be a JalapenoConfig, not {config!r}")


def _check_width(name, value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")


def _quantity(reg):
    """``(name, half)`` of a ``_LO`` (half 0) or ``_HI`` (half 1) register, else ``(None,
    None)``."""
    name, _, half = reg.name.rpartition("_")
    return (name, ("LO", "HI").index(half)) if half in ("LO", "HI") else (None, None)


def _unimplemented(registers):
    """Names of the registers of the map that :class:`CsrBlock` has no hardware for."""
    known = {*_CONSTANTS, *_RUN_STATE, "IRQ_ENABLE", "IRQ_STATUS", "CONTROL"}
    missing = []
    for reg in registers:
        quantity, _ = _quantity(reg)
        if not (reg.name in known or reg.reset is None or reg.name in _PORTS
                or quantity in _PORTS or quantity in csr.counter_names()):
            missing.append(reg.name)
    return missing


def finish_layout(config: JalapenoConfig):
    """How a run ends: ``code``, a :class:`~jalapeno.isa.CoreError` value as wide as
    ``ERROR_CODE.code``, and ``addr``, the byte address for ``ERROR_ADDR``: ``addr_width + 1``
    bits, as the address just past a window that ends at the top of the address space is
    2**addr_width (:func:`jalapeno.csr.address_width`).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    _check_config(config)
    (code,) = csr.register("ERROR_CODE").fields
    return data.StructLayout({
        "code": unsigned(code.width),
        "addr": unsigned(csr.address_width("ERROR_ADDR", config)),
    })


def counts_layout(config: JalapenoConfig):
    """What each performance counter adds in one cycle: a field per name of
    :func:`jalapeno.csr.counter_names`, in lower case, wide enough for the most it can add in
    a cycle: ``rows * cols`` for ``macs``, ``bus_bytes`` for ``dma_read_bytes`` and
    ``dma_write_bytes``, 4 for ``instructions`` (one retired by each of the three queues, which
    run concurrently, and END), 1 for the others, which count cycles.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    _check_config(config)
    return data.StructLayout({
        name.lower(): unsigned(_PER_CYCLE.get(name, lambda _: 1)(config).bit_length())
        for name in csr.counter_names()})


class Counter(wiring.Component):
    """A ``width``-bit event counter: adds each ``inc`` one edge after it is given, wrapping
    modulo ``2**width``, and becomes 0 instead at an edge where ``clear`` is high, dropping
    the increment still on its way as well as the one given with ``clear``.

    The increment waits a cycle in a register so that what computes it (the core's
    handshakes, a popcount of strobes) and the wide carry chain of the count are two clock
    paths, not one. The count is the same as adding at once, a cycle later; the core's
    counters are read over the bus, many cycles after anything they count.

    One of these holds each 64-bit performance counter of :class:`CsrBlock`; on its own and
    narrow, it shows the carry across the halves without 2**32 cycles of simulation.

    Parameters
    ----------
    width : int
        Bits of the count.
    inc_width : int
        Bits of the increment, at most ``width``.
    src_loc_at : int
        Frames above the caller to blame if the counter is never elaborated (as
        :class:`CsrBlock` builds its counters before it is elaborated).

    Attributes
    ----------
    inc : In(inc_width)
        Added at the edge after the next.
    clear : In(1)
        Zeroes the count at the next edge and drops the increments given up to it.
    value : Out(width)
        The count, a register; 0 after reset.

    Raises
    ------
    TypeError
        If a width is not an integer.
    ValueError
        If a width is below 1 or ``inc_width`` above ``width``.
    """

    def __init__(self, width, inc_width, *, src_loc_at=0):
        _check_width("width", width)
        _check_width("inc_width", inc_width)
        if inc_width > width:
            raise ValueError(f"inc_width must be at most width ({width}), not {inc_width}")
        super().__init__({"inc": In(inc_width), "clear": In(1), "value": Out(width)},
                         src_loc_at=src_loc_at)

    def elaborate(self, platform):
        m = Module()
        pending = Signal.like(self.inc)
        with m.If(self.clear):
            m.d.sync += [self.value.eq(0), pending.eq(0)]
        with m.Else():
            m.d.sync += [self.value.eq(self.value + pending), pending.eq(self.inc)]
        return m


class CsrBlock(wiring.Component):
    """The core's control and status registers on an AXI4-Lite slave port, generated from
    :data:`jalapeno.csr.REGISTERS`: offsets, access kinds, reserved bits, reset values, the
    configuration values and the counters all come from the map, so ``docs/csr.md`` describes
    exactly this block.

    **The bus.** One write and one read are handled at a time, independently. ``aw`` and ``w``
    are each taken into a holding register whenever it is empty, in either order or at the
    same edge; in a cycle where both are held and no ``b`` waits, the write is performed at
    the edge, which empties them and offers ``b``, so the next write may arrive before that
    ``b`` is taken but is performed only after. ``ar`` is taken while no read
    response waits; the register is read at that edge and offered on ``r`` from the next
    cycle. No ``valid`` depends on a ``ready``, and every response is ``OKAY``. The word at
    ``addr`` with its low two bits ignored is accessed (``prot`` is ignored too); offsets no
    register has, including everything from :data:`~jalapeno.csr.CSR_BYTES` up, read 0 and
    ignore writes. Writes change only the bytes ``w.strb`` selects, for every access kind, and
    only a register's :func:`~jalapeno.csr.implemented_mask` bits: reserved bits, and the
    address bits above ``addr_width`` (``addr_width + 1`` for ``WINDOW_LIMIT`` and
    ``ERROR_ADDR``), read 0. A read at the edge a write is performed returns the old value.

    **The registers.** ``ID``, ``VERSION`` and the configuration registers are constants
    (:func:`jalapeno.csr.config_registers`). The RW registers hold what was last written, from
    their reset values; those of :data:`jalapeno.csr.HELD_WHILE_BUSY` (the program and the
    window) ignore writes while ``busy`` is high. A write of ``CONTROL`` with ``soft_reset``
    set raises ``soft_reset`` for the next cycle; one with ``start`` set and ``soft_reset``
    clear, performed while ``busy`` is low, raises ``start`` for the next cycle. ``STATUS``
    shows ``busy`` and ``queue_busy`` as they are, and ``done`` and ``error``, which a
    ``finish`` sets (code ``NONE``: ``done``; any other: ``error``, with the code in
    ``ERROR_CODE`` and the address in ``ERROR_ADDR``) together with the same bit of
    ``IRQ_STATUS``. ``IRQ_STATUS`` bits are cleared by writing 1; one set and cleared at the
    same edge stays set, so no event is lost. ``irq`` is high while ``IRQ_STATUS &
    IRQ_ENABLE`` is nonzero.

    Each performance counter adds its field of ``counts`` at every edge; the core drives 0 for
    what does not happen, and so all of ``counts`` while it is idle, which holds the counters
    still. At the edge that ends a ``start`` pulse, ``STATUS.done``, ``STATUS.error``,
    ``ERROR_CODE``, ``ERROR_ADDR`` and the counters are cleared, whatever ``finish`` and
    ``counts`` say then; at the end of a ``soft_reset`` pulse, these and ``IRQ_STATUS`` are.

    Writes are performed at most every other edge, so the next write after the one that
    raised ``start`` looks at ``busy`` in the cycle after the pulse at the earliest (even from
    a master that issues it before taking the first's ``b``): a core that raises ``busy`` by
    then never sees a second ``start`` for one run.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point: ``addr_width`` for the address registers, every parameter for the
        configuration registers, ``rows * cols`` and ``bus_bytes`` for the widths of
        ``counts``.

    Attributes
    ----------
    bus : In(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=32))
        The register port, a slave.
    start, soft_reset : Out(1)
        One-cycle pulses: run the program; stop the core and return it to idle.
    program_base : Out(addr_width)
        ``PROGRAM_BASE``; its low 5 bits are 0.
    program_length : Out(32)
        ``PROGRAM_LENGTH``, in instructions.
    window_base : Out(addr_width)
        ``WINDOW_BASE``.
    window_limit : Out(addr_width + 1)
        ``WINDOW_LIMIT``: the window is ``[window_base, window_limit)``.
    irq : Out(1)
        The interrupt line, a level.
    busy : In(1)
        The core is running (``STATUS.busy``).
    queue_busy : In(3)
        Bit ``q``: queue :class:`~jalapeno.isa.Queue` ``q`` holds or is executing an
        instruction (``STATUS.<queue>_busy``).
    finish : In(stream.Signature(finish_layout(config), always_ready=True))
        Valid for one cycle when a run ends, with how.
    counts : In(counts_layout(config))
        What each performance counter adds this cycle.
    counters : dict of str to :class:`Counter`
        The performance counters by map name, their ``value`` the 64 bits their ``_LO`` and
        ``_HI`` registers read; here so that a testbench can preload one near a carry.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    ValueError
        If the register map has a register this block has no hardware for.
    """

    def __init__(self, config: JalapenoConfig):
        _check_config(config)
        missing = _unimplemented(csr.REGISTERS)
        if missing:
            raise ValueError(f"CsrBlock has no hardware for CSRs {', '.join(missing)}")
        self._config = config
        counts = counts_layout(config)
        # Attributed to the caller, like the block itself, if never elaborated.
        self.counters = {}
        for name in csr.counter_names():
            self.counters[name] = Counter(_PAIR_BITS, counts[name.lower()].width, src_loc_at=1)
        super().__init__({
            "bus": In(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=csr.DATA_BITS)),
            "start": Out(1),
            "soft_reset": Out(1),
            "program_base": Out(csr.address_width("PROGRAM_BASE", config)),
            "program_length": Out(csr.DATA_BITS),
            "window_base": Out(csr.address_width("WINDOW_BASE", config)),
            "window_limit": Out(csr.address_width("WINDOW_LIMIT", config)),
            "irq": Out(1),
            "busy": In(1),
            "queue_busy": In(len(Queue)),
            "finish": In(stream.Signature(finish_layout(config), always_ready=True)),
            "counts": In(counts),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg, bus = self._config, self.bus
        word = csr.DATA_BITS

        # -- the bus handshakes ------------------------------------------------------------
        aw_held, w_held, b_valid = Signal(), Signal(), Signal()
        aw_addr = Signal(BUS_ADDR_WIDTH)
        w_data, w_strb = Signal(word), Signal(word // 8)
        r_valid, r_data = Signal(), Signal(word)
        do_write = Signal()
        m.d.comb += [
            bus.aw.ready.eq(~aw_held),
            bus.w.ready.eq(~w_held),
            bus.b.valid.eq(b_valid),
            bus.b.resp.eq(Resp.OKAY),
            bus.ar.ready.eq(~r_valid),
            bus.r.valid.eq(r_valid),
            bus.r.data.eq(r_data),
            bus.r.resp.eq(Resp.OKAY),
            do_write.eq(aw_held & w_held & ~b_valid),
        ]
        with m.If(bus.aw.valid & bus.aw.ready):
            m.d.sync += [aw_held.eq(1), aw_addr.eq(bus.aw.addr)]
        with m.If(bus.w.valid & bus.w.ready):
            m.d.sync += [w_held.eq(1), w_data.eq(bus.w.data), w_strb.eq(bus.w.strb)]
        with m.If(do_write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), b_valid.eq(1)]
        with m.If(bus.b.valid & bus.b.ready):
            m.d.sync += b_valid.eq(0)
        with m.If(bus.r.valid & bus.r.ready):
            m.d.sync += r_valid.eq(0)

        # The written bits: those of the strobed bytes that are 1 in the data.
        byte_mask = Cat(bit.replicate(8) for bit in w_strb)
        written = w_data & byte_mask

        # -- the state ---------------------------------------------------------------------
        start, soft_reset = Signal(), Signal()
        m.d.comb += [self.start.eq(start), self.soft_reset.eq(soft_reset)]
        m.d.sync += [start.eq(0), soft_reset.eq(0)]
        clear_run = start | soft_reset

        # Generic storage: every RW and W1C register, as wide as the map's word.
        store = {}
        for reg in csr.REGISTERS:
            if reg.access in (Access.RW, Access.W1C):
                mask = csr.implemented_mask(reg, cfg)
                store[reg.name] = Signal(word, init=reg.reset & mask, name=reg.name.lower())

        fin = self.finish.payload
        ended = self.finish.valid
        events = {"done": ended & (fin.code == CoreError.NONE),
                  "error": ended & (fin.code != CoreError.NONE)}
        done, error = Signal(), Signal()
        error_code = Signal.like(fin.code)
        error_addr = Signal.like(fin.addr)
        with m.If(events["done"]):
            m.d.sync += done.eq(1)
        with m.If(events["error"]):
            m.d.sync += [error.eq(1), error_code.eq(fin.code), error_addr.eq(fin.addr)]
        with m.If(clear_run):
            m.d.sync += [done.eq(0), error.eq(0), error_code.eq(0), error_addr.eq(0)]

        for name, counter in self.counters.items():
            m.submodules[f"{name.lower()}_counter"] = counter
            m.d.comb += [counter.inc.eq(self.counts[name.lower()]), counter.clear.eq(clear_run)]

        # -- what each register reads ------------------------------------------------------
        def pair(value, half):
            wide = Signal(_PAIR_BITS)
            m.d.comb += wide.eq(value)
            return wide[half * word:(half + 1) * word]

        def fields(reg, sources):
            """The register's word with each field's source at its place."""
            value = 0
            for f in reg.fields:
                if f.name not in sources:
                    raise ValueError(f"CsrBlock has no source for {reg.name}.{f.name}")
                value |= sources[f.name].as_unsigned() << f.lsb
            return value

        config_values = csr.config_registers(cfg)
        queue_bits = {f"{q.name.lower()}_busy": self.queue_busy[q] for q in Queue}
        reads = {}
        for reg in csr.REGISTERS:
            quantity, half = _quantity(reg)
            if reg.reset is None:
                reads[reg.name] = Const(config_values[reg.name], word)
            elif reg.name in _CONSTANTS:
                reads[reg.name] = Const(reg.reset, word)
            elif reg.name in store:
                reads[reg.name] = store[reg.name]
            elif quantity in self.counters:
                reads[reg.name] = pair(self.counters[quantity].value, half)
            elif reg.name == "STATUS":
                reads[reg.name] = fields(reg, {"busy": self.busy, "done": done, "error": error,
                                               **queue_bits})
            elif reg.name == "ERROR_CODE":
                reads[reg.name] = fields(reg, {"code": error_code})
            elif quantity == "ERROR_ADDR":
                reads[reg.name] = pair(error_addr, half)
            else:  # write-only
                reads[reg.name] = Const(0, word)

        read_value = Signal(word)
        with m.Switch(bus.ar.addr[2:]):
            for reg in csr.REGISTERS:
                with m.Case(reg.offset // 4):
                    m.d.comb += read_value.eq(reads[reg.name] & csr.implemented_mask(reg, cfg))
        with m.If(bus.ar.valid & bus.ar.ready):
            m.d.sync += [r_valid.eq(1), r_data.eq(read_value)]

        # -- writes ------------------------------------------------------------------------
        w1c_clear = {reg.name: Signal(word, name=f"{reg.name.lower()}_clear")
                     for reg in csr.REGISTERS if reg.access is Access.W1C}
        with m.If(do_write), m.Switch(aw_addr[2:]):
            for reg in csr.REGISTERS:
                mask = csr.implemented_mask(reg, cfg)
                with m.Case(reg.offset // 4):
                    if reg.access is Access.RW:
                        old = store[reg.name]
                        new = ((old & ~byte_mask) | written) & mask
                        if reg.name in csr.HELD_WHILE_BUSY:
                            with m.If(~self.busy):
                                m.d.sync += old.eq(new)
                        else:
                            m.d.sync += old.eq(new)
                    elif reg.access is Access.W1C:
                        m.d.comb += w1c_clear[reg.name].eq(written & mask)
                    elif reg.access is Access.WO:
                        actions = {f.name: written[f.lsb:f.msb + 1].any() for f in reg.fields}
                        if set(actions) != {"start", "soft_reset"}:
                            raise ValueError(f"CsrBlock has no hardware for the fields of "
                                             f"{reg.name}")
                        m.d.sync += soft_reset.eq(actions["soft_reset"])
                        m.d.sync += start.eq(actions["start"] & ~actions["soft_reset"]
                                             & ~self.busy)

        for name, clear in w1c_clear.items():
            reg = csr.register(name)
            value = store[name]
            set_bits = fields(reg, events) & csr.implemented_mask(reg, cfg)
            m.d.sync += value.eq((value & ~clear) | set_bits)
            with m.If(soft_reset):
                m.d.sync += value.eq(0)

        # -- the outputs -------------------------------------------------------------------
        for name in _PORTS:
            port = getattr(self, name.lower())
            if name in store:
                m.d.comb += port.eq(store[name])
            else:
                m.d.comb += port.eq(Cat(store[f"{name}_LO"], store[f"{name}_HI"]))
        m.d.comb += self.irq.eq((store["IRQ_STATUS"] & store["IRQ_ENABLE"]).any())
        return m
