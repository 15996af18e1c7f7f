"""The core's decode stage: each fetched instruction checked against the configuration and
the dependency tokens, then dispatched in program order to its queue.

Built from the tables of :mod:`jalapeno.isa`: field positions come from ``HEADER`` and
``FORMATS`` through :func:`field`, the reserved bits of each opcode from :func:`reserved_mask`,
the queue of each opcode from ``QUEUE_OF``, the token directions from ``Queue`` and the size
of a VECTOR's parameter record from ``RECORDS`` (:func:`record_bytes`). The checks and their
precedence are those of the golden model's ``CoreModel._check``
(:mod:`verification.models.core`).
"""


from amaranth import Cat, Const, Module, Mux, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from jalapeno.isa import (
    HEADER,
    INSTRUCTION_BITS,
    MAX_TOKENS,
    QUEUE_OF,
    RECORDS,
    TOKEN_FLAGS,
    CoreError,
    Opcode,
    Queue,
    VectorOp,
    fields_of,
)

from ..config import JalapenoConfig
from .fetch import FetchKind, fetched_layout

__all__ = [
    "Decoder", "dispatch_layout", "error_layout",
    "end_layout", "field", "field_spec", "reserved_mask", "record_bytes", "ceil_div",
]


def _check_config(config):
    if not isinstance(config, JalapenoConfig):
        raise TypeError(f"config must be a JalapenoConfig, not {config!r}")


def dispatch_layout(config: JalapenoConfig):
    """One instruction handed to a queue: its ``word`` and byte ``addr``."""
    _check_config(config)
    return data.StructLayout({"word": unsigned(INSTRUCTION_BITS),
                              "addr": unsigned(config.addr_width)})


def error_layout(config: JalapenoConfig):
    """The failing instruction: its :class:`~jalapeno.isa.CoreError` ``code`` and ``addr``."""
    _check_config(config)
    return data.StructLayout({"code": unsigned(8), "addr": unsigned(config.addr_width)})


def end_layout(config: JalapenoConfig):
    """The END instruction's ``addr``."""
    _check_config(config)
    return data.StructLayout({"addr": unsigned(config.addr_width)})


def field_spec(opcode, name):
    """The :class:`~jalapeno.isa.Field` called ``name`` of ``opcode``'s instructions (the
    header's fields for every opcode; ``opcode`` ``None`` for the header alone).

    Raises
    ------
    ValueError
        If ``opcode`` is not an :class:`Opcode` (or ``None``) or has no such field.
    """
    fields = HEADER if opcode is None else fields_of(opcode)
    for f in fields:
        if f.name == name:
            return f
    owner = "the header" if opcode is None else Opcode(opcode).name
    raise ValueError(f"{owner} has no field {name!r}; fields: "
                     f"{', '.join(f.name for f in fields)}")


def field(word, opcode, name):
    """The field ``name`` of ``opcode``'s format sliced out of ``word``, an
    :data:`~jalapeno.isa.INSTRUCTION_BITS`-bit Amaranth value: an unsigned value of the field's
    width. ``opcode`` ``None`` reads a :data:`~jalapeno.isa.HEADER` field, the same for every
    opcode (``field(word, None, "opcode")``).

    Raises
    ------
    ValueError
        As :func:`field_spec`, or if ``word`` is not :data:`~jalapeno.isa.INSTRUCTION_BITS`
        bits wide.
    """
    word = Value.cast(word)
    if len(word) != INSTRUCTION_BITS:
        raise ValueError(f"an instruction is {INSTRUCTION_BITS} bits, not {len(word)}")
    f = field_spec(opcode, name)
    return word[f.lsb:f.lsb + f.width]


def reserved_mask(opcode):
    """The bits no field of ``opcode`` uses, as an integer: they must be zero."""
    used = 0
    for f in fields_of(opcode):
        used |= f.mask
    return ((1 << INSTRUCTION_BITS) - 1) & ~used


def _reciprocal(divisor, width):
    """``(r, s)`` with ``(x * r) >> s == x // divisor`` for every ``x < 2**width``
    (Granlund and Montgomery: ``s = width + ceil(log2(divisor))``, ``r = ceil(2**s /
    divisor)``)."""
    s = width + ceil_log2(divisor)
    return -(-(1 << s) // divisor), s


def ceil_div(value, divisor):
    """``ceil(value / divisor)`` of an unsigned Amaranth value by a constant: a shift for a
    power of two, else a multiplication by a constant reciprocal (exact for every value of
    ``value``'s width, no divider)."""
    value = Value.cast(value)
    n = value + (divisor - 1)
    if divisor & (divisor - 1) == 0:
        return n >> exact_log2(divisor)
    r, s = _reciprocal(divisor, len(n))
    return (n * r) >> s


def _max(a, b):
    if isinstance(a, int) and isinstance(b, int):
        return max(a, b)
    return Mux(a > b, a, b)


def _align_up(value, size):
    """``value`` rounded up to a multiple of ``size``, a power of two."""
    if isinstance(value, int):
        return -(-value // size) * size
    return ((value + size - 1) >> exact_log2(size)) << exact_log2(size)


def _record_end(op, length):
    """The size of ``op``'s record, the fold of ``record_layout`` over ``RECORDS[op]``: a
    Python integer if ``length`` is one, else an Amaranth value."""
    end = 0
    for f in RECORDS[VectorOp(op)]:
        size = int(f.dtype[2:])
        offset = _align_up(end, size) if f.offset is None else f.offset
        count_bytes = (length << exact_log2(size)) if f.count == "length" else f.count * size
        end = _max(end, offset + count_bytes)
    return end


def record_bytes(op, length):
    """The size in bytes of the parameter record of VECTOR ``op`` (a :class:`VectorOp` or an
    Amaranth value; 0 for an ``op`` above the last) for rows of ``length`` elements, built
    from ``RECORDS`` as :func:`jalapeno.isa.record_layout` reads it."""
    if isinstance(op, int):
        return _record_end(op, length)
    out = 0
    for vop in VectorOp:
        out = Mux(op == vop, _record_end(vop, length), out)
    return out


def _saturate(value, width):
    """``min(value, 2**width)`` of a nonnegative value: in ``width + 1`` bits, exact below
    ``2**width``."""
    return Mux(value >= 1 << width, 1 << width, value)[:width + 1]


class Decoder(wiring.Component):
    """Takes fetched instructions in program order, makes every check of them that needs no
    data, counts their dependency tokens, and hands each well-formed one to its queue.

    Checks, with the precedence of the golden model: an entry of ``kind`` ``OVERRUN``
    (``PROGRAM_OVERRUN``) or ``FAULT`` (``FETCH``); the opcode (``ILLEGAL_OPCODE``, and
    ``NO_VECTOR_UNIT`` for any VECTOR when ``config.vector_unit`` is false); reserved
    bits, a SYNC ``queue`` of 3, END with a token flag, a token flag towards a queue the
    instruction's queue does not have, GEMM ``k > rows`` or ``n > cols``, VECTOR ``op`` above
    the last or ``length`` outside ``1..max_row`` (``BAD_FIELD``); a GEMM or VECTOR (with
    ``rows`` nonzero) operand or parameter record misaligned or outside its memory
    (``LOCAL_RANGE``); GEMM rows past the accumulator memory (``ACC_RANGE``); then the
    tokens, per direction the tokens pushed minus popped by the instructions dispatched since
    ``start``, pops first (``TOKEN_UNDERFLOW`` below 0), then pushes (``TOKEN_OVERFLOW``
    above :data:`~jalapeno.isa.MAX_TOKENS`). LOAD and STORE fields are the DMA's to check,
    and parameter records' contents the vector unit's: those instructions are dispatched.

    A well-formed instruction goes to ``load``, ``compute`` or ``store`` (``QUEUE_OF``, or a
    SYNC's ``queue``) and its tokens are counted when it is taken there. END goes to no queue:
    it is offered on ``end``. The first failing instruction is offered on ``error`` and counts
    nothing. After ``end`` or ``error`` has been taken the decoder takes nothing until
    ``start``; it also starts out that way, out of reset.

    Timing. An entry is held in one register and decoded there. A VECTOR's operand extents
    ``addr + (rows - 1) * stride + beats * step`` need ``(rows - 1) * stride`` for three
    operands: a shift-and-add over the bits of ``rows - 1`` (least significant first, one a
    cycle, stopping after the highest set one, three saturating adders of
    ``bit_length(max(spad_bytes, acc_base + acc_bytes)) + 1`` bits), so no multiplier is
    built. Every other product is a shift (``vector_pitch`` and ``acc_row_bytes`` are powers
    of two), and ``ceil(length / cols)`` a shift or, for ``cols`` not a power of two, a
    constant multiplication. The checks' outcome is registered before it is offered, so an
    entry taken at one edge is checked at the next, offered from the cycle after and goes at
    the edge after that if its output is ready: 2 cycles. A VECTOR word (one that then fails
    too) is offered ``bit_length(rows - 1)`` cycles later: 2 + 16 = 18 cycles at most
    (:attr:`max_decode_cycles`); without a vector unit a VECTOR takes 2 cycles, and the
    shift-and-add and the record sizes are not built. ``instr`` is ready while nothing is
    held or the held instruction is being dispatched, so a stream of instructions other than
    VECTORs of 2 rows or more goes through at one per two cycles, the rate at which the
    widest bus fetches them (two beats each). Outputs are offered one at a time in program
    order; one that is not ready stalls everything behind it.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    instr : In(stream.Signature(fetched_layout(config)))
        Entries from the fetch stage, in program order.
    load, compute, store : Out(stream.Signature(dispatch_layout(config)))
        The instructions of each :class:`~jalapeno.isa.Queue`.
    error : Out(stream.Signature(error_layout(config)))
        The first failing instruction's code and address, offered once.
    end : Out(stream.Signature(end_layout(config)))
        The END's address, offered once.
    start : In(1)
        A pulse: drop anything held, empty the token counts and take instructions again.
        Nothing is taken in its cycle.
    busy : Out(1)
        Decoding a program: from ``start`` until its ``end`` or ``error`` has been taken.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        _check_config(config)
        self._config = config
        #: Bytes from one scratchpad vector to the next (``Scratchpad.vector_pitch``).
        self.vector_pitch = 1 << ceil_log2(max(config.rows, config.cols))
        #: Cycles from the edge that takes an entry to the one that can dispatch it, at most.
        self.max_decode_cycles = 2 + (field_spec(Opcode.VECTOR, "rows").width
                                      if config.vector_unit else 0)
        members = {"instr": In(stream.Signature(fetched_layout(config)))}
        for queue in Queue:
            members[queue.name.lower()] = Out(stream.Signature(dispatch_layout(config)))
        members.update({
            "error": Out(stream.Signature(error_layout(config))),
            "end": Out(stream.Signature(end_layout(config))),
            "start": In(1),
            "busy": Out(1),
        })
        super().__init__(members)

    def queue_port(self, queue):
        """The output of :class:`~jalapeno.isa.Queue` ``queue``."""
        return getattr(self, Queue(queue).name.lower())

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        pitch = self.vector_pitch
        pitch_bits = exact_log2(pitch)
        acc_bits = exact_log2(cfg.acc_row_bytes)
        acc_lo, acc_hi = cfg.acc_base, cfg.acc_base + cfg.acc_bytes
        # Every extent above every memory's end saturates at 2**sat_bits.
        sat_bits = max(cfg.spad_bytes, acc_hi).bit_length()

        entry = Signal(fetched_layout(cfg))
        held = Signal()
        stopped = Signal(init=1)
        word = entry.word

        # -- the header, the opcode and the queue ----------------------------------------
        opcode = field(word, None, "opcode")
        flags = {name: field(word, None, name) for name in TOKEN_FLAGS}
        is_op = {op: opcode == op for op in Opcode}
        legal = opcode.matches(*(int(op) for op in Opcode))
        sync_queue = field(word, Opcode.SYNC, "queue")
        queue = Signal(2)
        for op, q in QUEUE_OF.items():
            with m.If(is_op[op]):
                m.d.comb += queue.eq(q)
        with m.If(is_op[Opcode.SYNC]):
            m.d.comb += queue.eq(sync_queue)

        reserved = Cat(*(is_op[op] & (word & reserved_mask(op)).any() for op in Opcode)).any()
        missing = {"prev": queue == min(Queue), "next": queue == max(Queue)}
        bad_flags = Cat(*(flags[f"{kind}_{side}"] & missing[side]
                          for kind in ("pop", "push") for side in ("prev", "next"))).any()

        # -- GEMM -------------------------------------------------------------------------
        def gemm(name):
            return field(word, Opcode.GEMM, name)

        def vector_extent(addr, count):
            """``addr`` misaligned or ``count`` vectors from it past the scratchpad (nothing
            checked for none)."""
            return (count != 0) & (addr[:pitch_bits].any() |
                                   (addr + (count << pitch_bits) > cfg.spad_bytes))

        gemm_bad = (gemm("k") > cfg.rows) | (gemm("n") > cfg.cols)
        gemm_local = vector_extent(gemm("act_addr"), gemm("m")) | \
            vector_extent(gemm("w_addr"), gemm("k"))
        gemm_acc = gemm("acc_addr") + gemm("m") > cfg.acc_depth

        # -- VECTOR -----------------------------------------------------------------------
        def vector(name, source=word):
            return field(source, Opcode.VECTOR, name)

        vop, length = vector("op"), vector("length")
        vector_bad = (vop > max(VectorOp)) | (length == 0) | (length > cfg.max_row)
        requantize = vop == VectorOp.REQUANTIZE
        # The strided operands: their extents come from the shift-and-add. Without a vector
        # unit a VECTOR fails before its fields count, so none of it is built.
        strided = ("src", "src2", "dst") if cfg.vector_unit else ()
        count = Signal(field_spec(Opcode.VECTOR, "rows").width)  # bits of rows - 1 to add
        ends = {name: Signal(sat_bits + 1, name=f"{name}_end") for name in strided}
        steps = {name: Signal(sat_bits + 1, name=f"{name}_step") for name in strided}

        def misaligned(name, bits):
            return vector(name)[:bits].any() | vector(f"{name}_stride")[:bits].any()

        if cfg.vector_unit:
            src_bad = Mux(requantize,
                          misaligned("src", acc_bits) | (vector("src") < acc_lo) |
                          (ends["src"] > acc_hi),
                          misaligned("src", pitch_bits) | (ends["src"] > cfg.spad_bytes))
            src2_bad = (vop == VectorOp.ADD) & (misaligned("src2", pitch_bits) |
                                                (ends["src2"] > cfg.spad_bytes))
            dst_bad = misaligned("dst", pitch_bits) | (ends["dst"] > cfg.spad_bytes)
            record = Signal(range(max(record_bytes(op, (1 << len(length)) - 1)
                                      for op in VectorOp) + 1))
            m.d.comb += record.eq(record_bytes(vop, length))
            # The record takes ceil(record / pitch) vectors; with params aligned (else it
            # fails anyway), params + that many vectors fits exactly when params + record does.
            params = vector("params")
            params_bad = params[:pitch_bits].any() | (params + record > cfg.spad_bytes)
            vector_local = (vector("rows") != 0) & (src_bad | src2_bad | dst_bad | params_bad)
        else:
            vector_bad = vector_local = Const(0)

        # -- tokens -----------------------------------------------------------------------
        counts, pops, pushes = {}, {}, {}
        for a in Queue:
            for b in Queue:
                if abs(a - b) != 1:
                    continue
                channel = (a, b)
                counts[channel] = Signal(range(MAX_TOKENS + 1), name=f"tokens_{a.name}_{b.name}")
                # Taken by an instruction of queue b from its previous or next queue, given by
                # one of queue a to its next or previous queue.
                pops[channel] = (queue == b) & flags["pop_prev" if a < b else "pop_next"]
                pushes[channel] = (queue == a) & flags["push_next" if b > a else "push_prev"]
        underflow = Cat(*(pops[c] & (counts[c] == 0) for c in counts)).any()
        overflow = Cat(*(pushes[c] & (counts[c] == MAX_TOKENS) for c in counts)).any()

        # -- the outcome ------------------------------------------------------------------
        is_end = is_op[Opcode.END]
        bad_field = (reserved |
                     (is_op[Opcode.SYNC] & (sync_queue > max(Queue))) |
                     (is_end & Cat(*flags.values()).any()) |
                     (~is_end & bad_flags) |
                     (is_op[Opcode.GEMM] & gemm_bad) |
                     (is_op[Opcode.VECTOR] & vector_bad))
        code = Signal(8)
        kind = Value.cast(entry.kind)
        with m.If(kind == FetchKind.OVERRUN):
            m.d.comb += code.eq(CoreError.PROGRAM_OVERRUN)
        with m.Elif(kind != FetchKind.WORD):
            m.d.comb += code.eq(CoreError.FETCH)
        with m.Elif(~legal):
            m.d.comb += code.eq(CoreError.ILLEGAL_OPCODE)
        if not cfg.vector_unit:
            with m.Elif(is_op[Opcode.VECTOR]):
                m.d.comb += code.eq(CoreError.NO_VECTOR_UNIT)
        with m.Elif(bad_field):
            m.d.comb += code.eq(CoreError.BAD_FIELD)
        with m.Elif((is_op[Opcode.GEMM] & gemm_local) | (is_op[Opcode.VECTOR] & vector_local)):
            m.d.comb += code.eq(CoreError.LOCAL_RANGE)
        with m.Elif(is_op[Opcode.GEMM] & gemm_acc):
            m.d.comb += code.eq(CoreError.ACC_RANGE)
        with m.Elif(~is_end & underflow):
            m.d.comb += code.eq(CoreError.TOKEN_UNDERFLOW)
        with m.Elif(~is_end & overflow):
            m.d.comb += code.eq(CoreError.TOKEN_OVERFLOW)
        with m.Else():
            m.d.comb += code.eq(CoreError.NONE)

        # The outcome is registered (``checked``) before anything is offered, so the checks
        # and what the offers drive (the queues, the error merge, fetch's handshake) are
        # in different cycles. The token counts it read cannot change in between: only a
        # dispatch of the held entry changes them.
        checked = Signal()
        outcome = Signal(data.StructLayout({"code": 8, "queue": 2, "end": 1}))
        with m.If(held & (count == 0) & ~checked):
            m.d.sync += [checked.eq(1), outcome.code.eq(code), outcome.queue.eq(queue),
                         outcome.end.eq(is_end)]
        failed = outcome.code != CoreError.NONE
        dispatch = ~failed & ~outcome.end
        fire = Signal()
        dispatched = Signal()
        taken = []
        for q in Queue:
            port = self.queue_port(q)
            m.d.comb += [
                port.valid.eq(checked & dispatch & (outcome.queue == q)),
                port.payload.word.eq(word),
                port.payload.addr.eq(entry.addr),
            ]
            taken.append(port.valid & port.ready)
        m.d.comb += [
            self.error.valid.eq(checked & failed),
            self.error.payload.code.eq(outcome.code),
            self.error.payload.addr.eq(entry.addr),
            self.end.valid.eq(checked & ~failed & outcome.end),
            self.end.payload.addr.eq(entry.addr),
            dispatched.eq(Cat(*taken).any()),
            fire.eq(dispatched | (self.error.valid & self.error.ready) |
                    (self.end.valid & self.end.ready)),
            self.instr.ready.eq(~stopped & ~self.start & (~held | dispatched)),
            self.busy.eq(~stopped),
        ]

        with m.If(dispatched):
            for c in counts:
                m.d.sync += counts[c].eq(counts[c] - pops[c] + pushes[c])
        with m.If(fire):
            m.d.sync += [held.eq(0), checked.eq(0)]
            with m.If(~dispatched):
                m.d.sync += stopped.eq(1)

        # -- the shift-and-add of a VECTOR's (rows - 1) * stride --------------------------
        with m.If(held & (count != 0)):
            for name in strided:
                with m.If(count[0]):
                    m.d.sync += ends[name].eq(_saturate(ends[name] + steps[name], sat_bits))
                m.d.sync += steps[name].eq(_saturate(steps[name] << 1, sat_bits))
            m.d.sync += count.eq(count >> 1)

        p = self.instr.payload
        beats = ceil_div(vector("length", p.word), cfg.cols)
        rows = vector("rows", p.word)
        with m.If(self.instr.valid & self.instr.ready):
            m.d.sync += [entry.eq(p), held.eq(1)]
            is_vector = (Value.cast(p.kind) == FetchKind.WORD) & \
                (field(p.word, None, "opcode") == Opcode.VECTOR)
            if cfg.vector_unit:
                m.d.sync += count.eq(Mux(is_vector & (rows != 0), rows - 1, 0))
            first = {"src": Mux(vector("op", p.word) == VectorOp.REQUANTIZE,
                                beats << acc_bits, beats << pitch_bits),
                     "src2": beats << pitch_bits, "dst": beats << pitch_bits}
            for name in strided:
                m.d.sync += [
                    ends[name].eq(_saturate(vector(name, p.word) + first[name], sat_bits)),
                    steps[name].eq(_saturate(vector(f"{name}_stride", p.word), sat_bits)),
                ]

        with m.If(self.start):
            m.d.sync += [held.eq(0), checked.eq(0), stopped.eq(0), count.eq(0)]
            m.d.sync += [c.eq(0) for c in counts.values()]
        return m
