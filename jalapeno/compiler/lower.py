"""Lowering a :class:`~jalapeno.compiler.graph.Graph` to a Jalapeño program.

Each node becomes *steps* of LOADs, compute instructions and STOREs. External memory is the
only place a tensor lives between nodes: a node loads its operands, computes in the
scratchpad and the accumulator memory, and stores its result. Within a node:

* GEMMs are tiled to the array: an output tile of ``cols`` columns accumulates one GEMM per
  ``rows`` rows of K, then the *bias tiles* (:func:`bias_tiles`), then is requantized by one
  VECTOR per tile of equal scale (one per row of tiles when there is a single activation row).
* A :class:`~jalapeno.compiler.graph.Linear`'s weights are a constant image, tiled once in
  external memory (:func:`weight_image`), so each chunk of output tiles is one contiguous LOAD.
  Chunks alternate between two scratchpad buffers and two accumulator regions (double
  buffering), and the next chunk's LOAD is placed before this chunk's GEMMs.
* A :class:`~jalapeno.compiler.graph.MatMul` loads its right operand from any row-major view
  (the attention caches), one LOAD per output tile.
* Parameter records and tables are constants too (:class:`ConstPool`).

The emitted order is a correct sequential program (the golden model's meaning); the
:class:`~jalapeno.compiler.schedule.Scheduler` adds the tokens that let the queues overlap.
A step's LOADs move ahead of the previous step's compute only when they touch nothing that
compute or its STOREs touch, so the order stays correct.

Scratchpad space for a node is one *frame* taken from a ring: frames of successive nodes
follow each other and wrap around, so a node's loads can start while the previous node's
results are still being computed and stored, and a frame is reused only after the scheduler
has seen its last use.
"""

from dataclasses import dataclass, field

import numpy as np

from jalapeno.isa import Opcode, VectorOp, pack_record, record_layout
from rtl.config import JalapenoConfig
from verification.models.core import vector_pitch
from verification.models.quant import fully_connected_multipliers
from verification.models.softmax import softmax_exp_table

from .graph import (
    Add,
    Graph,
    LayerNorm,
    Linear,
    Lut,
    MatMul,
    Softmax,
    Tensor,
    folded_bias,
    slice_rows,
)
from .schedule import PAGE, Access, Scheduler

__all__ = ["ConstPool", "Program", "compile_graph", "weight_image", "bias_tiles",
           "BIAS_ACTIVATION", "CompileError"]

#: The activation row the bias tiles multiply: lane 0 is 1, the others 127, so a tile adds
#: ``w[0] + 127 * sum(w[1:])`` to each output column.
BIAS_ACTIVATION = (1, 127)
#: Rows of a node lowered at once: enough that a GEMM's ``m`` dwarfs its ``k``-row weight
#: load, few enough that the operands of any row op fit the scratchpad.
ROW_SLICE = 32
#: Steps a LOAD may move ahead of.
LOOKAHEAD = 3


class CompileError(ValueError):
    """The graph does not fit this configuration."""


def _round_up(value, step):
    return -(-value // step) * step


class ConstPool:
    """Constants in external memory (weight images, parameter records, tables), each placed
    once, from ``base`` up to ``limit``, on ``align``-byte boundaries.

    Attributes
    ----------
    pending : list of (int, ndarray)
        Placed since the last :meth:`take`: what a device must be sent before the program runs.
    """

    def __init__(self, base, limit, *, align=64):
        self.base, self.limit, self.align = base, limit, align
        self.end = base
        self._placed = {}
        self.pending = []

    def place(self, key, data):
        """The address of constant ``key``, placing ``data`` (a uint8 array) on first use."""
        if key not in self._placed:
            data = np.asarray(data).view(np.uint8).reshape(-1)
            if self.end + len(data) > self.limit:
                raise CompileError(f"constants need more than the {self.limit - self.base} "
                                   f"bytes from {self.base:#x}")
            self._placed[key] = self.end
            self.pending.append((self.end, data))
            self.end = _round_up(self.end + len(data), self.align)
        return self._placed[key]

    def take(self):
        """The constants placed since the last call, as ``[(address, bytes)]``."""
        out, self.pending = self.pending, []
        return out


@dataclass
class Program:
    """A compiled graph: instruction words (ending in END) and what it does."""

    words: list
    macs: int
    instructions: list = field(repr=False, default_factory=list)


def bias_tiles(bias, rows):
    """Weight rows of the bias tiles for int32 ``bias`` (one value per output column): tiles of
    ``rows`` rows that, multiplied by :data:`BIAS_ACTIVATION`, add exactly ``bias``.

    Returns
    -------
    ndarray of int8, shape (tiles * rows, n)
        ``tiles`` is the fewest that hold the largest bias; 0 if every bias is 0.
    """
    bias = np.asarray(bias, np.int64)
    if rows < 2:
        raise CompileError("bias tiles need at least 2 rows in the array")
    per_tile = 127 * (rows - 1)
    big = np.rint(bias / 127).astype(np.int64)
    tiles = int(-(-np.abs(big).max(initial=0) // per_tile)) if bias.any() else 0
    out = np.zeros((tiles, rows, bias.size), np.int64)
    remaining = big.copy()
    for t in range(tiles):
        for j in range(1, rows):
            take = np.clip(remaining, -127, 127)
            out[t, j] = take
            remaining -= take
    if tiles:
        out[0, 0] = bias - 127 * big
    return out.reshape(tiles * rows, bias.size).astype(np.int8)


def weight_image(config: JalapenoConfig, w, bias):
    """A linear layer's weights and bias tiles in the order the GEMMs read them: for each tile
    of ``cols`` output columns, its K tiles then its bias tiles, each ``rows`` vectors a pitch
    apart (zeros past the matrix).

    Returns
    -------
    image : ndarray of uint8
    k_tiles, b_tiles : int
        K tiles and bias tiles per output tile.
    """
    rows, cols, pitch = config.rows, config.cols, vector_pitch(config)
    k, n = w.shape
    k_tiles, n_tiles = -(-k // rows), -(-n // cols)
    extra = bias_tiles(bias, rows)
    b_tiles = extra.shape[0] // rows
    full = np.zeros(((k_tiles + b_tiles) * rows, n_tiles * cols), np.int8)
    full[:k, :n] = w
    full[k_tiles * rows:, :n] = extra
    blocks = full.reshape(k_tiles + b_tiles, rows, n_tiles, cols).transpose(2, 0, 1, 3)
    image = np.zeros(blocks.shape[:3] + (pitch,), np.int8)
    image[..., :cols] = blocks
    return image.reshape(-1).view(np.uint8), k_tiles, b_tiles


class _Ring:
    """Frames of a linear space (the scratchpad, or accumulator rows), handed out in turn."""

    def __init__(self, size, what):
        self.size, self.what, self.at = size, what, 0

    def frame(self, need):
        if need > self.size:
            raise CompileError(f"a node needs {need} of the {self.size} {self.what}")
        if self.at + need > self.size:
            self.at = 0
        start, self.at = self.at, self.at + need
        return start


@dataclass
class _Step:
    loads: list = field(default_factory=list)
    computes: list = field(default_factory=list)
    stores: list = field(default_factory=list)

    def touched(self, kinds):
        """Pages this step's instructions write, and with ``"reads"`` in ``kinds`` read too."""
        pages = set()
        for part in (self.loads, self.computes, self.stores):
            for _, _, reads, writes in part:
                pages.update(writes)
                if "reads" in kinds:
                    pages.update(reads)
        return pages


class _Lowering:
    """The lowering of one graph: node by node into steps, then into a scheduled program."""

    def __init__(self, config: JalapenoConfig, consts: ConstPool):
        if config.rows != config.cols or vector_pitch(config) != config.cols or \
                config.cols % config.bus_bytes:
            raise CompileError(f"the compiler needs a square array whose rows are a vector and a "
                               f"whole number of bus words, not {config.rows} x {config.cols} "
                               f"with {config.bus_bytes}-byte words")
        self.cfg, self.consts = config, consts
        self.p = config.cols
        self.spad = _Ring(config.spad_bytes, "scratchpad bytes")
        self.acc = _Ring(config.acc_depth, "accumulator rows")
        self.steps = []
        self.macs = 0

    # -- instructions ------------------------------------------------------------------------

    def _spad(self, lo, nbytes):
        return Access("spad", lo, lo + nbytes)

    def _acc_rows(self, row, count):
        return Access("acc", row * self.cfg.acc_row_bytes, (row + count) * self.cfg.acc_row_bytes)

    def _dma(self, load, ext, local, rows, row_bytes, ext_stride, local_stride, local_pages):
        fields = {"ext_addr": ext, "local_addr": local, "rows": rows, "row_bytes": row_bytes,
                  "ext_stride": ext_stride, "local_stride": local_stride}
        ext_pages = Access("ext", ext, ext + (rows - 1) * ext_stride + row_bytes)
        if load:
            return (Opcode.LOAD, fields, ext_pages, local_pages)
        return (Opcode.STORE, fields, local_pages, ext_pages)

    def _load(self, ext, local, rows, row_bytes, ext_stride=0, local_stride=0):
        if rows > 1 and ext_stride == local_stride == row_bytes and rows * row_bytes < 1 << 16:
            rows, row_bytes = 1, rows * row_bytes
        span = (rows - 1) * local_stride + row_bytes
        return self._dma(True, ext, local, rows, row_bytes, ext_stride, local_stride,
                         self._spad(local, span))

    def _store(self, local, ext, rows, row_bytes, ext_stride=0, local_stride=0):
        span = (rows - 1) * local_stride + row_bytes
        return self._dma(False, ext, local, rows, row_bytes, ext_stride, local_stride,
                         self._spad(local, span))

    def _const(self, key, data, local):
        """A LOAD of constant ``key`` (``data``, placed on first use) to ``local``."""
        addr = self.consts.place(key, data)
        return self._load(addr, local, 1, _round_up(np.asarray(data).nbytes, self.cfg.bus_bytes))

    def _frame(self, *sizes):
        """Scratchpad addresses for buffers of ``sizes`` bytes, each on its own pages (so
        that the scheduler sees them apart), from one frame of the ring."""
        sizes = [_round_up(size, PAGE) for size in sizes]
        at = self.spad.frame(sum(sizes))
        out = []
        for size in sizes:
            out.append(at)
            at += size
        return out

    def _record_size(self, op, length):
        return _round_up(record_layout(op, length)[1], self.cfg.bus_bytes)

    # -- operands ----------------------------------------------------------------------------

    def _padded_row(self, t: Tensor):
        """Bytes a row of ``t`` takes in a transfer: whole vectors (of int32 lanes for int32)."""
        size = _round_up(t.cols, self.cfg.cols) * t.itemsize
        if t.block_cols:
            raise CompileError(f"tensor {t.name} is blocked; only a matmul's right operand "
                               f"may be")
        if t.pitch < size or t.addr % self.cfg.bus_bytes or t.pitch % self.cfg.bus_bytes:
            raise CompileError(f"tensor {t.name} must be bus-word aligned with a pitch of at "
                               f"least {size} bytes (whole vectors), not {t.pitch} at "
                               f"{t.addr:#x}")
        return size

    def _rows_in(self, t: Tensor, local):
        """LOADs of ``t``'s rows, row-major, a row every ``padded`` bytes from ``local``."""
        size = self._padded_row(t)
        return [self._load(t.addr, local, t.rows, size, t.pitch, size)]

    def _rows_out(self, local, t: Tensor):
        size = self._padded_row(t)
        return [self._store(local, t.addr, t.rows, size, t.pitch, size)]

    def _tiles_in(self, t: Tensor, local):
        """LOADs of ``t`` as GEMM activations: for each K tile ``u``, its ``t.rows`` vectors
        from ``local + u * rows * pitch`` (as few LOADs as possible)."""
        r, p, m = self.cfg.rows, self.p, t.rows
        k_tiles = -(-t.cols // r)
        self._padded_row(t)
        if k_tiles <= m:
            return [self._load(t.addr + u * r, local + u * m * p, m, r, t.pitch, p)
                    for u in range(k_tiles)]
        return [self._load(t.addr + i * t.pitch, local + i * p, k_tiles, r, r, m * p)
                for i in range(m)]

    def _vector(self, op, *, rows, length, src, src_stride, dst, dst_stride, params,
                src2=0, src2_stride=0, src_pages, src2_pages=()):
        fields = {"op": op, "rows": rows, "length": length, "src": src, "src_stride": src_stride,
                  "src2": src2, "src2_stride": src2_stride, "dst": dst, "dst_stride": dst_stride,
                  "params": params}
        beats = -(-length // self.cfg.cols)
        span = (rows - 1) * dst_stride + beats * self.p
        reads = [*src_pages, *src2_pages, *self._spad(params, self._record_size(op, length))]
        return (Opcode.VECTOR, fields, reads, self._spad(dst, span))

    def _gemm(self, act, w, acc_row, m, k, n, accumulate):
        p = self.p
        self.macs += m * k * n
        fields = {"act_addr": act, "w_addr": w, "acc_addr": acc_row, "m": m, "k": k, "n": n,
                  "accumulate": int(accumulate)}
        reads = [*self._spad(act, m * p), *self._spad(w, k * p)]
        if accumulate:
            reads += self._acc_rows(acc_row, m)
        return (Opcode.GEMM, fields, reads, self._acc_rows(acc_row, m))

    # -- nodes -------------------------------------------------------------------------------

    def node(self, node):
        """Lower ``node``, in slices of at most :data:`ROW_SLICE` rows (rows are independent
        in every node)."""
        rows, most = node.out.rows, self._rows_that_fit(node)
        if rows > most:
            for row in range(0, rows, most):
                self.node(slice_rows(node, row, min(most, rows - row)))
            return
        if isinstance(node, Linear):
            self._linear(node)
        elif isinstance(node, MatMul):
            self._matmul(node)
        else:
            self._row_op(node)

    def _rows_that_fit(self, node):
        """The most rows of ``node`` to lower at once: at most :data:`ROW_SLICE`, and few
        enough that their operands take at most half the scratchpad (so the ring holds this
        node's frame and the one before it)."""
        r, c = self.cfg.rows, self.cfg.cols
        budget = self.cfg.spad_bytes // 2 - 4 * PAGE
        if isinstance(node, Linear):
            k_tiles = -(-node.weights.k // r)
            budget -= 2 * (k_tiles + 2) * r * self.p + 256
            per_row = k_tiles * self.p + 3 * self.p
        elif isinstance(node, MatMul):
            k_tiles, n_tiles = -(-node.b.rows // r), -(-node.b.cols // c)
            budget -= n_tiles * k_tiles * r * self.p
            per_row = (k_tiles + n_tiles) * self.p
        else:
            cols = node.out.cols
            budget -= 1024 + 8 * cols
            per_row = (len(node.inputs) + 1) * _round_up(cols, c)
        return max(1, min(ROW_SLICE, budget // per_row))

    def _requant_record(self, multiplier, shift, zero_point):
        return pack_record(VectorOp.REQUANTIZE, 1, {
            "multiplier": multiplier, "shift": shift, "zero_point": zero_point,
            "act_min": -128, "act_max": 127})

    def _linear(self, node: Linear):
        cfg, p, r, c = self.cfg, self.p, self.cfg.rows, self.cfg.cols
        x, wts, out = node.x, node.weights, node.out
        m, n = x.rows, wts.n
        bias = folded_bias(wts, x.quant)
        image, k_tiles, b_tiles = weight_image(cfg, wts.w, bias)
        w_addr = self.consts.place(("linear", wts.name, x.quant, cfg.rows, cfg.cols), image)
        n_tiles = -(-n // c)
        tiles = k_tiles + b_tiles
        block = tiles * r * p
        quantized = out.quant is not None
        records, distinct = [], []
        if quantized:
            mult, shifts = fully_connected_multipliers(x.quant.scale, wts.scale[::c],
                                                       out.quant.scale)
            records = [self._requant_record(int(a), int(s), out.quant.zero_point).tobytes()
                       for a, s in zip(mult, shifts, strict=True)]
        distinct = list(dict.fromkeys(records))
        rec_slot = _round_up(8, p)
        self._padded_row(out)
        x_bytes, bias_bytes = k_tiles * m * p, m * p if b_tiles else 0
        fixed = sum(_round_up(size, PAGE) for size in
                    (x_bytes, bias_bytes, rec_slot * len(distinct)))
        per_tile = 2 * block + (2 * m * p if quantized else 0)
        group = min(n_tiles, (cfg.spad_bytes - fixed - 8 * PAGE) // per_tile,
                    cfg.acc_depth // (2 * m))
        if group < 1:
            raise CompileError(f"linear {wts.name}: {m} rows of {x.cols} do not fit the "
                               f"scratchpad and accumulators of preset {cfg.name}")
        buffers = 1 if group == n_tiles else 2
        x_at, bias_at, rec_at, *bufs = self._frame(
            x_bytes, bias_bytes, rec_slot * len(distinct), *[group * block] * buffers,
            *[group * m * p] * buffers)
        w_at, o_at = bufs[:buffers], bufs[buffers:]
        acc_base = self.acc.frame(2 * group * m)

        first = _Step(loads=self._tiles_in(x, x_at))
        if b_tiles:
            bias_rows = np.zeros((m, p), np.int8)
            bias_rows[:, 0], bias_rows[:, 1:r] = BIAS_ACTIVATION
            first.loads.append(self._const(("bias-activation", m, p), bias_rows, bias_at))
        if records:
            blob = np.zeros((len(distinct), rec_slot), np.uint8)
            for i, rec in enumerate(distinct):
                blob[i, :len(rec)] = np.frombuffer(rec, np.uint8)
            first.loads.append(self._const(("records", wts.name, x.quant, out.quant, c),
                                           blob, rec_at))
        steps = []
        for g, t0 in enumerate(range(0, n_tiles, group)):
            t1 = min(n_tiles, t0 + group)
            step = first if g == 0 else _Step()
            steps.append(step)
            wbuf, acc0, obuf = w_at[g % buffers], acc_base + (g % 2) * group * m, o_at[g % buffers]
            step.loads.append(self._load(w_addr + t0 * block, wbuf, 1, (t1 - t0) * block))
            for t in range(t0, t1):
                n_t = min(c, n - t * c)
                for u in range(tiles):
                    act = x_at + u * m * p if u < k_tiles else bias_at
                    k_u = min(r, wts.k - u * r) if u < k_tiles else r
                    step.computes.append(self._gemm(act, wbuf + ((t - t0) * tiles + u) * r * p,
                                                    acc0 + (t - t0) * m, m, k_u, n_t, u > 0))
            if quantized:
                self._requantize(step, range(t0, t1), m, n, acc0, obuf, (t1 - t0) * p,
                                 [rec_at + rec_slot * distinct.index(rec) for rec in records],
                                 t0)
                step.stores.append(self._store(obuf, out.addr + t0 * c, m, (t1 - t0) * c,
                                               out.pitch, (t1 - t0) * p))
            else:
                step.stores += self._acc_out(acc0, range(t0, t1), m, out)
        self.steps += steps

    def _requantize(self, step, tiles, m, n, acc0, obuf, row_bytes, records, t0):
        """REQUANTIZE VECTORs of output ``tiles`` from accumulator rows ``acc0 + (t - t0) * m +
        i`` into ``obuf`` (row ``i`` at ``obuf + i * row_bytes``): one per tile, or one per
        run of tiles with the same record when ``m`` is 1 (the rows are then consecutive)."""
        cfg, c = self.cfg, self.cfg.cols
        runs = []
        for t in tiles:
            if m == 1 and runs and records[t] == records[runs[-1][0]] and \
                    runs[-1][-1] == t - 1:
                runs[-1].append(t)
            else:
                runs.append([t])
        for run in runs:
            first = acc0 + (run[0] - t0) * m
            length = min(n, (run[-1] + 1) * c) - run[0] * c
            src = cfg.acc_base + first * cfg.acc_row_bytes
            step.computes.append(self._vector(
                VectorOp.REQUANTIZE, rows=m, length=length, src=src,
                src_stride=cfg.acc_row_bytes, dst=obuf + (run[0] - t0) * self.p,
                dst_stride=row_bytes, params=records[run[0]],
                src_pages=self._acc_rows(first, m * len(run))))

    def _acc_out(self, acc0, tiles, m, out: Tensor):
        """STOREs of int32 results straight from the accumulator memory."""
        cfg, c = self.cfg, self.cfg.cols
        stores = []
        for t in tiles:
            first = acc0 + (t - tiles[0]) * m
            local = cfg.acc_base + first * cfg.acc_row_bytes
            stores.append(self._dma(False, out.addr + t * c * 4, local, m, c * 4, out.pitch,
                                    cfg.acc_row_bytes, self._acc_rows(first, m)))
        return stores

    def _matmul(self, node: MatMul):
        cfg, p, r, c = self.cfg, self.p, self.cfg.rows, self.cfg.cols
        a, b, out = node.a, node.b, node.out
        m, k, n = a.rows, b.rows, b.cols
        k_tiles, n_tiles = -(-k // r), -(-n // c)
        if b.block_cols not in (0, c) or b.column(0) % cfg.bus_bytes or \
                b.pitch % cfg.bus_bytes or (not b.block_cols and b.pitch < n_tiles * c):
            raise CompileError(f"matmul {out.name}: its right operand must be row-major with "
                               f"whole vectors a row, or blocked by {c} columns, bus-aligned")
        rec_slot = _round_up(8, p)
        a_bytes, b_bytes, o_bytes = k_tiles * m * p, n_tiles * k_tiles * r * p, m * n_tiles * p
        a_at, b_at, o_at, rec_at = self._frame(a_bytes, b_bytes, o_bytes, rec_slot)
        if n_tiles * m > cfg.acc_depth:
            raise CompileError(f"matmul {out.name}: {m} x {n} does not fit the accumulators")
        acc0 = self.acc.frame(n_tiles * m)
        (mult,), (shift,) = fully_connected_multipliers(a.quant.scale, [b.quant.scale],
                                                        out.quant.scale)
        record = self._requant_record(int(mult), int(shift), out.quant.zero_point)
        step = _Step(loads=self._tiles_in(a, a_at))
        step.loads += [self._load(b.column(t * c), b_at + t * k_tiles * r * p, k, c, b.pitch,
                                  p) for t in range(n_tiles)]
        step.loads.append(self._const(("record", record.tobytes()), record, rec_at))
        for t in range(n_tiles):
            for u in range(k_tiles):
                step.computes.append(self._gemm(
                    a_at + u * m * p, b_at + (t * k_tiles + u) * r * p, acc0 + t * m, m,
                    min(r, k - u * r), min(c, n - t * c), u > 0))
        self._requantize(step, range(n_tiles), m, n, acc0, o_at, n_tiles * p,
                         [rec_at] * n_tiles, 0)
        step.stores += self._rows_out(o_at, out)
        self.steps.append(step)

    def _row_op(self, node):
        """ADD, LUT, SOFTMAX and LAYERNORM: rows in, one VECTOR, rows out."""
        x, out = node.inputs[0], node.out
        row = self._padded_row(x)
        length = x.cols
        if isinstance(node, Add):
            op, p = VectorOp.ADD, node.params
            record = pack_record(op, length, {
                "input1_multiplier": p.input1_multiplier, "input1_shift": p.input1_shift,
                "input2_multiplier": p.input2_multiplier, "input2_shift": p.input2_shift,
                "output_multiplier": p.output_multiplier, "output_shift": p.output_shift,
                "input1_zero_point": p.input1_zero_point,
                "input2_zero_point": p.input2_zero_point,
                "output_zero_point": p.output_zero_point, "act_min": -128, "act_max": 127})
        elif isinstance(node, Lut):
            op, record = VectorOp.LUT, pack_record(VectorOp.LUT, length,
                                                   {"table": node.table.view(np.uint8)})
        elif isinstance(node, Softmax):
            op = VectorOp.SOFTMAX
            record = pack_record(op, length, {"exp_table": softmax_exp_table(node.params)})
        elif isinstance(node, LayerNorm):
            op, p = VectorOp.LAYERNORM, node.params
            record = pack_record(op, length, {
                "epsilon": p.epsilon, "gamma_shift": p.gamma_shift,
                "output_zero_point": p.output_zero_point, "gamma": p.gamma, "beta": p.beta})
        else:
            raise CompileError(f"unknown node {type(node).__name__}")
        rows = x.rows
        operands = len(node.inputs)
        rec_at, *src, dst = self._frame(len(record), *[rows * row] * (operands + 1))
        step = _Step()
        for t, at in zip(node.inputs, src, strict=True):
            step.loads += self._rows_in(t, at)
        step.loads.append(self._const(("record", record.tobytes()), record, rec_at))
        step.computes.append(self._vector(
            op, rows=rows, length=length, src=src[0], src_stride=row, dst=dst, dst_stride=row,
            params=rec_at, src2=src[1] if operands > 1 else 0,
            src2_stride=row if operands > 1 else 0,
            src_pages=self._spad(src[0], rows * row),
            src2_pages=self._spad(src[1], rows * row) if operands > 1 else ()))
        step.stores += self._rows_out(dst, out)
        self.steps.append(step)

    # -- the program -------------------------------------------------------------------------

    def program(self):
        """The steps in order, each LOAD moved ahead of up to :data:`LOOKAHEAD` earlier steps
        when it is independent of them (so weights stream in while earlier nodes compute),
        scheduled."""
        sched = Scheduler()
        early = [[] for _ in self.steps]
        for s, step in enumerate(self.steps):
            for load in step.loads:
                at = s
                while at > max(0, s - LOOKAHEAD) and self._independent(load, self.steps[at - 1]):
                    at -= 1
                early[at].append(load)
        for step, loads in zip(self.steps, early, strict=True):
            for opcode, fields, reads, writes in [*loads, *step.computes, *step.stores]:
                sched.emit(opcode, reads=reads, writes=writes, **fields)
        return Program(sched.words(), self.macs, sched.instructions)

    @staticmethod
    def _independent(load, step):
        """Whether ``load`` may run before everything of ``step``: it writes nothing ``step``
        touches and reads nothing ``step`` writes."""
        _, _, reads, writes = load
        written, touched = step.touched(()), step.touched(("reads",))
        return not (any(page in touched for page in writes) or
                    any(page in written for page in reads))


def compile_graph(graph: Graph, config: JalapenoConfig, consts: ConstPool):
    """Lower ``graph`` to a program for ``config``; new constants go to ``consts.pending``.

    Returns
    -------
    Program

    Raises
    ------
    CompileError
        If a node does not fit the configuration.
    """
    lowering = _Lowering(config, consts)
    for node in graph.nodes:
        lowering.node(node)
    return lowering.program()
