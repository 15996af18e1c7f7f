"""Per-lane delay lines that skew vectors into the array and deskew results out of it."""

from amaranth import Module, Signal
from amaranth.hdl import ShapeLike
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Skew"]


class Skew(wiring.Component):
    """Delay lane ``i`` of a vector by ``i`` enabled cycles (or ``lanes - 1 - i`` if descending).

    An ascending skew turns one activation vector into the diagonal wavefront a systolic
    array consumes; a descending skew on the array's output realigns the results into one
    vector again. Lane 0 (ascending) or the last lane (descending) passes through
    combinationally.

    Parameters
    ----------
    lanes : int
        Number of lanes, at least 1.
    shape : ShapeLike
        Shape of one lane.
    descending : bool
        Delay the last lane least instead of the first.

    Attributes
    ----------
    en : In(1)
        Advance the delay lines.
    i : In(ArrayLayout(shape, lanes))
        Input vector.
    o : Out(ArrayLayout(shape, lanes))
        Skewed vector.

    Raises
    ------
    TypeError
        If ``lanes`` is not a positive integer or ``shape`` is not shape-like.
    """

    def __init__(self, *, lanes: int, shape: ShapeLike, descending: bool = False):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise TypeError(f"Skew lanes must be a positive integer, not {lanes!r}")
        self._lanes = lanes
        self._descending = bool(descending)
        layout = data.ArrayLayout(shape, lanes)
        super().__init__({"en": In(1), "i": In(layout), "o": Out(layout)})

    def delay(self, lane):
        """Cycles by which ``lane`` is delayed."""
        return self._lanes - 1 - lane if self._descending else lane

    def elaborate(self, platform):
        m = Module()
        for lane in range(self._lanes):
            value = self.i[lane]
            for stage in range(self.delay(lane)):
                reg = Signal.like(value, name=f"lane{lane}_d{stage + 1}")
                with m.If(self.en):
                    m.d.sync += reg.eq(value)
                value = reg
            m.d.comb += self.o[lane].eq(value)
        return m
