"""A small AXI4 master that copies bursts: the RTL the cocotb AXI slave model is checked
against (``make sim BENCH=axi_ram``)."""

from amaranth import Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from rtl.bus.axi import AXI4Signature, Burst, Resp
from rtl.config import JalapenoConfig

__all__ = ["AxiCopy"]


class AxiCopy(wiring.Component):
    """Copies ``count`` bursts of ``len + 1`` full-width beats from ``src`` to ``dst`` through
    its AXI4 master, issuing ARs as fast as they are taken and writing what comes back.

    With ``w_first`` the AW of each write follows its last W beat (so ``len + 1`` must fit
    the slave's W buffer); without, its W beats follow its AW. ``done`` is high while idle;
    the error counters count bursts answered other than ``OKAY`` and responses whose ID is
    not that of the burst expected next.

    It exists to exercise :class:`verification.axi_ram.AxiRamModel` from real RTL in the
    ``axi_ram`` cocotb bench; its bus takes the width and address bits of ``config``.
    """

    def __init__(self, config: JalapenoConfig):
        addr_width = config.addr_width
        self._bus = AXI4Signature(addr_width=addr_width, data_width=config.bus_width,
                                  id_width=4)
        super().__init__({
            "bus": Out(self._bus),
            "start": In(1), "src": In(addr_width), "dst": In(addr_width),
            "count": In(8), "len": In(8), "w_first": In(1),
            "done": Out(1), "r_errors": Out(8), "b_errors": Out(8), "id_errors": Out(8),
        })

    def elaborate(self, platform):
        m = Module()
        bus, id_width = self.bus, self._bus.id_width
        shift = exact_log2(self._bus.bytes_per_beat)
        busy, w_first = Signal(), Signal()
        length, count, beat = Signal(8), Signal(8), Signal(8)
        ar_addr, aw_addr = Signal(len(bus.ar.addr)), Signal(len(bus.aw.addr))
        ar_done, aw_done, w_done, r_done, b_done = (Signal(9, name=f"{n}_done")
                                                    for n in ("ar", "aw", "w", "r", "b"))
        stride = (length + 1) << shift
        m.d.comb += self.done.eq(~busy)
        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), length.eq(self.len), count.eq(self.count),
                         w_first.eq(self.w_first), ar_addr.eq(self.src), aw_addr.eq(self.dst),
                         beat.eq(0), self.r_errors.eq(0), self.b_errors.eq(0),
                         self.id_errors.eq(0)]
            m.d.sync += [c.eq(0) for c in (ar_done, aw_done, w_done, r_done, b_done)]
        with m.If(busy & (r_done == count) & (b_done == count)):
            m.d.sync += busy.eq(0)

        for channel, addr, done in ((bus.ar, ar_addr, ar_done), (bus.aw, aw_addr, aw_done)):
            m.d.comb += [channel.addr.eq(addr), channel.len.eq(length), channel.size.eq(shift),
                         channel.burst.eq(Burst.INCR), channel.id.eq(done)]
            with m.If(channel.valid & channel.ready):
                m.d.sync += [addr.eq(addr + stride), done.eq(done + 1)]
        m.d.comb += [
            bus.ar.valid.eq(busy & (ar_done < count)),
            bus.aw.valid.eq(busy & (aw_done < count) & Mux(w_first, w_done > aw_done, 1)),
        ]

        m.submodules.data = queue = fifo.SyncFIFO(width=len(bus.r.data), depth=32)
        r_fire = bus.r.valid & bus.r.ready
        b_fire = bus.b.valid & bus.b.ready
        m.d.comb += [bus.r.ready.eq(queue.w_rdy), queue.w_en.eq(bus.r.valid),
                     queue.w_data.eq(bus.r.data), bus.b.ready.eq(1)]
        with m.If(r_fire & bus.r.last):
            m.d.sync += r_done.eq(r_done + 1)
            with m.If(bus.r.resp != Resp.OKAY):
                m.d.sync += self.r_errors.eq(self.r_errors + 1)
        with m.If(b_fire):
            m.d.sync += b_done.eq(b_done + 1)
            with m.If(bus.b.resp != Resp.OKAY):
                m.d.sync += self.b_errors.eq(self.b_errors + 1)
        r_bad = r_fire & (bus.r.id != r_done[:id_width])
        b_bad = b_fire & (bus.b.id != b_done[:id_width])
        with m.If(r_bad | b_bad):
            m.d.sync += self.id_errors.eq(self.id_errors + r_bad + b_bad)

        w_fire = bus.w.valid & bus.w.ready
        m.d.comb += [
            bus.w.valid.eq(busy & (w_done < count) & queue.r_rdy
                           & Mux(w_first, 1, aw_done > w_done)),
            bus.w.data.eq(queue.r_data),
            bus.w.strb.eq(-1),
            bus.w.last.eq(beat == length),
            queue.r_en.eq(w_fire),
        ]
        with m.If(w_fire):
            m.d.sync += beat.eq(Mux(bus.w.last, 0, beat + 1))
            with m.If(bus.w.last):
                m.d.sync += w_done.eq(w_done + 1)
        return m
