# amaranth: UnusedElaboratable=no
"""The layernorm unit against the bit-exact model: rows of every awkward length back to back,
parameters and widths at their limits, outputs on rounding boundaries, stalls on both sides,
the error flag, ``busy``, the cycle count per row and Verilog conversion."""

import random

import numpy as np
import pytest
from amaranth import Module, Signal
from amaranth.back import verilog

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig, preset
from rtl.vector.layernorm import LayerNorm, _norm_frac_bits
from verification.models.layernorm import (
    MAX_LENGTH,
    LayerNormParams,
    layernorm,
    normalise,
    rsqrt_mantissa,
    shift_round,
)

CFG = JalapenoConfig(rows=2, cols=3, acc_depth=16, max_row=40)
CFG1 = JalapenoConfig(rows=2, cols=1, acc_depth=16, max_row=12)
#: The limits of the parameters the model accepts, as ``float_layer`` kinds.
LIMITS = ("gamma_limit", "tiny_gamma", "beta_limit", "tiny_epsilon", "huge_epsilon")


def float_layer(rng, n, kind="random"):
    """Float parameters of a layer of length ``n``; ``kind`` picks a limit the model accepts."""
    input_scale = 10 ** rng.uniform(-3, 0)
    output_scale = 10 ** rng.uniform(-2, 0)
    gamma = rng.normal(1.0, 0.5, n) * rng.choice([-1, 1], n) * output_scale * 20
    beta = rng.normal(0.0, 0.4, n) * output_scale * 30
    epsilon = 10 ** rng.uniform(-8, 4) * input_scale**2
    if kind == "gamma_limit":  # |gamma| / s_y just below 2**14: G = 0
        gamma = rng.choice([-1, 1], n) * 16383.9 * output_scale
    elif kind == "tiny_gamma":  # G = 23
        gamma = rng.uniform(-0.0039, 0.0039, n) * output_scale
    elif kind == "beta_limit":
        beta = rng.choice([-1, 1], n) * 16383.9 * output_scale
    elif kind == "tiny_epsilon":  # E = 1
        epsilon = 1e-30
    elif kind == "huge_epsilon":  # E just below 2**60
        epsilon = 0.999 * 2.0**44 * input_scale**2 / n**2
    return dict(gamma=gamma, beta=beta, epsilon=epsilon, input_scale=input_scale,
                input_zero_point=int(rng.integers(-128, 128)), output_scale=output_scale,
                output_zero_point=int(rng.integers(-128, 128)))


def random_row(rng, n):
    """Uniform, Gaussian around a random centre, within one step of a constant, or extreme."""
    kind = rng.integers(0, 6)
    if kind == 0:
        return rng.integers(-128, 128, n).astype(np.int8)
    if kind == 1:
        centre, spread = rng.integers(-128, 128), 10 ** rng.uniform(0, 2)
        return np.clip(np.rint(rng.normal(centre, spread, n)), -128, 127).astype(np.int8)
    if kind == 2:
        return (rng.integers(-128, 127) + rng.integers(0, 2, n)).astype(np.int8)
    if kind == 3:
        return np.full(n, rng.choice([-128, 127]), np.int8)
    row = np.zeros(n, np.int8)
    row[rng.integers(n)] = rng.choice([-128, 127])
    return row


class Row:
    """The beats of one row through the unit (both passes) and the beats it must produce.

    Lanes past the row's end, the row parameters of every beat but the first, and gamma and
    beta in pass 1 hold random junk, which the unit must ignore.
    """

    def __init__(self, rng, cfg, x, params):
        cols, n = cfg.cols, params.n
        self.beats_per_pass = -(-n // cols)
        y = np.zeros(self.beats_per_pass * cols, np.int64)
        y[:n] = layernorm(np.asarray(x, np.int8), params)
        self.expected = [y[b * cols:(b + 1) * cols].tolist() for b in range(self.beats_per_pass)]
        self.beats = []
        for pass_ in (1, 2):
            for b in range(self.beats_per_pass):
                lanes = range(b * cols, (b + 1) * cols)
                beat = {
                    "data": [int(x[i]) if i < n else int(rng.integers(-128, 128))
                             for i in lanes],
                    "gamma": [int(params.gamma[i]) if i < n and pass_ == 2
                              else int(rng.integers(-2**15, 2**15)) for i in lanes],
                    "beta": [int(params.beta[i]) if i < n and pass_ == 2
                             else int(rng.integers(-2**23, 2**23)) for i in lanes],
                    "length": int(rng.integers(0, 2**13)),
                    "epsilon": int(rng.integers(0, 2**60)),
                    "gamma_shift": int(rng.integers(0, 32)),
                    "output_zero_point": int(rng.integers(-128, 128)),
                }
                if pass_ == 1 and b == 0:
                    beat.update(length=n, epsilon=params.epsilon, gamma_shift=params.gamma_shift,
                                output_zero_point=params.output_zero_point)
                self.beats.append(beat)


class BadRow:
    """A lone first beat of a one-element row, made bad by ``change``: the unit takes and
    drops it, and produces nothing for it."""

    expected = []

    def __init__(self, cfg, **change):
        header = dict(length=1, epsilon=1, gamma_shift=0, output_zero_point=0) | change
        self.beats = [{"data": [1] * cfg.cols, "gamma": [1] * cfg.cols, "beta": [1] * cfg.cols,
                       **header}]


def random_rows(rng, cfg, lengths, kinds=("random",)):
    rows = []
    for n in lengths:
        params = LayerNormParams.from_float(**float_layer(rng, n, rng.choice(kinds)))
        rows.append(Row(rng, cfg, random_row(rng, n), params))
    return rows


def run_rows(cfg, rows, *, seed, idle=0.0, backpressure=0.0, error=False):
    """Stream ``rows`` into a fresh unit and require exactly their expected beats, in order,
    then ``busy`` low, no further output and ``error`` as given."""
    dut = LayerNorm(cfg)
    stall = random.Random(seed)
    beats = [beat for row in rows for beat in row.beats]
    expected = [out for row in rows for out in row.expected]

    async def drive(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i, beat, rng=stall, idle=idle)

    async def check(ctx):
        for index, want in enumerate(expected):
            got = list(await stream_get(ctx, dut.o, rng=stall, backpressure=backpressure))
            assert got == want, f"seed {seed}, output beat {index}: {got} != {want}"
        for _ in range(dut.row_constant_cycles + dut.latency + 2):
            await ctx.tick()
        assert not ctx.get(dut.o.valid), f"seed {seed}: an output too many"
        assert not ctx.get(dut.busy), f"seed {seed}: busy after the last output"
        assert ctx.get(dut.error) == error, f"seed {seed}: error {ctx.get(dut.error)}"

    cycles = sum(2 * len(row.beats) for row in rows) + 100 * len(rows) + 100
    simulate(dut, drive, check, timeout=int(cycles / (1 - max(idle, backpressure)) ** 2))


def test_rejects_non_config():
    """Anything but a :class:`JalapenoConfig` is refused, with the exact message."""
    with pytest.raises(TypeError, match=r"^config must be a JalapenoConfig, not 'default'$"):
        LayerNorm("default")


def test_norm_frac_bits_of_every_length():
    """The unit's ``Z``, derived from ``N``, is the model's ``norm_frac_bits`` for every N."""
    top = Module()
    length = Signal(13)
    z = Signal(5)
    top.d.comb += z.eq(_norm_frac_bits(length, MAX_LENGTH))
    expected = {n: LayerNormParams.from_float(
        gamma=np.ones(n), beta=np.zeros(n), epsilon=1.0, input_scale=1.0, input_zero_point=0,
        output_scale=1.0, output_zero_point=0).norm_frac_bits for n in range(1, MAX_LENGTH + 1)}
    assert set(expected.values()) == set(range(11, 17))

    async def bench(ctx):
        for n, want in expected.items():
            ctx.set(length, n)
            assert ctx.get(z) == want, f"N {n}"

    simulate(top, bench)


@pytest.mark.parametrize(("seed", "idle", "backpressure"), [(0, 0.0, 0.0), (1, 0.3, 0.0),
                                                            (2, 0.2, 0.5)])
def test_rows_against_model(seed, idle, backpressure):
    """Rows of every awkward length, back to back with the parameters changing between rows,
    come out bit for bit as the model's under random idle cycles and backpressure."""
    rng = np.random.default_rng(seed)
    lengths = [1, 2, CFG.cols - 1, CFG.cols, CFG.cols + 1, 7, 11, 16, CFG.max_row,
               int(rng.integers(1, CFG.max_row + 1))]
    rows = random_rows(rng, CFG, rng.permutation(lengths).tolist())
    run_rows(CFG, rows, seed=seed, idle=idle, backpressure=backpressure)


@pytest.mark.parametrize(("seed", "kind"), list(enumerate(LIMITS)))
def test_parameter_limits(seed, kind):
    """Gamma and beta near ``2**14 s_y``, ``G`` at 0 and 23 and ``E`` from 1 to near ``2**60``,
    on extreme rows (both rails, one-hot, constant, alternating) of short and maximal length."""
    rng = np.random.default_rng(10 + seed)
    rows = []
    for n in (1, 2, CFG.cols + 2, CFG.max_row):
        params = LayerNormParams.from_float(**float_layer(rng, n, kind))
        one_hot = np.zeros(n, np.int8)
        one_hot[rng.integers(n)] = 127
        alternating = np.where(np.arange(n) % 2 == 0, -128, 127).astype(np.int8)
        for x in (np.full(n, -128, np.int8), np.full(n, 127, np.int8), one_hot, alternating,
                  np.full(n, rng.integers(-128, 128), np.int8)):
            rows.append(Row(rng, CFG, x, params))
    checks = {"gamma_limit": lambda p: p.gamma_shift == 0,
              "tiny_gamma": lambda p: p.gamma_shift == 23,
              "beta_limit": lambda p: np.abs(p.beta).max() > 2**22 - 2**8,
              "tiny_epsilon": lambda p: p.epsilon == 1,
              "huge_epsilon": lambda p: p.epsilon > 2**59}
    last = LayerNormParams.from_float(**float_layer(rng, CFG.max_row, kind))
    assert checks[kind](last), f"{kind}: the parameters miss the limit they test"
    rows.append(Row(rng, CFG, random_row(rng, CFG.max_row), last))
    run_rows(CFG, rows, seed=seed, backpressure=0.3)


def scaled_values(x, params, epsilon_q, r_offset=0):
    """``v`` of every element of row ``x``, from the model's public steps, with ``r`` moved by
    ``r_offset``; and the mantissa ``m``. Only used to place outputs on rounding boundaries."""
    n = len(x)
    xi = np.asarray(x, np.int64)
    s1, s2 = int(xi.sum()), int((xi * xi).sum())
    m, h = normalise(np.array([((n * s2 - s1 * s1) << 16) + epsilon_q]))
    r = int(rsqrt_mantissa(m)[0]) + r_offset
    z = shift_round(xi * n * r - s1 * r, max(0, int(h[0]) + 10 - params.norm_frac_bits))
    v = shift_round(z * params.gamma.astype(np.int64),
                    params.norm_frac_bits + params.gamma_shift - 8)
    return v, int(m[0])


def boundary_layer(x, epsilon_q, r_offset):
    """A layer for row ``x`` that puts every output on a rounding boundary, with ``E`` exactly
    ``epsilon_q``: gamma is about 4000 ``s_y`` and each beta puts ``w = v + b`` at 128 or 127,
    so that an error moving ``|v|`` by one the way ``r + r_offset`` would moves an output.
    Also returns how many outputs ``r + r_offset`` would move, and the mantissa ``m``."""
    n = len(x)
    layer = dict(gamma=np.linspace(-4000.0, 4000.0, n) + 0.37, beta=np.zeros(n),
                 epsilon=epsilon_q / 2**16 / n**2, input_scale=1.0, input_zero_point=0,
                 output_scale=1.0, output_zero_point=-3)
    probe = LayerNormParams.from_float(**layer)
    v, mantissa = scaled_values(x, probe, epsilon_q)
    moved, _ = scaled_values(x, probe, epsilon_q, r_offset)
    shrinks = r_offset < 0
    beta = np.where((v >= 0) == shrinks, 128, 127) - v
    params = LayerNormParams.from_float(**(layer | dict(beta=beta / 256)))
    assert params.epsilon == epsilon_q and np.array_equal(params.beta, beta)
    return params, int(np.sum(moved != v)), mantissa


@pytest.mark.parametrize("r_offset", [-1, 1])
def test_rounding_boundaries(r_offset):
    """Every output on a rounding boundary, on rows where ``r`` off by ``r_offset`` would move
    an output: with ``D = 2**60`` (mantissa ``2**18``, where the rsqrt recurrence takes a bit
    on equality), with ``D = 2**60 - 2**40`` (mantissa ``2**20 - 1``, the largest trial sum)
    and with random epsilon."""
    rng = np.random.default_rng(9 + r_offset)
    rows = []
    for n in (2, 4, 16, 32):  # powers of two, so that from_float gives E exactly
        for top, mantissa_wanted in ((2**60, 2**18), (2**60 - 2**40, 2**20 - 1), (0, None)):
            for _ in range(300):
                x = rng.integers(-128, 128, n).astype(np.int8)
                xi = x.astype(np.int64)
                shifted = (n * int((xi * xi).sum()) - int(xi.sum()) ** 2) << 16
                if not shifted:
                    continue
                epsilon_q = top - shifted if top else int(rng.integers(1, 2**40))
                params, moved, mantissa = boundary_layer(x, epsilon_q, r_offset)
                if moved:
                    break
            assert moved and mantissa_wanted in (None, mantissa), f"N {n}: no row found"
            row = Row(rng, CFG, x, params)
            assert {y for out in row.expected for y in out} <= {-3, -3 + 1, 0}
            rows.append(row)
    run_rows(CFG, rows, seed=9)


def test_longest_rows_at_the_limits():
    """Rows of 4096 on 16 lanes at every width's limit: the largest ``S1``/``S2`` (all -128),
    ``|z|`` and ``|v|`` (one-hot, gamma near ``2**14 s_y``, beta near the limit of the other
    sign) and ``|w|`` (beta of the same sign), the largest ``D`` and ``k`` (alternating rails
    and the largest epsilon) and the most negative ``c - 2**k / 2`` (one -127 in -128s)."""
    cfg = JalapenoConfig(rows=2, cols=16, acc_depth=16, max_row=MAX_LENGTH)
    rng = np.random.default_rng(11)
    n = MAX_LENGTH
    one_hot = np.zeros(n, np.int8)
    one_hot[rng.integers(n)] = 127
    alternating = np.where(np.arange(n) % 2 == 0, -128, 127).astype(np.int8)
    almost = np.full(n, -128, np.int8)
    almost[rng.integers(n)] = -127
    limit = dict(gamma=np.full(n, 163.839), beta=np.full(n, 163.839), epsilon=1e-30,
                 input_scale=1.0, input_zero_point=0, output_scale=0.01, output_zero_point=0)
    opposite = limit | dict(beta=-limit["beta"])
    huge = float_layer(rng, n, "huge_epsilon")
    # D = 2**58 exactly: r = 2**18 and k = 28 with S1 = 1 - 2**19.
    xi = almost.astype(np.int64)
    shifted = (n * int((xi * xi).sum()) - int(xi.sum()) ** 2) << 16
    near = float_layer(rng, n) | dict(epsilon=(2**58 - shifted) / 2**16 / n**2, input_scale=1.0)
    rows = [Row(rng, cfg, np.full(n, -128, np.int8), LayerNormParams.from_float(**limit)),
            Row(rng, cfg, one_hot, LayerNormParams.from_float(**limit)),
            Row(rng, cfg, one_hot, LayerNormParams.from_float(**opposite)),
            Row(rng, cfg, alternating, LayerNormParams.from_float(**huge)),
            Row(rng, cfg, almost, LayerNormParams.from_float(**near))]
    d = ((n * n * 127.5**2) * 2**16) + LayerNormParams.from_float(**huge).epsilon
    assert d >= 2**60, "the largest D does not reach bit 60"
    assert LayerNormParams.from_float(**near).epsilon + shifted == 2**58
    run_rows(cfg, rows, seed=11)


def test_one_lane():
    """One lane: every beat is a whole beat or past the row, under idle cycles and
    backpressure, with parameters at their limits."""
    rng = np.random.default_rng(3)
    rows = random_rows(rng, CFG1, [1, 2, 3, CFG1.max_row, 5],
                       kinds=("random", "gamma_limit", "tiny_epsilon"))
    run_rows(CFG1, rows, seed=3, idle=0.2, backpressure=0.3)


def test_tiny_preset_longest_row():
    """The ``tiny`` preset's longest row, then a short one."""
    cfg = preset("tiny")
    rng = np.random.default_rng(4)
    rows = random_rows(rng, cfg, [cfg.max_row, cfg.cols + 3])
    run_rows(cfg, rows, seed=4)


@pytest.mark.parametrize("change", [dict(length=0), dict(length=CFG.max_row + 1),
                                    dict(gamma_shift=24), dict(epsilon=0)])
def test_error_flag(change):
    """A first beat with bad row parameters sets ``error`` for good and is dropped; the beat
    after it starts a row again, and good rows around it come out right."""
    rng = np.random.default_rng(5)
    good = random_rows(rng, CFG, [CFG.cols + 1, 4])
    run_rows(CFG, [good[0], BadRow(CFG, **change), good[1]], seed=5, backpressure=0.3,
             error=True)


def test_busy():
    """``busy`` is low at reset and after a rejected beat, rises on a row's first beat, stays
    high through the row constants and pass 2 and while its last output is held back, and
    falls with that output taken."""
    rng = np.random.default_rng(7)
    row = random_rows(rng, CFG, [2])[0]  # one beat per pass
    dut = LayerNorm(CFG)

    async def bench(ctx):
        assert not ctx.get(dut.busy)
        await stream_put(ctx, dut.i, BadRow(CFG, length=0).beats[0])
        assert ctx.get(dut.error) and not ctx.get(dut.busy)
        for beat in row.beats:
            await stream_put(ctx, dut.i, beat)
            assert ctx.get(dut.busy)
        for _ in range(20):  # outputs held back
            await ctx.tick()
            assert ctx.get(dut.busy)
        assert ctx.get(dut.o.valid)
        for index, want in enumerate(row.expected):
            assert ctx.get(dut.busy)
            assert list(await stream_get(ctx, dut.o)) == want, f"beat {index}"
        assert not ctx.get(dut.busy)
        for _ in range(5):
            await ctx.tick()
            assert not ctx.get(dut.busy)

    simulate(dut, bench)


@pytest.mark.parametrize("hold", [1, 2, 5, 30])
def test_stall_during_row_constants(hold):
    """Holding a row's last output back stalls the next row's constants mid-computation, by
    exactly ``hold`` cycles; its results are unchanged."""
    rng = np.random.default_rng(12)
    rows = random_rows(rng, CFG, [7, 2, 2])
    dut = LayerNorm(CFG)
    beats = [beat for row in rows for beat in row.beats]
    expected = [out for row in rows for out in row.expected]
    taken = []

    async def drive(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i, beat)
            taken.append(ctx.get(cycle))

    async def check(ctx):
        for index, want in enumerate(expected):
            if index == len(rows[0].expected) - 1:
                for _ in range(hold):
                    await ctx.tick()
            got = list(await stream_get(ctx, dut.o))
            assert got == want, f"hold {hold}, output beat {index}: {got} != {want}"

    cycle = Signal(16)
    counter = Module()
    counter.d.sync += cycle.eq(cycle + 1)
    counter.submodules.dut = dut
    simulate(counter, drive, check)
    second_row = len(rows[0].beats)
    # The second row's pass 2 starts hold cycles late; its pass 1 does not.
    assert taken[second_row + 1] - taken[second_row] == 1 + 28 + hold


def test_cycles_per_row():
    """Offered rows back to back with outputs always taken, a row of ``N`` takes exactly
    ``2 ceil(N / cols) + 28`` cycles: pass 1, ``i.ready`` low for the row
    constants, pass 2, and the next row's first beat right after; each output is offered
    ``latency`` cycles after its pass-2 beat is taken."""
    rng = np.random.default_rng(8)
    rows = random_rows(rng, CFG, [5, 1, CFG.max_row, 3])
    dut = LayerNorm(CFG)
    beats = [beat for row in rows for beat in row.beats]
    taken, offered = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        edge = 0
        while len(offered) < sum(len(row.expected) for row in rows):
            ctx.set(dut.i.valid, len(taken) < len(beats))
            if len(taken) < len(beats):
                ctx.set(dut.i.payload, beats[len(taken)])
            _, _, ready, valid, out = await ctx.tick().sample(dut.i.ready, dut.o.valid,
                                                               dut.o.payload)
            if ready and len(taken) < len(beats):
                taken.append(edge)
            if valid:
                offered.append((edge, list(out)))
            edge += 1

    simulate(dut, bench)
    constants = 28
    assert dut.row_constant_cycles == constants
    schedule, pass2, start = [], [], 0
    for row in rows:
        beats_per_pass = row.beats_per_pass
        second = start + beats_per_pass + constants
        schedule += list(range(start, start + beats_per_pass))
        pass2 += list(range(second, second + beats_per_pass))
        schedule += pass2[-beats_per_pass:]
        start += 2 * beats_per_pass + constants
    assert taken == schedule
    assert [edge - dut.latency for edge, _ in offered] == pass2
    assert [out for _, out in offered] == [out for row in rows for out in row.expected]


def test_default_preset_converts_to_verilog():
    """The ``default`` preset elaborates and converts (the synthesis flow's input)."""
    text = verilog.convert(LayerNorm(preset("default")), name="layernorm")
    assert "module layernorm" in text
