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

    An update reads the row, adds the new vector to it (or replaces it) in the lanes its mask
    selects, and writes the whole row back the next cycle (masked lanes keep their old value,
    so the memory needs no per-lane write enables). An update or read that follows a write to the
    same row by one cycle takes the written row from a forwarding register, so back-to-back
    updates of one row (a K-split GEMM, M = 1) are exact. Updates always proceed
    (``update.ready`` is high); reads use the cycles without an update, and their responses
    wait in a small buffer so ``read_data`` backpressure never blocks updates.

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
        An update is being written.
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

        # Stage 1 holds the operation whose row the memory returns this cycle.
        s1_update = Signal()
        s1_read = Signal()
        s1 = Signal(update_layout(cfg))
        # The row written last cycle, as it now stands in memory.
        fwd_valid = Signal()
        fwd_addr = Signal(cfg.acc_addr_width)
        fwd_row = Signal(row)

        m.d.comb += [
            self.update.ready.eq(1),
            self.read.ready.eq(~self.update.valid & (responses.level + s1_read < responses.depth)),
            rd.addr.eq(Mux(self.update.valid, self.update.payload.addr, self.read.payload)),
        ]
        m.d.sync += [
            s1_update.eq(self.update.valid),
            s1_read.eq(self.read.valid & self.read.ready),
            s1.eq(self.update.payload),
        ]
        with m.If(~self.update.valid):
            m.d.sync += s1.addr.eq(self.read.payload)

        old = Signal(row)
        merged = Signal(row)
        m.d.comb += old.eq(Mux(fwd_valid & (fwd_addr == s1.addr), fwd_row, rd.data))
        for lane in range(cfg.cols):
            new = Mux(s1.accumulate, old[lane] + s1.data[lane], s1.data[lane])
            m.d.comb += merged[lane].eq(Mux(s1.lanes[lane], new, old[lane]))
        m.d.comb += [
            wr.addr.eq(s1.addr),
            wr.data.eq(merged),
            wr.en.eq(s1_update),
        ]
        m.d.sync += [
            fwd_valid.eq(s1_update),
            fwd_addr.eq(s1.addr),
            fwd_row.eq(merged),
        ]

        m.d.comb += [
            responses.w_en.eq(s1_read),
            responses.w_data.eq(old),
            self.read_data.valid.eq(responses.r_rdy),
            self.read_data.payload.eq(responses.r_data),
            responses.r_en.eq(self.read_data.ready),
            self.busy.eq(s1_update),
        ]
        return m
