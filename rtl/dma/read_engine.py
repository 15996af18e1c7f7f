"""The DMA read engine (LOAD): external memory to the scratchpad."""

from amaranth import Const, Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import Out

from ..bus.axi import Burst, Resp
from ..bus.skid import SkidBuffer
from .descriptor import (
    DmaError,
    axi_signature,
    beat_shift,
    burst_layout,
    check_config,
)
from .front import EngineFront, engine_ports
from .scratchpad import dma_write_layout

__all__ = ["ReadEngine", "AXI_CACHE", "AXI_PROT"]

#: ``AxCACHE`` of every DMA burst: normal, non-cacheable, bufferable.
AXI_CACHE = 0b0011
#: ``AxPROT`` of every DMA burst: unprivileged, secure, data.
AXI_PROT = 0b000


class ReadEngine(wiring.Component):
    """Runs LOAD descriptors: reads external memory in AXI4 INCR bursts on ``ar``/``r`` and
    writes each beat to the scratchpad on ``spad_w``.

    Bursts are ``AxSIZE = log2(bus_bytes)``, at most 256 beats, never across 4 KiB, never
    across a row (see :class:`~rtl.dma.burst.BurstSplitter`), all with ID 0, so R beats come
    back in order. Up to :attr:`OUTSTANDING` bursts are in flight: each one's bookkeeping (first
    scratchpad address, length, last-beat strobes, whether it ends its descriptor) waits in a
    queue from the cycle its AR is committed until its last R beat. ``r.last`` is not looked at:
    beats are counted against ``AxLEN``.

    Beat ``k`` of a burst is written to scratchpad byte address ``spad + k * bus_bytes`` with
    every strobe set, except the last beat of a row, which carries the strobes of the row's
    remaining bytes. R waits only for ``spad_w.ready``. ``ar`` and ``r`` each pass through a
    :class:`~rtl.bus.skid.SkidBuffer`, so no path runs combinationally between the bus and the
    engine.

    Errors, reported on ``done`` (see :class:`~rtl.dma.control.EngineControl`): a descriptor
    failing its up-front check issues nothing. An R beat with ``SLVERR`` or ``DECERR`` is not
    written to the scratchpad, and neither is any beat after it: every outstanding R beat is
    still taken (AXI needs that) and dropped. Beats of the failing descriptor before the bad one
    were written. The engine then takes no descriptor until ``clear``.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``bus_width``, ``addr_width``, ``spad_bytes``).

    Attributes
    ----------
    desc : In(stream.Signature(descriptor_layout(config)))
        LOAD descriptors.
    done : Out(stream.Signature(DmaError))
        One outcome per descriptor, in order.
    window_base, window_limit : In(addr_width)
        Every external byte the engine reads is in ``[window_base, window_limit)``,
        the window of the cycle before (it acts one cycle after it is driven).
    clear : In(1)
        Leaves the error state (see :class:`~rtl.dma.control.EngineControl`).
    error : Out(DmaError)
        The error code while stopped, else ``NONE``.
    busy : Out(1)
        A descriptor is pending or a burst in flight.
    ar : Out(AXI4 AR channel), r : In(AXI4 R channel)
        Of :func:`~rtl.dma.descriptor.axi_signature`.
    spad_w : Out(stream.Signature(dma_write_layout(config)))
        Scratchpad writes: a ``bus_bytes``-aligned byte ``addr``, ``data`` and ``strb``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    #: Bursts in flight at most (AR committed, last R beat not yet taken).
    OUTSTANDING = 8
    #: Descriptors taken but not yet reported on ``done``, at most.
    MAX_PENDING = 15

    def __init__(self, config):
        check_config(config)
        self._config = config
        axi = axi_signature(config)
        super().__init__({
            **engine_ports(config),
            "ar": axi.members["ar"],
            "r": axi.members["r"],
            "spad_w": Out(stream.Signature(dma_write_layout(config))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        shift = beat_shift(cfg)
        m.submodules.front = front = EngineFront(cfg, max_pending=self.MAX_PENDING)
        front.attach(m, self)

        m.submodules.ar_skid = ar_skid = SkidBuffer(self.ar.signature)
        m.submodules.r_skid = r_skid = SkidBuffer(self.r.signature.flip())
        wiring.connect(m, ar_skid.o, wiring.flipped(self.ar))
        wiring.connect(m, wiring.flipped(self.r), r_skid.i)

        track_layout = burst_layout(cfg, ext=False)
        m.submodules.track = track = fifo.SyncFIFO(width=track_layout.size,
                                                   depth=self.OUTSTANDING)
        burst = front.bursts.payload
        m.d.comb += [
            ar_skid.i.valid.eq(front.bursts.valid & track.w_rdy),
            track.w_en.eq(front.bursts.valid & ar_skid.i.ready),
            front.bursts.ready.eq(ar_skid.i.ready & track.w_rdy),
            ar_skid.i.addr.eq(burst.addr),
            ar_skid.i.len.eq(burst.len),
            ar_skid.i.size.eq(shift),
            ar_skid.i.burst.eq(Burst.INCR),
            ar_skid.i.cache.eq(AXI_CACHE),
            ar_skid.i.prot.eq(AXI_PROT),
        ]
        entry = data.View(track_layout, track.w_data)
        m.d.comb += [getattr(entry, name).eq(getattr(burst, name))
                     for name in ("len", "spad", "tail", "last")]

        head = data.View(track_layout, track.r_data)
        beat = Signal(8)
        end = beat == head.len
        r = r_skid.o
        good = ~r.resp.as_value()[1]  # OKAY or EXOKAY
        write = good & ~front.bus_failed
        m.d.comb += [
            self.spad_w.valid.eq(r.valid & track.r_rdy & write),
            self.spad_w.payload.addr.eq(head.spad + (beat << shift)),
            self.spad_w.payload.data.eq(r.data),
            self.spad_w.payload.strb.eq(Const(-1, cfg.bus_bytes)),
            r.ready.eq(track.r_rdy & (self.spad_w.ready | ~write)),
        ]
        with m.If(end):
            m.d.comb += self.spad_w.payload.strb.eq(head.tail)

        arrived = r.valid & r.ready
        with m.If(arrived):
            m.d.sync += beat.eq(beat + 1)
            with m.If(end):
                m.d.sync += beat.eq(0)
        m.d.comb += [
            track.r_en.eq(arrived & end),
            front.completed.eq(arrived & end & head.last & good),
            front.bus_fault.valid.eq(arrived & ~good),
            front.bus_fault.payload.eq(DmaError.SLVERR),
            front.drained.eq(~track.r_rdy),
        ]
        with m.If(r.resp == Resp.DECERR):
            m.d.comb += front.bus_fault.payload.eq(DmaError.DECERR)
        return m
