"""The cost model: the cycles a program takes on the core, predicted without running it.

It replays the program through a model of the core's timing (``docs/core.md``), one
instruction at a time in program order, keeping for each resource the cycle it is next free:

* **Fetch**: one 32-byte burst per instruction, :data:`FETCH_OUTSTANDING` slots, a slot free
  again when decode takes its instruction; its beats share the read channel with the LOADs'.
* **Decode and dispatch**: one instruction a cycle in program order (a VECTOR takes up to 17),
  into queues of ``config.queue_depth``; a full queue stops dispatch for every queue.
* **Load and store queues**: each transfer is one burst per row (more past 256 beats or a
  4 KiB boundary), issued in order across the queue's transfers with at most
  :data:`DMA_OUTSTANDING` in flight; each burst's beats take the first free cycles of the
  channel ``latency`` cycles after it is issued (reads) or at once (writes).
* **Compute queue**: a GEMM holds the scratchpad's compute read port for ``k + m`` cycles and
  its results are written :attr:`CostParams.gemm_latency` cycles after its last read; a GEMM
  that gives a token, a SYNC and a VECTOR first wait until the matrix unit has written every
  tile. A VECTOR costs what ``docs/core.md`` gives for its op.
* **Accumulator port**: the matrix unit writes each GEMM's ``m`` result rows in the ``m``
  cycles up to its last; a STORE from the accumulator reads rows only in the cycles left
  free, so each of those cycles within the STORE delays its completion by one (applied when
  the later GEMM is reached, to every place the STORE's completion was recorded; a trace
  shows the undelayed end).
* **Tokens**: the ``n``-th pop of a direction waits for the ``n``-th push's completion.

The figures in :class:`CostParams` were fitted to cycles measured on the RTL; the model is
checked against measured cycles in ``tests/test_cost.py``.
"""

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

from jalapeno.isa import INSTRUCTION_BYTES, QUEUE_OF, Opcode, Queue, VectorOp, decode
from rtl.config import JalapenoConfig

__all__ = ["CostParams", "Estimate", "estimate"]

FETCH_OUTSTANDING = 4
DMA_OUTSTANDING = 8


@dataclass(frozen=True)
class CostParams:
    """Timing constants of the core, in cycles: fitted to the cycles the RTL took (the
    ``CYCLES`` counter on Verilator, ``core_system`` top) for single instructions, the core's
    system-test GEMMs and compiled model programs on every preset."""

    #: Memory read latency: AR to the first R beat (``sim.core_system.READ_LATENCY``).
    latency: int = 20
    #: From a GEMM's last read to its last result in the accumulator memory, past
    #: ``rows + cols`` (the scratchpad's registered read request, the array's input register,
    #: the products' two registers and the accumulator's two stages are six of them).
    gemm_latency: int = 10
    #: Cycles between two GEMMs on the compute read port.
    gemm_gap: int = 1
    #: Fixed cost of a VECTOR (record header, pipeline fill and drain).
    vector_fixed: int = 14
    #: Cycles from a transfer's last beat to its completion.
    dma_tail: int = 7
    #: Cycles from a STORE's start to its first W beat: the descriptor's checks and split,
    #: and the scratchpad's registered DMA read.
    store_lead: int = 8
    #: Cycles between a transfer's bursts.
    burst_issue: int = 1
    #: Cycles from a burst's last beat until its slot among the outstanding ones is free.
    burst_turnaround: int = 6
    #: Write response latency after the last W beat.
    write_response: int = 6
    #: Cycles from the decoder taking an instruction to its queue taking it (the checks, then
    #: their registered outcome), and so between two instructions through the decoder.
    decode: int = 2
    #: Cycles a VECTOR holds the decoder (its operand extents, then the checks).
    vector_decode: int = 18
    #: Cycles from a queue taking an instruction to its executor seeing it (the queue's
    #: registered output).
    queue_latency: int = 1
    #: From a token's push to the start of the instruction that pops it.
    token_latency: int = 2
    #: From the start to the first fetch, and from the last completion to the interrupt.
    startup: int = 4
    finish: int = 3


@dataclass
class Estimate:
    """What :func:`estimate` predicts."""

    cycles: int
    busy: dict = field(default_factory=dict)
    #: Per instruction: ``(opcode, queue, dispatch, start, end)`` cycles, if asked for.
    trace: list = field(default_factory=list)


def _beats(nbytes, nb):
    return -(-nbytes // nb)


def _bursts(f, nb):
    """Bursts and beats of a LOAD's or STORE's rows (at most 256 beats, never across 4 KiB)."""
    rows, row_bytes = f["rows"], f["row_bytes"]
    if rows == 0 or row_bytes == 0:
        return 0, 0
    beats = _beats(row_bytes, nb)
    per_row = max(_beats(row_bytes + f["ext_addr"] % 4096, 4096), _beats(beats, 256))
    return rows * per_row, rows * beats


def _vector_cycles(config, f):
    op, rows, length = VectorOp(f["op"]), f["rows"], f["length"]
    if rows == 0:
        return 1
    beats = -(-length // config.cols)
    per_row = {VectorOp.REQUANTIZE: beats, VectorOp.LUT: beats, VectorOp.CLAMP: beats,
               VectorOp.ADD: 2 * beats, VectorOp.SOFTMAX: 3 * beats + 16,
               VectorOp.LAYERNORM: 8 * beats + 28}[op]
    fixed = {VectorOp.LUT: 256, VectorOp.SOFTMAX: 256, VectorOp.LAYERNORM: beats}.get(op, 0)
    return fixed + rows * per_row


class _Channel:
    """A bus data channel shared by several masters: each burst's beats take the earliest free
    cycles from its issue plus the latency on, so bursts of different masters interleave."""

    def __init__(self):
        self.busy = []  # sorted, disjoint [start, end) intervals of data beats

    def _place(self, at, length):
        """The first ``t >= at`` with ``[t, t + length)`` free; books it."""
        busy = self.busy
        i = bisect.bisect_right(busy, (at, math.inf)) - 1
        if i >= 0 and busy[i][1] > at:
            at = busy[i][1]
        i += 1
        while i < len(busy) and busy[i][0] < at + length:
            at = max(at, busy[i][1])
            i += 1
        busy.insert(i, (at, at + length))
        return at + length

    def prune(self, before):
        """Forget intervals that end before ``before`` (no request can come earlier)."""
        cut = 0
        while cut < len(self.busy) and self.busy[cut][1] < before:
            cut += 1
        del self.busy[:cut]

    def transfer(self, master, start, bursts, beats, latency):
        """Move ``beats`` in ``bursts`` requested from ``start`` by ``master``; the cycle the
        last beat is through."""
        end = start
        for _ in range(bursts):
            issue = master.issue(start)
            end = self._place(issue + latency, beats / bursts)
            master.done(end)
        return end


class _Master:
    """One master's bursts: issued in order, ``spacing`` cycles apart, at most
    ``outstanding`` in flight (a slot frees ``turnaround`` cycles after its last beat)."""

    def __init__(self, outstanding, spacing=1, turnaround=0):
        self.ends = deque(maxlen=outstanding)
        self.spacing, self.turnaround, self.next = spacing, turnaround, 0

    def issue(self, request):
        at = max(request, self.next)
        if len(self.ends) == self.ends.maxlen:
            at = max(at, self.ends[0] + self.turnaround)
        self.next = at + self.spacing
        return at

    def done(self, end):
        self.ends.append(end)


class _AccStores:
    """The STOREs from the accumulator memory, whose rows are read only in cycles the matrix
    unit leaves its one port free: a GEMM's result rows, written after the STORE was
    estimated (it comes later in the program), push back the end of each STORE it overlaps,
    wherever that end was recorded."""

    def __init__(self):
        self.stores = []  # [start, end, [(list, index) holding the end]]

    def add(self, start, end, places):
        self.stores.append([start, end, places])

    def update(self, lo, hi):
        """The matrix unit writes result rows in cycles ``[lo, hi)``; returns the latest end
        of a STORE it delayed (0 if none)."""
        latest = 0
        for store in self.stores:
            start, end, places = store
            stall = max(0, min(hi, end) - max(lo, start))
            if stall:
                store[1] = end + stall
                for values, index in places:
                    values[index] += stall
                latest = max(latest, store[1])
        self.stores = [s for s in self.stores if s[1] > lo]
        return latest


def estimate(config: JalapenoConfig, words, *, params: CostParams = CostParams(), trace=False):
    """Predict the cycles of the program ``words`` (ending in END) from its start to END, and
    with ``trace`` when each instruction would be dispatched, start and end.

    Returns
    -------
    Estimate
    """
    nb = config.bus_bytes
    fetch_beats = INSTRUCTION_BYTES // nb
    read, write = _Channel(), _Channel()
    fetcher = _Master(FETCH_OUTSTANDING)
    engines = {Queue.LOAD: _Master(DMA_OUTSTANDING, params.burst_issue, params.burst_turnaround),
               Queue.STORE: _Master(DMA_OUTSTANDING, params.burst_issue,
                                    params.burst_turnaround)}
    dispatched = []
    decode_free = 0
    started = {q: [] for q in Queue}
    queue_free = dict.fromkeys(Queue, 0)
    busy = dict.fromkeys(Queue, 0)
    pushes = {}
    pops = {}
    mu_written = 0
    acc_stores = _AccStores()
    port_free = 0
    finish = 0
    timeline = []
    transfers = {Queue.LOAD: [0], Queue.STORE: [0]}  # completions, in order
    for index, word in enumerate(words):
        opcode, f, _ = decode(word)
        # fetch
        # A fetch slot frees when decode takes the instruction it held.
        request = dispatched[index - FETCH_OUTSTANDING] if index >= FETCH_OUTSTANDING else \
            params.startup
        read.prune(min(request, started[Queue.LOAD][-1] if started[Queue.LOAD] else 0))
        write.prune(started[Queue.STORE][-1] if started[Queue.STORE] else 0)
        arrive = read.transfer(fetcher, request, 1, fetch_beats, params.latency)
        if opcode == Opcode.END:
            finish = max(finish, arrive, *queue_free.values(), mu_written,
                         *(done[-1] for done in transfers.values()))
            break
        queue = Queue(f["queue"]) if opcode == Opcode.SYNC else QUEUE_OF[opcode]
        # decode and dispatch
        dispatch = max(arrive, decode_free)
        if len(started[queue]) >= config.queue_depth:
            dispatch = max(dispatch, started[queue][-config.queue_depth])
        decode_free = dispatch + (params.vector_decode if opcode == Opcode.VECTOR
                                  else params.decode)
        dispatched.append(dispatch)
        # tokens
        ready = max(dispatch + params.decode + params.queue_latency, queue_free[queue])
        for flag, direction in (("pop_prev", (queue, -1)), ("pop_next", (queue, +1))):
            if f[flag]:
                source = Queue(queue + direction[1])
                n = pops.get((source, queue), 0)
                pops[(source, queue)] = n + 1
                ready = max(ready, pushes[(source, queue)][n] + params.token_latency)
        start = ready
        if opcode in (Opcode.LOAD, Opcode.STORE):
            done = transfers[queue]
            if len(done) > config.queue_depth:  # transfers the queue has not seen complete
                start = max(start, done[-config.queue_depth])
            bursts, beats = _bursts(f, nb)
            if opcode == Opcode.LOAD:
                end = read.transfer(engines[queue], start, bursts, beats, params.latency) + \
                    params.dma_tail
            else:
                end = write.transfer(engines[queue], start + params.store_lead, bursts, beats,
                                     0) + params.write_response
            end = max(end, done[-1])
            done.append(end)
            queue_free[queue] = start + 1
        elif opcode == Opcode.GEMM:
            start = max(start, port_free)
            reads_end = start + f["k"] + f["m"]
            port_free = reads_end + params.gemm_gap
            written = reads_end + params.gemm_latency + config.rows + config.cols
            finish = max(finish, acc_stores.update(written - f["m"], written))
            mu_written = max(mu_written, written)
            end = mu_written if f["push_prev"] or f["push_next"] else reads_end
            queue_free[queue] = end if end == mu_written else start
        elif opcode == Opcode.VECTOR:
            start = max(start, port_free, mu_written)
            end = start + params.vector_fixed + _vector_cycles(config, f)
            port_free = queue_free[queue] = end
        else:  # SYNC
            if queue == Queue.COMPUTE:
                start = max(start, mu_written, port_free)
            else:
                start = max(start, transfers[queue][-1])
            end = max(start, queue_free[queue]) + 1
            queue_free[queue] = end
        busy[queue] += end - start
        if trace:
            timeline.append((opcode, queue, dispatch, start, end))
        started[queue].append(start)
        finish = max(finish, end)
        places = []
        for flag, step in (("push_prev", -1), ("push_next", +1)):
            if f[flag]:
                pushed = pushes.setdefault((queue, Queue(queue + step)), [])
                pushed.append(end)
                places.append((pushed, len(pushed) - 1))
        if opcode == Opcode.STORE and f["local_addr"] >= config.acc_base:
            done = transfers[Queue.STORE]
            acc_stores.add(start, end, [(done, len(done) - 1), *places])
    return Estimate(int(round(finish + params.finish)), {q.name: b for q, b in busy.items()},
                    timeline)
