"""The matrix unit: sequencer, systolic array and accumulator memory in one block."""

from amaranth import Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out, connect

from ..config import JalapenoConfig
from .accumulator import AccumulatorMemory
from .array import SystolicArray
from .sequencer import TileSequencer, result_tag_layout, tile_command_layout

__all__ = ["MatrixUnit"]


class MatrixUnit(wiring.Component):
    """Computes ``C[M x N] (+)= A[M x K] @ W[K x N]`` tile after tile, into accumulator rows.

    Each command describes one tile (``K <= rows``, ``N <= cols``, any ``M`` up to
    ``acc_depth``): its ``K`` weight rows follow on ``weights`` and its ``M`` activation
    vectors on ``acts``. Weights of the next tile load while the current one computes, so
    a stream of tiles keeps the array busy every cycle. Results are read back by row
    address through ``read``/``read_data`` once ``busy`` has fallen.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point.

    Attributes
    ----------
    cmd : In(stream.Signature(tile_command_layout(config)))
        Tile commands.
    weights : In(stream.Signature(ArrayLayout(signed(8), cols)))
        Weight rows, ``K`` per tile.
    acts : In(stream.Signature(ArrayLayout(signed(8), rows)))
        Activation vectors, ``M`` per tile.
    read : In(stream.Signature(acc_addr_width))
        Accumulator row read requests.
    read_data : Out(stream.Signature(ArrayLayout(signed(32), cols)))
        Accumulator rows.
    busy : Out(1)
        Some accepted tile has not yet been written to the accumulator.
    error : Out(1)
        Sticky until reset: a command had ``k > rows``, ``n > cols`` or ``m > acc_depth``
        (see :class:`TileSequencer`: the streams stay in step, that tile is undefined).
    """

    def __init__(self, config: JalapenoConfig):
        self._config = config
        int8 = signed(config.in_width)
        super().__init__({
            "cmd": In(stream.Signature(tile_command_layout(config))),
            "weights": In(stream.Signature(data.ArrayLayout(int8, config.cols))),
            "acts": In(stream.Signature(data.ArrayLayout(int8, config.rows))),
            "read": In(stream.Signature(config.acc_addr_width)),
            "read_data": Out(stream.Signature(
                data.ArrayLayout(signed(config.acc_width), config.cols))),
            "busy": Out(1),
            "error": Out(1),
        })

    @property
    def config(self):
        return self._config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.array = array = SystolicArray(cfg, tag_shape=result_tag_layout(cfg))
        m.submodules.sequencer = sequencer = TileSequencer(cfg)
        m.submodules.accumulator = accumulator = AccumulatorMemory(cfg)

        connect(m, wiring.flipped(self.cmd), sequencer.cmd)
        connect(m, wiring.flipped(self.weights), sequencer.weights)
        connect(m, wiring.flipped(self.acts), sequencer.acts)
        connect(m, sequencer.array_weights, array.weights)
        connect(m, sequencer.array_acts, array.acts)
        connect(m, wiring.flipped(self.read), accumulator.read)
        connect(m, accumulator.read_data, wiring.flipped(self.read_data))

        result = array.results.payload
        m.d.comb += [
            accumulator.update.valid.eq(array.results.valid),
            accumulator.update.payload.addr.eq(result.tag.addr),
            accumulator.update.payload.accumulate.eq(result.tag.accumulate),
            accumulator.update.payload.lanes.eq(result.tag.lanes),
            accumulator.update.payload.data.eq(result.data),
            array.results.ready.eq(accumulator.update.ready),
            self.busy.eq(sequencer.busy | array.busy | accumulator.busy),
            self.error.eq(sequencer.error),
        ]
        return m
