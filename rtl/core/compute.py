"""The compute queue's executor: GEMM instructions to the matrix unit, fed from the scratchpad."""

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from jalapeno.isa import Opcode
from rtl.dma.descriptor import check_config
from rtl.dma.scratchpad import dma_write_layout
from rtl.systolic.multipliers import logic_product
from rtl.systolic.sequencer import tile_command_layout

from .decode import error_layout, field
from .issue import IssueStage
from .tokens import token_layout
from .vector_exec import VectorExec, vector_exec_signature

__all__ = ["ComputeQueue"]


class ComputeQueue(wiring.Component):
    """Runs the compute queue: each GEMM becomes one matrix-unit tile whose weight rows and
    activation vectors are read from the scratchpad, each VECTOR runs on the vector unit
    (:class:`~rtl.core.vector_exec.VectorExec`), and each SYNC waits for both.

    A GEMM's reads go out on ``vec_r`` one per cycle, its ``k`` weight rows (``w_addr`` on, a
    vector apart) then its ``m`` activations (``act_addr`` on); each vector read is routed, in
    order, to ``weights`` (its first ``cols`` lanes) or ``acts`` (its first ``rows`` lanes).
    The tile's command goes to ``cmd`` alongside. The next GEMM starts as soon as this one's
    reads are out, so tiles follow each other as closely as the scratchpad's one read port
    allows: ``k + m`` cycles a tile.

    Built for a config without a vector unit (``vector_unit`` false), it has no
    :class:`VectorExec`: the decoder then fails every VECTOR with ``NO_VECTOR_UNIT``, so none
    comes here, and ``acc_r``, ``vec_w`` and ``error`` stay idle.

    A VECTOR starts only when no GEMM read is in flight, the matrix unit is idle (every tile
    in the accumulator memory) and no GEMM tokens are owed; it then owns ``vec_r``/``vec_data``
    and reads its record and rows there (REQUANTIZE's rows through ``acc_r``/``acc_data``),
    and writes its results through ``vec_w``. A GEMM or another VECTOR starts only once it has
    written its last result. So no instruction of this queue ever reads what an earlier one
    has not yet written, whatever the order of their units. A bad parameter record fails the
    VECTOR with ``VECTOR_PARAM`` on ``error``.

    An instruction gives its tokens when its results are in the accumulator memory or the
    scratchpad: a GEMM with ``push_prev`` or ``push_next``, and a SYNC, wait until every
    earlier tile has been written (``mu_busy`` low) and every earlier VECTOR has completed; a
    VECTOR gives them when its last result is written. Without tokens to give, a GEMM does not
    wait, and the matrix unit overlaps it with the next.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        ``max(rows, cols)`` must be a power of two if it has a vector unit
        (:class:`VectorExec`).

    Attributes
    ----------
    entry, pop, limit, stall
        As :class:`~rtl.core.issue.IssueStage`'s.
    push : Out(stream.Signature(token_layout(), always_ready=True))
        This queue's ``push`` port of :class:`~rtl.core.tokens.Tokens`.
    error : Out(stream.Signature(error_layout(config), always_ready=True))
        An instruction failed: its code and address, for one cycle.
    cmd : Out(stream.Signature(tile_command_layout(config)))
    weights : Out(stream.Signature(ArrayLayout(signed(8), cols)))
    acts : Out(stream.Signature(ArrayLayout(signed(8), rows)))
    mu_busy : In(1)
        The matrix unit's ports.
    vec_r : Out(stream.Signature(spad_addr_width))
    vec_data : In(stream.Signature(ArrayLayout(signed(8), vector_bytes)))
        The scratchpad's compute read port.
    acc_r : Out(stream.Signature(acc_addr_width))
    acc_data : In(stream.Signature(ArrayLayout(signed(32), cols)))
        An accumulator read port, for REQUANTIZE.
    vec_w : Out(stream.Signature(dma_write_layout(config)))
        Scratchpad writes of VECTOR results, bus words with strobes.
    macs : Out(range(rows * cols + 1))
        Multiply-accumulates issued this cycle: ``k * n`` for each activation taken.
    busy : Out(1)
        An instruction is waiting or running, or a tile is in the matrix unit.
    retired : Out(1)
        An instruction completed this cycle (a GEMM when its reads are all out: nothing can
        fail after that; a VECTOR when its last result is written).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    ValueError
        If ``max(rows, cols)`` is not a power of two and there is a vector unit.
    """

    #: Vector reads in flight between ``vec_r`` and ``weights``/``acts``.
    ROUTE_DEPTH = 4

    def __init__(self, config):
        check_config(config)
        self._config = config
        self.vector_bytes = max(config.rows, config.cols)
        self.vector_pitch = 1 << ceil_log2(self.vector_bytes)
        self._issue = IssueStage(config)
        self._vector = VectorExec(config) if config.vector_unit else None
        ports = self._issue.signature.members
        int8 = signed(config.in_width)
        super().__init__({
            "entry": ports["entry"],
            "pop": ports["pop"],
            "limit": ports["limit"],
            "stall": ports["stall"],
            "push": Out(stream.Signature(token_layout(), always_ready=True)),
            "error": Out(stream.Signature(error_layout(config), always_ready=True)),
            "cmd": Out(stream.Signature(tile_command_layout(config))),
            "weights": Out(stream.Signature(data.ArrayLayout(int8, config.cols))),
            "acts": Out(stream.Signature(data.ArrayLayout(int8, config.rows))),
            "mu_busy": In(1),
            "vec_r": Out(stream.Signature(config.spad_addr_width)),
            "vec_data": In(stream.Signature(data.ArrayLayout(int8, self.vector_bytes))),
            "acc_r": Out(stream.Signature(config.acc_addr_width)),
            "acc_data": In(stream.Signature(
                data.ArrayLayout(signed(config.acc_width), config.cols))),
            "vec_w": Out(stream.Signature(dma_write_layout(config))),
            "macs": Out(range(config.rows * config.cols + 1)),
            "busy": Out(1),
            "retired": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.issue = issue = self._issue
        issue.attach(m, self)
        word = issue.issue.payload.word

        def f(name):
            return field(word, Opcode.GEMM, name)

        opcode = field(word, None, "opcode")
        kn_width = (cfg.rows * cfg.cols).bit_length()
        route_layout = data.StructLayout({"act": 1, "kn": unsigned(kn_width)})
        m.submodules.route = route = fifo.SyncFIFO(width=route_layout.size,
                                                   depth=self.ROUTE_DEPTH)

        # The GEMM whose reads are going out.
        reading, cmd_owed = Signal(), Signal()
        w_addr, a_addr = Signal(cfg.spad_addr_width), Signal(cfg.spad_addr_width)
        weights_left = Signal(range(cfg.rows + 1))
        acts_left = Signal(16)
        kn = Signal(kn_width)
        command = Signal(tile_command_layout(cfg))
        # Tokens waiting for the matrix unit to finish.
        owed, owed_push = Signal(), Signal(token_layout())
        if self._vector is not None:
            m.submodules.vector = vx = self._vector
        else:
            # No vector unit: the decoder dispatches no VECTOR here, and its executor's ports,
            # driven by nothing, read as an idle one that is never busy, done or failing.
            vx = vector_exec_signature(cfg).create(path=("no_vx",))
        gemm_idle = ~reading & ~cmd_owed & ~route.r_rdy & ~self.mu_busy
        idle = gemm_idle & ~vx.busy

        gemm = issue.issue.valid & (opcode == Opcode.GEMM)
        sync = issue.issue.valid & (opcode == Opcode.SYNC)
        vector = issue.issue.valid & (opcode == Opcode.VECTOR)
        push = Signal(token_layout())
        m.d.comb += [push.prev.eq(f("push_prev")), push.next.eq(f("push_next"))]
        start = gemm & ~reading & ~cmd_owed & ~owed & ~vx.busy
        finish_sync = sync & idle & ~owed
        m.d.comb += [
            vx.instr.valid.eq(vector & gemm_idle & ~owed),
            vx.instr.payload.eq(issue.issue.payload),
            issue.issue.ready.eq(start | finish_sync | (vx.instr.valid & vx.instr.ready)),
        ]
        wiring.connect(m, vx.error, wiring.flipped(self.error))
        wiring.connect(m, vx.acc_rd, wiring.flipped(self.acc_r))
        wiring.connect(m, wiring.flipped(self.acc_data), vx.acc_data)
        wiring.connect(m, vx.wr, wiring.flipped(self.vec_w))
        m.d.comb += self.retired.eq(start | finish_sync | vx.done.valid)
        with m.If(start):
            m.d.sync += [
                reading.eq((f("k") != 0) | (f("m") != 0)),
                cmd_owed.eq(1),
                w_addr.eq(f("w_addr")), a_addr.eq(f("act_addr")),
                weights_left.eq(f("k")), acts_left.eq(f("m")),
                # In logic: a DSP block here would be one fewer for the array's products.
                kn.eq(logic_product(f("k"), f("n"))),
                command.m.eq(f("m")), command.k.eq(f("k")), command.n.eq(f("n")),
                command.acc_addr.eq(f("acc_addr")), command.accumulate.eq(f("accumulate")),
                owed.eq(push.as_value().any()), owed_push.eq(push),
            ]

        m.d.comb += [self.cmd.valid.eq(cmd_owed), self.cmd.payload.eq(command)]
        with m.If(self.cmd.valid & self.cmd.ready):
            m.d.sync += cmd_owed.eq(0)

        # Reads: weight rows first, then activations, a vector apart.
        weight_next = weights_left != 0
        entry = data.View(route_layout, route.w_data)
        # The port is the VECTOR's while one runs: no GEMM read is then in flight.
        gemm_r = reading & route.w_rdy
        m.d.comb += [
            self.vec_r.valid.eq(gemm_r | vx.rd.valid),
            self.vec_r.payload.eq(Mux(vx.busy, vx.rd.payload, Mux(weight_next, w_addr, a_addr))),
            vx.rd.ready.eq(self.vec_r.ready & vx.busy),
            route.w_en.eq(gemm_r & self.vec_r.ready),
            entry.act.eq(~weight_next),
            entry.kn.eq(kn),
        ]
        with m.If(gemm_r & self.vec_r.ready):
            with m.If(weight_next):
                m.d.sync += [weights_left.eq(weights_left - 1),
                             w_addr.eq(w_addr + self.vector_pitch)]
                with m.If((weights_left == 1) & (acts_left == 0)):
                    m.d.sync += reading.eq(0)
            with m.Else():
                m.d.sync += [acts_left.eq(acts_left - 1),
                             a_addr.eq(a_addr + self.vector_pitch)]
                with m.If(acts_left == 1):
                    m.d.sync += reading.eq(0)

        # Vectors back, in order, to the weights or the activations.
        head = data.View(route_layout, route.r_data)
        data_in = self.vec_data.payload
        m.d.comb += [
            self.weights.valid.eq(self.vec_data.valid & route.r_rdy & ~head.act),
            self.acts.valid.eq(self.vec_data.valid & route.r_rdy & head.act),
            vx.rd_data.valid.eq(self.vec_data.valid & vx.busy),
            vx.rd_data.payload.eq(data_in),
            self.vec_data.ready.eq(Mux(vx.busy, vx.rd_data.ready,
                                       route.r_rdy & Mux(head.act, self.acts.ready,
                                                         self.weights.ready))),
            route.r_en.eq(self.vec_data.valid & self.vec_data.ready & ~vx.busy),
            self.macs.eq(Mux(self.acts.valid & self.acts.ready, head.kn, 0)),
        ]
        m.d.comb += [self.weights.payload[i].eq(data_in[i]) for i in range(cfg.cols)]
        m.d.comb += [self.acts.payload[i].eq(data_in[i]) for i in range(cfg.rows)]

        # Tokens: a SYNC's at once when idle, a GEMM's once its tile is written, a VECTOR's
        # once its results are.
        with m.If(vx.done.valid):
            m.d.comb += [self.push.valid.eq(1), self.push.payload.eq(vx.done.payload)]
        with m.Elif(finish_sync):
            m.d.comb += [self.push.valid.eq(1), self.push.payload.eq(push)]
        with m.Elif(owed & ~reading & ~cmd_owed & ~route.r_rdy & ~self.mu_busy):
            m.d.comb += [self.push.valid.eq(1), self.push.payload.eq(owed_push)]
            m.d.sync += owed.eq(0)
        m.d.comb += self.busy.eq(issue.busy | reading | cmd_owed | route.r_rdy | owed |
                                 self.mu_busy | vx.busy)
        return m
