"""The error state and the ``done`` reports of one DMA engine."""

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .descriptor import DmaError

__all__ = ["EngineControl", "check_max_pending"]


def check_max_pending(value):
    """Raise ``TypeError`` or ``ValueError`` unless ``value`` is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_pending must be an integer, not {value!r}")
    if value < 1:
        raise ValueError(f"max_pending must be at least 1, not {value}")


class EngineControl(wiring.Component):
    """Counts descriptors in and outcomes out, holds the engine's error code and its recovery.

    Every descriptor taken gets exactly one report on ``done``, in the order taken. One that
    completed (``completed`` from the datapath when its last burst has, or a ``NONE`` on
    ``report`` for an empty one) is reported ``NONE`` straight away. The first failure sets
    :attr:`error`: from then on ``flush`` is high (the engine abandons what it has not issued
    and takes no descriptor), and once nothing is in flight every descriptor not yet reported
    is reported with that code: the failing one, then any taken after it.

    A bus error (``bus_fault``) comes from a burst older than any the splitter is working on,
    so it replaces an earlier ``WINDOW`` code (the oldest failing descriptor names the code);
    otherwise the first code stays. Completions count as ``NONE`` only while no bus error has
    been seen: after one, every later burst belongs to a descriptor that failed or was taken
    after the one that did.

    ``clear`` is remembered while :attr:`error` is set, and takes effect once the engine is
    drained and has reported every descriptor; a pulse while there is no error does nothing.

    Parameters
    ----------
    max_pending : int
        Descriptors taken but not yet reported, at most; ``open`` is low at that many.

    Attributes
    ----------
    taken : In(1)
        A descriptor was taken this cycle.
    open : Out(1)
        A descriptor may be taken: no error and fewer than ``max_pending`` pending.
    report : In(stream.Signature(DmaError, always_ready=True))
        From the splitter: an empty descriptor (``NONE``), an up-front failure, or ``WINDOW``.
    bus_fault : In(stream.Signature(DmaError, always_ready=True))
        From the datapath: ``SLVERR`` or ``DECERR``.
    completed : In(1)
        The last burst of a descriptor completed without error.
    drained : In(1)
        No burst is in flight.
    clear : In(1)
    done : Out(stream.Signature(DmaError))
        One outcome per descriptor.
    error : Out(DmaError)
        The engine's error code, ``NONE`` while it works normally.
    flush : Out(1)
        ``error`` is not ``NONE``.
    bus_failed : Out(1)
        ``error`` is a bus error: write nothing more (scratchpad writes, W strobes).
    busy : Out(1)
        A descriptor is pending or a burst is in flight.

    Raises
    ------
    TypeError
        If ``max_pending`` is not an integer.
    ValueError
        If ``max_pending`` is less than 1.
    """

    def __init__(self, *, max_pending):
        check_max_pending(max_pending)
        self._max_pending = max_pending
        super().__init__({
            "taken": In(1),
            "open": Out(1),
            "report": In(stream.Signature(DmaError, always_ready=True)),
            "bus_fault": In(stream.Signature(DmaError, always_ready=True)),
            "completed": In(1),
            "drained": In(1),
            "clear": In(1),
            "done": Out(stream.Signature(DmaError)),
            "error": Out(DmaError),
            "flush": Out(1),
            "bus_failed": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        pending = Signal(range(self._max_pending + 1))  # taken, not reported
        finished = Signal(range(self._max_pending + 1))  # completed, not reported
        clearing = Signal()

        failed = self.error != DmaError.NONE
        m.d.comb += [
            self.flush.eq(failed),
            self.bus_failed.eq((self.error == DmaError.SLVERR) | (self.error == DmaError.DECERR)),
            self.open.eq(~failed & (pending < self._max_pending)),
            self.busy.eq((pending != 0) | ~self.drained),
        ]

        with m.If(finished != 0):
            m.d.comb += [self.done.valid.eq(1), self.done.payload.eq(DmaError.NONE)]
        with m.Elif(failed & self.drained & (pending != 0)):
            m.d.comb += [self.done.valid.eq(1), self.done.payload.eq(self.error)]
        reported = self.done.valid & self.done.ready

        ok = self.completed & ~self.bus_failed & ~self.bus_fault.valid
        empty = self.report.valid & (self.report.payload == DmaError.NONE)
        m.d.sync += [
            pending.eq(pending + self.taken - reported),
            finished.eq(finished + ok + empty - (reported & (finished != 0))),
        ]

        with m.If(self.bus_fault.valid & ~self.bus_failed):
            m.d.sync += self.error.eq(self.bus_fault.payload)
        with m.Elif(self.report.valid & ~empty & ~failed):
            m.d.sync += self.error.eq(self.report.payload)

        with m.If(failed & self.clear):
            m.d.sync += clearing.eq(1)
        with m.If(failed & (clearing | self.clear) & self.drained & (pending == 0)):
            m.d.sync += [self.error.eq(DmaError.NONE), clearing.eq(0)]
        return m
