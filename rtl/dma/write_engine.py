"""The DMA write engine (STORE): the scratchpad to external memory."""

from amaranth import Const, Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

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
from .read_engine import AXI_CACHE, AXI_PROT

__all__ = ["WriteEngine"]


class WriteEngine(wiring.Component):
    """Runs STORE descriptors: reads local words (scratchpad or accumulator memory) on
    ``spad_r``/``spad_rdata`` and writes them to external memory in AXI4 INCR bursts on
    ``aw``/``w``/``b``.

    Bursts follow the rules of the read engine (:class:`~rtl.dma.read_engine.ReadEngine`). A
    burst committed to ``aw`` is queued at the same time for its W beats and for its B
    response; the W side then asks the scratchpad for the burst's words one per cycle and sends
    them with ``w.last`` on the burst's final beat and, on a row's final beat, the strobes of the
    row's remaining bytes. AW and W run independently (W never waits for the AW handshake, as
    AXI requires of a master), so W streams while the next bursts' AWs go out. Up to
    :attr:`OUTSTANDING` bursts await their B; ``b.ready`` is always high.

    The scratchpad may answer after any latency, in order, and may stall ``spad_rdata``: at
    most :attr:`SPAD_READS` words are requested and not yet sent on W. ``aw`` and ``w`` pass
    through :class:`~rtl.bus.skid.SkidBuffer`\\ s.

    Errors: a descriptor failing its up-front check issues nothing. A B with ``SLVERR`` or
    ``DECERR`` stops the engine with that code: no new AW, and the W beats still owed for
    bursts already committed go out with every strobe low, so nothing more is written; every
    B is taken. The engine then takes no descriptor until ``clear``.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    desc, done, window_base, window_limit, clear, error, busy
        As for :class:`~rtl.dma.read_engine.ReadEngine`, for STORE descriptors.
    aw : Out(AXI4 AW channel), w : Out(AXI4 W channel), b : In(AXI4 B channel)
        Of :func:`~rtl.dma.descriptor.axi_signature`.
    spad_r : Out(stream.Signature(local_addr_width))
        Local read requests, ``bus_bytes``-aligned byte addresses (the scratchpad's
        ``dma_r``).
    spad_rdata : In(stream.Signature(bus_width))
        The words read, in request order.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    #: Bursts in flight at most (AW committed, B not yet taken).
    OUTSTANDING = 8
    #: Scratchpad words requested and not yet sent on W, at most.
    SPAD_READS = 8
    #: Bursts whose W beats are queued, at most.
    W_BURSTS = 4
    #: Descriptors taken but not yet reported on ``done``, at most.
    MAX_PENDING = 15

    def __init__(self, config):
        check_config(config)
        self._config = config
        axi = axi_signature(config)
        super().__init__({
            **engine_ports(config),
            "aw": axi.members["aw"],
            "w": axi.members["w"],
            "b": axi.members["b"],
            "spad_r": Out(stream.Signature(config.local_addr_width)),
            "spad_rdata": In(stream.Signature(config.bus_width)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        shift = beat_shift(cfg)
        m.submodules.front = front = EngineFront(cfg, max_pending=self.MAX_PENDING,
                                                    accumulator=True)
        front.attach(m, self)

        m.submodules.aw_skid = aw_skid = SkidBuffer(self.aw.signature)
        m.submodules.w_skid = w_skid = SkidBuffer(self.w.signature)
        wiring.connect(m, aw_skid.o, wiring.flipped(self.aw))
        wiring.connect(m, w_skid.o, wiring.flipped(self.w))

        # A committed burst goes to aw, to the W queue and to the B queue at once.
        beats_layout = burst_layout(cfg, ext=False)
        m.submodules.w_bursts = w_bursts = fifo.SyncFIFO(width=beats_layout.size,
                                                         depth=self.W_BURSTS)
        m.submodules.b_queue = b_queue = fifo.SyncFIFO(width=1, depth=self.OUTSTANDING)
        burst = front.bursts.payload
        aw_room, w_room, b_room = aw_skid.i.ready, w_bursts.w_rdy, b_queue.w_rdy
        offered = front.bursts.valid
        entry = data.View(beats_layout, w_bursts.w_data)
        m.d.comb += [
            front.bursts.ready.eq(aw_room & w_room & b_room),
            aw_skid.i.valid.eq(offered & w_room & b_room),
            w_bursts.w_en.eq(offered & aw_room & b_room),
            b_queue.w_en.eq(offered & aw_room & w_room),
            aw_skid.i.addr.eq(burst.addr),
            aw_skid.i.len.eq(burst.len),
            aw_skid.i.size.eq(shift),
            aw_skid.i.burst.eq(Burst.INCR),
            aw_skid.i.cache.eq(AXI_CACHE),
            aw_skid.i.prot.eq(AXI_PROT),
            b_queue.w_data.eq(burst.last),
        ]
        m.d.comb += [getattr(entry, name).eq(getattr(burst, name))
                     for name in ("len", "spad", "tail", "last")]

        # Scratchpad reads for the burst at the head of the W queue; each word's strobes and
        # last flag wait in `meta` until the word comes back.
        meta_layout = data.StructLayout({"strb": cfg.bus_bytes, "last": 1})
        m.submodules.meta = meta = fifo.SyncFIFO(width=meta_layout.size,
                                                 depth=self.SPAD_READS)
        head = data.View(beats_layout, w_bursts.r_data)
        beat = Signal(8)
        end = beat == head.len
        asked = self.spad_r.valid & self.spad_r.ready
        new = data.View(meta_layout, meta.w_data)
        m.d.comb += [
            self.spad_r.valid.eq(w_bursts.r_rdy & meta.w_rdy),
            self.spad_r.payload.eq(head.spad + (beat << shift)),
            meta.w_en.eq(asked),
            new.strb.eq(Const(-1, cfg.bus_bytes)),
            new.last.eq(end),
            w_bursts.r_en.eq(asked & end),
        ]
        with m.If(end):
            m.d.comb += new.strb.eq(head.tail)
        with m.If(asked):
            m.d.sync += beat.eq(beat + 1)
            with m.If(end):
                m.d.sync += beat.eq(0)

        word = data.View(meta_layout, meta.r_data)
        m.d.comb += [
            w_skid.i.valid.eq(self.spad_rdata.valid & meta.r_rdy),
            w_skid.i.data.eq(self.spad_rdata.payload),
            w_skid.i.strb.eq(word.strb),
            w_skid.i.last.eq(word.last),
            self.spad_rdata.ready.eq(w_skid.i.ready & meta.r_rdy),
            meta.r_en.eq(self.spad_rdata.valid & self.spad_rdata.ready),
        ]
        with m.If(front.bus_failed):
            m.d.comb += w_skid.i.strb.eq(0)

        # B responses, in order; one per committed burst.
        good = ~self.b.resp.as_value()[1]
        answered = self.b.valid & b_queue.r_rdy
        m.d.comb += [
            self.b.ready.eq(1),
            b_queue.r_en.eq(answered),
            front.completed.eq(answered & b_queue.r_data[0] & good),
            front.bus_fault.valid.eq(answered & ~good),
            front.bus_fault.payload.eq(DmaError.SLVERR),
            front.drained.eq(~b_queue.r_rdy & ~w_bursts.r_rdy & ~meta.r_rdy),
        ]
        with m.If(self.b.resp == Resp.DECERR):
            m.d.comb += front.bus_fault.payload.eq(DmaError.DECERR)
        return m
