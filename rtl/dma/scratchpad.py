"""The scratchpad: banked int8 SRAM between the DMA, the compute units and the accumulator."""

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from ..bus.skid import SkidBuffer
from ..config import JalapenoConfig

__all__ = ["Scratchpad", "dma_write_layout"]

# What a DMA read response is made of, in request order: a scratchpad word, accumulator rows
# read for it, zeros, or a word of the accumulator row read last.
_SPAD, _ACC, _ZERO, _HIT = range(4)


def dma_write_layout(config: JalapenoConfig):
    """Payload of one DMA write: a ``bus_bytes``-aligned scratchpad byte ``addr``, one bus
    word of ``data`` (byte ``k`` in bits ``8k`` up) and its byte strobes ``strb``."""
    return data.StructLayout({
        "addr": unsigned(config.spad_addr_width),
        "data": unsigned(config.bus_width),
        "strb": unsigned(config.bus_bytes),
    })


class Scratchpad(wiring.Component):
    """``spad_bytes`` of int8 SRAM that serves one array vector per cycle while the DMA writes a
    bus word per cycle, and a DMA read port into both it and the accumulator memory.

    The bytes are split into ``banks`` banks of consecutive addresses (bank ``b`` holds
    ``[b * bank_bytes, (b + 1) * bank_bytes)``; two halves by default, as every bank adds its
    own read-data multiplexer and read-during-write logic). A bank is lines of
    ``line_bytes = max(vector_pitch, bus_bytes)`` bytes in one memory with one write port (byte
    enables) and one synchronous read port: one block-RAM copy, no duplication. A vector is
    ``vector_bytes = max(rows, cols)`` bytes at a ``vector_pitch``-aligned address
    (``vector_pitch`` is ``vector_bytes`` rounded up to a power of two, so equal to it on every
    preset), and never straddles two lines, so it is one line read; a bus word is one line
    write and one line read.

    Each cycle, every bank takes one write and one read. DMA writes own the write ports and are
    always ready; each is registered on entry and lands at the edge after the one that accepts
    it, so the write enables start at flip-flops. A read request, compute or DMA, is registered
    on entry (a two-entry :class:`~rtl.bus.skid.SkidBuffer` per port; a DMA request with its
    decode) and is *issued* from that register, the edge after the one that accepted it at the
    earliest, so the bank arbitration starts at flip-flops. Compute and DMA reads share the
    read ports and conflict only in the same bank: the compute read wins and the DMA read waits
    in its register, except that a DMA read that has lost :attr:`DMA_READ_MAX_WAIT` cycles in a
    row wins the next conflict (the compute read waits that one cycle), so neither port
    starves. A compiler that keeps the vectors being computed and the data being stored in
    different banks never sees a conflict. A read sees the memory as it is at the edge it is
    issued: issued at the same edge as a write lands on its bytes, it returns the old bytes;
    issued at a later edge, the new ones. So a read accepted at the edge after the one that
    accepts a write, or later, returns the new bytes (it sees every write landed before its
    issue edge, including those accepted while it waited). Nothing is ever lost or corrupted by
    a conflict: the losing read waits and retries. ``vec_r.ready`` and ``dma_r.ready`` come
    straight from flip-flops: each is low only while two requests wait in its entry register,
    and depends on no port within the cycle.

    DMA reads take local addresses (``config.local_addr_width`` bits) in two spaces: below
    ``config.acc_base`` (``spad_bytes`` whenever the accumulator is no larger than the
    scratchpad, as on every preset) the scratchpad, from ``acc_base`` up the accumulator
    memory, read through ``acc_read``/``acc_data``. There, accumulator row ``r`` lies at offset
    ``r * acc_row_bytes``, its lane ``c`` at ``+4c`` as a little-endian int32
    (``acc_row_bytes`` is ``cols * 4`` rounded up to a power of two; the padding reads as
    zeros). A bus word wider than a row holds ``bus_bytes // acc_row_bytes`` consecutive rows
    (read one per cycle). A row wider than a bus word is read once for its first word asked
    and kept: while the requests that follow stay on that row, their words come from the kept
    copy without an accumulator read, so a STORE costs the accumulator one read per row (the
    accumulator's one port also takes the array's row updates). A request for another row,
    or ``acc_flush`` (the accumulator may have changed), ends the copy's use. ``acc_flush``
    takes effect in request order: it applies to the requests accepted after the edge at which
    it is high, so those accepted earlier and still waiting in the entry register use the
    copy just as they would have had they been issued at once. A row is read at the request's
    issue edge.
    Responses of both spaces leave in request order: a scratchpad word three cycles after the
    edge that accepted it when it does not wait (one cycle in the entry register, one in the
    bank read, one into the response buffer), so back-to-back requests without conflicts
    come back one word per cycle; an accumulator word as soon as its rows arrive. At most
    :attr:`DMA_READ_DEPTH` issued requests await their responses, and two more may wait in
    the entry register.

    A misaligned address on any port, or a DMA read outside both spaces, sets the sticky
    ``error`` flag when accepted (a write: when it lands): such a write writes nothing, such a
    read returns zeros, in order, and neither ever hangs. Ports other than ``dma_r`` are
    ``spad_addr_width`` wide, so every aligned address on them is in range.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``rows``, ``cols``, ``bus_width``, ``spad_bytes``, ``acc_depth``).
    banks : int
        Number of banks, a power of two; each must hold at least one line.

    Attributes
    ----------
    dma_w : In(stream.Signature(dma_write_layout(config)))
        DMA writes, one bus word per cycle with byte strobes; always ready. A write is
        registered at the edge that accepts it and lands at the next edge.
    dma_r : In(stream.Signature(local_addr_width))
        DMA read requests, bus-word local byte addresses in the scratchpad or accumulator
        space; ``ready`` is a flip-flop.
    dma_rdata : Out(stream.Signature(bus_width))
        DMA read responses, one per request, in request order.
    vec_r : In(stream.Signature(spad_addr_width))
        Compute read requests, ``vector_pitch``-aligned byte addresses; ``ready`` is a
        flip-flop.
    vec_data : Out(stream.Signature(ArrayLayout(signed(8), vector_bytes)))
        Vectors, element ``i`` from byte ``addr + i``, in request order, offered two cycles
        after the edge that accepted the request when it does not wait (:attr:`latency`).
    acc_read : Out(stream.Signature(acc_addr_width))
        Row reads of the accumulator memory (the matrix unit's ``read``).
    acc_data : In(stream.Signature(ArrayLayout(signed(32), cols)))
        Its rows, in order (the matrix unit's ``read_data``).
    acc_flush : In(1)
        The accumulator memory may change: the next DMA read of it accepted after this edge
        reads its row afresh (the core pulses it when a GEMM tile starts).
    error : Out(1)
        Sticky until reset: a misaligned or out-of-range address was accepted.
    vector_bytes, vector_pitch : int
        Bytes of a vector, ``max(rows, cols)``, and their alignment, the power of two at or
        above.
    line_bytes, banks, bank_bytes : int
        Bytes of a memory line, ``max(vector_pitch, bus_bytes)``; number and size of the banks.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig` or ``banks`` not an integer.
    ValueError
        If ``banks`` is not a power of two or leaves a bank without a line, or the
        accumulator memory is smaller than one bus word.
    """

    #: Conflicts in a row a DMA read loses to compute reads before it wins one.
    DMA_READ_MAX_WAIT = 7
    #: Entries of the DMA read response order queue: issued requests awaiting their responses
    #: before issue stalls (and, two requests later, ``dma_r``). Four cover the accumulator's
    #: three-cycle read latency at one word per cycle.
    DMA_READ_DEPTH = 4

    def __init__(self, config: JalapenoConfig, *, banks=2):
        if not isinstance(config, JalapenoConfig):
            raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
        if isinstance(banks, bool) or not isinstance(banks, int):
            raise TypeError(f"banks must be an integer, not {banks!r}")
        self._config = config
        self.vector_bytes = max(config.rows, config.cols)
        self.vector_pitch = 1 << ceil_log2(self.vector_bytes)
        self.line_bytes = max(self.vector_pitch, config.bus_bytes)
        max_banks = config.spad_bytes // self.line_bytes
        if not 1 <= banks <= max_banks or banks & (banks - 1):
            raise ValueError(
                f"banks must be a power of two from 1 to {max_banks}, not {banks}")
        self.banks = banks
        self.bank_bytes = config.spad_bytes // banks
        if config.acc_bytes < config.bus_bytes:
            raise ValueError(
                f"the accumulator memory ({config.acc_depth} rows of {config.acc_row_bytes} "
                f"bytes) must be at least one bus word ({config.bus_bytes} bytes)")

        int8 = signed(config.in_width)
        super().__init__({
            "dma_w": In(stream.Signature(dma_write_layout(config))),
            "dma_r": In(stream.Signature(config.local_addr_width)),
            "dma_rdata": Out(stream.Signature(config.bus_width)),
            "vec_r": In(stream.Signature(config.spad_addr_width)),
            "vec_data": Out(stream.Signature(data.ArrayLayout(int8, self.vector_bytes))),
            "acc_read": Out(stream.Signature(config.acc_addr_width)),
            "acc_data": In(stream.Signature(
                data.ArrayLayout(signed(config.acc_width), config.cols))),
            "acc_flush": In(1),
            "error": Out(1),
        })

    @property
    def config(self):
        return self._config

    @property
    def latency(self):
        """Cycles from the edge accepting a ``vec_r`` request to the one its vector can leave."""
        return 2

    def _split(self, addr):
        """Bank, line within the bank and byte within the line of a scratchpad address."""
        line_bits = ceil_log2(self.line_bytes)
        bank_bits = line_bits + ceil_log2(self.bank_bytes // self.line_bytes)
        return (addr[bank_bits:self._config.spad_addr_width], addr[line_bits:bank_bits],
                addr[:line_bits])

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        bus, line = cfg.bus_width, self.line_bytes * 8
        words = self.line_bytes // cfg.bus_bytes
        bus_bits, pitch_bits = ceil_log2(cfg.bus_bytes), ceil_log2(self.vector_pitch)

        # Compute reads: registered on entry (`vec_entry`, a skid buffer: vec_r.ready is a flop
        # and the arbitration starts at flip-flops), then a bank read whose data the next cycle
        # either leaves on vec_data or is kept in `held`, or behind it in `held2` (the read
        # port may serve the DMA in that cycle). A read issues while `held` is empty, whatever
        # vec_data.ready says: the two registers take the vector in flight and the one on
        # offer, so the arbitration and the bank addresses do not wait on the consumer.
        m.submodules.vec_entry = vec_entry = SkidBuffer(
            stream.Signature(cfg.spad_addr_width))
        wiring.connect(m, wiring.flipped(self.vec_r), vec_entry.i)
        v_req = vec_entry.o
        v_bank, v_line, v_byte = self._split(v_req.payload)
        v_ok = v_byte[:pitch_bits] == 0
        v_issue = Signal()
        v_s1, v_s1_zero, v_held, v_held2 = Signal(), Signal(), Signal(), Signal()
        v_s1_bank, v_s1_slot = Signal.like(v_bank), Signal(range(line // 8 // self.vector_pitch))
        v_held_data, v_held2_data = Signal(8 * self.vector_bytes), Signal(8 * self.vector_bytes)
        v_free = ~v_held

        # DMA reads: decoded into the scratchpad or accumulator space, or an error, on entry,
        # and registered with that decode in `entry` (a skid buffer: dma_r.ready is a flop),
        # so that the arbitration and the bank address multiplexers start at flip-flops. All
        # that follows serves the request at the entry's output, `req`.
        caching = cfg.acc_row_bytes > cfg.bus_bytes
        entry_layout = data.StructLayout({
            "addr": unsigned(cfg.local_addr_width), "spad": 1, "acc": 1,
            **({"flush": 1} if caching else {})})
        m.submodules.entry = entry = SkidBuffer(stream.Signature(entry_layout))
        asked, in_acc = self.dma_r.payload, self.dma_r.payload[-1]
        aligned = asked[:bus_bits] == 0
        accepted = self.dma_r.valid & self.dma_r.ready
        m.d.comb += [
            entry.i.valid.eq(self.dma_r.valid),
            entry.i.payload.addr.eq(asked),
            entry.i.payload.spad.eq(~in_acc & (asked[:-1] < cfg.spad_bytes) & aligned),
            entry.i.payload.acc.eq(in_acc & (asked[:-1] < cfg.acc_bytes) & aligned),
            self.dma_r.ready.eq(entry.i.ready),
        ]
        if caching:
            # acc_flush applies to the requests accepted after it, in request order: it rides
            # on the next one accepted (`flush`), which drops the kept row when it is served,
            # so the requests waiting in `entry` when it pulses are served as they were
            # accepted.
            flush_pending = Signal()
            m.d.comb += entry.i.payload.flush.eq(flush_pending)
            with m.If(accepted):
                m.d.sync += flush_pending.eq(0)
            with m.If(self.acc_flush):
                m.d.sync += flush_pending.eq(1)
        req = entry.o.payload
        served = entry.o.valid & entry.o.ready
        low = req.addr[:-1]
        d_bank, d_line, d_byte = self._split(low)
        d_spad, d_acc = req.spad, req.acc
        d_s1, d_s1_bank = Signal(), Signal.like(d_bank)
        d_s1_word = Signal(range(words))
        tag_layout = data.StructLayout({"kind": 2, "word": range(max(
            1, cfg.acc_row_bytes // cfg.bus_bytes))})
        m.submodules.order = order = fifo.SyncFIFO(
            width=tag_layout.size, depth=self.DMA_READ_DEPTH)
        # Scratchpad words wait here for their turn; a read issues only if its word will fit,
        # and three entries keep one word per cycle flowing through the memory latency.
        m.submodules.spad_words = spad_words = fifo.SyncFIFO(width=bus, depth=3)

        # Bank arbitration between the two readers. A scratchpad read needs room in `order`
        # and, for its word, in `spad_words` (counting the word in flight); `d_room` says so,
        # registered from the two FIFOs' next levels, so the arbitration starts at flip-flops
        # (it equals what the levels of the cycle would give).
        d_room = Signal(init=1)
        v_wants = v_req.valid & v_ok & v_free
        d_wants = entry.o.valid & d_spad & d_room
        waited = Signal(range(self.DMA_READ_MAX_WAIT + 1))
        conflict = v_wants & d_wants & (v_bank == d_bank)
        d_first = waited == self.DMA_READ_MAX_WAIT
        v_go = v_wants & ~(conflict & d_first)
        d_go = d_wants & ~(conflict & ~d_first)

        def level_next(queue):
            return queue.level + (queue.w_en & queue.w_rdy) - (queue.r_en & queue.r_rdy)
        m.d.sync += d_room.eq((level_next(order) < order.depth) &
                              (level_next(spad_words) + d_go < spad_words.depth))
        with m.If(d_go):
            m.d.sync += waited.eq(0)
        with m.Elif(conflict):
            m.d.sync += waited.eq(waited + 1)

        # DMA writes: registered on entry (dma_w is always ready, so one register), so the
        # bank write enables and Yosys's read-during-write logic start at flip-flops instead
        # of at the DMA's read datapath. A write lands at the edge after the one accepting it.
        w_valid, w = Signal(), Signal(dma_write_layout(cfg))
        m.d.sync += [w_valid.eq(self.dma_w.valid), w.eq(self.dma_w.payload)]
        w_bank, w_line, w_byte = self._split(w.addr)
        w_ok = w_byte[:bus_bits] == 0
        w_word = w_byte[bus_bits:]
        # Read ports are not transparent: a read at the edge of a write to its line gets the old
        # line (Yosys keeps that on iCE40 and ECP5 by delaying the write a cycle, with a bypass).
        bank_data = []
        for b in range(self.banks):
            mem = memory.Memory(shape=unsigned(line), depth=self.bank_bytes * 8 // line, init=[])
            m.submodules[f"bank_{b}"] = mem
            wr = mem.write_port(granularity=8)
            rd = mem.read_port()
            strobes = [Mux(w_word == k, w.strb, 0) for k in range(words)]
            m.d.comb += [
                wr.addr.eq(w_line),
                wr.data.eq(Cat([w.data] * words)),
                wr.en.eq(Mux(w_valid & w_ok & (w_bank == b), Cat(strobes), 0)),
                rd.addr.eq(Mux(v_go & (v_bank == b), v_line, d_line)),
            ]
            bank_data.append(rd.data)
        bank_data = Array(bank_data)

        # Compute read output.
        fresh = Signal(8 * self.vector_bytes)
        m.d.comb += [
            v_issue.eq(v_req.valid & v_req.ready),
            v_req.ready.eq(v_free & (v_go | ~v_ok)),
            fresh.eq(Mux(v_s1_zero, 0, bank_data[v_s1_bank].word_select(
                v_s1_slot, 8 * self.vector_pitch))),
            self.vec_data.valid.eq(v_s1 | v_held),
            self.vec_data.payload.eq(Mux(v_held, v_held_data, fresh)),
        ]
        m.d.sync += [
            v_s1.eq(v_issue),
            v_s1_zero.eq(~v_ok),
            v_s1_bank.eq(v_bank),
            v_s1_slot.eq(v_byte[pitch_bits:]),
        ]
        # In order: held, held2, fresh (held2 is only ever filled while nothing is in flight).
        with m.If(v_held):
            with m.If(self.vec_data.ready):
                m.d.sync += [v_held_data.eq(Mux(v_held2, v_held2_data, fresh)),
                             v_held.eq(v_held2 | v_s1), v_held2.eq(0)]
            with m.Elif(v_s1):
                m.d.sync += [v_held2_data.eq(fresh), v_held2.eq(1)]
        with m.Elif(v_s1 & ~self.vec_data.ready):
            m.d.sync += [v_held_data.eq(fresh), v_held.eq(1)]

        # DMA read requests: a scratchpad word, accumulator rows, or zeros for an error. A bus
        # word spanning several rows issues one row read per cycle and is accepted with the last;
        # its order entry goes in with the first, so its rows are taken as they arrive and never
        # wait on a full accumulator response buffer.
        rows_per_word = max(1, cfg.bus_bytes // cfg.acc_row_bytes)
        # A row of several bus words is read once while requests stay on it: its other words
        # come from `row_buf`, so a STORE takes one accumulator read per row, not per word.
        hit = Signal()
        row_index = Signal(range(rows_per_word))
        first_row = row_index == 0
        last_row = row_index == rows_per_word - 1
        row_bits = ceil_log2(cfg.acc_row_bytes)
        row = low[row_bits:row_bits + cfg.acc_addr_width]
        row_asked = self.acc_read.valid & self.acc_read.ready
        if caching:
            cached_row, cached = Signal.like(row), Signal()
            m.d.comb += hit.eq(cached & ~req.flush & (row == cached_row))
            with m.If(served & d_acc):
                m.d.sync += [cached_row.eq(row), cached.eq(1)]
            with m.Elif(served & req.flush):
                m.d.sync += cached.eq(0)
        tag = Signal(tag_layout)
        m.d.comb += [
            self.acc_read.valid.eq(entry.o.valid & d_acc & ~hit &
                                   (order.w_rdy | ~first_row)),
            self.acc_read.payload.eq(Cat(row_index, row[ceil_log2(rows_per_word):])),
            tag.kind.eq(Mux(d_spad, _SPAD, Mux(d_acc, Mux(hit, _HIT, _ACC), _ZERO))),
            tag.word.eq(low[bus_bits:max(bus_bits, row_bits)]),
            order.w_data.eq(tag),
            order.w_en.eq(Mux(d_acc & ~hit, row_asked & first_row, served)),
        ]
        with m.If(d_spad):
            m.d.comb += entry.o.ready.eq(d_go)
        with m.Elif(d_acc):
            m.d.comb += entry.o.ready.eq(Mux(hit, order.w_rdy, row_asked & last_row))
        with m.Else():
            m.d.comb += entry.o.ready.eq(order.w_rdy)
        with m.If(row_asked):
            m.d.sync += row_index.eq(Mux(last_row, 0, row_index + 1))

        m.d.sync += [
            d_s1.eq(d_go),
            d_s1_bank.eq(d_bank),
            d_s1_word.eq(d_byte[bus_bits:]),
        ]
        m.d.comb += [
            spad_words.w_en.eq(d_s1),
            spad_words.w_data.eq(bank_data[d_s1_bank].word_select(d_s1_word, bus)),
        ]

        # DMA read responses, in request order.
        head = tag_layout(order.r_data)
        acc_row = Cat(self.acc_data.payload.as_value(),
                      Const(0, cfg.acc_row_bytes * 8 - len(self.acc_data.payload.as_value())))
        row_buf = Signal(len(acc_row))
        taken = self.dma_rdata.valid & self.dma_rdata.ready
        with m.Switch(head.kind):
            with m.Case(_SPAD):
                m.d.comb += [
                    self.dma_rdata.valid.eq(order.r_rdy & spad_words.r_rdy),
                    self.dma_rdata.payload.eq(spad_words.r_data),
                    spad_words.r_en.eq(taken),
                ]
            with m.Case(_ACC):
                if rows_per_word == 1:
                    m.d.comb += [
                        self.dma_rdata.valid.eq(order.r_rdy & self.acc_data.valid),
                        self.dma_rdata.payload.eq(acc_row.word_select(head.word, bus)),
                        self.acc_data.ready.eq(order.r_rdy & self.dma_rdata.ready),
                    ]
                    if caching:
                        with m.If(self.acc_data.valid & self.acc_data.ready):
                            m.d.sync += row_buf.eq(acc_row)
                else:
                    collected = Signal(range(rows_per_word))
                    earlier = Signal(bus - len(acc_row))
                    complete = collected == rows_per_word - 1
                    m.d.comb += [
                        self.dma_rdata.valid.eq(order.r_rdy & self.acc_data.valid & complete),
                        self.dma_rdata.payload.eq(Cat(earlier, acc_row)),
                        self.acc_data.ready.eq(order.r_rdy & (~complete | self.dma_rdata.ready)),
                    ]
                    with m.If(self.acc_data.valid & self.acc_data.ready):
                        m.d.sync += collected.eq(Mux(complete, 0, collected + 1))
                        if len(earlier) > len(acc_row):
                            m.d.sync += earlier.eq(Cat(earlier[len(acc_row):], acc_row))
                        else:
                            m.d.sync += earlier.eq(acc_row)
            with m.Case(_HIT):
                m.d.comb += [
                    self.dma_rdata.valid.eq(order.r_rdy),
                    self.dma_rdata.payload.eq(row_buf.word_select(head.word, bus)),
                ]
            with m.Default():
                m.d.comb += self.dma_rdata.valid.eq(order.r_rdy)
        m.d.comb += order.r_en.eq(taken)

        with m.If((w_valid & ~w_ok) | (v_issue & ~v_ok) |
                  (accepted & ~entry.i.payload.spad & ~entry.i.payload.acc)):
            m.d.sync += self.error.eq(1)
        m.d.comb += self.dma_w.ready.eq(1)
        return m
