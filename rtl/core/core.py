"""The accelerator core: fetch, decode, three instruction queues, the DMA, the scratchpad, the
matrix unit, the vector unit and the CSR block, behind one AXI4 master and one AXI4-Lite
slave."""

import operator
from functools import reduce

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from jalapeno.isa import CoreError, Opcode, Queue
from rtl.bus.arbiter import BUS_ID_WIDTH, AxiReadShare
from rtl.bus.axi import AXI4LiteSignature, AXI4Signature
from rtl.dma.descriptor import check_config
from rtl.dma.dma import Dma
from rtl.dma.scratchpad import Scratchpad
from rtl.systolic.matrix_unit import MatrixUnit

from .acc_share import AccReadShare
from .compute import ComputeQueue
from .csr import BUS_ADDR_WIDTH, CsrBlock
from .decode import Decoder, dispatch_layout, error_layout
from .dma_queue import DmaQueue
from .fetch import Fetch
from .tokens import Tokens

__all__ = ["Core"]


class Core(wiring.Component):
    """Runs programs of :mod:`jalapeno.isa` instructions from external memory.

    The host sets the program and the window through the CSR block (``csr``), writes
    ``CONTROL.start`` and waits for ``irq``. The fetch stage reads instructions through the
    shared AXI4 master (``bus``); the decoder checks them in program order and hands each to
    the load, compute or store queue (``config.queue_depth`` entries each), whose executors run
    concurrently and meet only through dependency tokens: LOADs and STOREs as descriptors of
    the DMA's read and write engines, GEMMs as tiles of the matrix unit fed from the
    scratchpad, VECTORs on the vector unit (:class:`~rtl.core.vector_exec.VectorExec`) from
    and to the scratchpad and, for REQUANTIZE, from the accumulator memory. A core whose
    ``config.vector_unit`` is false has no vector unit: its decoder fails every VECTOR with
    ``NO_VECTOR_UNIT``, an error like any other decode error.

    Shared ports: the scratchpad's one write port takes the DMA's writes first and VECTOR
    results in the cycles the DMA leaves; the accumulator's one read port is shared between
    STOREs from the accumulator (through the scratchpad) and REQUANTIZE
    (:class:`~rtl.core.acc_share.AccReadShare`, round-robin, responses in order).

    A run ends when END has been decoded and every queue is empty and idle, or, after a
    failure, when every instruction before the earliest failure has completed (later ones are
    dropped unexecuted, see :class:`~rtl.core.issue.IssueStage`); the CSR block then shows
    done or the error code and address and raises ``irq`` if enabled. ``CONTROL.soft_reset``
    drops every instruction not yet running and lets the running ones finish (so the bus is
    left with nothing in flight); the core is then idle and takes the next ``start``.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    csr : In(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=32))
        The CSR block (``docs/csr.md``).
    bus : Out(AXI4Signature(addr_width, bus_width, id_width=BUS_ID_WIDTH))
        The AXI4 master towards memory.
    irq : Out(1)
        The interrupt (``IRQ_STATUS`` and ``IRQ_ENABLE``).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        self._config = config
        super().__init__({
            "csr": In(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=32)),
            "bus": Out(AXI4Signature(addr_width=config.addr_width, data_width=config.bus_width,
                                     id_width=BUS_ID_WIDTH)),
            "irq": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.csr = csr = CsrBlock(cfg)
        m.submodules.fetch = fetch = Fetch(cfg)
        m.submodules.decoder = decoder = Decoder(cfg)
        m.submodules.tokens = tokens = Tokens()
        m.submodules.loads = loads = DmaQueue(cfg, Opcode.LOAD)
        m.submodules.stores = stores = DmaQueue(cfg, Opcode.STORE)
        m.submodules.compute = compute = ComputeQueue(cfg)
        m.submodules.dma = dma = Dma(cfg)
        m.submodules.spad = spad = Scratchpad(cfg)
        m.submodules.matrix = matrix = MatrixUnit(cfg)
        m.submodules.share = share = AxiReadShare(cfg)
        m.submodules.acc_share = acc_share = AccReadShare(cfg)
        executors = {Queue.LOAD: loads, Queue.COMPUTE: compute, Queue.STORE: stores}

        # Buses.
        wiring.connect(m, wiring.flipped(self.csr), csr.bus)
        wiring.connect(m, share.bus, wiring.flipped(self.bus))
        wiring.connect(m, dma.bus, share.dma)
        wiring.connect(m, fetch.ar, share.fetch.ar)
        wiring.connect(m, share.fetch.r, fetch.r)
        m.d.comb += self.irq.eq(csr.irq)

        # Data paths: DMA and scratchpad, scratchpad and matrix unit, compute and both.
        wiring.connect(m, dma.spad_r, spad.dma_r)
        wiring.connect(m, spad.dma_rdata, dma.spad_rdata)
        # The scratchpad's one write port: the DMA's writes first, VECTOR results in the
        # cycles it leaves (the DMA's LOADs take backpressure, but never need it here).
        with m.If(dma.spad_w.valid):
            m.d.comb += [spad.dma_w.valid.eq(1), spad.dma_w.payload.eq(dma.spad_w.payload)]
        with m.Else():
            m.d.comb += [spad.dma_w.valid.eq(compute.vec_w.valid),
                         spad.dma_w.payload.eq(compute.vec_w.payload)]
        m.d.comb += [dma.spad_w.ready.eq(spad.dma_w.ready),
                     compute.vec_w.ready.eq(spad.dma_w.ready & ~dma.spad_w.valid)]
        # The accumulator's read port: STOREs (through the scratchpad) and REQUANTIZE.
        wiring.connect(m, spad.acc_read, acc_share.dma)
        wiring.connect(m, acc_share.dma_data, spad.acc_data)
        wiring.connect(m, compute.acc_r, acc_share.vector)
        wiring.connect(m, acc_share.vector_data, compute.acc_data)
        wiring.connect(m, acc_share.read, matrix.read)
        wiring.connect(m, matrix.read_data, acc_share.read_data)
        wiring.connect(m, compute.cmd, matrix.cmd)
        wiring.connect(m, compute.weights, matrix.weights)
        wiring.connect(m, compute.acts, matrix.acts)
        wiring.connect(m, compute.vec_r, spad.vec_r)
        wiring.connect(m, spad.vec_data, compute.vec_data)
        m.d.comb += compute.mu_busy.eq(matrix.busy)
        m.d.comb += spad.acc_flush.eq(matrix.cmd.valid & matrix.cmd.ready)
        wiring.connect(m, loads.desc, dma.load.desc)
        wiring.connect(m, dma.load.done, loads.done)
        wiring.connect(m, stores.desc, dma.store.desc)
        wiring.connect(m, dma.store.done, stores.done)

        # Fetch, decode, the queues and the tokens.
        wiring.connect(m, fetch.instr, decoder.instr)
        start = Signal()
        m.d.comb += [
            fetch.start.eq(start), fetch.base.eq(csr.program_base),
            fetch.length.eq(csr.program_length),
            fetch.window_base.eq(csr.window_base), fetch.window_limit.eq(csr.window_limit),
            decoder.start.eq(start), tokens.clear.eq(start),
            dma.load.clear.eq(start), dma.store.clear.eq(start),
            dma.window_base.eq(csr.window_base),
            # The DMA's limit is addr_width bits: a window to the top of the address space
            # ends one bus word short of it there.
            dma.window_limit.eq(Mux(csr.window_limit[-1], Const(-cfg.bus_bytes, cfg.addr_width),
                                    csr.window_limit)),
        ]
        # The queues' outputs are registers (SyncFIFOBuffered): what an executor decides from
        # its next instruction then starts at a flip-flop, not at a memory's read. An entry
        # takes two cycles to reach that register, so a queue is empty only at level 0.
        queued = []
        for queue, executor in executors.items():
            entries = fifo.SyncFIFOBuffered(width=dispatch_layout(cfg).size,
                                            depth=cfg.queue_depth)
            m.submodules[f"{queue.name.lower()}_queue"] = entries
            queued.append(entries.level != 0)
            out = decoder.queue_port(queue)
            m.d.comb += [
                entries.w_data.eq(out.payload), entries.w_en.eq(out.valid),
                out.ready.eq(entries.w_rdy),
                executor.entry.payload.eq(entries.r_data), executor.entry.valid.eq(entries.r_rdy),
                entries.r_en.eq(executor.entry.ready),
            ]
            wiring.connect(m, executor.pop, tokens.port("pop", queue))
            wiring.connect(m, executor.push, tokens.port("push", queue))

        # The run: errors, the earliest of which is kept and limits the queues, and the end.
        # Each report is registered before the merge (the executors' come from their queues'
        # and FIFOs' outputs through logic of their own), and one still in its register keeps
        # the run from settling.
        running, aborting, ended = Signal(), Signal(), Signal()
        failed = Signal()
        fail = Signal(error_layout(cfg))
        reports = [decoder.error] + [executor.error for executor in executors.values()]
        candidates = [(failed, fail)]
        for k, report in enumerate(reports):
            valid = Signal(name=f"report_valid_{k}")
            payload = Signal(error_layout(cfg), name=f"report_{k}")
            m.d.sync += [valid.eq(report.valid), payload.eq(report.payload)]
            candidates.append((valid, payload))
        reported = Cat(valid for valid, _ in candidates[1:]).any()
        best_valid, best = _earliest(m, candidates)
        m.d.comb += [decoder.error.ready.eq(1), decoder.end.ready.eq(1)]
        for executor in executors.values():
            m.d.comb += [executor.limit.valid.eq(failed | aborting),
                         executor.limit.payload.eq(Mux(aborting, 0, fail.addr))]

        queues_idle = ~Cat(*queued, *(executor.busy for executor in executors.values())).any()
        decoded = Cat(~decoder.queue_port(q).valid for q in Queue).all()
        settled = (ended | failed | aborting) & ~reported & queues_idle & decoded & ~fetch.busy & \
            ~dma.load.busy & ~dma.store.busy & ~matrix.busy
        m.d.comb += [
            fetch.stop.eq(running & (ended | failed | aborting)),
            csr.finish.valid.eq(running & settled & ~aborting),
            csr.finish.payload.code.eq(Mux(failed, fail.code, CoreError.NONE)),
            csr.finish.payload.addr.eq(Mux(failed, fail.addr, 0)),
            csr.busy.eq(running),
            csr.queue_busy.eq(Cat(executors[q].busy for q in Queue)),
        ]
        with m.If(csr.start & ~running):
            m.d.comb += start.eq(1)
            m.d.sync += [running.eq(1), ended.eq(0), failed.eq(0), aborting.eq(0)]
        with m.Elif(running):
            m.d.sync += [failed.eq(best_valid), fail.eq(best)]
            with m.If(decoder.end.valid):
                m.d.sync += ended.eq(1)
            with m.If(csr.soft_reset):
                m.d.sync += aborting.eq(1)
            with m.If(settled):
                m.d.sync += running.eq(0)

        # Performance counters.
        counts = csr.counts
        for queue, executor in executors.items():
            name = queue.name.lower()
            m.d.comb += [getattr(counts, f"{name}_busy").eq(executor.busy),
                         getattr(counts, f"{name}_stall").eq(executor.stall)]
        m.d.comb += [
            counts.cycles.eq(running),
            counts.macs.eq(compute.macs),
            counts.dma_read_bytes.eq(Mux(dma.spad_w.valid & dma.spad_w.ready,
                                         _popcount(dma.spad_w.payload.strb), 0)),
            counts.dma_write_bytes.eq(Mux(self.bus.w.valid & self.bus.w.ready,
                                          _popcount(self.bus.w.strb), 0)),
            counts.instructions.eq(sum(executor.retired for executor in executors.values()) +
                                   decoder.end.valid),
        ]
        return m


def _earliest(m, candidates):
    """Whether any of ``candidates`` (``(valid, failure)`` pairs, failures with an ``addr``)
    is valid, and the valid one with the lowest ``addr``, the first listed among equals.

    Every pair of addresses is compared at once, and the winner is the candidate that beats
    all the others: a compare and a few gates deep whatever the number of candidates, where
    keeping the best so far would chain one compare per candidate.
    """
    valids = [valid for valid, _ in candidates]
    wins = list(valids)
    for i, (_, first) in enumerate(candidates):
        for j in range(i + 1, len(candidates)):
            i_first = first.addr <= candidates[j][1].addr
            wins[i] = wins[i] & (~valids[j] | i_first)
            wins[j] = wins[j] & (~valids[i] | ~i_first)
    best = Signal.like(candidates[0][1], name="earliest")
    chosen = (Mux(win, failure.as_value(), 0)
              for win, (_, failure) in zip(wins, candidates, strict=True))
    m.d.comb += best.eq(reduce(operator.or_, chosen))
    return Cat(*valids).any(), best


def _popcount(value):
    return sum(value[i] for i in range(len(value)))
