"""Splitting a checked descriptor into AXI4 INCR bursts, each checked again before it leaves."""

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from ..bus.axi import BURST_BOUNDARY, MAX_BURST_BEATS
from .descriptor import (
    ROW_BYTES_WIDTH,
    ROWS_WIDTH,
    DmaError,
    beat_shift,
    burst_layout,
    check_config,
    checked_layout,
    registered_window,
)

__all__ = ["BurstSplitter"]


class BurstSplitter(wiring.Component):
    """Turns checked descriptors into bursts, row by row, at up to one burst per cycle.

    A row of ``ceil(row_bytes / bus_bytes)`` beats becomes bursts that each end at the first of:
    the end of the row, :data:`~rtl.bus.axi.MAX_BURST_BEATS` beats, or a multiple of
    :data:`~rtl.bus.axi.BURST_BOUNDARY`. Bursts never span two rows; the last beat of a row
    gets the strobes of ``row_bytes % bus_bytes`` bytes (all of them when that is 0).

    Each burst waits in an output register, and is offered on ``bursts`` only while it lies in
    ``[window_base, window_limit)`` of the cycle before (the window acts one cycle after it is
    driven: :func:`~rtl.dma.descriptor.registered_window`), whole beats counted: a burst found
    outside (the window
    changed under a running descriptor) is never offered; instead ``report`` carries
    ``WINDOW``, and the engine's control raises ``flush``. This per-burst check is the one the
    "nothing outside the window" property rests on; the up-front check only makes it fire
    before the first burst of a descriptor rather than partway.

    Timing: no compare lies between the window and ``bursts.valid``, whose handshake enables
    every register here. The burst's end, ``addr + (len + 1) * bus_bytes``, is registered with
    it (the sum that also gives the next burst's address), and a flag ``inside`` is registered
    every cycle: whether the burst the output register holds in the next cycle lies in the
    registered window (computed for both the burst now held and the one that may replace it, so
    the handshake only selects between the two). A burst is offered, or reported outside, only
    while the registered window is the one ``inside`` was computed against (the register
    ``window_changed`` is low): then ``inside`` is the outcome for the current window. A change
    of the window holds the burst back for one cycle while ``inside`` is recomputed; in steady
    state a burst still leaves every cycle.

    A checked descriptor that is ``empty`` or failed its up-front check issues nothing: it is
    taken once every earlier burst has completed (``drained``, and nothing held here), and its
    outcome leaves on ``report`` in that cycle, so ``done`` stays in descriptor order.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    checked : In(stream.Signature(checked_layout(config)))
        Descriptors with their up-front outcome.
    bursts : Out(stream.Signature(burst_layout(config)))
        Bursts in order.
    report : Out(stream.Signature(DmaError, always_ready=True))
        The outcome of a descriptor that issues nothing, or ``WINDOW`` for a burst outside.
    window_base, window_limit : In(addr_width)
    drained : In(1)
        No burst of the engine is in flight.
    flush : In(1)
        Abandons the descriptor being split and the burst held.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        self._config = config
        super().__init__({
            "checked": In(stream.Signature(checked_layout(config))),
            "bursts": Out(stream.Signature(burst_layout(config))),
            "report": Out(stream.Signature(DmaError, always_ready=True)),
            "window_base": In(config.addr_width),
            "window_limit": In(config.addr_width),
            "drained": In(1),
            "flush": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        shift = beat_shift(cfg)
        boundary = exact_log2(BURST_BOUNDARY)

        active = Signal()
        row = Signal(cfg.addr_width)          # external start of the current row
        addr = Signal(cfg.addr_width)         # external start of the next burst
        spad_row = Signal(cfg.local_addr_width)
        spad = Signal(cfg.local_addr_width)
        left = Signal(ROW_BYTES_WIDTH)        # beats of the current row not yet in a burst
        rows_left = Signal(ROWS_WIDTH)
        row_beats = Signal(ROW_BYTES_WIDTH)
        tail = Signal(cfg.bus_bytes)
        ext_stride = Signal(cfg.addr_width)
        spad_stride = Signal(cfg.local_addr_width)

        out = Signal(burst_layout(cfg))
        held = Signal()
        end = Signal(cfg.addr_width + 1)      # out.addr + (out.len + 1) * bus_bytes
        inside = Signal()                     # out to end inside the last registered window
        base, limit, changed = registered_window(m, self.window_base, self.window_limit)
        m.d.comb += [
            self.bursts.payload.eq(out),
            self.bursts.valid.eq(held & inside & ~changed & ~self.flush),
        ]
        taken = self.bursts.valid & self.bursts.ready
        free = ~held | taken

        # The next burst of the current row.
        to_boundary = (BURST_BOUNDARY >> shift) - addr[shift:boundary]
        cap = Mux(to_boundary > MAX_BURST_BEATS, MAX_BURST_BEATS, to_boundary)
        beats = Signal(range(MAX_BURST_BEATS + 1))
        m.d.comb += beats.eq(Mux(left < cap, left, cap))
        row_done = beats == left
        next_end = Signal(cfg.addr_width + 1)  # of that burst; within a row, the next start
        m.d.comb += next_end.eq(addr + (beats << shift))

        def within(start, stop):
            return (start >= base) & (stop <= limit)

        load = active & free
        m.d.sync += inside.eq(Mux(load, within(addr, next_end), within(out.addr, end)))
        with m.If(taken):
            m.d.sync += held.eq(0)
        with m.If(load):
            m.d.sync += [
                held.eq(1),
                end.eq(next_end),
                out.addr.eq(addr),
                out.len.eq(beats - 1),
                out.spad.eq(spad),
                out.tail.eq(Mux(row_done, tail, Const(-1, cfg.bus_bytes))),
                out.last.eq(row_done & (rows_left == 1)),
            ]
            with m.If(row_done):
                m.d.sync += [
                    rows_left.eq(rows_left - 1),
                    active.eq(rows_left != 1),
                    row.eq(row + ext_stride),
                    addr.eq(row + ext_stride),
                    spad_row.eq(spad_row + spad_stride),
                    spad.eq(spad_row + spad_stride),
                    left.eq(row_beats),
                ]
            with m.Else():
                m.d.sync += [
                    addr.eq(next_end),
                    spad.eq(spad + (beats << shift)),
                    left.eq(left - beats),
                ]

        # Taking the next descriptor.
        c = self.checked.payload
        d = c.desc
        direct = c.empty | (c.code != DmaError.NONE)
        quiet = ~held & self.drained
        with m.If(~active & ~self.flush):
            with m.If(direct):
                m.d.comb += [
                    self.checked.ready.eq(quiet),
                    self.report.valid.eq(self.checked.valid & quiet),
                    self.report.payload.eq(c.code),
                ]
            with m.Else():
                m.d.comb += self.checked.ready.eq(1)
        with m.If(held & ~inside & ~changed & ~self.flush):
            m.d.comb += [self.report.valid.eq(1), self.report.payload.eq(DmaError.WINDOW)]

        rem = d.row_bytes[:shift]
        first_beats = (d.row_bytes + cfg.bus_bytes - 1) >> shift
        with m.If(self.checked.valid & self.checked.ready & ~direct):
            m.d.sync += [
                active.eq(1),
                row.eq(d.ext_addr),
                addr.eq(d.ext_addr),
                spad_row.eq(d.spad_addr),
                spad.eq(d.spad_addr),
                left.eq(first_beats),
                row_beats.eq(first_beats),
                rows_left.eq(d.rows),
                tail.eq(Cat(*((rem == 0) | (rem > k) for k in range(cfg.bus_bytes)))),
                ext_stride.eq(d.ext_stride),
                spad_stride.eq(d.spad_stride),
            ]
        with m.If(self.flush):
            m.d.sync += [active.eq(0), held.eq(0)]
        return m
