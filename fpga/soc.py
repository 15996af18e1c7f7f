"""What a board carries, without its pins and clocks: the core, its memory and the host
bridge (:class:`BoardSoC`). The board tops put a PLL and the board's pins around it; the
board simulation (``verification/tb/test_board.py``) drives its UART pins directly.
"""

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from rtl.config import JalapenoConfig
from rtl.core.core import Core

from .bridge import HostBridge
from .memory import AxiMemory, BlockStorage, SpramStorage

__all__ = ["StatusLayout", "BoardSoC"]


class StatusLayout(data.StructLayout):
    """What the board's LEDs show.

    Fields
    ------
    heartbeat
        Toggles every 2**24 cycles: the clock runs and the design is configured.
    link
        A frame is being received.
    link_error
        A frame was dropped (bad CRC, bad header, cut short) in the last 2**22 cycles.
    irq
        The core's interrupt: a run ended and the host has not yet cleared it.
    """

    def __init__(self):
        super().__init__({"heartbeat": 1, "link": 1, "link_error": 1, "irq": 1})


class BoardSoC(wiring.Component):
    """The core on a board: its AXI4 master on the board's memory, its CSRs and that memory
    behind the UART host bridge.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        The core's design point.
    memory_bytes : int
        Bytes of memory, from address 0 (a power of two, at least 4 KiB).
    divisor : int
        Clock cycles per UART bit.
    spram : bool
        Keep the memory in the iCE40UP5K's SPRAMs (:class:`~fpga.memory.SpramStorage`),
        else in block RAM (:class:`~fpga.memory.BlockStorage`, also what simulation uses).

    Members
    -------
    rx : In(1)
        The UART line from the host.
    tx : Out(1)
        The UART line to the host.
    status : Out(StatusLayout())
    """

    #: log2 of the heartbeat's half period and of the link-error LED's hold, in cycles.
    HEARTBEAT_BITS, ERROR_HOLD_BITS = 24, 22

    def __init__(self, config, *, memory_bytes, divisor, spram=False):
        if not isinstance(config, JalapenoConfig):
            raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
        self._config = config
        storage_type = SpramStorage if spram else BlockStorage
        self._storage = storage_type(config, memory_bytes)
        self._bridge = HostBridge(config, divisor=divisor, memory_bytes=memory_bytes)
        self.memory_bytes = memory_bytes
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1),
                          "status": Out(StatusLayout())})

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = Core(self._config)
        m.submodules.memory = memory = AxiMemory(self._config, self._storage)
        m.submodules.bridge = bridge = self._bridge
        wiring.connect(m, core.bus, memory.bus)
        wiring.connect(m, bridge.csr, core.csr)
        wiring.connect(m, bridge.mem, memory.host)
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]

        beat = Signal(self.HEARTBEAT_BITS)
        hold = Signal(self.ERROR_HOLD_BITS)
        m.d.sync += beat.eq(beat + 1)
        with m.If(bridge.error):
            m.d.sync += hold.eq(-1)
        with m.Elif(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        m.d.comb += [
            self.status.heartbeat.eq(beat[-1]),
            self.status.link.eq(bridge.active),
            self.status.link_error.eq(hold != 0),
            self.status.irq.eq(core.irq),
        ]
        return m
