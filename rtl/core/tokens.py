"""The dependency-token counters between neighbouring instruction queues."""

from amaranth import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from jalapeno.isa import MAX_TOKENS, Queue

__all__ = ["Tokens", "token_layout", "COUNTER_WIDTH", "QUEUE_SLACK"]

#: Entries a queue may hold between the decoder and its executor, at most: every token the
#: decoder has counted as popped but the executor has not yet taken sits in one of them.
QUEUE_SLACK = 64
#: Width of one counter. The decoder admits at most :data:`MAX_TOKENS` tokens per direction
#: counted in program order; the executors can only lag behind that by the pops still queued,
#: so a counter never needs more than ``MAX_TOKENS + QUEUE_SLACK``.
COUNTER_WIDTH = ceil_log2(MAX_TOKENS + QUEUE_SLACK + 1)


def token_layout():
    """One instruction's token flags towards its neighbours: ``prev`` and ``next``."""
    return data.StructLayout({"prev": 1, "next": 1})


class Tokens(wiring.Component):
    """Four counters, one per direction between the load and compute and the compute and
    store queues, taken and given by the queues' executors.

    An executor offers on its ``pop`` port the flags of the instruction it is about to start
    (``pop_prev``, ``pop_next``); the offer is taken, and every token it names taken at once,
    in the first cycle all of them are there. It gives tokens on ``push`` (``push_prev``,
    ``push_next``) when the instruction completes; a token given is available from the next
    cycle. A flag towards a queue that does not exist (``prev`` of the load queue, ``next``
    of the store queue) never reaches here: the decoder rejects it.

    Attributes
    ----------
    pop_load, pop_compute, pop_store : In(stream.Signature(token_layout()))
        Per :class:`~jalapeno.isa.Queue`: the tokens to take (:meth:`port`).
    push_load, push_compute, push_store : In(stream.Signature(token_layout(), always_ready=True))
        Per queue: the tokens to give.
    clear : In(1)
        Empty every counter (a new program).
    """

    def __init__(self):
        members = {}
        for queue in Queue:
            name = queue.name.lower()
            members[f"pop_{name}"] = In(stream.Signature(token_layout()))
            members[f"push_{name}"] = In(stream.Signature(token_layout(), always_ready=True))
        members["clear"] = In(1)
        super().__init__(members)

    def port(self, kind, queue):
        """The ``pop`` or ``push`` port of ``queue``."""
        return getattr(self, f"{kind}_{Queue(queue).name.lower()}")

    def elaborate(self, platform):
        m = Module()
        counts = {}
        for a in Queue:
            for b in Queue:
                if abs(a - b) == 1:
                    counts[(a, b)] = Signal(COUNTER_WIDTH, name=f"tokens_{a.name}_{b.name}")

        def neighbour(queue, side):
            other = queue + (-1 if side == "prev" else 1)
            return Queue(other) if Queue.LOAD <= other <= Queue.STORE else None

        taken, given = {c: Signal(name=f"take_{c[0].name}_{c[1].name}") for c in counts}, {}
        for queue in Queue:
            pop, push = self.port("pop", queue), self.port("push", queue)
            have = []
            for side in ("prev", "next"):
                other = neighbour(queue, side)
                if other is None:
                    continue
                flag = getattr(pop.payload, side)
                have.append(~flag | (counts[(other, queue)] != 0))
                m.d.comb += taken[(other, queue)].eq(pop.valid & pop.ready & flag)
                given[(queue, other)] = push.valid & getattr(push.payload, side)
            m.d.comb += pop.ready.eq(Cat(*have).all())
        for channel, count in counts.items():
            with m.If(self.clear):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + given[channel] - taken[channel])
        return m

