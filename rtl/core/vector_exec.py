"""The compute queue's VECTOR executor: a VECTOR's parameter record, its rows and its results
between the scratchpad (and, for REQUANTIZE, the accumulator memory) and the vector unit."""

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from jalapeno.isa import RECORDS, CoreError, Opcode, VectorOp, record_layout
from rtl.dma.descriptor import check_config
from rtl.dma.scratchpad import dma_write_layout
from rtl.vector.layernorm import LayerNorm
from rtl.vector.softmax import Softmax
from rtl.vector.unit import TableSelect, VectorUnit
from rtl.vector.unit import VectorOp as UnitOp

from .decode import ceil_div, dispatch_layout, error_layout, field
from .tokens import token_layout

__all__ = ["VectorExec", "ByteAligner", "vector_exec_signature"]

#: Entries of the exp and LUT tables.
_TABLE_ENTRIES = 256


class ByteAligner(wiring.Component):
    """Turns a stream of ``vector_bytes``-byte vectors, read from aligned addresses, into
    chunks of up to ``chunk_bytes`` bytes from any byte offset: the parameter-record arrays
    (tables, gamma, beta) whose elements do not start on a vector boundary.

    The vectors of one array (a "run") are pushed in order; the first carries ``first`` and
    ``skip``, the bytes before the array's start in it. Pushed bytes shift in at the top of a
    ``chunk_bytes + vector_bytes`` buffer; ``data`` is the oldest ``chunk_bytes`` of them
    (bytes past ``level`` are garbage), and ``pop`` drops ``amount`` of them, or all with
    ``discard`` (the end of a run). A vector is taken while at most ``chunk_bytes`` are held,
    so any chunk up to ``chunk_bytes`` can always be completed; a run's first vector only
    once the previous run has been discarded, so runs never mix.

    Attributes
    ----------
    push : In(stream.Signature(StructLayout({"data", "first", "skip"})))
    data : Out(8 * chunk_bytes)
    level : Out(range(chunk_bytes + vector_bytes + 1))
        Bytes held.
    pop, discard : In(1)
    amount : In(range(chunk_bytes + 1))
    clear : In(1)
        Drop everything.
    """

    def __init__(self, vector_bytes, chunk_bytes):
        self.vector_bytes, self.chunk_bytes = vector_bytes, chunk_bytes
        self.capacity = vector_bytes + chunk_bytes
        super().__init__({
            "push": In(stream.Signature(data.StructLayout({
                "data": 8 * vector_bytes, "first": 1, "skip": range(vector_bytes)}))),
            "data": Out(8 * chunk_bytes),
            "level": Out(range(self.capacity + 1)),
            "pop": In(1),
            "discard": In(1),
            "amount": In(range(chunk_bytes + 1)),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, k, cap = self.vector_bytes, self.chunk_bytes, self.capacity
        buf = Signal(8 * cap)
        level = self.level
        push = self.push
        m.d.comb += [
            push.ready.eq((level <= k) & (~push.payload.first | (level == 0))),
            # The oldest held byte is at byte cap - level.
            self.data.eq((Cat(buf, Const(0, 8 * k)) >> Cat(Const(0, 3), cap - level))[:8 * k]),
        ]
        kept = Mux(self.pop, Mux(self.discard, 0, level - self.amount), level)
        added = Mux(push.payload.first, p - push.payload.skip, p)
        taken = push.valid & push.ready
        m.d.sync += level.eq(kept + Mux(taken, added, 0))
        with m.If(taken):
            m.d.sync += buf.eq(Cat(buf[8 * p:], push.payload.data))
        with m.If(self.clear):
            m.d.sync += level.eq(0)
        return m


def _header(op):
    """``{name: (offset, dtype)}`` of ``op``'s fixed record fields, and their end in bytes."""
    layout, _ = record_layout(op, 0)
    fields = {name: (offset, dtype) for name, (offset, dtype, count) in layout.items()
              if count == 1}
    end = max((offset + int(dtype[2:]) for offset, dtype in fields.values()), default=0)
    return fields, end


def _array(op, name):
    """Offset (``None``: after the previous field) and item size of one of ``op``'s record
    arrays."""
    (f,) = [f for f in RECORDS[op] if f.name == name]
    return f.offset, int(f.dtype[2:])


def vector_exec_signature(config):
    """The ports of :class:`VectorExec` for ``config``: also those of the stand-in that the
    compute queue of a core without a vector unit keeps, undriven (idle), in its place."""
    check_config(config)
    int8 = signed(config.in_width)
    return wiring.Signature({
        "instr": In(stream.Signature(dispatch_layout(config))),
        "done": Out(stream.Signature(token_layout(), always_ready=True)),
        "error": Out(stream.Signature(error_layout(config), always_ready=True)),
        "busy": Out(1),
        "rd": Out(stream.Signature(config.spad_addr_width)),
        "rd_data": In(stream.Signature(data.ArrayLayout(int8, max(config.rows, config.cols)))),
        "acc_rd": Out(stream.Signature(config.acc_addr_width)),
        "acc_data": In(stream.Signature(
            data.ArrayLayout(signed(config.acc_width), config.cols))),
        "wr": Out(stream.Signature(dma_write_layout(config))),
        "unit_error": Out(1),
    })


class VectorExec(wiring.Component):
    """Runs VECTOR instructions on a :class:`~rtl.vector.unit.VectorUnit` of its own, one at a
    time, exactly as the golden model (``CoreModel._vector``) does.

    A VECTOR taken on ``instr`` (the decoder has made every static check) goes through:

    1. **Header.** The record's fixed fields (8 bytes for REQUANTIZE, 2 CLAMP, 20 ADD, 10
       LAYERNORM) are read through ``rd`` and checked as the golden model's ``_RecordCheck``
       does: multipliers 0 or in ``[2**30, 2**31)``, shifts in ``[-31, 30]``,
       ``act_min <= act_max``, a layernorm ``gamma_shift <= 23`` and ``0 < epsilon < 2**60``.
    2. **Table** (LUT, SOFTMAX): the 256 entries go into the unit's table, one a cycle;
       SOFTMAX checks each exp entry is below ``2**31`` on the way.
    3. **Beta scan** (LAYERNORM): every beta is checked to fit 24 bits, ``cols`` a cycle,
       before any row starts, so a row never stops half way.
    4. **Rows.** Each row's beats are read (REQUANTIZE: accumulator rows through ``acc_rd``;
       else scratchpad vectors through ``rd``, ADD's two operands in turn), given to the unit
       with the op's parameters (REQUANTIZE's broadcast to every lane), SOFTMAX's three times
       and LAYERNORM's twice, the second time with the beat's gamma and beta read from the
       record; the unit's outputs are written to the scratchpad through ``wr``, ``cols``
       bytes at each ``dst + r * dst_stride + b * vector_pitch``, lanes past the row's end
       zero.

    A bad record reports ``VECTOR_PARAM`` at the instruction's address on ``error`` and writes
    nothing; a good VECTOR reports its ``push_prev``/``push_next`` on ``done`` once its last
    result is written. ``rows`` 0 does nothing, not even read the record (as the model).

    Decoupling. Reads on ``rd`` are tagged in a queue of :attr:`READ_DEPTH` entries and their
    vectors land in a data queue as deep, so every read issued has room for its data, and
    ``rd_data`` is always ready; accumulator reads likewise count against an
    :attr:`ACC_DEPTH`-entry queue. A consumer takes the head vector only when it can use it,
    and the reads are issued beat by beat in the order the beats consume them, so a beat's
    data is never behind a later beat's. The unit's outputs wait in an :attr:`OUT_DEPTH`-entry
    queue for the writer, which backpressures the unit when writes are held up.

    Cycles, without stalls (measured by ``tests/test_vector_exec.py``; the same on tiny,
    default and large; ``B = ceil(length / cols)`` beats a row, ``v = vector_pitch``):

    ========== ===================================== =======================================
    op         per row                               per instruction (rows of 8 beats)
    ========== ===================================== =======================================
    REQUANTIZE ``B`` (one accumulator row a cycle)   13 (one header read, pipeline fill)
    LUT        ``B``                                 265 (256 table entries, one a cycle)
    CLAMP      ``B``                                 11
    ADD        ``2 B`` (two reads a beat)            17
    SOFTMAX    ``3 B + 16`` (the unit's own rate)    268 (the table)
    LAYERNORM  86 for ``B = 8``: pass 1, the unit's  51 (header, the ``B``-cycle beta scan)
               28-cycle row constants and pass 2 at
               ``1 + 2 cols / v + 4 cols / v`` reads
               (7 when ``cols = v``) a beat, partly
               overlapped
    ========== ===================================== =======================================

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        ``max(rows, cols)`` must be a power of two (every preset), so that a vector read
        through the scratchpad's compute port covers all of ``vector_pitch``.

    Attributes
    ----------
    instr : In(stream.Signature(dispatch_layout(config)))
        The VECTOR to run; ready while idle.
    done : Out(stream.Signature(token_layout(), always_ready=True))
        A VECTOR completed: its push flags, for one cycle.
    error : Out(stream.Signature(error_layout(config), always_ready=True))
        A VECTOR failed (``VECTOR_PARAM``): its code and address, for one cycle.
    busy : Out(1)
        From taking a VECTOR to its ``done`` or ``error``.
    rd : Out(stream.Signature(spad_addr_width))
    rd_data : In(stream.Signature(ArrayLayout(signed(8), vector_bytes)))
        The scratchpad's compute read port.
    acc_rd : Out(stream.Signature(acc_addr_width))
    acc_data : In(stream.Signature(ArrayLayout(signed(32), cols)))
        An accumulator read port.
    wr : Out(stream.Signature(dma_write_layout(config)))
        Scratchpad writes, bus words with strobes.
    unit_error : Out(1)
        The vector unit's sticky ``error``: never set, as every record is checked first.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    ValueError
        If ``max(rows, cols)`` is not a power of two.
    """

    #: Scratchpad reads in flight or waiting to be used.
    READ_DEPTH = 4
    #: Accumulator reads in flight or waiting to be used.
    ACC_DEPTH = 6
    #: Results waiting to be written.
    OUT_DEPTH = 4

    def __init__(self, config):
        check_config(config)
        self._config = config
        self.vector_bytes = max(config.rows, config.cols)
        self.vector_pitch = 1 << ceil_log2(self.vector_bytes)
        if self.vector_bytes != self.vector_pitch:
            raise ValueError(
                f"VECTOR needs max(rows, cols) to be a power of two, not {self.vector_bytes}: "
                f"the compute port reads {self.vector_bytes} of every {self.vector_pitch} "
                f"bytes, and a parameter record needs them all")
        super().__init__(vector_exec_signature(config))

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        cols, pitch, nb = cfg.cols, self.vector_pitch, cfg.bus_bytes
        spad_w = cfg.spad_addr_width
        addr_w = max(spad_w, cfg.acc_addr_width)
        m.submodules.unit = unit = VectorUnit(cfg)
        m.d.comb += self.unit_error.eq(unit.error)

        # -- the instruction ---------------------------------------------------------------
        word = self.instr.payload.word

        def f(name):
            return field(word, Opcode.VECTOR, name)

        op = Signal(UnitOp)
        rows = Signal(16)
        length = Signal(cfg.row_length_width)
        beats = Signal(cfg.row_length_width)  # per row
        lanes_last = Signal(range(cols + 1))  # elements in a row's last beat
        params = Signal(spad_w)
        src_stride, src2_stride = Signal(addr_w), Signal(spad_w)
        dst_stride = Signal(spad_w)
        step = Signal(range(pitch + 1))  # from one source beat to the next
        passes = Signal(2)
        push = Signal(token_layout())
        instr_addr = Signal(cfg.addr_width)
        beta_off = Signal(range(record_layout(VectorOp.LAYERNORM, cfg.max_row)[1] + 1))
        beta_skip = Signal(range(pitch))

        gamma_at, gamma_size = _array(VectorOp.LAYERNORM, "gamma")
        _, beta_size = _array(VectorOp.LAYERNORM, "beta")
        gamma_skip = gamma_at % pitch
        headers = {op_: _header(op_) for op_ in VectorOp}
        header_max = max(end for _, end in headers.values())
        header_vectors = -(-header_max // pitch)
        table_item = {VectorOp.LUT: 1, VectorOp.SOFTMAX: 4}
        for op_, size in table_item.items():
            (table_field,) = RECORDS[op_]
            assert table_field.offset == 0 and int(table_field.dtype[2:]) == size
            assert table_field.count == _TABLE_ENTRIES
        # Bytes a run of record reads may cover: the largest record, and a vector.
        record_max = max(record_layout(op_, cfg.max_row)[1] for op_ in VectorOp)
        run_width = (record_max + 2 * pitch).bit_length()
        chunk_a = gamma_size * cols
        chunk_b = max(beta_size * cols, max(table_item.values()))
        m.submodules.gamma = gamma = ByteAligner(pitch, chunk_a)
        m.submodules.beta = beta = ByteAligner(pitch, chunk_b)

        # -- state ---------------------------------------------------------------------------
        # Phases: IDLE, HEADER (reads), CHECK, TABLE, SCAN, ROWS, DONE, FAIL.
        state = Signal(range(8))
        IDLE, HEADER, CHECK, TABLE, SCAN, ROWS, DONE, FAIL = range(8)
        m.d.comb += [
            self.instr.ready.eq(state == IDLE),
            self.busy.eq(state != IDLE),
            self.done.valid.eq(state == DONE),
            self.done.payload.eq(push),
            self.error.valid.eq(state == FAIL),
            self.error.payload.code.eq(CoreError.VECTOR_PARAM),
            self.error.payload.addr.eq(instr_addr),
        ]

        # -- reads: a linear run (header, table, beta scan) or the rows --------------------
        kinds = ("HDR", "TABLE", "SCAN", "SRC", "SRC2", "GAMMA", "BETA")
        K = {name: i for i, name in enumerate(kinds)}
        tag_layout = data.StructLayout({"kind": range(len(kinds)), "first": 1, "last": 1,
                                        "pass2": 1})
        m.submodules.tags = tags = fifo.SyncFIFO(width=tag_layout.size, depth=self.READ_DEPTH)
        m.submodules.vectors = vectors = fifo.SyncFIFO(width=8 * self.vector_bytes,
                                                       depth=self.READ_DEPTH)
        m.submodules.accs = accs = fifo.SyncFIFO(width=cfg.acc_width * cols,
                                                 depth=self.ACC_DEPTH)
        acc_pending = Signal(range(self.ACC_DEPTH + 1))

        linear = Signal()  # a linear run is being read
        lin_addr, lin_done, lin_goal = Signal(spad_w), Signal(run_width), Signal(run_width)
        lin_kind = Signal(range(len(kinds)))

        reading = Signal()  # the rows are being read
        r_row, r_pass, r_beat = Signal(16), Signal(2), Signal(cfg.row_length_width)
        r_row_addr, r_addr = Signal(addr_w), Signal(addr_w)
        r_row_addr2, r_addr2 = Signal(spad_w), Signal(spad_w)
        r_src_done = Signal()
        r_elems = Signal(cfg.row_length_width)  # elements up to the end of this beat
        g_addr, g_done = Signal(spad_w), Signal(run_width)
        b_addr, b_done = Signal(spad_w), Signal(run_width)
        g_goal, b_goal = Signal(run_width), Signal(run_width)
        m.d.comb += [
            g_goal.eq(gamma_skip + r_elems * gamma_size),
            b_goal.eq(beta_skip + r_elems * beta_size),
        ]

        is_ln2 = (op == UnitOp.LAYERNORM) & (r_pass == 1)
        g_short = g_done < g_goal
        b_short = b_done < b_goal
        want_src = ~r_src_done
        want_src2 = r_src_done & (op == UnitOp.ADD)
        want_g = r_src_done & is_ln2 & g_short
        last_beat = r_beat == beats - 1

        tag = Signal(tag_layout)
        rd_addr = Signal(spad_w)
        rd_want = Signal()
        acc_want = Signal()
        with m.If(linear):
            m.d.comb += [rd_want.eq(1), rd_addr.eq(lin_addr), tag.kind.eq(lin_kind),
                         tag.first.eq(lin_done == 0)]
        with m.Elif(reading & (op == UnitOp.REQUANTIZE)):
            m.d.comb += acc_want.eq(acc_pending < self.ACC_DEPTH)
        with m.Elif(reading):
            m.d.comb += rd_want.eq(1)
            with m.If(want_src):
                m.d.comb += [rd_addr.eq(r_addr), tag.kind.eq(K["SRC"]), tag.last.eq(last_beat),
                             tag.pass2.eq(is_ln2)]
            with m.Elif(want_src2):
                m.d.comb += [rd_addr.eq(r_addr2), tag.kind.eq(K["SRC2"])]
            with m.Elif(want_g):
                m.d.comb += [rd_addr.eq(g_addr), tag.kind.eq(K["GAMMA"]),
                             tag.first.eq(g_done == 0)]
            with m.Else():
                m.d.comb += [rd_addr.eq(b_addr), tag.kind.eq(K["BETA"]),
                             tag.first.eq(b_done == 0)]
        m.d.comb += [
            self.rd.valid.eq(rd_want & tags.w_rdy),
            self.rd.payload.eq(rd_addr),
            tags.w_en.eq(self.rd.valid & self.rd.ready),
            tags.w_data.eq(tag),
            self.acc_rd.valid.eq(acc_want),
            self.acc_rd.payload.eq(r_addr),
            vectors.w_en.eq(self.rd_data.valid & vectors.w_rdy),
            vectors.w_data.eq(self.rd_data.payload),
            self.rd_data.ready.eq(vectors.w_rdy),
            accs.w_en.eq(self.acc_data.valid & accs.w_rdy),
            accs.w_data.eq(self.acc_data.payload),
            self.acc_data.ready.eq(accs.w_rdy),
        ]
        issued = (self.rd.valid & self.rd.ready) | (self.acc_rd.valid & self.acc_rd.ready)
        acc_issued = self.acc_rd.valid & self.acc_rd.ready
        acc_used = accs.r_en
        m.d.sync += acc_pending.eq(acc_pending + acc_issued - acc_used)

        with m.If(linear & issued):
            m.d.sync += [lin_addr.eq(lin_addr + pitch), lin_done.eq(lin_done + pitch)]
            with m.If(lin_done + pitch >= lin_goal):
                m.d.sync += linear.eq(0)

        # The rows: which read completes the current beat, then on to the next beat, pass, row.
        beat_read = Signal()
        with m.If(want_src):
            m.d.comb += beat_read.eq(~(op == UnitOp.ADD) & ~(is_ln2 & (g_short | b_short)))
        with m.Elif(want_src2):
            m.d.comb += beat_read.eq(1)
        with m.Elif(want_g):
            m.d.comb += beat_read.eq((g_done + pitch >= g_goal) & ~b_short)
        with m.Else():
            m.d.comb += beat_read.eq(b_done + pitch >= b_goal)
        with m.If(reading & issued):
            with m.If(want_src):
                m.d.sync += r_src_done.eq(1)
            with m.Elif(want_g):
                m.d.sync += [g_addr.eq(g_addr + pitch), g_done.eq(g_done + pitch)]
            with m.Elif(~want_src2):
                m.d.sync += [b_addr.eq(b_addr + pitch), b_done.eq(b_done + pitch)]
            with m.If(beat_read):
                m.d.sync += [r_src_done.eq(0),
                             r_elems.eq(Mux(r_elems + cols >= length, length, r_elems + cols))]
                with m.If(~last_beat):
                    m.d.sync += [r_beat.eq(r_beat + 1), r_addr.eq(r_addr + step),
                                 r_addr2.eq(r_addr2 + pitch)]
                with m.Else():
                    m.d.sync += [r_beat.eq(0), r_elems.eq(Mux(length > cols, cols, length))]
                    with m.If(r_pass != passes - 1):
                        m.d.sync += [r_pass.eq(r_pass + 1), r_addr.eq(r_row_addr),
                                     r_addr2.eq(r_row_addr2)]
                        # A layernorm's pass 2 reads its gamma and beta from the start.
                        m.d.sync += [g_addr.eq(params + gamma_at - gamma_skip), g_done.eq(0),
                                     b_addr.eq(params + beta_off - beta_skip), b_done.eq(0)]
                    with m.Else():
                        m.d.sync += [r_pass.eq(0), r_row.eq(r_row + 1),
                                     r_row_addr.eq(r_row_addr + src_stride),
                                     r_addr.eq(r_row_addr + src_stride),
                                     r_row_addr2.eq(r_row_addr2 + src2_stride),
                                     r_addr2.eq(r_row_addr2 + src2_stride)]
                        with m.If(r_row == rows - 1):
                            m.d.sync += reading.eq(0)

        # -- the head of the read data, to whoever uses it -----------------------------------
        head_tag = data.View(tag_layout, tags.r_data)
        head = data.View(data.ArrayLayout(signed(cfg.in_width), self.vector_bytes),
                         vectors.r_data)
        head_valid = vectors.r_rdy
        head_used = Signal()
        m.d.comb += [tags.r_en.eq(head_valid & head_used),
                     vectors.r_en.eq(head_valid & head_used)]

        hdr = Signal(8 * pitch * header_vectors)
        hdr_count = Signal(range(header_vectors + 1))
        with m.If(head_valid & (head_tag.kind == K["HDR"])):
            m.d.comb += head_used.eq(1)
            m.d.sync += [hdr.word_select(hdr_count, 8 * pitch).eq(vectors.r_data),
                         hdr_count.eq(hdr_count + 1)]

        for aligner, kinds_in, skip in ((gamma, ("GAMMA",), gamma_skip),
                                        (beta, ("TABLE", "SCAN", "BETA"), None)):
            mine = Cat(head_tag.kind == K[k] for k in kinds_in).any()
            m.d.comb += [
                aligner.push.valid.eq(head_valid & mine),
                aligner.push.payload.data.eq(vectors.r_data),
                aligner.push.payload.first.eq(head_tag.first),
                aligner.push.payload.skip.eq(
                    skip if skip is not None else Mux(head_tag.kind == K["TABLE"], 0, beta_skip)),
            ]
            with m.If(mine):
                m.d.comb += head_used.eq(aligner.push.ready)

        # x: the source vector of the next beat.
        x = Signal(data.ArrayLayout(signed(cfg.in_width), cols))
        x_full, x_last, x_pass2 = Signal(), Signal(), Signal()
        beat_fire = Signal()
        x_free = ~x_full | (beat_fire & (op != UnitOp.REQUANTIZE))
        with m.If(head_valid & (head_tag.kind == K["SRC"]) & x_free):
            m.d.comb += head_used.eq(1)
            m.d.sync += [x.eq(vectors.r_data[:8 * cols]), x_full.eq(1),
                         x_last.eq(head_tag.last), x_pass2.eq(head_tag.pass2)]
        with m.Elif(beat_fire & (op != UnitOp.REQUANTIZE)):
            m.d.sync += x_full.eq(0)
        head_src2 = head_valid & (head_tag.kind == K["SRC2"])
        with m.If(head_src2):
            m.d.comb += head_used.eq(beat_fire)

        # -- header fields and checks ---------------------------------------------------------
        def rec(op_, name):
            offset, dtype = headers[op_][0][name]
            value = hdr[8 * offset:8 * (offset + int(dtype[2:]))]
            return value.as_signed() if dtype[1] == "i" else value

        def multiplier_ok(multiplier, shift):
            return (((multiplier == 0) | (multiplier[30] & ~multiplier[31]))
                    & (shift >= -31) & (shift <= 30))

        def clamp_ok(op_):
            return rec(op_, "act_min") <= rec(op_, "act_max")

        header_ok = Signal()
        with m.Switch(op):
            with m.Case(UnitOp.REQUANTIZE):
                m.d.comb += header_ok.eq(
                    multiplier_ok(rec(VectorOp.REQUANTIZE, "multiplier"),
                                  rec(VectorOp.REQUANTIZE, "shift"))
                    & clamp_ok(VectorOp.REQUANTIZE))
            with m.Case(UnitOp.CLAMP):
                m.d.comb += header_ok.eq(clamp_ok(VectorOp.CLAMP))
            with m.Case(UnitOp.ADD):
                ok = clamp_ok(VectorOp.ADD)
                for name in ("input1", "input2", "output"):
                    ok &= multiplier_ok(rec(VectorOp.ADD, f"{name}_multiplier"),
                                        rec(VectorOp.ADD, f"{name}_shift"))
                m.d.comb += header_ok.eq(ok)
            with m.Case(UnitOp.LAYERNORM):
                epsilon = rec(VectorOp.LAYERNORM, "epsilon")
                m.d.comb += header_ok.eq((rec(VectorOp.LAYERNORM, "gamma_shift") <= 23)
                                         & (epsilon != 0) & (epsilon[60:] == 0))
            with m.Default():
                m.d.comb += header_ok.eq(1)

        # -- the table and the beta scan, through the beta aligner -----------------------------
        count = Signal(range(max(_TABLE_ENTRIES, 1 << cfg.row_length_width) + 1))
        bad = Signal()
        item = Mux(op == UnitOp.SOFTMAX, 4, 1)
        scan_last = count == beats - 1
        scan_lanes = Mux(scan_last, lanes_last, cols)
        table_pop = (state == TABLE) & (beta.level >= item)
        scan_pop = (state == SCAN) & (beta.level >= scan_lanes * beta_size)
        entry = beta.data[:32]
        m.d.comb += [
            unit.table.valid.eq(table_pop),
            unit.table.payload.select.eq(Mux(op == UnitOp.SOFTMAX, TableSelect.EXP,
                                             TableSelect.LUT)),
            unit.table.payload.index.eq(count),
            unit.table.payload.value.eq(Mux(op == UnitOp.SOFTMAX, entry, entry[:8])),
        ]
        betas_bad = Cat(
            (scan_lanes > c) & (beta.data[32 * c + 23:32 * c + 32] != 0)
            & (beta.data[32 * c + 23:32 * c + 32] != 0x1FF) for c in range(cols)).any()

        # -- the rows into the unit ----------------------------------------------------------
        x_lanes = Mux(x_last, lanes_last, cols)
        need_g = x_lanes * gamma_size
        need_b = x_lanes * beta_size
        beat_valid = Signal()
        with m.Switch(op):
            with m.Case(UnitOp.REQUANTIZE):
                m.d.comb += beat_valid.eq(accs.r_rdy)
            with m.Case(UnitOp.ADD):
                m.d.comb += beat_valid.eq(x_full & head_src2)
            with m.Case(UnitOp.LAYERNORM):
                m.d.comb += beat_valid.eq(x_full & (~x_pass2 | ((gamma.level >= need_g)
                                                                & (beta.level >= need_b))))
            with m.Default():
                m.d.comb += beat_valid.eq(x_full)
        m.d.comb += [
            unit.i.valid.eq((state == ROWS) & beat_valid),
            beat_fire.eq(unit.i.valid & unit.i.ready),
            accs.r_en.eq(beat_fire & (op == UnitOp.REQUANTIZE)),
            unit.i.payload.op.eq(op),
        ]
        ln_pop = beat_fire & (op == UnitOp.LAYERNORM) & x_pass2
        m.d.comb += [
            gamma.pop.eq(ln_pop), gamma.amount.eq(need_g), gamma.discard.eq(x_last),
            beta.pop.eq(ln_pop | table_pop | scan_pop),
            beta.amount.eq(Mux(state == TABLE, item, Mux(state == SCAN, scan_lanes * beta_size,
                                                         need_b))),
            beta.discard.eq(Mux(state == SCAN, scan_last, (state == ROWS) & x_last)),
            gamma.clear.eq(state == IDLE),
            beta.clear.eq(state == IDLE),
        ]

        args = unit.i.payload.args
        acc_head = data.View(data.ArrayLayout(signed(cfg.acc_width), cols), accs.r_data)
        with m.Switch(op):
            with m.Case(UnitOp.REQUANTIZE):
                a = args.requantize
                for c in range(cols):
                    m.d.comb += [
                        a.data[c].eq(acc_head[c]),
                        a.params[c].multiplier.eq(rec(VectorOp.REQUANTIZE, "multiplier")),
                        a.params[c].shift.eq(rec(VectorOp.REQUANTIZE, "shift")),
                        a.params[c].zero_point.eq(rec(VectorOp.REQUANTIZE, "zero_point")),
                    ]
                m.d.comb += [a.act_min.eq(rec(VectorOp.REQUANTIZE, "act_min")),
                             a.act_max.eq(rec(VectorOp.REQUANTIZE, "act_max"))]
            with m.Case(UnitOp.LUT):
                m.d.comb += args.lut.eq(x)
            with m.Case(UnitOp.CLAMP):
                m.d.comb += [args.clamp.data.eq(x),
                             args.clamp.act_min.eq(rec(VectorOp.CLAMP, "act_min")),
                             args.clamp.act_max.eq(rec(VectorOp.CLAMP, "act_max"))]
            with m.Case(UnitOp.ADD):
                a = args.add
                m.d.comb += [a.a.eq(x), a.b.eq(head.as_value()[:8 * cols])]
                for name in a.params.shape().members:
                    m.d.comb += a.params[name].eq(rec(VectorOp.ADD, name))
            with m.Case(UnitOp.SOFTMAX):
                m.d.comb += [args.softmax.data.eq(x), args.softmax.length.eq(length)]
            with m.Case(UnitOp.LAYERNORM):
                a = args.layernorm
                m.d.comb += [
                    a.data.eq(x), a.length.eq(length),
                    a.epsilon.eq(rec(VectorOp.LAYERNORM, "epsilon")),
                    a.gamma_shift.eq(rec(VectorOp.LAYERNORM, "gamma_shift")),
                    a.output_zero_point.eq(rec(VectorOp.LAYERNORM, "output_zero_point")),
                ]
                for c in range(cols):
                    m.d.comb += [
                        a.gamma[c].eq(gamma.data[16 * c:16 * c + 16]),
                        a.beta[c].eq(beta.data[32 * c:32 * c + 24]),
                    ]

        # -- the results, to the scratchpad ---------------------------------------------------
        m.submodules.results = results = fifo.SyncFIFO(width=8 * cols, depth=self.OUT_DEPTH)
        m.d.comb += [
            results.w_en.eq(unit.o.valid & results.w_rdy),
            results.w_data.eq(unit.o.payload),
            unit.o.ready.eq(results.w_rdy),
        ]
        w_row, w_beat = Signal(16), Signal(cfg.row_length_width)
        w_row_addr, w_addr = Signal(spad_w), Signal(spad_w)
        w_last = w_beat == beats - 1
        w_lanes = Mux(w_last, lanes_last, cols)
        result = Signal(8 * cols)
        m.d.comb += result.eq(Cat(Mux(w_lanes > c, results.r_data[8 * c:8 * c + 8], 0)
                                  for c in range(cols)))
        bus_bits = exact_log2(nb)
        if pitch <= nb:
            # One bus word holds the whole beat, at its offset in the word.
            words = 1
            offset = w_addr[:bus_bits]
            m.d.comb += [
                self.wr.payload.addr.eq(Cat(Const(0, bus_bits), w_addr[bus_bits:])),
                self.wr.payload.data.eq(result << Cat(Const(0, 3), offset)),
                self.wr.payload.strb.eq(Const((1 << cols) - 1, nb) << offset),
            ]
            w_word = Const(0, 1)
            w_word_last = Const(1, 1)
        else:
            # The beat over consecutive bus words, the last one strobed up to cols.
            words = -(-cols // nb)
            w_word = Signal(range(words))
            w_word_last = w_word == words - 1
            padded = Cat(result, Const(0, 8 * (words * nb - cols)))
            strobes = Const(int("".join("1" if i < cols else "0"
                                        for i in reversed(range(words * nb))), 2), words * nb)
            m.d.comb += [
                self.wr.payload.addr.eq(w_addr + (w_word << bus_bits)),
                self.wr.payload.data.eq(padded.word_select(w_word, 8 * nb)),
                self.wr.payload.strb.eq(strobes.word_select(w_word, nb)),
            ]
        m.d.comb += [
            self.wr.valid.eq((state == ROWS) & results.r_rdy),
            results.r_en.eq(self.wr.valid & self.wr.ready & w_word_last),
        ]
        with m.If(self.wr.valid & self.wr.ready):
            if words > 1:
                m.d.sync += w_word.eq(Mux(w_word_last, 0, w_word + 1))
            with m.If(w_word_last):
                with m.If(~w_last):
                    m.d.sync += [w_beat.eq(w_beat + 1), w_addr.eq(w_addr + pitch)]
                with m.Else():
                    m.d.sync += [w_beat.eq(0), w_row.eq(w_row + 1),
                                 w_row_addr.eq(w_row_addr + dst_stride),
                                 w_addr.eq(w_row_addr + dst_stride)]
        rows_written = self.wr.valid & self.wr.ready & w_word_last & w_last & \
            (w_row == rows - 1)

        # -- the phases -----------------------------------------------------------------------
        def start_linear(kind, base, goal):
            m.d.sync += [linear.eq(1), lin_kind.eq(K[kind]), lin_addr.eq(base),
                         lin_done.eq(0), lin_goal.eq(goal)]

        def start_rows():
            m.d.sync += [reading.eq(1), r_row.eq(0), r_pass.eq(0), r_beat.eq(0),
                         r_src_done.eq(0), r_elems.eq(Mux(length > cols, cols, length)),
                         w_row.eq(0), w_beat.eq(0), w_addr.eq(w_row_addr)]
            m.d.sync += [state.eq(ROWS)]

        header_bytes = Signal(range(header_max + 1))
        with m.Switch(op):
            for op_ in VectorOp:
                with m.Case(UnitOp(op_.value)):
                    m.d.comb += header_bytes.eq(headers[op_][1])

        with m.Switch(state):
            with m.Case(IDLE):
                with m.If(self.instr.valid):
                    vop = f("op")[:len(op.as_value())]
                    n = f("length")
                    nbeats = ceil_div(n, cols)
                    requant = vop == UnitOp.REQUANTIZE
                    row_bits = exact_log2(cfg.acc_row_bytes)
                    acc_first = f("src")[row_bits:row_bits + cfg.acc_addr_width]
                    beta_at = ((gamma_at + (n << exact_log2(gamma_size)) + beta_size - 1)
                               >> exact_log2(beta_size)) << exact_log2(beta_size)
                    m.d.sync += [
                        op.eq(vop), rows.eq(f("rows")), length.eq(n), beats.eq(nbeats),
                        lanes_last.eq(n - (nbeats - 1) * cols),
                        params.eq(f("params")),
                        src_stride.eq(Mux(requant, f("src_stride") >> row_bits,
                                          f("src_stride"))),
                        src2_stride.eq(f("src2_stride")), dst_stride.eq(f("dst_stride")),
                        step.eq(Mux(requant, 1, pitch)),
                        passes.eq(Mux(vop == UnitOp.SOFTMAX, Softmax.passes,
                                      Mux(vop == UnitOp.LAYERNORM, LayerNorm.passes, 1))),
                        push.prev.eq(f("push_prev")), push.next.eq(f("push_next")),
                        instr_addr.eq(self.instr.payload.addr),
                        beta_off.eq(beta_at), beta_skip.eq(beta_at[:exact_log2(pitch)]),
                        r_row_addr.eq(Mux(requant, acc_first, f("src"))),
                        r_addr.eq(Mux(requant, acc_first, f("src"))),
                        r_row_addr2.eq(f("src2")), r_addr2.eq(f("src2")),
                        w_row_addr.eq(f("dst")),
                        hdr_count.eq(0), bad.eq(0), count.eq(0),
                    ]
                    with m.If(f("rows") == 0):
                        m.d.sync += state.eq(DONE)
                    with m.Elif((vop == UnitOp.LUT) | (vop == UnitOp.SOFTMAX)):
                        m.d.sync += state.eq(TABLE)
                        start_linear("TABLE", f("params"),
                                     Mux(vop == UnitOp.SOFTMAX, 4, 1) * _TABLE_ENTRIES)
                    with m.Else():
                        m.d.sync += state.eq(HEADER)
                        hb = Mux(vop == UnitOp.REQUANTIZE, headers[VectorOp.REQUANTIZE][1],
                                 Mux(vop == UnitOp.CLAMP, headers[VectorOp.CLAMP][1],
                                     Mux(vop == UnitOp.ADD, headers[VectorOp.ADD][1],
                                         headers[VectorOp.LAYERNORM][1])))
                        start_linear("HDR", f("params"), hb)
            with m.Case(HEADER):
                with m.If(~linear & (hdr_count * pitch >= header_bytes)):
                    m.d.sync += state.eq(CHECK)
            with m.Case(CHECK):
                with m.If(~header_ok):
                    m.d.sync += state.eq(FAIL)
                with m.Elif(op == UnitOp.LAYERNORM):
                    m.d.sync += [state.eq(SCAN), count.eq(0)]
                    start_linear("SCAN", params + beta_off - beta_skip,
                                 beta_skip + length * beta_size)
                with m.Else():
                    start_rows()
            with m.Case(TABLE):
                with m.If(table_pop):
                    m.d.sync += count.eq(count + 1)
                    with m.If((op == UnitOp.SOFTMAX) & entry[31]):
                        m.d.sync += bad.eq(1)
                    with m.If(count == _TABLE_ENTRIES - 1):
                        with m.If(bad | ((op == UnitOp.SOFTMAX) & entry[31])):
                            m.d.sync += state.eq(FAIL)
                        with m.Else():
                            start_rows()
            with m.Case(SCAN):
                with m.If(scan_pop):
                    m.d.sync += count.eq(count + 1)
                    with m.If(betas_bad):
                        m.d.sync += bad.eq(1)
                    with m.If(scan_last):
                        with m.If(bad | betas_bad):
                            m.d.sync += state.eq(FAIL)
                        with m.Else():
                            start_rows()
            with m.Case(ROWS):
                with m.If(rows_written):
                    m.d.sync += state.eq(DONE)
            with m.Case(DONE, FAIL):
                m.d.sync += state.eq(IDLE)
        return m
