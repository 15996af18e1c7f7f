"""The DMA engine: a read and a write engine sharing one AXI4 master port and one window."""

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .descriptor import axi_signature, check_config
from .front import engine_control_signature
from .read_engine import ReadEngine
from .scratchpad import dma_write_layout
from .write_engine import WriteEngine

__all__ = ["Dma", "engine_control_signature"]


class Dma(wiring.Component):
    """A :class:`~rtl.dma.read_engine.ReadEngine` (LOAD) on ``ar``/``r`` and a
    :class:`~rtl.dma.write_engine.WriteEngine` (STORE) on ``aw``/``w``/``b`` of one AXI4 master
    port. The two run independently and at once; each has its own descriptors, ``done``,
    error state and ``clear``, and both are held to the one window.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``bus_width``, ``addr_width``, ``spad_bytes``).

    Attributes
    ----------
    load, store : In(engine_control_signature(config))
        The read and the write engine's control.
    window_base, window_limit : In(addr_width)
        Every external byte either engine touches is in ``[window_base, window_limit)``,
        the window of the cycle before (it acts one cycle after it is driven).
    bus : Out(AXI4Signature(addr_width, bus_width, id_width=1))
        The master port; every burst has ID 0.
    spad_w : Out(stream.Signature(dma_write_layout(config)))
        Scratchpad writes of the read engine.
    spad_r : Out(stream.Signature(local_addr_width)), spad_rdata : In(stream.Signature(bus_width))
        Local reads of the write engine: the scratchpad's ``dma_r``/``dma_rdata``, which
        reach the accumulator memory too.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        self._config = config
        control = engine_control_signature(config)
        super().__init__({
            "load": In(control),
            "store": In(control),
            "window_base": In(config.addr_width),
            "window_limit": In(config.addr_width),
            "bus": Out(axi_signature(config)),
            "spad_w": Out(stream.Signature(dma_write_layout(config))),
            "spad_r": Out(stream.Signature(config.local_addr_width)),
            "spad_rdata": In(stream.Signature(config.bus_width)),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = reader = ReadEngine(self._config)
        m.submodules.writer = writer = WriteEngine(self._config)
        for engine, port in ((reader, self.load), (writer, self.store)):
            wiring.connect(m, wiring.flipped(port.desc), engine.desc)
            wiring.connect(m, engine.done, wiring.flipped(port.done))
            m.d.comb += [
                engine.clear.eq(port.clear),
                port.error.eq(engine.error),
                port.busy.eq(engine.busy),
                engine.window_base.eq(self.window_base),
                engine.window_limit.eq(self.window_limit),
            ]
        wiring.connect(m, reader.ar, wiring.flipped(self.bus.ar))
        wiring.connect(m, wiring.flipped(self.bus.r), reader.r)
        wiring.connect(m, writer.aw, wiring.flipped(self.bus.aw))
        wiring.connect(m, writer.w, wiring.flipped(self.bus.w))
        wiring.connect(m, wiring.flipped(self.bus.b), writer.b)
        wiring.connect(m, reader.spad_w, wiring.flipped(self.spad_w))
        wiring.connect(m, writer.spad_r, wiring.flipped(self.spad_r))
        wiring.connect(m, wiring.flipped(self.spad_rdata), writer.spad_rdata)
        return m
