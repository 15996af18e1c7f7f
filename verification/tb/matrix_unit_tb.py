"""The matrix-unit testbench: clock, reset, stream drivers and the golden model in one place.

Shared by the bench (``test_matrix_unit``) and the demo (``demo_matrix_unit``).
"""


import numpy as np

from rtl.systolic.matrix_unit import MatrixUnit
from rtl.systolic.sequencer import tile_command_layout
from verification.models.matrix_unit import MatrixUnitModel, Tile
from verification.stimulus import random_int8

from .base import BenchTB
from .streams import Clocking, StreamSink, StreamSource, pack_lanes, unpack_lanes

__all__ = ["TB", "random_tile"]


def random_tile(rng: np.random.Generator, config, *, m=None, k=None, n=None):
    """A tile of random shape (``M`` 1..300 capped at the accumulator depth) and data."""
    m = int(rng.integers(1, min(300, config.acc_depth) + 1)) if m is None else m
    k = int(rng.integers(1, config.rows + 1)) if k is None else k
    n = int(rng.integers(1, config.cols + 1)) if n is None else n
    return Tile(
        a=random_int8(rng, (m, k)),
        w=random_int8(rng, (k, n)),
        acc_addr=int(rng.integers(0, config.acc_depth)),
        accumulate=bool(rng.integers(0, 2)),
    )


class TB(BenchTB):
    """Drives a ``matrix_unit`` top and keeps the golden model in step with it.

    Parameters
    ----------
    dut : cocotb handle
        The ``matrix_unit`` top.
    seed : int
        Seeds the data, the idle pattern and the backpressure pattern.
    idle : float
        Probability of an idle cycle on each input stream.
    backpressure : float
        Probability of a not-ready cycle on ``read_data``.
    """

    def __init__(self, dut, *, seed, idle=0.0, backpressure=0.0):
        super().__init__(dut, MatrixUnit, "matrix_unit", seed=seed)
        ports, pattern = self.ports, self.pattern
        self.cmd = StreamSource(ports, "cmd", rng=pattern, idle=idle)
        self.weights = StreamSource(ports, "weights", rng=pattern, idle=idle)
        self.acts = StreamSource(ports, "acts", rng=pattern, idle=idle)
        self.read = StreamSource(ports, "read", rng=pattern, idle=idle)
        self.read_data = StreamSink(ports, "read_data", rng=pattern, backpressure=backpressure)
        self._sources = [self.cmd, self.weights, self.acts, self.read]
        self.clocking = Clocking(dut.clk, [*self._sources, self.read_data])
        self.model = MatrixUnitModel(self.config)
        self._cmd_layout = tile_command_layout(self.config)
        self.macs = 0

    async def start(self):
        """Start the clock, reset the unit and clear its accumulator.

        Reset does not clear memories, and the tests of a module share one simulation, so the
        accumulator is zeroed with the unit itself: a ``K = 0`` tile over every row.
        """
        await super().start()
        cfg = self.config
        self.submit([Tile(a=np.zeros((cfg.acc_depth, 0), np.int8),
                          w=np.zeros((0, cfg.cols), np.int8), acc_addr=0, accumulate=False)])
        await self.compute()
        self.macs = 0

    def submit(self, tiles):
        """Queue tiles on the unit's streams and apply them to the golden model.

        Activation lanes at and above ``K`` and weight lanes at and above ``N`` carry random
        values: the unit must ignore them.
        """
        cfg = self.config
        for tile in tiles:
            self.model.run(tile)
            self.macs += tile.macs
            fields = {"m": tile.m, "k": tile.k, "n": tile.n, "acc_addr": tile.acc_addr,
                      "accumulate": int(tile.accumulate)}
            self.cmd.send([self._cmd_layout.const(fields).as_value().value])
            w = self.rng.integers(-128, 128, (tile.k, cfg.cols), dtype=np.int8)
            w[:, : tile.n] = tile.w
            self.weights.send(pack_lanes(row, np.int8) for row in w)
            a = self.rng.integers(-128, 128, (tile.m, cfg.rows), dtype=np.int8)
            a[:, : tile.k] = tile.a
            self.acts.send(pack_lanes(row, np.int8) for row in a)

    async def compute(self, *, limit=None):
        """Run until every queued tile is in the accumulator; return the cycles it took."""
        start = self.clocking.cycle
        pending = sum(s.pending for s in self._sources)
        await self.clocking.run(
            lambda: not any(s.pending for s in self._sources) and not self.busy,
            limit=limit or 20 * pending + 1000)
        return self.clocking.cycle - start

    async def read_rows(self, addr, count):
        """Read ``count`` accumulator rows from ``addr`` on (wrapping) as an int32 array."""
        depth = self.config.acc_depth
        self.read_data.received.clear()
        self.read.send((addr + i) % depth for i in range(count))
        await self.clocking.run(lambda: len(self.read_data.received) == count,
                                limit=40 * count + 100)
        return np.array([unpack_lanes(v, np.int32, self.config.cols)
                         for v in self.read_data.received], dtype=np.int32)

    async def check_accumulator(self):
        """Read the whole accumulator and require it to equal the golden model bit for bit,
        with no command flagged as out of range."""
        assert not self.error, f"seed {self.seed}: error flag set by valid commands"
        got = await self.read_rows(0, self.config.acc_depth)
        bad = np.argwhere(got != self.model.acc)
        assert not len(bad), (
            f"seed {self.seed}: {len(bad)} accumulator lanes differ from the golden model; "
            f"first at row {bad[0][0]} lane {bad[0][1]}: "
            f"got {got[tuple(bad[0])]}, expected {self.model.acc[tuple(bad[0])]}")
