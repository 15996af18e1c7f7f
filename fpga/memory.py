"""The board's memory: what the core sees as external memory, an AXI4 slave, with a second
port for the host bridge.

On the iCEBreaker the words are the UP5K's four SPRAMs (128 KiB, :class:`SpramStorage`); on
the ULX3S, and in simulation, an :class:`amaranth.lib.memory.Memory`, which Yosys maps to
block RAM (:class:`BlockStorage`). Both are single-port, one word a cycle, read data
:attr:`~_Storage.latency` cycles later, so the slave (:class:`AxiMemory`) runs one burst at a
time and the host port takes the cycles the burst leaves.
"""

from amaranth import Array, Cat, ClockSignal, Instance, Module, Mux, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from rtl.bus.arbiter import BUS_ID_WIDTH
from rtl.bus.axi import BURST_BOUNDARY, AXI4Signature, Resp
from rtl.config import JalapenoConfig

__all__ = ["HostPortSignature", "StorageSignature", "BlockStorage", "SpramStorage",
           "AxiMemory", "SPRAM_BYTES"]

#: Bytes of the UP5K's four SPRAMs together.
SPRAM_BYTES = 4 * 16384 * 2


class HostPortSignature(wiring.Signature):
    """The host bridge's word port into the board memory, from the bridge's side.

    An access is taken in a cycle with ``valid`` and ``ready`` both high: a write of the
    bytes of ``wdata`` whose ``wstrb`` bits are set, or a read, whose word is on ``rdata``
    in the one cycle ``rvalid`` is high, a fixed number of cycles later (the memory's
    latency), before any later read's. ``addr`` is a word address (byte address over the
    word's bytes).

    Parameters
    ----------
    addr_width : int
        Bits of a word address.
    data_width : int
        Bits of a word: the core's bus width.
    """

    def __init__(self, *, addr_width, data_width):
        super().__init__({
            "valid": Out(1),
            "write": Out(1),
            "addr": Out(addr_width),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "ready": In(1),
            "rvalid": In(1),
            "rdata": In(data_width),
        })


class StorageSignature(wiring.Signature):
    """A single-port word memory, from the user's side: in a cycle with ``en``, the word at
    ``addr`` is written with the bytes of ``wdata`` whose ``wstrb`` bits are set (``write``)
    or read, its value on ``rdata`` in the one cycle the storage's ``latency`` later."""

    def __init__(self, *, addr_width, data_width):
        super().__init__({
            "en": Out(1),
            "write": Out(1),
            "addr": Out(addr_width),
            "wdata": Out(data_width),
            "wstrb": Out(data_width // 8),
            "rdata": In(data_width),
        })


def _check(config, size):
    if not isinstance(config, JalapenoConfig):
        raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"size must be an integer, not {size!r}")
    if size < BURST_BOUNDARY or size & (size - 1) or size > 1 << config.addr_width:
        raise ValueError(f"size must be a power of two from {BURST_BOUNDARY} to "
                         f"2**addr_width bytes, not {size}")


class _Storage(wiring.Component):
    """Words of ``config.bus_width`` bits, ``size`` bytes in all.

    Raises
    ------
    TypeError, ValueError
        If ``config`` is not a :class:`JalapenoConfig` or ``size`` is not a power of two
        from 4 KiB to the address space.
    """

    def __init__(self, config, size):
        _check(config, size)
        self._config, self._size = config, size
        super().__init__({"port": In(StorageSignature(
            addr_width=exact_log2(size // config.bus_bytes), data_width=config.bus_width))})

    @property
    def size(self):
        return self._size

    #: Cycles from a read's ``en`` to its word on ``rdata``.
    latency = 1


class BlockStorage(_Storage):
    """The words in an :class:`amaranth.lib.memory.Memory` (block RAM on an FPGA), each access
    registered on its way in.

    The ULX3S's 256 KiB are 128 block RAMs across the whole die: an address or enable from
    logic took 12.7 ns of routing to reach the farthest of them (the board's critical path at
    46 MHz). From a register it is the only thing in its cycle; a read then takes two.
    ``registered=False`` leaves the register out, for a read in one cycle (as the
    iCEBreaker's SPRAMs answer, so that simulation covers both).

    Raises
    ------
    TypeError
        If ``registered`` is not a bool.
    """

    def __init__(self, config, size, *, registered=True):
        if not isinstance(registered, bool):
            raise TypeError(f"registered must be a bool, not {registered!r}")
        super().__init__(config, size)
        self._registered = registered

    @property
    def latency(self):
        return 2 if self._registered else 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        names = ("en", "write", "addr", "wdata", "wstrb")
        port = {name: getattr(self.port, name) for name in names}
        if self._registered:
            port = {name: Signal.like(value, name=f"{name}_reg") for name, value in port.items()}
            m.d.sync += [port[name].eq(getattr(self.port, name)) for name in names]
        m.submodules.mem = mem = memory.Memory(
            shape=cfg.bus_width, depth=self._size // cfg.bus_bytes, init=[])
        rd, wr = mem.read_port(), mem.write_port(granularity=8)
        m.d.comb += [
            rd.addr.eq(port["addr"]), rd.en.eq(port["en"] & ~port["write"]),
            self.port.rdata.eq(rd.data),
            wr.addr.eq(port["addr"]), wr.data.eq(port["wdata"]),
            wr.en.eq(Mux(port["en"] & port["write"], port["wstrb"], 0)),
        ]
        return m


class SpramStorage(_Storage):
    """The words in the iCE40UP5K's ``SB_SPRAM256KA`` blocks (16384 words of 16 bits each):
    ``bus_width / 16`` side by side make a word, and banks of them, chosen by the top address
    bits, make the depth. Nibble write masks come from the byte strobes."""

    #: Words and bits of one SPRAM.
    DEPTH, WIDTH = 16384, 16

    def __init__(self, config, size):
        super().__init__(config, size)
        blocks = size // (self.DEPTH * self.WIDTH // 8)
        if blocks > 4 or config.bus_width // self.WIDTH > blocks:
            raise ValueError(f"{size} bytes at {config.bus_width} bits a word do not fit the "
                             f"4 SPRAMs of 16384 x 16 bits")

    def elaborate(self, platform):
        m = Module()
        port = self.port
        lanes = self._config.bus_width // self.WIDTH
        banks = self._size // (self.DEPTH * self.WIDTH // 8) // lanes
        bank = port.addr[exact_log2(self.DEPTH):]
        bank_read = Signal.like(bank)
        m.d.sync += bank_read.eq(bank)
        outputs = []
        for b in range(banks):
            lane_out = []
            for lane in range(lanes):
                out = Signal(self.WIDTH, name=f"spram_{b}_{lane}_out")
                strobes = port.wstrb[2 * lane:2 * lane + 2]
                m.submodules[f"spram_{b}_{lane}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=port.addr[:exact_log2(self.DEPTH)],
                    i_DATAIN=port.wdata[self.WIDTH * lane:self.WIDTH * (lane + 1)],
                    i_MASKWREN=Cat(strobes[0], strobes[0], strobes[1], strobes[1]),
                    i_WREN=port.write,
                    i_CHIPSELECT=port.en & (bank == b if banks > 1 else 1),
                    i_CLOCK=ClockSignal(),
                    i_STANDBY=0, i_SLEEP=0, i_POWEROFF=1,
                    o_DATAOUT=out)
                lane_out.append(out)
            outputs.append(Cat(*lane_out))
        m.d.comb += port.rdata.eq(Array(outputs)[bank_read] if banks > 1 else outputs[0])
        return m


class AxiMemory(wiring.Component):
    """An AXI4 slave over single-port ``storage`` (a :class:`BlockStorage` or
    :class:`SpramStorage`), with the host bridge's port beside it.

    One burst runs at a time, reads and writes one beat a cycle. Read data goes through a
    buffer of the storage's latency plus two words, so the storage is read ahead while ``r``
    is stalled and a beat still leaves every cycle. The host port is ready in every cycle the
    burst does not use the storage (the bursts come first: the host is a UART, thousands of
    cycles a word).

    A burst reaching past the memory's end is answered ``DECERR`` (reads return zeros) and
    writes nothing; the core issues only ``INCR`` bursts of whole words inside one 4 KiB page,
    the rest of AXI4 is not checked.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Bus width and address width of the core's master.
    storage : BlockStorage or SpramStorage
        The words; this component adds it as a submodule.

    Members
    -------
    bus : In(AXI4Signature(config.addr_width, config.bus_width, id_width=BUS_ID_WIDTH))
    host : In(HostPortSignature(addr_width, config.bus_width))
        Word addresses of the storage.
    """

    def __init__(self, config, storage):
        if not isinstance(storage, _Storage):
            raise TypeError(f"storage must be a BlockStorage or SpramStorage, not {storage!r}")
        self._config, self._storage = config, storage
        words = exact_log2(storage.size // config.bus_bytes)
        #: Words the read buffer holds: two more than the storage's latency, so that a beat
        #: still leaves every cycle while ``r`` is ready.
        self.read_buffer = storage.latency + 2
        super().__init__({
            "bus": In(AXI4Signature(addr_width=config.addr_width, data_width=config.bus_width,
                                    id_width=BUS_ID_WIDTH)),
            "host": In(HostPortSignature(addr_width=words, data_width=config.bus_width)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, bus, host = self._config, self.bus, self.host
        m.submodules.storage = storage = self._storage
        port = storage.port
        shift = exact_log2(cfg.bus_bytes)
        words = len(port.addr)

        addr = Signal(words)
        beats = Signal(8)                       # beats left after this one
        ident = Signal(BUS_ID_WIDTH)
        outside = Signal()                      # the burst reaches past the end: DECERR
        m.submodules.r_buffer = r_buffer = fifo.SyncFIFO(
            width=cfg.bus_width + 1 + 1, depth=self.read_buffer)
        # The burst's storage reads on their way, one stage a cycle, each with whether it is
        # the last beat and outside the memory; the oldest stage's word is on rdata.
        stages = [Signal(data.StructLayout({"valid": 1, "last": 1, "outside": 1}),
                          name=f"in_flight_{k}") for k in range(self._storage.latency)]
        issued = Signal.like(stages[0])
        host_reads = Signal(self._storage.latency)  # the same for the host's reads
        host_read = Signal()
        m.d.sync += [stages[0].eq(issued), host_reads.eq(Cat(host_read, host_reads[:-1]))]
        m.d.sync += [later.eq(earlier) for earlier, later in zip(stages, stages[1:], strict=False)]
        in_flight = Cat(stage.valid for stage in stages)
        landing = stages[-1]

        def outside_of(channel):
            end = channel.addr + ((channel.len + 1) << shift) - 1
            return (end >> shift) >= (1 << words)

        burst_uses = Signal()                   # the burst takes the storage this cycle
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += bus.ar.ready.eq(1)
                m.d.comb += bus.aw.ready.eq(~bus.ar.valid)
                with m.If(bus.ar.valid):
                    m.d.sync += [addr.eq(bus.ar.addr >> shift), beats.eq(bus.ar.len),
                                 ident.eq(bus.ar.id), outside.eq(outside_of(bus.ar))]
                    m.next = "READ"
                with m.Elif(bus.aw.valid):
                    m.d.sync += [addr.eq(bus.aw.addr >> shift), beats.eq(bus.aw.len),
                                 ident.eq(bus.aw.id), outside.eq(outside_of(bus.aw))]
                    m.next = "WRITE"
            with m.State("READ"):
                # Issue when the buffer has room for this word and those in flight.
                room = (r_buffer.level + sum(stage.valid for stage in stages)) < self.read_buffer
                with m.If(room):
                    m.d.comb += [burst_uses.eq(~outside), port.en.eq(~outside),
                                 port.addr.eq(addr),
                                 issued.eq(Cat(1, beats == 0, outside))]
                    m.d.sync += [addr.eq(addr + 1), beats.eq(beats - 1)]
                    with m.If(beats == 0):
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                with m.If(~in_flight.any() & ~r_buffer.r_rdy):
                    m.next = "IDLE"
            with m.State("WRITE"):
                m.d.comb += bus.w.ready.eq(1)
                with m.If(bus.w.valid):
                    m.d.comb += [burst_uses.eq(~outside), port.en.eq(~outside),
                                 port.write.eq(1), port.addr.eq(addr),
                                 port.wdata.eq(bus.w.data), port.wstrb.eq(bus.w.strb)]
                    m.d.sync += [addr.eq(addr + 1), beats.eq(beats - 1)]
                    with m.If(beats == 0):
                        m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.comb += [bus.b.valid.eq(1), bus.b.id.eq(ident),
                             bus.b.resp.eq(Mux(outside, Resp.DECERR, Resp.OKAY))]
                with m.If(bus.b.ready):
                    m.next = "IDLE"

        # The word read `latency` cycles ago enters the buffer; the buffer feeds R.
        m.d.comb += [
            r_buffer.w_en.eq(landing.valid),
            r_buffer.w_data.eq(Cat(Mux(landing.outside, 0, port.rdata), landing.last,
                                   landing.outside)),
            bus.r.valid.eq(r_buffer.r_rdy), r_buffer.r_en.eq(bus.r.ready),
            bus.r.data.eq(r_buffer.r_data[:cfg.bus_width]),
            bus.r.last.eq(r_buffer.r_data[cfg.bus_width]),
            bus.r.resp.eq(Mux(r_buffer.r_data[cfg.bus_width + 1], Resp.DECERR, Resp.OKAY)),
            bus.r.id.eq(ident),
        ]

        # The host takes the cycles the burst leaves.
        m.d.comb += [host.rdata.eq(port.rdata), host.rvalid.eq(host_reads[-1])]
        with m.If(~burst_uses):
            m.d.comb += host.ready.eq(1)
            with m.If(host.valid):
                m.d.comb += [port.en.eq(1), port.write.eq(host.write), port.addr.eq(host.addr),
                             port.wdata.eq(host.wdata), port.wstrb.eq(host.wstrb),
                             host_read.eq(~host.write)]
        return m
