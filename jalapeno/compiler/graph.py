"""The compiler's input: a small graph of int8 operations on matrices in external memory, and
its reference semantics.

A :class:`Tensor` is a 2-D view of external memory (``rows`` rows of ``cols`` elements, row
``r`` at ``addr + r * pitch``), int8 with a :class:`Quant` or int32 without one. A
:class:`Graph` is a list of nodes in execution order, each reading tensors and writing one:

* :class:`Linear`: ``x @ W + bias`` with constant int8 weights (symmetric, one scale per
  group of output columns) and a float bias, requantized to int8, or left as the int32
  accumulator (logits the host reads).
* :class:`MatMul`: ``a @ b`` of two int8 tensors with zero points of 0 (attention's
  ``q K^T`` and ``P V``), requantized to int8.
* :class:`Add`, :class:`Lut`, :class:`Softmax` and :class:`LayerNorm`: the vector unit's
  elementwise and row operations, with TFLite's int8 semantics.

:func:`evaluate` runs a graph on a NumPy memory image with the unit golden models: it is what
the compiled program must leave in memory, bit for bit, on every backend.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from verification.models.layernorm import LayerNormParams, layernorm
from verification.models.lut import apply_lut
from verification.models.quant import (
    AddParams,
    add,
    fully_connected_multipliers,
    requantize,
)
from verification.models.softmax import SOFTMAX_OUTPUT, SoftmaxParams, softmax

__all__ = ["Quant", "Tensor", "Arena", "LinearWeights", "Linear", "MatMul", "Add", "Lut", "Softmax",
           "LayerNorm", "Graph", "evaluate", "read_tensor", "write_tensor", "folded_bias",
           "slice_rows"]

#: Output columns that share one weight scale: every preset's ``cols`` divides it, so a
#: matrix-unit tile of output columns always has one scale (one REQUANTIZE record).
SCALE_GROUP = 16


@dataclass(frozen=True)
class Quant:
    """Affine int8 quantization: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int = 0

    def __post_init__(self):
        if not (np.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"scale must be positive and finite, not {self.scale!r}")
        if not -128 <= self.zero_point <= 127:
            raise ValueError(f"zero point must lie in [-128, 127], not {self.zero_point!r}")


@dataclass(frozen=True)
class Tensor:
    """A matrix in external memory: int8 quantized with ``quant``, or int32 if it is None.

    Attributes
    ----------
    name : str
    addr : int
        Byte address of row 0.
    rows, cols : int
    pitch : int
        Bytes from one row to the next, at least ``cols * itemsize`` (a block's width if the
        tensor is blocked).
    quant : Quant or None
    block_cols, block_stride : int
        0 for a row-major tensor. Otherwise the columns are stored in blocks of
        ``block_cols``, each a row-major matrix of its own, ``block_stride`` bytes apart:
        element ``(r, c)`` is at ``addr + r * pitch + (c // block_cols) * block_stride +
        c % block_cols``. The attention caches are blocked by the array's width, so the
        weight rows of one GEMM tile are contiguous in memory (int8 only).
    """

    name: str
    addr: int
    rows: int
    cols: int
    pitch: int
    quant: Quant | None = None
    block_cols: int = 0
    block_stride: int = 0

    def __post_init__(self):
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"tensor {self.name} must have rows and columns, not "
                             f"{self.rows} x {self.cols}")
        if self.block_cols and (self.quant is None or self.pitch < self.block_cols):
            raise ValueError(f"tensor {self.name}: a blocked tensor must be int8 with a pitch "
                             f"of at least its block")
        if not self.block_cols and self.pitch < self.cols * self.itemsize:
            raise ValueError(f"tensor {self.name}: pitch {self.pitch} is below its row of "
                             f"{self.cols * self.itemsize} bytes")

    @property
    def itemsize(self):
        return 1 if self.quant else 4

    @property
    def dtype(self):
        return np.int8 if self.quant else np.int32

    @property
    def nbytes(self):
        """Bytes from row 0 to the end of the last row."""
        return (self.rows - 1) * self.pitch + self.cols * self.itemsize

    def view(self, *, row=0, rows=None, col=0, cols=None, quant=None, name=None):
        """The sub-matrix of ``rows`` rows from ``row`` and ``cols`` columns from ``col``
        (the rest by default), the same memory, optionally named or quantized differently."""
        rows = self.rows - row if rows is None else rows
        cols = self.cols - col if cols is None else cols
        if not (0 <= row and row + rows <= self.rows and 0 <= col and col + cols <= self.cols):
            raise ValueError(f"view [{row}:{row + rows}, {col}:{col + cols}] leaves tensor "
                             f"{self.name} of {self.rows} x {self.cols}")
        if self.block_cols and col % self.block_cols:
            raise ValueError(f"a view of blocked tensor {self.name} must start at a block, not "
                             f"at column {col}")
        return dataclasses.replace(self, name=name or self.name, addr=self.column(col) + row *
                                   self.pitch, rows=rows, cols=cols, quant=quant or self.quant)

    def column(self, col):
        """The address of column ``col`` of row 0 (a block's first column if blocked)."""
        if self.block_cols:
            return self.addr + col // self.block_cols * self.block_stride + \
                col % self.block_cols
        return self.addr + col * self.itemsize

    def blocks(self):
        """The row-major tensors that make up this one, left to right."""
        if not self.block_cols:
            return [self]
        width = self.block_cols
        return [Tensor(self.name, self.column(c), self.rows, min(width, self.cols - c),
                       self.pitch, self.quant) for c in range(0, self.cols, width)]


@dataclass(frozen=True, eq=False)
class LinearWeights:
    """Constant weights of a :class:`Linear`: ``real W = w * scale`` per output column.

    Attributes
    ----------
    name : str
    w : ndarray of int8, shape (k, n)
    scale : ndarray of float, shape (n,)
        Positive, equal within each group of :data:`SCALE_GROUP` columns.
    bias : ndarray of float, shape (n,)
        Real-valued bias, quantized by the compiler with the input's scale.
    """

    name: str
    w: np.ndarray
    scale: np.ndarray
    bias: np.ndarray = field(default=None)

    def __post_init__(self):
        k, n = np.shape(self.w)
        if np.asarray(self.w).dtype != np.int8:
            raise ValueError(f"weights {self.name} must be int8, not {np.asarray(self.w).dtype}")
        if np.shape(self.scale) != (n,) or not (np.asarray(self.scale) > 0).all():
            raise ValueError(f"weights {self.name} need {n} positive scales")
        groups = np.asarray(self.scale)[np.arange(n) // SCALE_GROUP * SCALE_GROUP]
        if (groups != self.scale).any():
            raise ValueError(f"weights {self.name}: scales must be equal within each group of "
                             f"{SCALE_GROUP} columns")
        if self.bias is not None and np.shape(self.bias) != (n,):
            raise ValueError(f"weights {self.name}: bias must have {n} values, not "
                             f"{np.shape(self.bias)}")

    @property
    def k(self):
        return self.w.shape[0]

    @property
    def n(self):
        return self.w.shape[1]


def folded_bias(weights: LinearWeights, x: Quant):
    """The int32 bias the accumulator needs for input ``x``: the real bias in units of
    ``s_x * s_w``, minus ``zp_x * sum_k w[k, j]`` (the input zero point folded in, so the
    array multiplies raw int8 values)."""
    bias = np.zeros(weights.n) if weights.bias is None else np.asarray(weights.bias, float)
    real = np.rint(bias / (x.scale * np.asarray(weights.scale, float))).astype(np.int64)
    return real - x.zero_point * weights.w.astype(np.int64).sum(axis=0)


def _check(condition, message):
    if not condition:
        raise ValueError(message)


def _int8(tensor, role):
    _check(tensor.quant is not None, f"{role} {tensor.name} must be int8")


def _same_shape(a, b, what):
    _check((a.rows, a.cols) == (b.rows, b.cols),
           f"{what}: {a.name} is {a.rows} x {a.cols} but {b.name} is {b.rows} x {b.cols}")


@dataclass(frozen=True, eq=False)
class Linear:
    """``out = requantize(x @ W + bias)``, or the int32 ``x @ W + bias`` if ``out`` has no
    quantization."""

    x: Tensor
    weights: LinearWeights
    out: Tensor

    def __post_init__(self):
        _int8(self.x, "linear input")
        _check(self.x.cols == self.weights.k,
               f"linear {self.weights.name}: input has {self.x.cols} columns, weights "
               f"{self.weights.k} rows")
        _check((self.out.rows, self.out.cols) == (self.x.rows, self.weights.n),
               f"linear {self.weights.name}: output must be {self.x.rows} x {self.weights.n}")

    @property
    def inputs(self):
        return (self.x,)


@dataclass(frozen=True, eq=False)
class MatMul:
    """``out = requantize(a @ b)`` of two int8 tensors whose zero points are 0."""

    a: Tensor
    b: Tensor
    out: Tensor

    def __post_init__(self):
        for t in (self.a, self.b, self.out):
            _int8(t, "matmul operand")
        _check(self.a.quant.zero_point == 0 and self.b.quant.zero_point == 0,
               f"matmul {self.out.name}: operands must have zero points of 0")
        _check(self.a.cols == self.b.rows,
               f"matmul {self.out.name}: {self.a.cols} columns times {self.b.rows} rows")
        _check((self.out.rows, self.out.cols) == (self.a.rows, self.b.cols),
               f"matmul {self.out.name}: output must be {self.a.rows} x {self.b.cols}")

    @property
    def inputs(self):
        return (self.a, self.b)


@dataclass(frozen=True, eq=False)
class Add:
    """``out = a + b``, elementwise, rescaled as TFLite's int8 ADD."""

    a: Tensor
    b: Tensor
    out: Tensor

    def __post_init__(self):
        for t in (self.a, self.b, self.out):
            _int8(t, "add operand")
        _same_shape(self.a, self.b, "add")
        _same_shape(self.a, self.out, "add")

    @property
    def inputs(self):
        return (self.a, self.b)

    @property
    def params(self):
        a, b, o = self.a.quant, self.b.quant, self.out.quant
        return AddParams.from_scales(a.scale, a.zero_point, b.scale, b.zero_point, o.scale,
                                     o.zero_point)


@dataclass(frozen=True, eq=False)
class Lut:
    """``out = table[x + 128]``: any elementwise int8 function, its table computed from the
    scales (for example :func:`verification.models.lut.gelu_table`)."""

    x: Tensor
    table: np.ndarray
    out: Tensor

    def __post_init__(self):
        _int8(self.x, "lut input")
        _int8(self.out, "lut output")
        _same_shape(self.x, self.out, "lut")
        _check(np.shape(self.table) == (256,) and np.asarray(self.table).dtype == np.int8,
               f"lut {self.out.name}: the table must be 256 int8 values")

    @property
    def inputs(self):
        return (self.x,)


@dataclass(frozen=True, eq=False)
class Softmax:
    """``out = softmax(x)`` over each row, TFLite's int8 kernel (output ``1/256, -128``)."""

    x: Tensor
    out: Tensor

    def __post_init__(self):
        _int8(self.x, "softmax input")
        _same_shape(self.x, self.out, "softmax")
        _check((self.out.quant.scale, self.out.quant.zero_point) == SOFTMAX_OUTPUT,
               f"softmax {self.out.name}: output must be quantized as {SOFTMAX_OUTPUT}")

    @property
    def inputs(self):
        return (self.x,)

    @property
    def params(self):
        return SoftmaxParams.from_scale(self.x.quant.scale)


@dataclass(frozen=True, eq=False)
class LayerNorm:
    """``out = layernorm(x) * gamma + beta`` over each row."""

    x: Tensor
    gamma: np.ndarray
    beta: np.ndarray
    epsilon: float
    out: Tensor

    def __post_init__(self):
        _int8(self.x, "layernorm input")
        _int8(self.out, "layernorm output")
        _same_shape(self.x, self.out, "layernorm")
        _check(np.shape(self.gamma) == (self.x.cols,) == np.shape(self.beta),
               f"layernorm {self.out.name}: gamma and beta must have {self.x.cols} values")

    @property
    def inputs(self):
        return (self.x,)

    @property
    def params(self):
        x, y = self.x.quant, self.out.quant
        return LayerNormParams.from_float(
            gamma=self.gamma, beta=self.beta, epsilon=self.epsilon, input_scale=x.scale,
            input_zero_point=x.zero_point, output_scale=y.scale, output_zero_point=y.zero_point)


class Arena:
    """Tensors one after another in external memory from ``base`` up to ``limit``, each row
    whole vectors of ``cols`` elements (what a transfer moves) and each tensor on a 64-byte
    boundary."""

    def __init__(self, base, limit, cols):
        self.base, self.limit, self.cols, self.at = base, limit, cols, base

    def tensor(self, name, rows, cols, quant, *, itemsize=1):
        """A new ``rows x cols`` tensor, int8 with ``quant`` or int32 (``quant`` None and
        ``itemsize`` 4)."""
        pitch = -(-cols // self.cols) * self.cols * itemsize
        addr, self.at = self.at, self.at + -(-rows * pitch // 64) * 64
        if self.at > self.limit:
            raise MemoryError(f"tensors need more than the {self.limit - self.base} bytes "
                              f"from {self.base:#x}")
        return Tensor(name, addr, rows, cols, pitch, quant)


@dataclass
class Graph:
    """Nodes in execution order; each node's inputs are graph inputs or earlier outputs."""

    nodes: list = field(default_factory=list)

    def add(self, node):
        """Append ``node`` and return its output tensor."""
        self.nodes.append(node)
        return node.out


def slice_rows(node, row, rows):
    """``node`` on ``rows`` of its rows from ``row``: rows are independent in every node (a
    MatMul's right operand is taken whole)."""
    changes = {"out": node.out.view(row=row, rows=rows)}
    for name in ("x", "a", "b"):
        if hasattr(node, name) and not (name == "b" and isinstance(node, MatMul)):
            changes[name] = getattr(node, name).view(row=row, rows=rows)
    return dataclasses.replace(node, **changes)


def read_tensor(memory, t: Tensor):
    """Tensor ``t`` from a uint8 memory image, as an int8 or int32 array."""
    if t.block_cols:
        return np.hstack([read_tensor(memory, b) for b in t.blocks()])
    span = memory[t.addr:t.addr + t.rows * t.pitch]
    if len(span) < t.nbytes:
        raise ValueError(f"tensor {t.name} at {t.addr:#x} leaves memory")
    rows = np.lib.stride_tricks.as_strided(
        span, (t.rows, t.cols * t.itemsize), (t.pitch, 1), writeable=False)
    return np.ascontiguousarray(rows).view(t.dtype)


def write_tensor(memory, t: Tensor, values):
    """Write ``values`` (``t.rows x t.cols``, in ``t``'s type's range) into a memory image."""
    if t.block_cols:
        for b in t.blocks():
            start = (b.addr - t.addr) // t.block_stride * t.block_cols
            write_tensor(memory, b, np.asarray(values)[:, start:start + b.cols])
        return
    data = np.asarray(values).astype(t.dtype).view(np.uint8).reshape(t.rows, -1)
    for r in range(t.rows):
        memory[t.addr + r * t.pitch:][:data.shape[1]] = data[r]


def _linear(node, x):
    wq, q = node.weights, node.x.quant
    acc = x.astype(np.int64) @ wq.w.astype(np.int64) + folded_bias(wq, q)
    acc = (acc + 2**31) % 2**32 - 2**31
    if node.out.quant is None:
        return acc
    multipliers, shifts = fully_connected_multipliers(q.scale, wq.scale, node.out.quant.scale)
    return requantize(acc, multipliers, shifts, node.out.quant.zero_point)


def _matmul(node, a, b):
    acc = (a.astype(np.int64) @ b.astype(np.int64) + 2**31) % 2**32 - 2**31
    (m,), (s,) = fully_connected_multipliers(node.a.quant.scale, [node.b.quant.scale],
                                             node.out.quant.scale)
    return requantize(acc, m, s, node.out.quant.zero_point)


def evaluate(graph: Graph, memory):
    """Run ``graph`` on the uint8 memory image ``memory`` in place, node by node, with the
    golden models of the units."""
    for node in graph.nodes:
        args = [read_tensor(memory, t) for t in node.inputs]
        if isinstance(node, Linear):
            out = _linear(node, *args)
        elif isinstance(node, MatMul):
            out = _matmul(node, *args)
        elif isinstance(node, Add):
            out = add(*args, node.params)
        elif isinstance(node, Lut):
            out = apply_lut(*args, node.table)
        elif isinstance(node, Softmax):
            out = softmax(*args, node.params)
        else:
            out = layernorm(*args, node.params)
        write_tensor(memory, node.out, out)
    return memory
