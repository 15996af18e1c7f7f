# amaranth: UnusedElaboratable=no
# (a top built only to name its ports never elaborates its parts)
"""The core on its memory: the simulation top of the ``core`` cocotb bench.

:class:`CoreSystem` is :class:`rtl.core.core.Core` with its AXI4 master connected to an RTL
memory, :class:`StorageAXIRam`: the AXI4 slave logic of :class:`sim.axi_ram.AXIRam` (its
response rules, read latency and queues) around a plain Verilog array. From outside it has
only what a host has: the CSR block's AXI4-Lite port ``csr`` and ``irq``. The memory
answers in the simulator's own evaluation, so a run costs no Python per cycle: a bench
writes the CSRs, starts the core and awaits ``irq``.

The memory's contents are the Verilog array ``memory`` of the module :data:`STORAGE_MODULE`
(``bus_width``-bit words, little-endian bytes), which the bench reads and writes through
the simulator's handles (``dut.ram.memory.storage.memory[word]``, see
:func:`storage_handle`) before and after a run: there is no backdoor port, and loading an
image takes no simulated cycles. It is a hand-written module instantiated from Amaranth
rather than an Amaranth ``Memory`` because Amaranth writes a ``Memory``'s initial contents
into the Verilog bit by bit: for the megabytes a 256 x 256 x 256 GEMM needs, that takes
minutes to convert and compile; the Verilog array is zeroed by a loop instead.

The other top, ``core`` (:class:`~rtl.core.core.Core` alone, its ``bus`` a port), is the
alternative with the Python AXI RAM (:class:`verification.axi_ram.AxiRamModel`) on the bus:
random latency, stalls and error ranges chosen at run time, at the cost of Python every cycle.
"""

from amaranth import ClockSignal, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import Out
from amaranth.utils import exact_log2

from rtl.bus.arbiter import BUS_ID_WIDTH
from rtl.core.core import Core
from rtl.dma.descriptor import check_config

from .axi_ram import AXIRam

__all__ = ["CoreSystem", "StorageAXIRam", "MEMORY_BYTES", "READ_LATENCY", "SLVERR", "DECERR",
           "STORAGE_MODULE", "STORAGE_VERILOG", "storage_handle"]

#: Bytes of the ``core_system`` top's memory: room for the 256 x 256 x 256 GEMM's operands,
#: result and program on every preset.
MEMORY_BYTES = 1 << 22
#: The ``core_system`` top's read latency (cycles from an AR to its first R beat, see
#: :class:`~sim.axi_ram.AXIRam`): the bench's acceptance figure is taken at 20.
READ_LATENCY = 20
#: Byte ranges of the ``core_system`` top's memory that answer ``SLVERR`` and ``DECERR``
#: (fixed when the Verilog is built): the second and the last 4 KiB below its top.
SLVERR = ((MEMORY_BYTES - 0x2000, MEMORY_BYTES - 0x1000),)
DECERR = ((MEMORY_BYTES - 0x1000, MEMORY_BYTES),)

#: Name of the Verilog module that holds the memory.
STORAGE_MODULE = "jalapeno_ram_storage"
#: Its text: one synchronous read port with an enable (the word read appears the cycle after,
#: writes in that cycle not seen), one write port with a byte enable per byte, and every word
#: zero at time 0, as an Amaranth ``Memory`` with ``read_port()`` and
#: ``write_port(granularity=8)`` behaves.
STORAGE_VERILOG = f"""
module {STORAGE_MODULE} #(
  parameter WIDTH = 64,
  parameter DEPTH = 1024,
  parameter ABITS = 10
) (
  input clk,
  input [ABITS-1:0] raddr,
  input ren,
  output reg [WIDTH-1:0] rdata,
  input [ABITS-1:0] waddr,
  input [WIDTH/8-1:0] wen,
  input [WIDTH-1:0] wdata
);
  reg [WIDTH-1:0] memory [0:DEPTH-1];
  integer i;
  integer b;
  initial begin
    rdata = 0;
    for (i = 0; i < DEPTH; i = i + 1) memory[i] = 0;
  end
  always @(posedge clk) begin
    if (ren) rdata <= memory[raddr];
    for (b = 0; b < WIDTH / 8; b = b + 1)
      if (wen[b]) memory[waddr][b * 8 +: 8] <= wdata[b * 8 +: 8];
  end
endmodule
"""


class _Port:
    """The signals of one port of :class:`_Storage`, named as an Amaranth memory port's."""

    def __init__(self, abits, width, en_width, name):
        self.addr = Signal(abits, name=f"{name}_addr")
        self.en = Signal(en_width, name=f"{name}_en")
        self.data = Signal(width, name=f"{name}_data")


class _Storage(wiring.Component):
    """An instance of :data:`STORAGE_MODULE` with the port interface of an Amaranth
    ``Memory`` that :class:`~sim.axi_ram.AXIRam` uses: ``read_port()`` and
    ``write_port(granularity=8)``, one of each."""

    def __init__(self, width, depth):
        self.width, self.depth = width, depth
        abits = exact_log2(depth)
        self._read = _Port(abits, width, 1, "read")
        self._write = _Port(abits, width, width // 8, "write")
        super().__init__({})

    def read_port(self):
        return self._read

    def write_port(self, *, granularity):
        assert granularity == 8
        return self._write

    def elaborate(self, platform):
        m = Module()
        rd, wr = self._read, self._write
        m.submodules.storage = Instance(
            STORAGE_MODULE,
            p_WIDTH=self.width, p_DEPTH=self.depth, p_ABITS=exact_log2(self.depth),
            i_clk=ClockSignal(), i_raddr=rd.addr, i_ren=rd.en, o_rdata=rd.data,
            i_waddr=wr.addr, i_wen=wr.en, i_wdata=wr.data)
        return m


class StorageAXIRam(AXIRam):
    """:class:`~sim.axi_ram.AXIRam` (same parameters, ports and behaviour) with its words in
    :data:`STORAGE_MODULE` instead of an Amaranth ``Memory``: only for Verilog simulation
    (the Amaranth simulator cannot run the instance), and ``init`` is not applied (the
    bench writes the words through the simulator's handles)."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = mem = _Storage(len(self.bus.w.data), self.data.depth)
        self._read_path(m, self.bus, mem)
        self._write_path(m, self.bus, mem)
        return m


class CoreSystem(wiring.Component):
    """:class:`~rtl.core.core.Core` on a :class:`StorageAXIRam`.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
    memory_bytes : int
        Bytes of memory (a power of two, see :class:`~sim.axi_ram.AXIRam`); addresses from
        there on answer ``DECERR``.
    read_latency : int
        The memory's read latency (:class:`~sim.axi_ram.AXIRam`).
    slverr, decerr : sequence of (int, int)
        Byte ranges ``[lo, hi)`` that answer ``SLVERR`` and ``DECERR``.

    Attributes
    ----------
    csr : In(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=32))
    irq : Out(1)
        The core's.
    memory_bytes, read_latency, slverr, decerr
        As given.

    Raises
    ------
    TypeError, ValueError
        If ``config`` is not a :class:`JalapenoConfig`, or a memory parameter is out of its
        range (:class:`~sim.axi_ram.AXIRam`'s messages).
    """

    def __init__(self, config, *, memory_bytes=MEMORY_BYTES, read_latency=READ_LATENCY,
                 slverr=SLVERR, decerr=DECERR):
        check_config(config)
        self._config = config
        self._core = Core(config)
        self._ram = StorageAXIRam(addr_width=config.addr_width, data_width=config.bus_width,
                                  id_width=BUS_ID_WIDTH, size=memory_bytes,
                                  read_latency=read_latency, slverr=slverr, decerr=decerr)
        self.memory_bytes, self.read_latency = memory_bytes, read_latency
        self.slverr, self.decerr = self._ram.slverr, self._ram.decerr
        core = self._core.signature.members
        super().__init__({"csr": core["csr"], "irq": Out(1)})

    #: Verilog modules the top instantiates, written after the generated ones
    #: (:func:`sim.verilog.generate`).
    verilog_modules = STORAGE_VERILOG

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        m.submodules.ram = ram = self._ram
        wiring.connect(m, wiring.flipped(self.csr), core.csr)
        wiring.connect(m, core.bus, ram.bus)
        m.d.comb += self.irq.eq(core.irq)
        return m


def storage_handle(dut):
    """The cocotb handle of the ``core_system`` top's memory array (words of ``bus_width``
    bits, indexed by byte address // ``bus_bytes``)."""
    return dut.ram.memory.storage.memory

