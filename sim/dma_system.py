# amaranth: UnusedElaboratable=no
# (the parts are built in __init__ for their signatures; a top built only to name its ports
# never elaborates them)
"""The DMA with its scratchpad: the simulation top of the ``dma`` cocotb bench.

:class:`DmaSystem` wires :class:`rtl.dma.dma.Dma` to :class:`rtl.dma.scratchpad.Scratchpad` as
the accelerator does (``spad_w`` into ``dma_w``, ``spad_r`` into ``dma_r`` and ``dma_rdata``
back), and exposes what a bench needs from outside: the DMA's AXI4 master ``bus``, both
engines' control ports, the window, the scratchpad's compute read port ``vec_r``/``vec_data``
as the host's view of the scratchpad, and its accumulator port ``acc_read``/``acc_data``,
which the bench serves in place of the matrix unit. The bench puts data into the scratchpad
with LOADs (so it needs no write port of its own), reads it back, a vector per cycle, through
``vec_r``, and STOREs accumulator rows from the memory it serves.
"""

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.dma.descriptor import axi_signature, check_config
from rtl.dma.dma import Dma, engine_control_signature
from rtl.dma.scratchpad import Scratchpad

__all__ = ["DmaSystem"]


class DmaSystem(wiring.Component):
    """:class:`~rtl.dma.dma.Dma` and :class:`~rtl.dma.scratchpad.Scratchpad` wired together.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    load, store : In(engine_control_signature(config))
        The DMA's read (LOAD) and write (STORE) engine control.
    window_base, window_limit : In(addr_width)
        The DMA's window.
    bus : Out(AXI4Signature(addr_width, bus_width, id_width=1))
        The DMA's AXI4 master port.
    vec_r, vec_data
        The scratchpad's compute read port: ``vector_pitch``-aligned byte addresses in,
        ``vector_bytes`` bytes out, one per cycle (``Scratchpad.vec_r``/``vec_data``).
    acc_read, acc_data
        The scratchpad's port into the accumulator memory: row addresses out, ``cols`` int32
        rows back in order (``Scratchpad.acc_read``/``acc_data``).
    spad_error : Out(1)
        The scratchpad's sticky ``error`` (a misaligned or out-of-range access was accepted).
    vector_bytes, vector_pitch : int
        The scratchpad's.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        self._config = config
        self._dma = Dma(config)
        self._spad = Scratchpad(config)
        self.vector_bytes = self._spad.vector_bytes
        self.vector_pitch = self._spad.vector_pitch
        control = engine_control_signature(config)
        spad_ports = self._spad.signature.members
        super().__init__({
            "load": In(control),
            "store": In(control),
            "window_base": In(config.addr_width),
            "window_limit": In(config.addr_width),
            "bus": Out(axi_signature(config)),
            "vec_r": spad_ports["vec_r"],
            "vec_data": spad_ports["vec_data"],
            "acc_read": spad_ports["acc_read"],
            "acc_data": spad_ports["acc_data"],
            "spad_error": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.dma = dma = self._dma
        m.submodules.spad = spad = self._spad
        wiring.connect(m, wiring.flipped(self.load), dma.load)
        wiring.connect(m, wiring.flipped(self.store), dma.store)
        wiring.connect(m, dma.bus, wiring.flipped(self.bus))
        wiring.connect(m, wiring.flipped(self.vec_r), spad.vec_r)
        wiring.connect(m, spad.vec_data, wiring.flipped(self.vec_data))
        wiring.connect(m, spad.acc_read, wiring.flipped(self.acc_read))
        wiring.connect(m, wiring.flipped(self.acc_data), spad.acc_data)
        wiring.connect(m, dma.spad_w, spad.dma_w)
        wiring.connect(m, dma.spad_r, spad.dma_r)
        wiring.connect(m, spad.dma_rdata, dma.spad_rdata)
        m.d.comb += [
            dma.window_base.eq(self.window_base),
            dma.window_limit.eq(self.window_limit),
            self.spad_error.eq(spad.error),
        ]
        return m
