"""The load and store queues' executor: LOAD and STORE instructions to DMA descriptors."""

from amaranth import Array, Cat, Module, Signal
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from jalapeno.isa import DMA_ERRORS, Opcode
from rtl.bus.skid import SkidBuffer
from rtl.dma.descriptor import DmaError, beat_shift, check_config, descriptor_layout

from .decode import error_layout, field
from .issue import IssueStage, after_failure
from .tokens import token_layout

__all__ = ["DmaQueue"]


class DmaQueue(wiring.Component):
    """Runs the load or the store queue: each LOAD (STORE) becomes a descriptor of the DMA's
    read (write) engine, and each SYNC waits for the queue's earlier transfers.

    Instructions pass :class:`~rtl.core.issue.IssueStage` (tokens taken, instructions after a
    failure dropped). Descriptors then go through a :class:`~rtl.bus.skid.SkidBuffer` to the
    engine back to back, up to ``config.queue_depth`` not yet done, so the DMA overlaps a
    queue's transfers as it overlaps descriptors. When the engine reports one done, its
    instruction gives its tokens, or its code is reported.

    Timing: the skid buffer cuts the handshake between the queue and the engine, whose
    ``desc.ready`` comes from the engine's window check; without it that path ran on through
    the issue stage into the instruction queue's pointers. A descriptor reaches the engine one
    cycle after its instruction is issued. One still buffered when an earlier instruction's
    failure is known (``limit``) is dropped there, as the issue stage drops instructions.

    The instruction's fields map one to one onto the descriptor (``local_addr`` onto
    ``spad_addr``, ``local_stride`` onto ``spad_stride``), so the engine's own checks give
    every up-front code. Only an ``ext_addr`` or ``ext_stride`` with bits above
    ``addr_width`` (a configuration narrower than the 32-bit fields) is the queue's to catch:
    such a descriptor would leave any window, so it is reported as ``DMA_WINDOW`` after the
    misalignment check, as the engine would, once every earlier descriptor is done.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
    opcode : :class:`~jalapeno.isa.Opcode`
        ``LOAD`` or ``STORE``: the transfers of this queue.

    Attributes
    ----------
    entry, pop, limit, stall
        As :class:`~rtl.core.issue.IssueStage`'s.
    desc : Out(stream.Signature(descriptor_layout(config)))
    done : In(stream.Signature(DmaError))
        The engine's ``desc`` and ``done`` (:func:`~rtl.dma.front.engine_control_signature`).
    push : Out(stream.Signature(token_layout(), always_ready=True))
        This queue's ``push`` port of :class:`~rtl.core.tokens.Tokens`.
    error : Out(stream.Signature(error_layout(config), always_ready=True))
        An instruction failed: its code and address, for one cycle.
    busy : Out(1)
        An instruction is waiting, being issued or in the DMA.
    retired : Out(1)
        An instruction completed without error this cycle.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    ValueError
        If ``opcode`` is not ``LOAD`` or ``STORE``.
    """

    def __init__(self, config, opcode):
        check_config(config)
        if opcode not in (Opcode.LOAD, Opcode.STORE):
            raise ValueError(f"opcode must be LOAD or STORE, not {opcode!r}")
        self._config = config
        self._opcode = Opcode(opcode)
        self._issue = IssueStage(config)
        ports = self._issue.signature.members
        super().__init__({
            "entry": ports["entry"],
            "pop": ports["pop"],
            "limit": ports["limit"],
            "stall": ports["stall"],
            "desc": Out(stream.Signature(descriptor_layout(config))),
            "done": In(stream.Signature(DmaError)),
            "push": Out(stream.Signature(token_layout(), always_ready=True)),
            "error": Out(stream.Signature(error_layout(config), always_ready=True)),
            "busy": Out(1),
            "retired": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, op = self._config, self._opcode
        m.submodules.issue = issue = self._issue
        issue.attach(m, self)
        word, addr = issue.issue.payload.word, issue.issue.payload.addr

        def f(name):
            return field(word, op, name)

        # A descriptor with what it owes when done: its instruction's address and tokens.
        owed_layout = data.StructLayout({"addr": cfg.addr_width, "push": token_layout()})
        staged_layout = data.StructLayout({"desc": descriptor_layout(cfg), "owe": owed_layout})
        m.submodules.staged = staged = SkidBuffer(stream.Signature(staged_layout))
        m.submodules.owed = owed = fifo.SyncFIFO(width=owed_layout.size, depth=cfg.queue_depth)
        # What the instruction is, registered from the entry: the issue stage offers an
        # instruction at least a cycle after it arrives (its tokens are taken first), so the
        # registers hold its decode by then and the handshake below starts at flip-flops.
        sync = Signal()
        m.d.sync += sync.eq(field(word, None, "opcode") == Opcode.SYNC)
        push = Signal(token_layout())
        m.d.comb += [push.prev.eq(f("push_prev")), push.next.eq(f("push_next"))]

        # The descriptor, or, for an external field wider than the bus, the WINDOW it earns.
        desc = staged.i.payload.desc
        m.d.comb += [
            desc.ext_addr.eq(f("ext_addr")), desc.ext_stride.eq(f("ext_stride")),
            desc.spad_addr.eq(f("local_addr")), desc.spad_stride.eq(f("local_stride")),
            desc.rows.eq(f("rows")), desc.row_bytes.eq(f("row_bytes")),
            staged.i.payload.owe.addr.eq(addr),
            staged.i.payload.owe.push.eq(push),
        ]
        too_wide = Signal()
        if cfg.addr_width < len(f("ext_addr")):
            shift = beat_shift(cfg)
            high = f("ext_addr")[cfg.addr_width:].any() | \
                ((f("rows") > 1) & f("ext_stride")[cfg.addr_width:].any())
            misaligned = Cat(*[f(name)[:shift] for name in
                               ("ext_addr", "ext_stride", "local_addr", "local_stride")]).any()
            empty = (f("rows") == 0) | (f("row_bytes") == 0)
            m.d.sync += too_wide.eq(high & ~misaligned & ~empty)

        # A SYNC, or a refused descriptor, completes once every earlier descriptor is done, so
        # tokens and reports stay in order.
        drained = ~owed.r_rdy & ~staged.o.valid
        at_once = issue.issue.valid & (sync | too_wide) & drained
        m.d.comb += [
            staged.i.valid.eq(issue.issue.valid & ~sync & ~too_wide),
            issue.issue.ready.eq((staged.i.valid & staged.i.ready) | at_once),
        ]

        # Staged descriptors into the engine, or dropped after an earlier failure.
        out = staged.o.payload
        dropped = after_failure(m, self.limit, staged.o.valid, out.owe.addr, "dropped")
        taken = self.desc.valid & self.desc.ready
        m.d.comb += [
            self.desc.payload.eq(out.desc),
            self.desc.valid.eq(staged.o.valid & ~dropped & owed.w_rdy),
            staged.o.ready.eq(taken | dropped),
            owed.w_en.eq(taken),
            owed.w_data.eq(out.owe),
        ]

        # Reports, in order: tokens given, or the error.
        head = data.View(owed_layout, owed.r_data)
        done_ok = self.done.valid & owed.r_rdy & (self.done.payload == DmaError.NONE)
        codes = Array(DMA_ERRORS[DmaError(code)] for code in range(len(DMA_ERRORS)))
        m.d.comb += [
            self.done.ready.eq(owed.r_rdy),
            owed.r_en.eq(self.done.valid),
            self.push.valid.eq(done_ok | (at_once & sync)),
            self.retired.eq(done_ok | (at_once & sync)),
            self.push.payload.eq(head.push),
            self.busy.eq(issue.busy | staged.o.valid | owed.r_rdy),
        ]
        with m.If(at_once & sync):
            m.d.comb += self.push.payload.eq(push)
        with m.If(at_once & too_wide):
            m.d.comb += [self.error.valid.eq(1),
                         self.error.payload.code.eq(DMA_ERRORS[DmaError.WINDOW]),
                         self.error.payload.addr.eq(addr)]
        with m.Elif(self.done.valid & owed.r_rdy & (self.done.payload != DmaError.NONE)):
            m.d.comb += [self.error.valid.eq(1),
                         self.error.payload.code.eq(codes[self.done.payload.as_value()]),
                         self.error.payload.addr.eq(head.addr)]
        return m
