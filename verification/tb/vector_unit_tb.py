"""The vector-unit testbench: stimulus for every operation with its golden result, and the
drivers that stream it through a ``vector_unit`` top.

A :class:`Job` is one operation over some rows: the beats for ``i`` (the row streamed once
per pass for softmax and layernorm), the table it needs, and the output vectors the golden
models give for it. Lanes past the end of a row carry zeros in and are checked as the golden
model of the padded vector (elementwise ops) or as zeros (row ops).
"""

from dataclasses import dataclass, field

import numpy as np

from rtl.vector.unit import TableSelect, VectorOp, VectorUnit, vector_in_layout, vector_table_layout
from verification.models import lut, quant
from verification.models.layernorm import LayerNormParams, layernorm
from verification.models.softmax import SoftmaxParams, softmax, softmax_exp_table
from verification.stimulus import random_int8

from .base import BenchTB
from .streams import Clocking, StreamSink, StreamSource, unpack_lanes

__all__ = ["TB", "Job", "requantize_job", "lut_job", "clamp_job", "add_job", "softmax_job",
           "layernorm_job", "extreme_rows"]

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
MULTIPLIER_MIN = 1 << 30


@dataclass
class Job:
    """One operation over some rows: input beats, the table to load first, golden outputs."""

    op: VectorOp
    beats: list
    expected: np.ndarray
    table: tuple | None = None
    elements: int = 0
    rows: list = field(default_factory=list)

    @property
    def name(self):
        return self.op.field


def chunks(row, cols, fill=0):
    """A row split into ``cols``-wide vectors, the last padded with ``fill``."""
    row = np.asarray(row)
    beats = -(-row.shape[-1] // cols)
    padded = np.full(row.shape[:-1] + (beats * cols,), fill, dtype=row.dtype)
    padded[..., : row.shape[-1]] = row
    return padded.reshape(row.shape[:-1] + (beats, cols))


def extreme_rows(n):
    """The rows every row op is checked on: all -128, all 127, one hot, constant, alternating."""
    one_hot = np.full(n, -128, np.int8)
    one_hot[n // 2] = 127
    alternating = np.where(np.arange(n) % 2, 127, -128).astype(np.int8)
    return [np.full(n, -128, np.int8), np.full(n, 127, np.int8), one_hot,
            np.full(n, 5, np.int8), alternating]


def _pick(rng, specials, lo, hi, often=0.3):
    return int(rng.choice(specials)) if rng.random() < often else int(rng.integers(lo, hi + 1))


def _act_range(rng):
    if rng.random() < 0.5:
        return -128, 127
    return tuple(sorted(int(v) for v in rng.integers(-128, 128, size=2)))


def requantize_job(rng, cfg, rows, channels):
    """int32 rows of ``channels`` channels with per-channel parameters at their limits often:
    shift -31 (right by 31), 0 and 30, multiplier ``2**30`` and ``2**31 - 1``."""
    acc = np.array([[_pick(rng, [INT32_MIN, INT32_MAX, 0, -1], INT32_MIN, INT32_MAX)
                     for _ in range(channels)] for _ in range(rows)], dtype=np.int64)
    multiplier = np.array([_pick(rng, [MULTIPLIER_MIN, INT32_MAX, 0], MULTIPLIER_MIN, INT32_MAX)
                           for _ in range(channels)])
    shift = np.array([_pick(rng, [-31, 0, 30], -31, 30) for _ in range(channels)])
    zero_point = rng.integers(-128, 128, channels)
    low, high = _act_range(rng)
    params = [chunks(p, cfg.cols) for p in (multiplier, shift, zero_point)]
    beats, expected = [], []
    for row in acc:
        for b, data in enumerate(chunks(row, cfg.cols)):
            m, s, z = (p[b] for p in params)
            beats.append({"data": data.tolist(), "act_min": low, "act_max": high,
                          "params": [{"multiplier": int(m[c]), "shift": int(s[c]),
                                      "zero_point": int(z[c])} for c in range(cfg.cols)]})
            expected.append(quant.requantize(data, m, s, z, low, high))
    return Job(VectorOp.REQUANTIZE, beats, np.array(expected), elements=acc.size)


def random_table(rng):
    """One of the int8 activation tables TFLite defines, at random scales, or random values."""
    kind = rng.integers(0, 5)
    scale, zp = float(rng.uniform(0.01, 0.2)), int(rng.integers(-40, 41))
    if kind == 0:
        return lut.logistic_table((scale, zp))
    if kind == 1:
        return lut.tanh_table((scale, zp))
    if kind == 2:
        return lut.gelu_table((scale, zp), (scale, zp))
    if kind == 3:
        return lut.relu_table((scale, zp), (scale, zp), max_value=6.0)
    return random_int8(rng, 256)


def lut_job(rng, cfg, rows, length, table=None):
    table = random_table(rng) if table is None else table
    x = random_int8(rng, (rows, length))
    vectors = chunks(x, cfg.cols).reshape(-1, cfg.cols)
    return Job(VectorOp.LUT, [v.tolist() for v in vectors], lut.apply_lut(vectors, table),
               table=(TableSelect.LUT, [int(v) & 0xFF for v in table]), elements=x.size)


def clamp_job(rng, cfg, rows, length):
    low, high = _act_range(rng)
    vectors = chunks(random_int8(rng, (rows, length)), cfg.cols).reshape(-1, cfg.cols)
    return Job(VectorOp.CLAMP,
               [{"data": v.tolist(), "act_min": low, "act_max": high} for v in vectors],
               np.clip(vectors, low, high).astype(np.int8), elements=rows * length)


_ADD_FIELDS = ["input1_zero_point", "input1_multiplier", "input1_shift",
               "input2_zero_point", "input2_multiplier", "input2_shift",
               "output_zero_point", "output_multiplier", "output_shift"]


def add_job(rng, cfg, rows, length):
    """Two int8 tensors with random scales and zero points (the output scale between half and
    four times the larger input scale) added as TFLite does."""
    s1, s2 = (float(np.float32(rng.uniform(0.005, 0.5))) for _ in range(2))
    s_out = float(np.float32(max(s1, s2) * rng.uniform(0.5, 4.0)))
    zp1, zp2, zp_out = (int(v) for v in rng.integers(-128, 128, 3))
    params = quant.AddParams.from_scales(s1, zp1, s2, zp2, s_out, zp_out)
    low, high = _act_range(rng)
    fields = {name: getattr(params, name) for name in _ADD_FIELDS}
    fields.update(act_min=low, act_max=high)
    a, b = (chunks(random_int8(rng, (rows, length)), cfg.cols).reshape(-1, cfg.cols)
            for _ in range(2))
    beats = [{"a": x.tolist(), "b": y.tolist(), "params": fields}
             for x, y in zip(a, b, strict=True)]
    return Job(VectorOp.ADD, beats, quant.add(a, b, params, low, high),
               elements=rows * length)


def softmax_job(rng, cfg, rows, *, scale=None, beta=1.0):
    """Softmax of ``rows`` (int8 vectors of any length), each streamed three times, with the
    exp table of a random input scale (small ones exclude many elements)."""
    scale = float(np.float32(rng.uniform(0.002, 0.3))) if scale is None else scale
    params = SoftmaxParams.from_scale(scale, beta)
    table = softmax_exp_table(params)
    beats, expected = [], []
    for row in rows:
        vectors = chunks(row, cfg.cols)
        for _ in range(3):
            beats += [{"data": v.tolist(), "length": len(row)} for v in vectors]
        expected += list(chunks(softmax(row, params), cfg.cols))
    return Job(VectorOp.SOFTMAX, beats, np.array(expected),
               table=(TableSelect.EXP, [int(v) for v in table]),
               elements=sum(len(r) for r in rows), rows=[len(r) for r in rows])


def layernorm_params(rng, n):
    """A float layernorm of ``n`` channels quantized for random int8 scales, its gamma and beta
    sometimes close to the limits the compiler accepts."""
    s_x, s_y = float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.1))
    limit = 2.0**14 * s_y * 0.99
    if rng.random() < 0.2:
        gamma = rng.choice([-limit, limit], n) * rng.uniform(0.5, 1.0, n)
        beta = rng.choice([-limit, limit], n) * rng.uniform(0.5, 1.0, n)
    else:
        gamma, beta = rng.uniform(0.2, 2.0, n), rng.uniform(-0.5, 0.5, n)
    epsilon = float(10.0 ** rng.uniform(-6, -1))
    return LayerNormParams.from_float(
        gamma=gamma, beta=beta, epsilon=epsilon, input_scale=s_x,
        input_zero_point=int(rng.integers(-128, 128)), output_scale=s_y,
        output_zero_point=int(rng.integers(-128, 128)))


def layernorm_job(rng, cfg, rows, params=None):
    """Layernorm of int8 ``rows`` of one length, each streamed twice (gamma and beta ride
    along in the second pass)."""
    n = len(rows[0])
    params = layernorm_params(rng, n) if params is None else params
    header = {"length": n, "epsilon": params.epsilon, "gamma_shift": params.gamma_shift,
              "output_zero_point": params.output_zero_point}
    gamma, beta = chunks(params.gamma, cfg.cols), chunks(params.beta, cfg.cols)
    beats, expected = [], []
    for row in rows:
        vectors = chunks(row, cfg.cols)
        beats += [{**header, "data": v.tolist()} for v in vectors]
        beats += [{**header, "data": v.tolist(), "gamma": g.tolist(), "beta": b.tolist()}
                  for v, g, b in zip(vectors, gamma, beta, strict=True)]
        expected += list(chunks(layernorm(np.asarray(row, np.int8), params), cfg.cols))
    return Job(VectorOp.LAYERNORM, beats, np.array(expected),
               elements=n * len(rows), rows=[n] * len(rows))


class TB(BenchTB):
    """Drives a ``vector_unit`` top.

    Parameters
    ----------
    dut : cocotb handle
        The ``vector_unit`` top.
    seed : int
        Seeds the data, the idle pattern and the backpressure pattern.
    idle : float
        Probability of an idle cycle on ``i``.
    backpressure : float
        Probability of a not-ready cycle on ``o``.
    """

    def __init__(self, dut, *, seed, idle=0.0, backpressure=0.0):
        super().__init__(dut, VectorUnit, "vector_unit", seed=seed)
        self.table = StreamSource(self.ports, "table", rng=self.pattern)
        self.i = StreamSource(self.ports, "i", rng=self.pattern, idle=idle)
        self.o = StreamSink(self.ports, "o", rng=self.pattern, backpressure=backpressure)
        self.clocking = Clocking(dut.clk, [self.table, self.i, self.o])
        self._in = vector_in_layout(self.config)
        self._table = vector_table_layout(self.config)

    @property
    def op_offset(self):
        """Bit offset of the operation code in an ``i`` payload."""
        return self._in["op"].offset

    async def wait(self, cycles):
        """Step the streams for ``cycles`` cycles."""
        end = self.clocking.cycle + cycles
        await self.clocking.run(lambda: self.clocking.cycle >= end, limit=cycles)

    def beat(self, op, args):
        """The ``i`` payload of one beat of ``op`` as an integer."""
        return self._in.const({"op": op, "args": {op.field: args}}).as_bits()

    def send_raw(self, values):
        """Queue raw ``i`` payloads (integers)."""
        self.i.send(values)

    async def load(self, select, values):
        """Write a whole table and wait until every write is taken."""
        self.table.send(self._table.const({"select": select, "index": index, "value": value})
                        .as_bits() for index, value in enumerate(values))
        await self.clocking.run(lambda: not self.table.pending, limit=4 * len(values) + 10)

    async def run(self, jobs, *, check=True):
        """Load the jobs' tables, stream all their beats back to back and wait for every output.

        Returns the cycles from the first beat offered to the last output taken. With
        ``check``, the outputs must equal the golden ones bit for bit, with nothing extra and
        ``error`` low.
        """
        for job in jobs:
            if job.table is not None:
                await self.load(*job.table)
        expected = np.concatenate([job.expected for job in jobs]).astype(np.int8)
        self.o.received.clear()
        self.i.send(self.beat(job.op, args) for job in jobs for args in job.beats)
        start = self.clocking.cycle
        await self.clocking.run(lambda: len(self.o.received) >= len(expected),
                                limit=20 * len(expected) + 50 * len(jobs)
                                + 8 * sum(len(job.beats) for job in jobs) + 2000)
        cycles = self.clocking.cycle - start
        if check:
            self.check(jobs, expected)
            await self.clocking.run(lambda: not self._busy.value, limit=200)
            assert not self.o.received[len(expected):], f"seed {self.seed}: extra outputs"
        return cycles

    def check(self, jobs, expected):
        """Require the received vectors to equal ``expected``; name the first difference."""
        cols = self.config.cols
        got = np.array([unpack_lanes(v, np.int8, cols) for v in self.o.received[:len(expected)]])
        bounds = np.cumsum([0] + [len(job.expected) for job in jobs])
        bad = np.argwhere(got != expected)
        if len(bad):
            beat, lane = bad[0]
            job = next(j for j, end in zip(jobs, bounds[1:], strict=True) if beat < end)
            raise AssertionError(
                f"seed {self.seed}: {len(bad)} lanes differ from the golden model; first in "
                f"{job.name}, output vector {beat}, lane {lane}: got {got[beat, lane]}, "
                f"expected {expected[beat, lane]}")
        assert not self.error, f"seed {self.seed}: error flag set by valid parameters"
