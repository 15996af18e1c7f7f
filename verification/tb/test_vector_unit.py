"""cocotb bench of the vector unit against the golden models.

Every operation on seeded random rows whose lengths are not multiples of the lane count, the
extreme rows, parameters at their limits and random idle cycles and backpressure; operations
switching back to back; bad parameters raising ``error``; and the throughput figures
``make bench`` reports.
"""

import cocotb
import numpy as np

from rtl.vector.unit import BLOCKS, VectorOp

from .reports import write_report
from .vector_unit_tb import (
    TB,
    Job,
    add_job,
    clamp_job,
    extreme_rows,
    layernorm_job,
    lut_job,
    requantize_job,
    softmax_job,
)

SEEDS = [21, 22]
STRESS = {False: {}, True: {"idle": 0.3, "backpressure": 0.4}}
STREAM_ELEMENTS = 4096
ROW_LENGTHS = (64, 256, 1024)


def odd_lengths(tb, count):
    """``count`` row lengths that are mostly not multiples of ``cols``, 1 and ``cols + 1``
    among them."""
    cols = tb.config.cols
    lengths = [1, cols + 1, 3 * cols - 1]
    lengths += [int(n) for n in tb.rng.integers(2, 4 * cols + 10, count - len(lengths))]
    return lengths


#: Elementwise operations with their stimulus: per-channel requantization of int32 rows with
#: shifts and multipliers at their limits, clamps to random ranges, single values and the
#: whole int8 range, and ADD with random scales and zero points.
ELEMENTWISE = {"requantize": requantize_job, "clamp": clamp_job, "add": add_job}


@cocotb.test()
@cocotb.parametrize(op=list(ELEMENTWISE), seed=SEEDS, stress=[False, True])
async def run_test_elementwise(dut, op, seed, stress):
    """Rows of lengths that are mostly not multiples of ``cols``, through one operation."""
    tb = TB(dut, seed=seed, **STRESS[stress])
    await tb.start()
    await tb.run([ELEMENTWISE[op](tb.rng, tb.config, 4, n) for n in odd_lengths(tb, 4)])


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_lut(dut, seed, stress):
    """Lookups through GELU, logistic, tanh, ReLU6 and random tables, reloaded between jobs."""
    tb = TB(dut, seed=seed, **STRESS[stress])
    await tb.start()
    for n in odd_lengths(tb, 4):
        await tb.run([lut_job(tb.rng, tb.config, 3, n)])


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_softmax(dut, seed, stress):
    """Softmax of random rows of odd lengths, of the extreme rows, and of a row of the
    configured maximum length, at small and large input scales."""
    tb = TB(dut, seed=seed, **STRESS[stress])
    await tb.start()
    rng = tb.rng
    rows = [np.asarray(rng.integers(-128, 128, n), np.int8) for n in odd_lengths(tb, 6)]
    rows += extreme_rows(tb.config.cols + 3)
    await tb.run([softmax_job(rng, tb.config, rows[:5], scale=0.004)])
    await tb.run([softmax_job(rng, tb.config, rows[5:], scale=0.25, beta=2.0)])
    await tb.run([softmax_job(rng, tb.config, rows)])
    longest = np.asarray(rng.integers(-128, 128, tb.config.max_row), np.int8)
    await tb.run([softmax_job(rng, tb.config, [longest])])


@cocotb.test()
@cocotb.parametrize(seed=SEEDS, stress=[False, True])
async def run_test_layernorm(dut, seed, stress):
    """Layernorm of random and extreme rows of odd lengths (constant rows included, where the
    variance is zero), parameters changing between jobs, and a row of the maximum length."""
    tb = TB(dut, seed=seed, **STRESS[stress])
    await tb.start()
    rng = tb.rng
    for n in odd_lengths(tb, 4):
        rows = [np.asarray(rng.integers(-128, 128, n), np.int8) for _ in range(2)]
        await tb.run([layernorm_job(rng, tb.config, rows + extreme_rows(n)[:3])])
    longest = np.asarray(rng.integers(-128, 128, tb.config.max_row), np.int8)
    await tb.run([layernorm_job(rng, tb.config, [longest])])


@cocotb.test()
@cocotb.parametrize(seed=SEEDS)
async def run_test_mixed(dut, seed):
    """Every operation in one stream, back to back and in a random order, under stalls: the
    unit changes operation without losing, reordering or mixing results."""
    tb = TB(dut, seed=seed, idle=0.2, backpressure=0.3)
    await tb.start()
    rng, cfg = tb.rng, tb.config
    n = cfg.cols + 3
    rows = [np.asarray(rng.integers(-128, 128, n), np.int8) for _ in range(2)]
    jobs = [requantize_job(rng, cfg, 2, n), lut_job(rng, cfg, 2, n), clamp_job(rng, cfg, 2, n),
            add_job(rng, cfg, 2, n), softmax_job(rng, cfg, rows), layernorm_job(rng, cfg, rows)]
    jobs += [requantize_job(rng, cfg, 1, n), clamp_job(rng, cfg, 1, n), add_job(rng, cfg, 1, n)]
    order = [int(k) for k in rng.permutation(len(jobs))]
    await tb.run([jobs[k] for k in order])


def _bad_jobs(tb):
    """(name, job, outputs) for each kind of bad beat: the job's beats, which set ``error``,
    and how many (unchecked) outputs they still produce."""
    rng, cfg = tb.rng, tb.config
    n = cfg.cols
    requant = requantize_job(rng, cfg, 1, n)
    row = [np.zeros(n, np.int8)]
    bad = []
    for name, change in (("shift 31", {"shift": 31}), ("shift -32", {"shift": -32}),
                         ("multiplier below 2**30", {"multiplier": (1 << 30) - 1})):
        beat = requant.beats[0]
        beat = {**beat, "params": [{**beat["params"][0], **change}, *beat["params"][1:]]}
        bad.append((f"requantize {name}", Job(VectorOp.REQUANTIZE, [beat], None), 1))
    clamp = clamp_job(rng, cfg, 1, n).beats[0]
    bad.append(("clamp min > max", Job(VectorOp.CLAMP, [{**clamp, "act_min": 1, "act_max": 0}],
                                       None), 1))
    add = add_job(rng, cfg, 1, n).beats[0]
    bad.append(("add output shift 31",
                Job(VectorOp.ADD, [{**add, "params": {**add["params"], "output_shift": 31}}],
                    None), 1))
    softmax = softmax_job(rng, cfg, row).beats[0]
    for length in (0, cfg.max_row + 1):
        bad.append((f"softmax length {length}",
                    Job(VectorOp.SOFTMAX, [{**softmax, "length": length}], None), 0))
    layernorm = layernorm_job(rng, cfg, row).beats[0]
    for name, change in (("length 0", {"length": 0}),
                         ("length max_row + 1", {"length": cfg.max_row + 1}),
                         ("gamma shift 24", {"gamma_shift": 24}), ("epsilon 0", {"epsilon": 0})):
        bad.append((f"layernorm {name}", Job(VectorOp.LAYERNORM, [{**layernorm, **change}], None),
                    0))
    return bad


@cocotb.test()
async def run_test_errors(dut):
    """Each kind of bad parameter and an invalid operation code set the sticky ``error`` flag
    and never hang: the unit then runs a good job of the same operation correctly."""
    tb = TB(dut, seed=5)
    await tb.start()
    cfg = tb.config
    for name, job, outputs in _bad_jobs(tb):
        await tb.reset()
        assert not tb.error
        tb.o.received.clear()
        tb.send_raw(tb.beat(job.op, args) for args in job.beats)
        await tb.clocking.run(lambda n=outputs: len(tb.o.received) == n and not tb.i.pending,
                              limit=200)
        await tb.clocking.run(lambda: not tb.busy, limit=200)
        assert len(tb.o.received) == outputs, f"{name}: {len(tb.o.received)} outputs"
        assert tb.error, f"{name} did not set error"
        await tb.reset()
        good = {VectorOp.REQUANTIZE: lambda: requantize_job(tb.rng, cfg, 2, cfg.cols + 1),
                VectorOp.CLAMP: lambda: clamp_job(tb.rng, cfg, 2, cfg.cols + 1),
                VectorOp.ADD: lambda: add_job(tb.rng, cfg, 2, cfg.cols + 1),
                VectorOp.SOFTMAX: lambda: softmax_job(tb.rng, cfg, extreme_rows(5)),
                VectorOp.LAYERNORM: lambda: layernorm_job(tb.rng, cfg, extreme_rows(5))}
        await tb.run([good[job.op]()])

    await tb.reset()
    invalid = tb.beat(VectorOp.CLAMP, clamp_job(tb.rng, cfg, 1, 1).beats[0])
    tb.o.received.clear()
    tb.send_raw([invalid | (6 << tb.op_offset), invalid | (7 << tb.op_offset)])
    await tb.clocking.run(lambda: not tb.i.pending, limit=20)
    await tb.wait(10)
    assert tb.error, "an invalid operation code did not set error"
    assert not tb.o.received, "an invalid operation produced output"


async def _stream_throughput(tb, make):
    job = make(tb.rng, tb.config, 1, STREAM_ELEMENTS)
    if job.table is not None:
        await tb.load(*job.table)
        job.table = None  # loaded outside the measured cycles
    cycles = await tb.run([job])
    per_cycle = STREAM_ELEMENTS / cycles
    return {"elements": STREAM_ELEMENTS, "cycles": cycles, "elements_per_cycle": per_cycle,
            "fraction_of_cols": per_cycle / tb.config.cols}


@cocotb.test()
async def run_bench_throughput(dut):
    """Streams of 4,096 elements through each elementwise operation, and rows of 64, 256 and
    1,024 elements through softmax and layernorm, with no stalls. Writes ``throughput.json``.

    Elementwise operations must sustain >= 0.95 of ``cols`` elements per cycle. A row
    operation's cost per row is measured in steady state, as the difference between streams
    of 1 and 5 rows divided by 4, and must be exactly its passes over the row plus the
    constant its block states (``row_constant_cycles``)."""
    tb = TB(dut, seed=9)
    await tb.start()
    cfg = tb.config
    report = {"preset": cfg.name, "cols": cfg.cols, "max_row": cfg.max_row, "stream": {},
              "rows": {}}
    for name, make in (("requantize", requantize_job), ("lut", lut_job),
                       ("clamp", clamp_job), ("add", add_job)):
        report["stream"][name] = await _stream_throughput(tb, make)
    for op, make in ((VectorOp.SOFTMAX, lambda rows: softmax_job(tb.rng, cfg, rows)),
                     (VectorOp.LAYERNORM, lambda rows: layernorm_job(tb.rng, cfg, rows))):
        block = BLOCKS[op]
        report["rows"][op.field] = points = []
        for n in ROW_LENGTHS:
            rows = [np.asarray(tb.rng.integers(-128, 128, n), np.int8) for _ in range(5)]
            single = await tb.run([make(rows[:1])])
            several = await tb.run([make(rows)])
            per_row = (several - single) / (len(rows) - 1)
            pass_cycles = -(-n // cfg.cols)
            points.append({
                "length": n, "cycles_one_row": single, "cycles_per_row": per_row,
                "passes": block.passes, "pass_cycles": pass_cycles,
                "constant_per_row": per_row - block.passes * pass_cycles,
                "stated_constant": block.row_constant_cycles})
    write_report("throughput.json", report)
    for name, figures in report["stream"].items():
        assert figures["fraction_of_cols"] >= 0.95, f"{name} below 0.95 of cols: {figures}"
    for name, points in report["rows"].items():
        for point in points:
            assert point["constant_per_row"] == point["stated_constant"], f"{name}: {point}"
