"""Dependency tokens from memory accesses: the compiler emits instructions in a sequential
program order, naming what each reads and writes, and :class:`Scheduler` adds the tokens that
make the three concurrent queues respect that order.

The golden ISA simulator runs a program one instruction at a time, so the program order is
its meaning; the core runs its load, compute and store queues concurrently and orders them
only through tokens (``docs/isa.md``). Before an instruction of queue ``Q`` is emitted, every
earlier instruction of another queue ``X`` that it conflicts with (it reads what ``X``
wrote, or writes what ``X`` read or wrote) must be complete. ``Q`` then waits for the *latest*
instruction ``X`` has so far: conservative, but it keeps every token's producer the last
instruction of its queue, so pushes and pops pair up in order. Pushes go on that instruction
(or on a SYNC of ``X`` when it already pushes that way), the pop on ``Q``'s new instruction.
The load and store queues are not neighbours: the store-to-load order goes through a SYNC of
the compute queue, which takes the store's token and gives one to the load queue.

Waits are transitive: each queue keeps, for every other queue, how many of its instructions
it is already ordered after (a vector clock), so no token is spent on an order that holds.
Memory is tracked in pages (:data:`PAGE`): two accesses to one page conflict even if their
bytes do not, which costs at most a wait, never a wrong result.
"""

from jalapeno.isa import QUEUE_OF, Opcode, Queue, encode

__all__ = ["Scheduler", "PAGE", "Access"]

#: Bytes of one tracked page, in every space.
PAGE = 64

_PREV = {Queue.COMPUTE: Queue.LOAD, Queue.STORE: Queue.COMPUTE}
_NEXT = {Queue.LOAD: Queue.COMPUTE, Queue.COMPUTE: Queue.STORE}


def Access(space, lo, hi):
    """The pages of bytes ``[lo, hi)`` of memory ``space`` (``"ext"``, ``"spad"``, ``"acc"``)."""
    return [(space, page) for page in range(lo // PAGE, (hi - 1) // PAGE + 1)] if hi > lo else []


class _Instruction:
    __slots__ = ("opcode", "fields", "flags")

    def __init__(self, opcode, fields):
        self.opcode, self.fields, self.flags = opcode, fields, set()

    def word(self):
        return encode(self.opcode, **self.fields, **{flag: 1 for flag in self.flags})


class Scheduler:
    """Collects a program's instructions with their tokens.

    Attributes
    ----------
    instructions : list
        In program order.
    """

    def __init__(self):
        self.instructions = []
        self._queues = {q: [] for q in Queue}
        self._seen = {q: dict.fromkeys(Queue, 0) for q in Queue}
        self._pending = {q: set() for q in Queue}
        # page -> {queue: [instructions of the queue up to its last write, ... last read]}
        self._pages = {}

    def emit(self, opcode: Opcode, *, reads=(), writes=(), **fields):
        """Append one instruction after the waits its accesses need.

        Parameters
        ----------
        opcode : Opcode
        reads, writes : iterable of pages
            What it reads and writes, as :func:`Access` gives.
        **fields
            Its fields (without token flags); SYNC names its ``queue``.
        """
        queue = Queue(fields["queue"]) if opcode == Opcode.SYNC else QUEUE_OF[opcode]
        reads, writes = list(reads), list(writes)
        # The queue that is not a neighbour first: its wait goes through a compute SYNC, which
        # also orders this instruction after every compute instruction before it.
        for other in sorted(set(Queue) - {queue}, key=lambda q: q in (_PREV.get(queue),
                                                                      _NEXT.get(queue))):
            need = 0
            for page in reads:
                need = max(need, self._pages.get(page, {}).get(other, (0, 0))[0])
            for page in writes:
                need = max(need, *self._pages.get(page, {}).get(other, (0, 0)))
            if need > self._seen[queue][other]:
                self._wait(queue, other)
        count = self._append(queue, opcode, fields)
        for page in reads:
            entry = self._pages.setdefault(page, {}).setdefault(queue, [0, 0])
            entry[1] = count
        for page in writes:
            self._pages.setdefault(page, {})[queue] = [count, count]

    def _append(self, queue, opcode, fields):
        instruction = _Instruction(opcode, fields)
        instruction.flags |= self._pending[queue]
        self._pending[queue] = set()
        self.instructions.append(instruction)
        self._queues[queue].append(instruction)
        return len(self._queues[queue])

    def _wait(self, queue, other):
        """Order ``queue``'s next instruction after everything ``other`` has so far."""
        if _NEXT.get(queue) != other and _PREV.get(queue) != other:
            self._wait(Queue.COMPUTE, other)
            self._append(Queue.COMPUTE, Opcode.SYNC, {"queue": Queue.COMPUTE})
            other = Queue.COMPUTE
        push = "push_next" if _NEXT.get(other) == queue else "push_prev"
        last = self._queues[other][-1] if self._queues[other] else None
        if last is None or push in last.flags:
            self._append(other, Opcode.SYNC, {"queue": other})
            last = self._queues[other][-1]
        last.flags.add(push)
        pop = "pop_prev" if _PREV.get(queue) == other else "pop_next"
        assert pop not in self._pending[queue], "one pop per direction and instruction"
        self._pending[queue].add(pop)
        seen = self._seen[queue]
        for q, n in self._seen[other].items():
            seen[q] = max(seen[q], n)
        seen[other] = len(self._queues[other])

    def words(self):
        """The program: every instruction and a final END."""
        return [i.word() for i in self.instructions] + [encode(Opcode.END)]
