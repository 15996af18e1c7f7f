# amaranth: UnusedElaboratable=no
import random

import numpy as np
import pytest
from amaranth.back import verilog

import verification.models.softmax as softmax_model
from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig, preset
from rtl.vector.softmax import Softmax
from verification.models.lut import (
    _48_OVER_17,
    _MINUS_32_OVER_17,
    _rounding_half_sum,
    _saturating_shift_left,
)
from verification.models.quant import INT32_MAX, rdbpot, srdhm, wrap32
from verification.models.softmax import SoftmaxParams, softmax, softmax_exp_table
from verification.stimulus import random_int8

THREE_LANES = JalapenoConfig(rows=2, cols=3, acc_depth=16, max_row=40)
ONE_LANE = JalapenoConfig(rows=1, cols=1, acc_depth=2, max_row=12)
CONFIGS = [pytest.param(THREE_LANES, id="cols3"), pytest.param(ONE_LANE, id="cols1")]
#: Cycles a row takes beyond its three passes, as the Softmax docstring states.
ROW_OVERHEAD = 16
#: Cycles from taking a pass-3 beat to offering its output.
LATENCY = 4
#: No element is excluded (diff_min <= -255), so any table of u31 entries is a valid exp table.
WIDE = SoftmaxParams.from_scale(0.01)


def beats_of(n, cols):
    return -(-n // cols)


def exp_table(params):
    return softmax_exp_table(params).astype(np.int64)


def row_sum(row, table):
    """The row's Q12.19 sum of exps, before the model wraps it."""
    row = np.asarray(row, dtype=np.int64)
    return int(rdbpot(table[row.max() - row], 12).sum())


def row_beats(row, cols, rng):
    """The three passes of ``row``; other beats' ``length`` and lanes past the end hold junk
    (lengths the first beat would reject among them) that the unit must ignore."""
    n = len(row)
    beats = []
    for number in range(3 * beats_of(n, cols)):
        first = number * cols % (beats_of(n, cols) * cols)
        data = list(row[first:first + cols])
        data += random_int8(rng, cols - len(data)).tolist()
        length = n if number == 0 else int(rng.choice([0, 4097, 8191, rng.integers(1, 8192)]))
        beats.append({"data": [int(v) for v in data], "length": length})
    return beats


def expected(row, table, params, cols):
    """The model's outputs of ``row``, in beats, lanes past the end 0."""
    n = len(row)
    out = np.zeros(beats_of(n, cols) * cols, dtype=np.int64)
    out[:n] = softmax(np.asarray(row)[None], params, exp_table=table)[0]
    return out.reshape(-1, cols).tolist()


class Job:
    """A script of table loads and rows for :func:`run`."""

    def __init__(self, cfg, seed):
        self.cfg = cfg
        self.rng = np.random.default_rng(seed)
        self.actions = []  # ("table", writes) or ("beats", payloads)
        self.outputs = []  # expected output beats of each row, in order
        self.table = self.params = None

    def load(self, table, params):
        order = self.rng.permutation(256)
        self.actions.append(("table", [{"index": int(k), "value": int(table[k])} for k in order]))
        self.table, self.params = table, params

    def row(self, row):
        row = np.asarray(row, dtype=np.int64)
        self.actions.append(("beats", row_beats(row, self.cfg.cols, self.rng)))
        self.outputs.append(expected(row, self.table, self.params, self.cfg.cols))

    def bad(self, length):
        data = random_int8(self.rng, self.cfg.cols).tolist()
        self.actions.append(("beats", [{"data": data, "length": length}]))


def run(job, *, seed, idle=0.0, backpressure=0.0, error=False, hold=0, timeout=10_000):
    """Play ``job`` into a fresh unit under seeded idle cycles and backpressure; require every
    row's outputs in order, nothing more, ``busy`` low at the end and ``error`` as given.
    With ``hold``, no output is taken for that many cycles, and one must be waiting then."""
    dut = Softmax(job.cfg)
    stall = random.Random(seed)

    async def drive(ctx):
        for kind, payloads in job.actions:
            for payload in payloads:
                if kind == "table":
                    await stream_put(ctx, dut.table, payload)
                else:
                    await stream_put(ctx, dut.i, payload, rng=stall, idle=idle)

    async def check(ctx):
        for _ in range(hold):
            await ctx.tick()
        assert not hold or ctx.get(dut.o.valid) and ctx.get(dut.busy), "no output waiting"
        for number, want in enumerate(job.outputs):
            got = [list(await stream_get(ctx, dut.o, rng=stall, backpressure=backpressure))
                   for _ in want]
            assert got == want, f"seed {seed}, row {number}"
        for _ in range(LATENCY + 2):
            await ctx.tick()
        assert not ctx.get(dut.o.valid), f"seed {seed}: an output too many"
        assert not ctx.get(dut.busy), f"seed {seed}: busy when idle"
        assert ctx.get(dut.error) == error, f"seed {seed}: error flag"

    simulate(dut, drive, check, timeout=timeout)


def test_rejects_non_config():
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 'default'$"):
        Softmax("default")


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize(("idle", "backpressure"), [(0.0, 0.0), (0.3, 0.5)])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_random_rows_against_model(cfg, idle, backpressure, seed):
    """Random rows of lengths 1, cols - 1, cols + 1, max_row and others back to back, with the
    table reloaded (from a random scale and beta, then a random u31 table) between rows, come
    out as the model's bit for bit under random idle cycles and backpressure."""
    rng = np.random.default_rng(seed)
    job = Job(cfg, seed)
    scale = float(2.0 ** rng.uniform(-8, 0))
    params = SoftmaxParams.from_scale(scale, float(2.0 ** rng.uniform(-2, 2)))
    lengths = [1, cfg.cols + 1, cfg.max_row, *rng.integers(1, cfg.max_row + 1, size=3)]
    if cfg.cols > 1:
        lengths.append(cfg.cols - 1)
    assert any(n % cfg.cols for n in lengths) or cfg.cols == 1
    job.load(exp_table(params), params)
    for n in lengths:
        job.row(random_int8(rng, n))
    job.load(rng.integers(1, 1 << 31, size=256), WIDE)
    for n in lengths[::-1]:
        job.row(random_int8(rng, n))
    run(job, seed=seed, idle=idle, backpressure=backpressure)


def extreme_rows(n):
    rows = [np.full(n, -128), np.full(n, 127), np.full(n, 5)]
    for hot in {0, n // 2, n - 1}:
        one_hot = np.full(n, -128)
        one_hot[hot] = 127
        rows += [one_hot, np.where(one_hot == 127, -128, 127)]
    return rows


#: (input scale, beta): every diff in the table, most of them, or all but 0 below diff_min.
SCALES = [(2.0**-8, 0.25), (0.05, 1.0), (1.0, 1.0), (0.5, 4.0), (100.0, 1e3)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_extreme_rows(cfg):
    """All -128, all 127, constant, one hot and one cold rows, at 1, cols + 1 and max_row
    elements, for tables from small to huge beta * scale (diff_min from beyond -255 to 0)."""
    job = Job(cfg, 0)
    diff_mins = []
    for scale, beta in SCALES:
        params = SoftmaxParams.from_scale(scale, beta)
        diff_mins.append(params.diff_min)
        job.load(exp_table(params), params)
        for n in (1, cfg.cols + 1, cfg.max_row):
            for row in extreme_rows(n):
                job.row(row)
    assert diff_mins[0] < -255 and -255 < diff_mins[2] < -1 and diff_mins[-1] == 0
    run(job, seed=0)


def test_unusual_tables():
    """Tables no softmax produces: random u31 entries; entries all below 2**11, whose sums are
    0 (gemmlowp's reciprocal of -1); entry 0 at 0 or 1; every entry at its maximum."""
    cfg = THREE_LANES
    rng = np.random.default_rng(5)
    job = Job(cfg, 5)
    small = rng.integers(0, 1 << 11, size=256)
    zero_first = rng.integers(0, 1 << 31, size=256)
    zero_first[0] = 0
    one_first = small.copy()
    one_first[0] = 1
    tables = [rng.integers(0, 1 << 31, size=256), small, zero_first, one_first,
              np.full(256, (1 << 31) - 1)]
    sums = []
    for table in tables:
        job.load(table, WIDE)
        rows = [random_int8(rng, n) for n in (1, 2, 7, 40)] + extreme_rows(cfg.cols + 1)
        for row in rows:
            job.row(row)
            sums.append(row_sum(row, table))
    assert 0 in sums and max(sums) > 1 << 24
    run(job, seed=5)


def test_large_sums():
    """Rows long enough that the shift of the output rescale reaches 31, 32 and 33 (a sum of
    2**27, 2**28, 2**29 and more), where the model divides by 2**32 and beyond."""
    cfg = JalapenoConfig(rows=1, cols=16, acc_depth=2, max_row=1024)
    rng = np.random.default_rng(6)
    job = Job(cfg, 6)
    params = SoftmaxParams.from_scale(2.0**-8, 0.25)
    table = exp_table(params)
    job.load(table, params)
    rows = [np.full(256, 3), np.full(512, -7), np.full(1024, 127), np.full(255, 0),
            random_int8(rng, 1000), rng.integers(100, 128, size=700)]
    for row in rows:
        job.row(row)
    sums = [row_sum(row, table) for row in rows]
    assert sums[:4] == [1 << 27, 1 << 28, 1 << 29, 255 << 19]
    assert all(out == -128 for beat in job.outputs[1] for out in beat[:16])
    run(job, seed=6, idle=0.1, backpressure=0.3, timeout=20_000)


def test_sum_wraps():
    """4096 exps of almost 1 sum to 2**31, which the model wraps to INT32_MIN."""
    cfg = JalapenoConfig(rows=1, cols=64, acc_depth=2, max_row=4096)
    job = Job(cfg, 7)
    table = np.full(256, (1 << 31) - 1)
    job.load(table, WIDE)
    job.row(np.full(4096, 9))
    job.row(np.arange(4096) % 256 - 128)
    assert row_sum(np.full(4096, 9), table) == 1 << 31
    run(job, seed=7)


def reciprocal_two_steps(raw):
    """gemmlowp's ``one_over_one_plus_x_for_x_in_0_1`` stopped one Newton-Raphson step early."""
    half = _rounding_half_sum(np.asarray(raw, dtype=np.int64), INT32_MAX)
    x = wrap32(_48_OVER_17 + srdhm(half, _MINUS_32_OVER_17))
    for _ in range(2):
        x = wrap32(x + _saturating_shift_left(srdhm(x, wrap32((1 << 29) - srdhm(half, x))), 2))
    return _saturating_shift_left(x, 1)


def truncating_high_mul(a, b):
    """The high multiply without its rounding (a and b are non-negative here)."""
    return (a * b) >> 31


#: The function of the model each variant replaces.
REPLACES = {reciprocal_two_steps: "one_over_one_plus_x_for_x_in_0_1", truncating_high_mul: "srdhm"}
#: Rows (with the input scale of their table) that only a reciprocal exact to its last
#: Newton-Raphson step, or a rounded per-element multiply, gets right; found by a search.
SENSITIVE = [
    (0.05, [86, -3, 71], reciprocal_two_steps),
    (0.1, [38, -14, -41], reciprocal_two_steps),
    (0.1, [26, 35, -1, -47], reciprocal_two_steps),
    (0.02, [52, -85, 24], reciprocal_two_steps),
    (0.02, [-71, -59, -51, 24], truncating_high_mul),
]


def test_rounding_sensitive_rows(monkeypatch):
    """Rows whose outputs change if the reciprocal stops one Newton-Raphson step early or the
    per-element multiply truncates, and a table whose rows sum to 1 (a shift of only 4, where
    that rounding shows on most elements), come out as the model's."""
    cfg = THREE_LANES
    rng = np.random.default_rng(14)
    job = Job(cfg, 14)
    variants = []
    for scale, row, variant in SENSITIVE:
        params = SoftmaxParams.from_scale(scale)
        job.load(exp_table(params), params)
        job.row(row)
        variants.append((variant, row, exp_table(params), params))
    small = rng.integers(0, 1 << 11, size=256)
    small[0] = 3000
    job.load(small, WIDE)
    for n in (1, 5, 40):
        row = random_int8(rng, n, extremes=0)
        row[0] = 127
        job.row(row)
        assert row_sum(row, small) == 1
        variants.append((truncating_high_mul, row, small, WIDE))
    for number, (variant, row, table, params) in enumerate(variants):
        with monkeypatch.context() as patch:
            patch.setattr(softmax_model, REPLACES[variant], variant)
            assert expected(row, table, params, cfg.cols) != job.outputs[number], \
                f"row {number} does not tell {variant.__name__} apart"
    run(job, seed=14)


def test_tiny_preset():
    """The iCE40 design point, under stalls."""
    cfg = preset("tiny")
    rng = np.random.default_rng(8)
    job = Job(cfg, 8)
    params = SoftmaxParams.from_scale(0.07, 1.0)
    job.load(exp_table(params), params)
    for n in (1, 3, 5, 8, 61, 130):
        job.row(random_int8(rng, n))
    run(job, seed=8, idle=0.2, backpressure=0.4)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_error_flag(cfg):
    """A first beat of length 0 or beyond max_row is dropped and sets ``error`` for good; each
    next beat is again a row's first beat, and the good rows around come out right."""
    rng = np.random.default_rng(9)
    job = Job(cfg, 9)
    params = SoftmaxParams.from_scale(0.1)
    job.load(exp_table(params), params)
    job.row(random_int8(rng, cfg.cols + 1))
    for length in (0, cfg.max_row + 1, 8191):
        job.bad(length)
    job.row(random_int8(rng, cfg.max_row))
    job.bad(0)
    job.row(random_int8(rng, 1))
    run(job, seed=9, error=True)


def test_error_flag_timing():
    """``error`` rises at the edge that takes the bad beat, not before, and stays up."""
    cfg = THREE_LANES
    dut = Softmax(cfg)

    async def bench(ctx):
        for _ in range(3):
            await ctx.tick()
        assert not ctx.get(dut.error)
        await stream_put(ctx, dut.i, {"data": [0] * cfg.cols, "length": cfg.max_row})
        assert not ctx.get(dut.error) and ctx.get(dut.busy)

    simulate(dut, bench)

    dut = Softmax(cfg)

    async def bad(ctx):
        ctx.set(dut.i.payload, {"data": [0] * cfg.cols, "length": cfg.max_row + 1})
        await ctx.tick()
        assert not ctx.get(dut.error)
        await stream_put(ctx, dut.i, {"data": [0] * cfg.cols, "length": cfg.max_row + 1})
        for _ in range(5):
            assert ctx.get(dut.error) and not ctx.get(dut.busy)
            await ctx.tick()

    simulate(dut, bad)


def run_cycles(cfg, rows, o_ready=lambda edge: True, load=(), offer=lambda edge, taken: True):
    """Offer the beats of ``rows`` in turn to a fresh unit after loading ``load``, while
    ``offer(edge, beats taken so far)``; return the edges at which beats were taken, the
    ``(edge, output)`` pairs taken, and ``busy`` and ``o.valid`` at each edge."""
    dut = Softmax(cfg)
    rng = np.random.default_rng(0)
    beats = [beat for row in rows for beat in row_beats(row, cfg.cols, rng)]
    taken, outputs, busy, offered = [], [], [], []

    async def bench(ctx):
        for index, value in enumerate(load):
            await stream_put(ctx, dut.table, {"index": index, "value": int(value)})
        remaining = list(beats)
        edge = 0
        while remaining or len(outputs) < len(beats) // 3:
            ready = o_ready(edge)
            sending = bool(remaining) and offer(edge, len(taken))
            ctx.set(dut.o.ready, ready)
            ctx.set(dut.i.valid, sending)
            if sending:
                ctx.set(dut.i.payload, remaining[0])
            _, _, i_ready, valid, out, is_busy = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, dut.o.payload, dut.busy)
            busy.append(is_busy)
            offered.append(valid)
            if sending and i_ready:
                remaining.pop(0)
                taken.append(edge)
            if valid and ready:
                outputs.append((edge, list(out)))
            edge += 1
        ctx.set(dut.i.valid, 0)
        for _ in range(3):
            _, _, is_busy = await ctx.tick().sample(dut.busy)
            busy.append(is_busy)

    simulate(dut, bench)
    return taken, outputs, busy, offered


@pytest.mark.parametrize("cfg", CONFIGS)
def test_cycles_per_row(cfg):
    """Without stalls a row takes 3 * ceil(N / cols) + ROW_OVERHEAD cycles; i.ready drops only
    between passes; each output is offered LATENCY cycles after its pass-3 beat; busy is high
    from the first beat taken until the last output is taken, and low after."""
    rng = np.random.default_rng(10)
    params = SoftmaxParams.from_scale(0.1)
    table = exp_table(params)
    lengths = [1, cfg.cols + 1, cfg.max_row, 2 * cfg.cols, 1]
    rows = [random_int8(rng, n) for n in lengths]
    taken, outputs, busy, _ = run_cycles(cfg, rows, load=table)

    firsts, pass3 = [], []
    index = 0
    for n in lengths:
        count = beats_of(n, cfg.cols)
        firsts.append(taken[index])
        pass3 += taken[index + 2 * count:index + 3 * count]
        passes = [taken[index + p * count:index + (p + 1) * count] for p in range(3)]
        assert all(b - a == 1 for p in passes for a, b in zip(p, p[1:], strict=False))
        # Idle edges between the passes: the maximum, then the sum and the reciprocal.
        assert passes[1][0] - passes[0][-1] - 1 == 1
        assert passes[2][0] - passes[1][-1] - 1 == ROW_OVERHEAD - 1
        index += 3 * count
    periods = [b - a for a, b in zip(firsts, firsts[1:], strict=False)]
    assert periods == [3 * beats_of(n, cfg.cols) + ROW_OVERHEAD for n in lengths[:-1]]
    assert (Softmax.passes, Softmax.row_constant_cycles) == (3, ROW_OVERHEAD)
    assert [edge for edge, _ in outputs] == [edge + LATENCY for edge in pass3]
    want = [beat for row in rows for beat in expected(row, table, params, cfg.cols)]
    assert [out for _, out in outputs] == want
    done = outputs[-1][0]
    assert not any(busy[:firsts[0] + 1])
    assert all(busy[firsts[0] + 1:done + 1])
    assert not any(busy[done + 1:]) and len(busy) > done + 3


def test_busy_while_outputs_wait():
    """With o.ready low, pass 3 fills the pipeline and stalls, and a row offered then still has
    its pass 1 taken; busy stays high until the last output is taken, and the outputs come
    out right once o.ready rises."""
    cfg = THREE_LANES
    rng = np.random.default_rng(11)
    params = SoftmaxParams.from_scale(0.1)
    table = exp_table(params)
    rows = [random_int8(rng, cfg.cols + 1), random_int8(rng, 3 * cfg.cols)]
    later, release = 40, 60
    taken, outputs, busy, offered = run_cycles(
        cfg, rows, lambda edge: edge >= release, table,
        offer=lambda edge, count: count < 6 or edge >= later)
    assert all(offered[later - 10:release + 1]) and outputs[0][0] == release
    # The second row's pass 1, and nothing more, is taken while the first row's outputs wait.
    assert [edge for edge in taken if edge < release] == taken[:6] + [later, later + 1,
                                                                    later + 2]
    assert [out for _, out in outputs] == [
        beat for row in rows for beat in expected(row, table, params, cfg.cols)]
    assert all(busy[taken[0] + 1:outputs[-1][0] + 1])
    assert not any(busy[outputs[-1][0] + 1:])


def test_table_reload_while_outputs_wait():
    """A table reloaded from the cycle after a row's last pass-3 beat is taken, while that
    row's outputs wait on o, leaves them as the old table makes them; the next row uses the
    new table."""
    cfg = THREE_LANES
    rng = np.random.default_rng(12)
    job = Job(cfg, 12)
    first, second = SoftmaxParams.from_scale(0.1), SoftmaxParams.from_scale(0.02, 2.0)
    rows = [random_int8(rng, 2 * cfg.cols), random_int8(rng, 2 * cfg.cols)]
    job.load(exp_table(first), first)
    job.row(rows[0])
    job.load(exp_table(second), second)
    job.row(rows[1])
    assert expected(rows[0], exp_table(second), second, cfg.cols) != job.outputs[0]
    assert expected(rows[1], exp_table(first), first, cfg.cols) != job.outputs[1]
    run(job, seed=12, hold=300)


def test_write_lands_at_its_edge():
    """A pass-3 beat taken at the same edge as a write to the entry it reads gets the old
    entry, as its pass-2 beat did; the next row sees the new entry in every pass."""
    cfg = THREE_LANES
    params = SoftmaxParams.from_scale(0.1)
    old = exp_table(params)
    new = old.copy()
    new[0] = old[0] // 3
    row = np.array([100, 90, 80])
    beats = row_beats(row, cfg.cols, np.random.default_rng(13))
    dut = Softmax(cfg)
    outputs = []

    async def drive(ctx):
        for index, value in enumerate(old):
            await stream_put(ctx, dut.table, {"index": index, "value": int(value)})
        for beat in beats[:2]:
            await stream_put(ctx, dut.i, beat)
        while not ctx.get(dut.i.ready):
            await ctx.tick()
        ctx.set(dut.table.payload, {"index": 0, "value": int(new[0])})
        ctx.set(dut.table.valid, 1)
        ctx.set(dut.i.payload, beats[2])
        ctx.set(dut.i.valid, 1)
        _, _, i_ready, table_ready = await ctx.tick().sample(dut.i.ready, dut.table.ready)
        assert i_ready and table_ready
        ctx.set(dut.table.valid, 0)
        ctx.set(dut.i.valid, 0)
        for beat in beats:
            await stream_put(ctx, dut.i, beat)

    async def check(ctx):
        for _ in range(2):
            outputs.append(list(await stream_get(ctx, dut.o)))

    simulate(dut, drive, check)
    assert expected(row, old, params, cfg.cols) != expected(row, new, params, cfg.cols)
    assert outputs == expected(row, old, params, cfg.cols) + expected(row, new, params, cfg.cols)


def test_converts_to_verilog():
    cfg = preset("default")
    text = verilog.convert(Softmax(cfg), name="softmax")
    assert "module softmax" in text
    assert "input [76:0] i__payload;" in text and "output [63:0] o__payload;" in text
    assert "input [38:0] table__payload;" in text
    assert "output busy;" in text and "output error;" in text
