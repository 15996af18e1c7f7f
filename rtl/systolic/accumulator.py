"""The int32 accumulator memory behind the array."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["AccumulatorMemory", "update_layout"]


def update_layout(config: JalapenoConfig):
    """Payload of one accumulator update: a row address, ``cols`` int32 lanes, whether to
    add to the row or overwrite it, and which lanes to write."""
    return data.StructLayout({
        "addr": config.acc_addr_width,
        "data": data.ArrayLayout(signed(config.acc_width), config.cols),
        "accumulate": 1,
        "lanes": config.cols,
    })


class AccumulatorMemory(wiring.Component):
    """``acc_depth`` rows of ``cols`` int32 lanes, updated and read one row per cycle.

    An update reads its row, adds the new vector to it (or replaces it) in the lanes its mask
    selects, and writes the whole row back (masked lanes keep their old value, so the memory
    needs no per-lane write enables). Each operation passes two stages after its request, so
    that no cycle holds both the memory's clock-to-output delay and the add (the FPGA's
    critical path otherwise):

    * stage 1: the row the memory returns goes straight into a register (which can be the
      block RAM's own output register), and whether the row must come from a forwarding
      register instead is decided from registered addresses only;
    * stage 2: the old row is picked from registers alone, merged with the update and written
      to the memory, and into the first forwarding register.

    The memory's read port does not see a write made at the same edge, so an update or read
    that follows an update of the same row by one or two cycles takes the row from one of two
    forwarding registers, which hold the rows the two previous updates wrote: back-to-back
    updates of one row (a K-split GEMM, M = 1) are exact. Updates always proceed
    (``update.ready`` is high); reads use the cycles without an update and pass the same
    stages, so a response is on ``read_data`` three cycles after its request at the earliest
    (one more than with a single stage). Responses wait in a buffer of ``read_fifo_depth``
    entries, and a read is only taken while the buffer has room for it and for the reads
    still in the stages, so ``read_data`` backpressure never blocks updates. A read holds its
    entry for three cycles at least: four entries keep one read per cycle flowing, three give
    three reads in four cycles.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``acc_depth``, ``read_fifo_depth``).

    Attributes
    ----------
    update : In(stream.Signature(update_layout(config)))
        Row updates; always ready.
    read : In(stream.Signature(acc_addr_width))
        Row read requests.
    read_data : Out(stream.Signature(ArrayLayout(signed(32), cols)))
        Read responses in request order.
    busy : Out(1)
        An accepted update has not yet been written (it is in stage 1 or 2).
    """

    def __init__(self, config: JalapenoConfig):
        self._config = config
        row = data.ArrayLayout(signed(config.acc_width), config.cols)
        super().__init__({
            "update": In(stream.Signature(update_layout(config))),
            "read": In(stream.Signature(config.acc_addr_width)),
            "read_data": Out(stream.Signature(row)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        row = self.read_data.payload.shape()

        m.submodules.mem = mem = memory.Memory(shape=row, depth=cfg.acc_depth, init=[])
        rd = mem.read_port()
        wr = mem.write_port()
        m.submodules.responses = responses = fifo.SyncFIFO(
            width=row.size, depth=cfg.read_fifo_depth)

        # Stage 1 holds the operation whose row the memory returns this cycle; stage 2 the one
        # that writes its row (an update) or buffers it (a read).
        s1_update, s1_read = Signal(), Signal()
        s1 = Signal(update_layout(cfg))
        s2_update, s2_read = Signal(), Signal()
        s2 = Signal(update_layout(cfg))
        s2_row = Signal(row)
        # The rows written one and two cycles ago, as they now stand in memory, and where the
        # first one was written.
        fwd1_valid = Signal()
        fwd1_addr = Signal(cfg.acc_addr_width)
        fwd1_row = Signal(row)
        fwd2_row = Signal(row)
        # Decided in stage 1 for stage 2: take the old row from fwd1_row (by then the row of the
        # update now in stage 2) or fwd2_row (by then the row written last cycle), the newer
        # one first.
        use_fwd1 = Signal()
        use_fwd2 = Signal()

        in_stages = s1_read + s2_read
        m.d.comb += [
            self.update.ready.eq(1),
            self.read.ready.eq(~self.update.valid
                               & (responses.level + in_stages < responses.depth)),
            rd.addr.eq(Mux(self.update.valid, self.update.payload.addr, self.read.payload)),
        ]
        m.d.sync += [
            s1_update.eq(self.update.valid),
            s1_read.eq(self.read.valid & self.read.ready),
            s1.eq(self.update.payload),
        ]
        with m.If(~self.update.valid):
            m.d.sync += s1.addr.eq(self.read.payload)

        m.d.sync += [
            s2_update.eq(s1_update),
            s2_read.eq(s1_read),
            s2.eq(s1),
            s2_row.eq(rd.data),
            use_fwd1.eq(s2_update & (s2.addr == s1.addr)),
            use_fwd2.eq(fwd1_valid & (fwd1_addr == s1.addr)),
        ]

        old = Signal(row)
        merged = Signal(row)
        m.d.comb += old.eq(Mux(use_fwd1, fwd1_row, Mux(use_fwd2, fwd2_row, s2_row)))
        for lane in range(cfg.cols):
            new = Mux(s2.accumulate, old[lane] + s2.data[lane], s2.data[lane])
            m.d.comb += merged[lane].eq(Mux(s2.lanes[lane], new, old[lane]))
        m.d.comb += [
            wr.addr.eq(s2.addr),
            wr.data.eq(merged),
            wr.en.eq(s2_update),
        ]
        m.d.sync += [
            fwd1_valid.eq(s2_update),
            fwd1_addr.eq(s2.addr),
            fwd1_row.eq(merged),
            fwd2_row.eq(fwd1_row),
        ]

        m.d.comb += [
            responses.w_en.eq(s2_read),
            responses.w_data.eq(old),
            self.read_data.valid.eq(responses.r_rdy),
            self.read_data.payload.eq(responses.r_data),
            responses.r_en.eq(self.read_data.ready),
            self.busy.eq(s1_update | s2_update),
        ]
        return m
