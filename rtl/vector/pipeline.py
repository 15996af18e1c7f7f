"""The shell of the vector unit's one-in, one-out lane pipelines."""

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["block_ports", "VectorPipeline"]


def block_ports(config: JalapenoConfig, in_layout):
    """The ports every vector block shares, as a signature dict: ``i`` carrying
    ``in_layout(config)``, int8 ``o`` of ``cols`` lanes, a sticky ``error`` and ``busy``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    if not isinstance(config, JalapenoConfig):
        raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
    return {
        "i": In(stream.Signature(in_layout(config))),
        "o": Out(stream.Signature(data.ArrayLayout(signed(config.in_width), config.cols))),
        "error": Out(1),
        "busy": Out(1),
    }


class VectorPipeline(wiring.Component):
    """The shell every elementwise vector block shares: ``i`` in, int8 ``o`` out, a sticky
    ``error`` flag, ``busy`` and one pipeline enable.

    Subclasses set :attr:`latency` and implement :meth:`datapath`; the shell stalls the whole
    pipeline only while an output is offered and not taken (``i.ready`` is the enable), so
    backpressure never loses or reorders data, and it delays ``valid`` by ``latency``.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``acc_width``, ``in_width``).
    in_layout : callable
        Gives the payload layout of ``i`` for ``config``.

    Attributes
    ----------
    i : In(stream.Signature(in_layout(config)))
        Inputs with their parameters.
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        int8 results in the order their inputs were accepted.
    error : Out(1)
        Set, until reset, by an accepted beat whose parameters the block rejects (for the
        rescaling blocks, parameters TFLite never produces: a shift outside
        ``[SHIFT_MIN, SHIFT_MAX]``, a nonzero multiplier below ``2**30``; for every block,
        ``act_min > act_max``). Such a beat still produces an output, of unspecified value.
    busy : Out(1)
        High while an accepted beat has not had its output taken.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    latency: int

    def __init__(self, config: JalapenoConfig, in_layout):
        super().__init__(block_ports(config, in_layout))
        self._config = config

    def datapath(self, m, en):
        """Add the datapath to ``m``, advancing under ``en``; return the expression that is
        true when the payload on ``i`` has invalid parameters."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~self.o.valid | self.o.ready), self.i.ready.eq(en)]
        invalid = self.datapath(m, en)
        with m.If(self.i.valid & en & invalid):
            m.d.sync += self.error.eq(1)
        stages = Signal(self.latency)  # the valid bit of each stage, the last one offered on o
        with m.If(en):
            m.d.sync += stages.eq((stages << 1) | self.i.valid)
        m.d.comb += [self.o.valid.eq(stages[-1]), self.busy.eq(stages.any())]
        return m
