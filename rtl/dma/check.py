"""The up-front check of a whole descriptor, before any of its bursts exists."""

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .descriptor import (
    LOCAL_WIDTH,
    ROWS_WIDTH,
    DmaError,
    beat_shift,
    check_config,
    checked_layout,
    descriptor_layout,
    registered_window,
)

__all__ = ["DescriptorCheck"]


class DescriptorCheck(wiring.Component):
    """Takes one descriptor at a time and finds whether all of it may run.

    A descriptor touches external bytes from ``ext_addr`` up to the end of the last beat of its
    last row, ``ext_addr + (rows - 1) * ext_stride + ceil(row_bytes / bus_bytes) * bus_bytes``
    (strides are unsigned, so the first and last rows bound it), and local bytes from
    ``spad_addr`` up to ``spad_addr + (rows - 1) * spad_stride + row_bytes``. Both products come
    from a shift-and-add over the bits of ``rows - 1``, least significant first, one bit per
    cycle and stopping after the highest set one, so no multiplier is built: the result is
    offered on ``checked`` ``bit_length(rows - 1)`` cycles after the one following the edge
    that takes ``desc`` (at once for one row, 16 cycles later at most), or one cycle later
    if that cycle follows a change of the window.

    The window acts one cycle after it is driven: the check works on a registered copy
    (:func:`~rtl.dma.descriptor.registered_window`), so it judges every descriptor against
    the window of the cycle before.

    Timing: ``desc.ready`` is the ``held`` and ``flush`` flip-flops alone, so the registers
    here are enabled by nothing downstream: a descriptor is taken in the cycle after the one
    before it leaves on ``checked``. The splitter spends a cycle or more on each descriptor,
    so that costs a cycle only when a descriptor's extents take longer than the one before
    took to split. The outcome is a register, so no compare lies between the window and
    ``checked``. Every cycle it is recomputed against the registered window for the
    descriptor and extents the registers hold in the next one: both the held descriptor's
    (its extents after this cycle's step) and the incoming one's are computed, and taking
    ``desc`` only selects between them. ``checked`` is offered only while the registered
    window is the one the outcome was computed against (the register ``window_changed`` is
    low), so the registered outcome is the outcome for the current descriptor and window.

    The outcome, in order of precedence: ``empty`` (zero ``rows`` or ``row_bytes``, code
    ``NONE``, nothing else checked); ``MISALIGNED`` (an address or stride not a multiple of
    ``bus_bytes``, whatever ``rows`` is); ``WINDOW`` (the external extent not inside
    ``[window_base, window_limit)``, the window of the cycle before each cycle the result is
    offered in);
    ``SPAD_RANGE`` (the local extent neither inside the scratchpad, ``[0, spad_bytes)``, nor,
    with ``accumulator``, inside the accumulator memory, ``[acc_base, acc_base +
    acc_bytes)``); else ``NONE``.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``addr_width``, ``bus_width``, ``spad_bytes``, the accumulator's size).
    accumulator : bool
        Whether descriptors may read the accumulator memory (the STORE engine's).

    Attributes
    ----------
    desc : In(stream.Signature(descriptor_layout(config)))
        Descriptors; ready while nothing is held and ``flush`` is low.
    checked : Out(stream.Signature(checked_layout(config)))
        Each descriptor with its outcome.
    window_base, window_limit : In(addr_width)
        The external window, ``[base, limit)`` in bytes, acting one cycle later.
    flush : In(1)
        Drops the held descriptor and takes none.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config, *, accumulator=False):
        check_config(config)
        self._config = config
        self._accumulator = bool(accumulator)
        super().__init__({
            "desc": In(stream.Signature(descriptor_layout(config))),
            "checked": Out(stream.Signature(checked_layout(config))),
            "window_base": In(config.addr_width),
            "window_limit": In(config.addr_width),
            "flush": In(1),
        })

    def outcome(self, desc, ext_end, spad_end, window_base, window_limit):
        """The code of descriptor ``desc`` (a :func:`descriptor_layout` view) whose external
        extent ends at ``ext_end`` and local extent at ``spad_end``, against the window
        ``[window_base, window_limit)``: a value of :class:`DmaError`'s shape, ``NONE`` for an
        empty descriptor."""
        cfg = self._config
        shift = beat_shift(cfg)
        empty = (desc.rows == 0) | (desc.row_bytes == 0)
        misaligned = Cat(desc.ext_addr[:shift], desc.ext_stride[:shift],
                         desc.spad_addr[:shift], desc.spad_stride[:shift]).any()
        outside = (desc.ext_addr < window_base) | (ext_end > window_limit)
        local_ok = spad_end <= cfg.spad_bytes
        if self._accumulator:
            local_ok |= ((desc.spad_addr >= cfg.acc_base) &
                         (spad_end <= cfg.acc_base + cfg.acc_bytes))
        return Mux(empty, DmaError.NONE,
                   Mux(misaligned, DmaError.MISALIGNED,
                       Mux(outside, DmaError.WINDOW,
                           Mux(local_ok, DmaError.NONE, DmaError.SPAD_RANGE))))

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        shift = beat_shift(cfg)
        extra = ROWS_WIDTH + 2  # room for (rows - 1) * stride plus a row, never wrapping

        desc = Signal(descriptor_layout(cfg))
        held = Signal()
        count = Signal(ROWS_WIDTH)  # the bits of rows - 1 not yet added in
        ext_end = Signal(cfg.addr_width + extra)
        spad_end = Signal(LOCAL_WIDTH + extra)
        ext_step = Signal(cfg.addr_width + ROWS_WIDTH)
        spad_step = Signal(LOCAL_WIDTH + ROWS_WIDTH)
        code = Signal(DmaError)  # of desc, ext_end and spad_end against the last window
        base, limit, changed = registered_window(m, self.window_base, self.window_limit)

        empty = (desc.rows == 0) | (desc.row_bytes == 0)
        ready = held & ((count == 0) | empty)
        m.d.comb += [
            self.checked.valid.eq(ready & ~changed & ~self.flush),
            self.checked.payload.desc.eq(desc),
            self.checked.payload.code.eq(code),
            self.checked.payload.empty.eq(empty),
            self.desc.ready.eq(~held & ~self.flush),
        ]
        load = self.desc.valid & self.desc.ready

        # The extents in the next cycle, unless a descriptor is taken.
        ext_next = Signal.like(ext_end)
        spad_next = Signal.like(spad_end)
        m.d.comb += [ext_next.eq(ext_end), spad_next.eq(spad_end)]
        with m.If(held & (count != 0)):
            with m.If(count[0]):
                m.d.comb += [ext_next.eq(ext_end + ext_step),
                             spad_next.eq(spad_end + spad_step)]
            m.d.sync += [count.eq(count >> 1),
                         ext_step.eq(ext_step << 1),
                         spad_step.eq(spad_step << 1)]

        p = self.desc.payload
        beats = (p.row_bytes + cfg.bus_bytes - 1) >> shift
        p_ext_end = Signal.like(ext_end)
        p_spad_end = Signal.like(spad_end)
        m.d.comb += [p_ext_end.eq(p.ext_addr + (beats << shift)),
                     p_spad_end.eq(p.spad_addr + p.row_bytes)]
        m.d.sync += [
            ext_end.eq(ext_next),
            spad_end.eq(spad_next),
            code.eq(Mux(load, self.outcome(p, p_ext_end, p_spad_end, base, limit),
                        self.outcome(desc, ext_next, spad_next, base, limit))),
        ]
        with m.If(self.checked.valid & self.checked.ready):
            m.d.sync += held.eq(0)
        with m.If(load):
            m.d.sync += [
                desc.eq(p),
                held.eq(1),
                count.eq(Mux(p.rows == 0, 0, p.rows - 1)),
                ext_end.eq(p_ext_end),
                spad_end.eq(p_spad_end),
                ext_step.eq(p.ext_stride),
                spad_step.eq(p.spad_stride),
            ]
        with m.If(self.flush):
            m.d.sync += held.eq(0)
        return m
