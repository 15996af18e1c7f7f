"""The compiler (:mod:`jalapeno.compiler`): graphs of int8 ops lowered to programs whose run on
the golden ISA simulator leaves exactly what the graph's reference semantics
(:func:`~jalapeno.compiler.graph.evaluate`) computes, on every preset."""

import numpy as np
import pytest

from jalapeno.compiler import (
    Add,
    Arena,
    CompileError,
    ConstPool,
    Graph,
    LayerNorm,
    Linear,
    LinearWeights,
    Lut,
    MatMul,
    Quant,
    Softmax,
    Tensor,
    compile_graph,
    evaluate,
    read_tensor,
    write_tensor,
)
from jalapeno.compiler.lower import BIAS_ACTIVATION, bias_tiles, weight_image
from jalapeno.compiler.schedule import Scheduler
from jalapeno.isa import Opcode, Queue, decode
from rtl.config import PRESETS, JalapenoConfig, preset
from verification.models.core import CoreModel
from verification.models.lut import gelu_table
from verification.models.softmax import SOFTMAX_OUTPUT
from verification.programs import place_program

PROGRAM_AT = 0xF0000
MEMORY = 1 << 20


def random_graph(config, rng, m, k, n):
    """Every node kind, chained, on random inputs; returns the graph, its memory image and
    the output tensors."""
    memory = np.zeros(MEMORY, np.uint8)
    new = Arena(0x1000, 0x80000, config.cols).tensor

    def filled(name, rows, cols, quant):
        t = new(name, rows, cols, quant)
        write_tensor(memory, t, rng.integers(-128, 128, (rows, cols)))
        return t

    x = filled("x", m, k, Quant(0.05, 3))
    groups = -(-n // 16)
    w = LinearWeights("w", rng.integers(-127, 128, (k, n)).astype(np.int8),
                      np.repeat(rng.uniform(0.01, 0.02, groups), 16)[:n], rng.normal(0, 1, n))
    g = Graph()
    y = g.add(Linear(x, w, new("y", m, n, Quant(0.4, -5))))
    y2 = g.add(Lut(y, gelu_table((0.4, -5), (0.2, -100)), new("y2", m, n, Quant(0.2, -100))))
    y3 = g.add(Add(y, y2, new("y3", m, n, Quant(0.5, 0))))
    y4 = g.add(LayerNorm(y3, rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), 1e-5,
                         new("y4", m, n, Quant(0.03, 1))))
    y5 = g.add(Softmax(y4, new("y5", m, n, Quant(*SOFTMAX_OUTPUT))))
    a, b = filled("a", m, n, Quant(0.1, 0)), filled("b", n, 24, Quant(0.02, 0))
    y6 = g.add(MatMul(a, b, new("y6", m, 24, Quant(0.5, 0))))
    w2 = LinearWeights("w2", rng.integers(-127, 128, (n, 20)).astype(np.int8),
                       np.full(20, 0.01))
    y7 = g.add(Linear(y4, w2, new("y7", m, 20, None, itemsize=4)))
    return g, memory, [y, y2, y3, y4, y5, y6, y7]


def run_golden(config, graph, memory):
    """Compile ``graph``, run it on the golden model; the program and both memories."""
    consts = ConstPool(0x80000, 0xE0000)
    program = compile_graph(graph, config, consts)
    for addr, data in consts.take():
        memory[addr:addr + len(data)] = data
    reference = evaluate(graph, memory.copy())
    place_program(memory, PROGRAM_AT, program.words)
    result = CoreModel(config, memory, window=(0, MEMORY)).run(PROGRAM_AT, len(program.words))
    return program, result, reference


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("m", [1, 3, 40])
def test_compiled_graph_equals_reference(name, m):
    """Every node kind, one row, a few rows, and more rows than a slice (32), on every preset:
    the compiled program leaves each output bit for bit as the reference computes it, and
    counts the MACs the graph has."""
    config, seed = preset(name), 1000 + m
    rng = np.random.default_rng(seed)
    graph, memory, outputs = random_graph(config, rng, m, 40, 72)
    program, result, reference = run_golden(config, graph, memory)
    assert result.code.name == "NONE", f"seed {seed}: stopped with {result.code.name}"
    for t in outputs:
        got, want = read_tensor(memory, t), read_tensor(reference, t)
        assert np.array_equal(got, want), f"seed {seed}, {name}: {t.name} differs"
    assert result.counters["MACS"] == program.macs


def test_bias_tiles_add_exactly_the_bias():
    """Random biases up to a few million: the tiles times the bias activation give them."""
    rng = np.random.default_rng(7)
    for rows in (2, 4, 8, 16):
        bias = rng.integers(-3_000_000, 3_000_000, 37)
        bias[:3] = (0, 1, -1)
        tiles = bias_tiles(bias, rows).astype(np.int64).reshape(-1, rows, 37)
        activation = np.array([BIAS_ACTIVATION[0]] + [BIAS_ACTIVATION[1]] * (rows - 1))
        assert np.array_equal(np.einsum("r,trn->n", activation, tiles), bias), rows
    assert bias_tiles(np.zeros(5, np.int64), 8).shape == (0, 5)


def test_weight_image_is_tile_major():
    """Output tile ``t``, K tile ``u``, row ``j``, lane ``l`` at ``((t * tiles + u) * rows +
    j) * pitch + l``; rows past K and lanes past N are zero."""
    config = preset("default")
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, (12, 10)).astype(np.int8)
    image, k_tiles, b_tiles = weight_image(config, w, np.zeros(10, np.int64))
    assert (k_tiles, b_tiles) == (2, 0)
    tiles = image.view(np.int8).reshape(2, 2, 8, 8)
    assert np.array_equal(tiles[1, 0, 3, :2], w[3, 8:10])
    assert np.array_equal(tiles[0, 1, 3], w[11, :8])
    assert not tiles[0, 1, 4:].any() and not tiles[1, :, :, 2:].any()


def test_const_pool_places_each_constant_once():
    pool = ConstPool(0x1000, 0x1100, align=64)
    a = pool.place("a", np.arange(10, dtype=np.uint8))
    assert pool.place("a", np.zeros(3, np.uint8)) == a == 0x1000
    assert pool.place("b", np.zeros(100, np.uint8)) == 0x1040
    assert [addr for addr, _ in pool.take()] == [0x1000, 0x1040] and pool.take() == []
    with pytest.raises(CompileError, match=r"^constants need more than the 256 bytes from "
                                           r"0x1000$"):
        pool.place("c", np.zeros(100, np.uint8))


def _flags(words):
    out = []
    for word in words:
        opcode, f, _ = decode(word)
        out.append((Opcode(opcode).name, " ".join(k for k in (
            "pop_prev", "pop_next", "push_prev", "push_next") if f.get(k))))
    return out


def test_scheduler_tokens_follow_the_accesses():
    """A LOAD then a GEMM reading it: load -> compute. A STORE of the result: compute ->
    store. A LOAD over the stored bytes: store -> compute -> load through a compute SYNC. A
    second GEMM that reads nothing new waits for nothing."""
    sched = Scheduler()
    spad, ext = ("spad", 0), ("ext", 9)
    sched.emit(Opcode.LOAD, reads=[ext], writes=[spad])
    sched.emit(Opcode.GEMM, reads=[spad], writes=[("acc", 0)])
    sched.emit(Opcode.STORE, reads=[("acc", 0)], writes=[("ext", 5)])
    sched.emit(Opcode.GEMM, reads=[spad], writes=[("acc", 1)])
    sched.emit(Opcode.LOAD, reads=[("ext", 5)], writes=[("spad", 3)])
    assert _flags(sched.words()) == [
        ("LOAD", "push_next"), ("GEMM", "pop_prev push_next"), ("STORE", "pop_prev push_prev"),
        ("GEMM", ""), ("SYNC", "pop_next push_prev"), ("LOAD", "pop_next"), ("END", "")]
    assert decode(sched.words()[4])[1]["queue"] == Queue.COMPUTE


def test_graph_errors():
    """Shapes and quantizations that cannot work are refused when the node is made."""
    t = Tensor("t", 0, 2, 8, 8, Quant(0.1))
    with pytest.raises(ValueError, match=r"^tensor u: pitch 4 is below its row of 8 bytes$"):
        Tensor("u", 0, 2, 8, 4, Quant(0.1))
    with pytest.raises(ValueError, match=r"^scale must be positive and finite, not 0$"):
        Quant(0)
    with pytest.raises(ValueError, match=r"^matmul o: operands must have zero points of 0$"):
        MatMul(t.view(quant=Quant(0.1, 3)), Tensor("b", 0, 8, 8, 8, Quant(0.1)), t.view(
            name="o"))
    w = LinearWeights("w", np.zeros((8, 4), np.int8), np.ones(4))
    with pytest.raises(ValueError, match=r"^linear w: output must be 2 x 4$"):
        Linear(t, w, t)
    with pytest.raises(ValueError, match=r"^weights v: scales must be equal within each group "
                                         r"of 16 columns$"):
        LinearWeights("v", np.zeros((8, 4), np.int8), np.arange(1, 5.0))
    with pytest.raises(ValueError, match=r"^view \[1:3, 0:8\] leaves tensor t of 2 x 8$"):
        t.view(row=1, rows=2)


def test_compile_errors():
    """A non-square array, and a node too large for the scratchpad, each a CompileError."""
    rng = np.random.default_rng(5)
    graph, _, _ = random_graph(preset("default"), rng, 2, 16, 16)
    odd = JalapenoConfig(rows=8, cols=4, acc_depth=256)
    with pytest.raises(CompileError, match=r"^the compiler needs a square array"):
        compile_graph(graph, odd, ConstPool(0, 1 << 20))
    tiny = preset("tiny")
    x = Tensor("x", 0x1000, 1, 2048, 2048, Quant(0.1))
    big = LinearWeights("big", np.zeros((2048, 64), np.int8), np.ones(64))
    g = Graph([Linear(x, big, Tensor("y", 0x8000, 1, 64, 64, Quant(0.1)))])
    with pytest.raises(CompileError, match=r"^linear big: 1 rows of 2048 do not fit"):
        compile_graph(g, tiny, ConstPool(0x10000, 0x80000))


def test_scheduler_one_token_per_wait():
    """A LOAD that must wait for both a GEMM and a STORE: one compute SYNC carries both
    orders, so every push is popped exactly once (an extra push would let a later pop take a
    stale token and start early)."""
    sched = Scheduler()
    sched.emit(Opcode.LOAD, writes=[("spad", 0)])
    sched.emit(Opcode.GEMM, reads=[("spad", 0)], writes=[("acc", 0)])
    sched.emit(Opcode.STORE, reads=[("acc", 0)], writes=[("ext", 5)])
    sched.emit(Opcode.GEMM, reads=[("spad", 1)], writes=[("acc", 1)])
    sched.emit(Opcode.LOAD, reads=[("ext", 5)], writes=[("spad", 1)])
    flags = _flags(sched.words())
    pushes = sum(f.count("push_prev") for op, f in flags if op in ("GEMM", "SYNC"))
    pops = sum(f.count("pop_next") for op, f in flags if op == "LOAD")
    assert pushes == pops == 1, flags
