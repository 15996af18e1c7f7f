"""The front of every instruction queue: drop what follows a failure, take the tokens."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.dma.descriptor import check_config

from .decode import dispatch_layout, field
from .tokens import token_layout

__all__ = ["IssueStage", "after_failure"]


def after_failure(m, limit, valid, addr, name):
    """A flip-flop, added to ``m`` and returned: whether the instructions offered here in
    program order (``valid``, ``addr``) have passed the earliest failure so far (``limit``, an
    executor's ``limit`` port), so that they must be dropped.

    Once set it stays set until ``limit`` is released: the failure only moves earlier and the
    addresses that follow only grow. A register, so that the address compare does not lie in
    front of every handshake that reads it; it is therefore a cycle late, after a failure
    becomes known and for an instruction's first cycle here, and an instruction may start in
    that cycle, as one may already have started in another queue.
    """
    passed = Signal(name=name)
    m.d.sync += passed.eq(limit.valid & (passed | (valid & (addr > limit.payload))))
    return passed


class IssueStage(wiring.Component):
    """Takes a queue's instructions in order and offers each on ``issue`` once the tokens it
    pops (``pop_prev``, ``pop_next``) are taken. Taking them is a cycle of its own, so an
    instruction is offered at least a cycle after it arrives on ``entry``, unchanged: an
    executor may decode it from ``entry`` into registers and use them when it is issued.

    An instruction after the earliest failure reported anywhere in the core (``limit``) is
    dropped, before or after its tokens were taken: the core completes exactly the
    instructions before its first error, and those only ever wait for tokens that earlier
    instructions give.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    entry : In(stream.Signature(dispatch_layout(config)))
        The queue's instructions, from the decoder.
    issue : Out(stream.Signature(dispatch_layout(config)))
        The instruction to execute, its tokens taken.
    pop : Out(stream.Signature(token_layout()))
        This queue's ``pop`` port of :class:`~rtl.core.tokens.Tokens`.
    limit : In(stream.Signature(addr_width, always_ready=True))
        While ``valid``, the address of the earliest failure so far.
    busy : Out(1)
        An instruction is waiting here.
    stall : Out(1)
        It waits for a token.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        super().__init__({
            "entry": In(stream.Signature(dispatch_layout(config))),
            "issue": Out(stream.Signature(dispatch_layout(config))),
            "pop": Out(stream.Signature(token_layout())),
            "limit": In(stream.Signature(config.addr_width, always_ready=True)),
            "busy": Out(1),
            "stall": Out(1),
        })

    def attach(self, m, executor):
        """Connect the executor's own ``entry``, ``pop``, ``limit`` and ``stall`` (the same
        ports as this stage's) to this stage, in ``m``."""
        wiring.connect(m, wiring.flipped(executor.entry), self.entry)
        wiring.connect(m, self.pop, wiring.flipped(executor.pop))
        m.d.comb += [self.limit.valid.eq(executor.limit.valid),
                     self.limit.payload.eq(executor.limit.payload),
                     executor.stall.eq(self.stall)]

    def elaborate(self, platform):
        m = Module()
        word = self.entry.payload.word
        skip = after_failure(m, self.limit, self.entry.valid, self.entry.payload.addr, "skip")
        armed = Signal()
        m.d.comb += [
            self.pop.payload.prev.eq(field(word, None, "pop_prev")),
            self.pop.payload.next.eq(field(word, None, "pop_next")),
            self.pop.valid.eq(self.entry.valid & ~skip & ~armed),
            self.stall.eq(self.pop.valid & ~self.pop.ready),
            self.issue.payload.eq(self.entry.payload),
            self.issue.valid.eq(self.entry.valid & armed & ~skip),
            self.entry.ready.eq(skip | (self.issue.valid & self.issue.ready)),
            self.busy.eq(self.entry.valid),
        ]
        with m.If(self.entry.valid & self.entry.ready):
            m.d.sync += armed.eq(0)
        with m.Elif(self.pop.valid & self.pop.ready):
            m.d.sync += armed.eq(1)
        return m
