"""The hand-built GEMM programs of :mod:`verification.programs` on the golden model: C equals
NumPy's product bit for bit, every MAC is counted once, the tokens are well formed, the
operands and result are where the layout says and nothing else in memory changes."""

import numpy as np
import pytest

from jalapeno.isa import INSTRUCTION_BYTES, CoreError, Opcode, decode
from rtl.config import preset
from verification.models.core import CoreModel
from verification.programs import (
    GemmLayout,
    GemmPlan,
    gemm_program,
    place_program,
    plan_gemm,
    tiled_gemm,
)
from verification.stimulus import random_int8

BASE = 0x1000


def run(cfg, words, memory):
    """Place ``words`` at :data:`BASE` and run them on the golden model, all of ``memory``
    the window."""
    place_program(memory, BASE, words)
    return CoreModel(cfg, memory).run(BASE, len(words))


def gemm(cfg, m, k, n, *, seed, plan=None):
    """Run :func:`tiled_gemm` on random operands; return the result, the layout, the memory
    before and after, and the expected product."""
    rng = np.random.default_rng(seed)
    a, w = random_int8(rng, (m, k)), random_int8(rng, (k, n))
    layout = GemmLayout.packed(cfg, m, k, n, at=0x40000, plan=plan)
    words, layout = tiled_gemm(cfg, m, k, n, a_at=layout.a_at, w_at=layout.w_at,
                               c_at=layout.c_at, plan=layout.plan)
    assert BASE + len(words) * INSTRUCTION_BYTES <= layout.a_at
    memory = rng.integers(0, 256, -(-layout.end // 4096) * 4096, dtype=np.uint8)
    layout.place(memory, a, w)
    place_program(memory, BASE, words)
    before = memory.copy()
    result = CoreModel(cfg, memory).run(BASE, len(words))
    return result, layout, before, memory, a.astype(np.int64) @ w, words


SHAPES = [
    (1, None, None),        # one row
    (32, 32, 32),
    (37, None, None),       # a ragged M block (k and n: 3 and 5 blocks)
    (300, None, None),      # more than half the accumulator: M split
    (64, 96, 64),
]


@pytest.mark.parametrize("name", ["tiny", "default"])
@pytest.mark.parametrize(("m", "k", "n"), SHAPES)
def test_tiled_gemm_matches_numpy(name, m, k, n):
    """Several shapes on tiny and default: C is NumPy's product exactly, MACS is
    ``m * k * n``, the DMA reads the operands and writes C once each as planned, and no byte
    outside C changes."""
    cfg = preset(name)
    k = 3 * cfg.rows if k is None else k
    n = 5 * cfg.cols if n is None else n
    result, layout, before, after, expected, words = gemm(cfg, m, k, n, seed=m + k + n)
    where = f"{name} {m}x{k}x{n} {layout.plan}"
    assert result.code == CoreError.NONE, where
    assert np.array_equal(layout.read_c(after), expected), where
    assert result.counters["MACS"] == m * k * n, where
    assert result.counters["INSTRUCTIONS"] == len(words), where
    assert result.counters["DMA_WRITE_BYTES"] == m * n // cfg.cols * cfg.acc_row_bytes, where
    outside = np.ones(len(after), bool)
    outside[layout.c_at:layout.end] = False
    assert np.array_equal(after[outside], before[outside]), where


@pytest.mark.parametrize("plan", [GemmPlan(16, 1, 1), GemmPlan(8, 3, 2), GemmPlan(40, 2, 5)])
def test_tiled_gemm_with_given_plans(plan):
    """Plans with many output blocks and steps (every token direction used again and again,
    ragged groups and steps) compute the same C."""
    cfg = preset("default")
    result, layout, _, after, expected, _ = gemm(cfg, 48, 56, 56, seed=7, plan=plan)
    assert result.code == CoreError.NONE
    assert layout.plan == plan
    assert np.array_equal(layout.read_c(after), expected)


def test_256_cube_on_default():
    """The bench's GEMM: 256 x 256 x 256 on default, exact, with the plan the bench uses."""
    cfg = preset("default")
    result, layout, _, after, expected, _ = gemm(cfg, 256, 256, 256, seed=1)
    assert result.code == CoreError.NONE
    assert np.array_equal(layout.read_c(after), expected)
    assert result.counters["MACS"] == 256 ** 3
    assert layout.plan == GemmPlan(m_block=128, n_group=2, k_step=4)


def test_tokens_pair_up():
    """Every pop in a tiled program is matched by an earlier push in its direction, and
    nothing is left over at END: the program leaves no token behind."""
    cfg = preset("tiny")
    words, _ = tiled_gemm(cfg, 40, 24, 24, a_at=0, w_at=0x4000, c_at=0x8000,
                          plan=GemmPlan(8, 2, 2))
    queue = {Opcode.LOAD: 0, Opcode.GEMM: 1, Opcode.STORE: 2}
    tokens = {}
    for word in words:
        opcode, f, _ = decode(word)
        if opcode == Opcode.END:
            continue
        here = queue[opcode]
        for side, other in (("prev", here - 1), ("next", here + 1)):
            if f[f"pop_{side}"]:
                tokens[(other, here)] = tokens.get((other, here), 0) - 1
                assert tokens[(other, here)] >= 0, f"pop without a push: {(other, here)}"
        for side, other in (("prev", here - 1), ("next", here + 1)):
            if f[f"push_{side}"]:
                tokens[(here, other)] = tokens.get((here, other), 0) + 1
    assert set(tokens.values()) == {0}, tokens


def test_loads_run_ahead_of_the_gemms():
    """The LOADs of the next step come before the GEMMs of this one in program order (the
    queues are short: after the GEMMs they would wait for them to drain)."""
    cfg = preset("default")
    words, _ = tiled_gemm(cfg, 64, 64, 64, a_at=0, w_at=0x4000, c_at=0x8000,
                          plan=GemmPlan(64, 1, 2))
    opcodes = [decode(w)[0] for w in words]
    assert opcodes[:4] == [Opcode.LOAD] * 4, opcodes[:6]


def test_gemm_program_matches_numpy():
    """The K-tiled :func:`gemm_program` (A and W row-major) on the golden model."""
    cfg = preset("tiny")
    rng = np.random.default_rng(3)
    m, k_tiles = 12, 4
    a = random_int8(rng, (m, k_tiles * cfg.rows))
    w = random_int8(rng, (k_tiles * cfg.rows, cfg.cols))
    memory = np.zeros(1 << 16, np.uint8)
    memory[0x2000:0x2000 + a.size] = a.view(np.uint8).reshape(-1)
    memory[0x3000:0x3000 + w.size] = w.view(np.uint8).reshape(-1)
    result = run(cfg, gemm_program(cfg, 0x2000, 0x3000, 0x4000, m, k_tiles), memory)
    assert result.code == CoreError.NONE
    out = memory[0x4000:0x4000 + m * cfg.acc_row_bytes].view("<i4").reshape(m, -1)
    assert np.array_equal(out[:, :cfg.cols], a.astype(np.int64) @ w)
    assert result.counters["MACS"] == m * k_tiles * cfg.rows * cfg.cols


def test_layout_images_are_the_scratchpad_vectors():
    """A's column blocks and W's tiles hold one vector per row, zero padded to the pitch."""
    cfg = preset("default")
    layout = GemmLayout.packed(cfg, 3, 16, 16, at=0, plan=GemmPlan(3, 1, 1))
    a = np.arange(48, dtype=np.int8).reshape(3, 16)
    blocks = layout.a_image(a).reshape(2, -1)
    assert np.array_equal(blocks[1, :24].reshape(3, 8), a[:, 8:].view(np.uint8))
    w = np.arange(256).astype(np.int8).reshape(16, 16)
    tiles = layout.w_image(w).reshape(4, 8, 8)  # tile (j, q) at j * 2 + q
    assert np.array_equal(tiles[1], w[:8, 8:].view(np.uint8))
    assert np.array_equal(tiles[2], w[8:, :8].view(np.uint8))


def test_bench_plans_fit_and_share_loads_of_a():
    """Each preset's plan for the bench fits the accumulator and two buffers in the
    scratchpad, and shares each load of A between N blocks."""
    for cfg in (preset(name) for name in ("tiny", "default", "large")):
        plan = plan_gemm(cfg, 256, 256, 256)
        assert plan.m_block * plan.n_group <= cfg.acc_depth // 2, (cfg.name, plan)
        assert plan.n_group >= 2, (cfg.name, plan)


@pytest.mark.parametrize(("args", "message"), [
    ((0, 8, 8), "m must be a positive integer, not 0"),
    ((4, 12, 8), "k must be a multiple of rows (8), not 12"),
    ((4, 8, 4), "n must be a multiple of cols (8), not 4"),
    ((4.0, 8, 8), "m must be a positive integer, not 4.0"),
])
def test_bad_shapes(args, message):
    with pytest.raises(ValueError) as error:
        tiled_gemm(preset("default"), *args, a_at=0, w_at=0x1000, c_at=0x2000)
    assert str(error.value) == message


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"a_at": 4}, "a_at must be a non-negative multiple of 8 (bus_bytes), not 4"),
    ({"c_at": -8}, "c_at must be a non-negative multiple of 8 (bus_bytes), not -8"),
    ({"plan": GemmPlan(512, 1, 1)},
     "m_block * n_group must be at most 256 (half the accumulator), not 512"),
    ({"plan": GemmPlan(256, 1, 40)},
     "two buffers of 40 K blocks need 168960 bytes, more than the scratchpad's 65536"),
    ({"plan": GemmPlan(8, 0, 1)}, "n_group must be a positive integer, not 0"),
])
def test_bad_addresses_and_plans(kwargs, message):
    args = {"a_at": 0, "w_at": 0x1000, "c_at": 0x2000, **kwargs}
    with pytest.raises(ValueError) as error:
        tiled_gemm(preset("default"), 256, 64, 64, **args)
    assert str(error.value) == message
