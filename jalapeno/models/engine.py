"""The int8 transformer on the accelerator: one *step* runs the model on a batch of rows, each
row one token of one sequence at its position, with a KV cache per sequence in device memory.

A step is ``layers + 1`` programs (graphs run by a :class:`~jalapeno.runtime.session.Session`
or its reference):

1. layer 0's front: LAYERNORM, then the ``q``, ``k`` and ``v`` projections of every row;
2. for each layer: its back — per row and head, the scores ``q K^T`` over the row's own
   sequence up to its position, SOFTMAX, a LUT that moves the probabilities to a zero point
   of 0 (so ``P V`` is a plain int8 product), ``P V`` — then the output projection, the
   residual ADD, LAYERNORM, the feed-forward layers with the GELU table, the second ADD; and
   the next layer's front, or at the end the final LAYERNORM and the int32 logits.

Between programs the host moves each row's new ``k`` and ``v`` into its sequence's cache:
``v`` as a row of ``V`` (``[context, d_model]``), ``k`` as a column of ``K^T``
(``[d_model, context]``, the layout whose rows a GEMM takes as weight rows). The DMA moves
whole bus words, so it cannot write one column; the host keeps a copy of each ``K^T`` and
writes it whole. Everything else the host does is the embedding lookup before the first
program and reading the logits after the last.

A row's attention reads only its own sequence's positions ``0 .. position``, so a step may
mix rows of many sequences (batched decoding) or many positions of one (prefill), and a token
costs ``O(context)``: the cache holds every earlier key and value.
"""

import math

import numpy as np

from jalapeno.compiler.graph import (
    Add,
    Arena,
    Graph,
    LayerNorm,
    Linear,
    Lut,
    MatMul,
    Quant,
    Softmax,
    Tensor,
    read_tensor,
)
from jalapeno.runtime.session import CONST_LIMIT, PROGRAM_BASE
from verification.models.lut import gelu_table
from verification.models.softmax import SOFTMAX_OUTPUT

from .quantize import LAYERNORM_EPSILON, QuantModel

__all__ = ["Engine", "PROBABILITY", "probability_table", "MAX_SLOTS"]

#: Quantization of the attention probabilities ``P V`` multiplies: zero point 0, 1/128 steps.
PROBABILITY = Quant(1 / 128, 0)
#: Sequences whose caches fit the memory map.
MAX_SLOTS = 16


def probability_table():
    """The LUT from SOFTMAX's output (``1/256``, zero point -128) to :data:`PROBABILITY`."""
    p = np.arange(-128, 128)
    return np.clip((p + 128 + 1) // 2, 0, 127).astype(np.int8)


class Engine:
    """Runs a :class:`QuantModel` step by step on ``session`` (a Session or ReferenceSession).

    Parameters
    ----------
    qm : QuantModel
    session : Session or ReferenceSession
    slots : int
        Sequences with a cache, at most :data:`MAX_SLOTS`.
    """

    def __init__(self, qm: QuantModel, session, *, slots=MAX_SLOTS):
        if not 1 <= slots <= MAX_SLOTS:
            raise ValueError(f"slots must be in 1..{MAX_SLOTS}, not {slots}")
        self.qm, self.session, self.slots = qm, session, slots
        cfg = self.cfg = qm.config
        self.hw = session.config
        self.cache_bytes = cfg.d_model * cfg.context
        self.cache_base = CONST_LIMIT
        self.act_base = self.cache_base + 2 * cfg.layers * MAX_SLOTS * self.cache_bytes
        self.keys = np.zeros((slots, cfg.layers, cfg.d_model, cfg.context), np.int8)
        q = qm.quants
        self._gelu = {i: gelu_table((q[f"l{i}.ff1"].scale, q[f"l{i}.ff1"].zero_point),
                                    (q[f"l{i}.gelu"].scale, q[f"l{i}.gelu"].zero_point))
                      for i in range(cfg.layers)}

    # -- memory ------------------------------------------------------------------------------

    def _cache(self, slot, layer, kind):
        """The ``K^T`` (``kind`` "k") or ``V`` cache of ``slot`` at ``layer``."""
        cfg, qm = self.cfg, self.qm
        index = (slot * cfg.layers + layer) * 2 + (kind == "v")
        addr = self.cache_base + index * self.cache_bytes
        c = self.hw.cols
        if kind == "k":
            scale = qm.quants[f"l{layer}.k"].scale / math.sqrt(cfg.head_dim)
            return Tensor(f"k{slot}.{layer}", addr, cfg.d_model, cfg.context, c,
                          Quant(scale, 0), c, cfg.d_model * c)
        return Tensor(f"v{slot}.{layer}", addr, cfg.context, cfg.d_model, c,
                      qm.quants[f"l{layer}.v"], c, cfg.context * c)

    def _put(self, t: Tensor, values):
        """Write int8 rows into tensor ``t``, block by block (contiguous rows of a block)."""
        values = np.asarray(values, np.int8)
        at = 0
        for block in t.blocks():
            data = np.zeros((t.rows, block.pitch), np.int8)
            data[:, :block.cols] = values[:, at:at + block.cols]
            at += block.cols
            self.session.write(block.addr, data.view(np.uint8).reshape(-1)[:block.nbytes])

    def _get(self, t: Tensor):
        raw = self.session.read(t.addr, t.rows * t.pitch)
        return read_tensor(np.concatenate([raw, np.zeros(t.pitch, np.uint8)]),
                           Tensor(t.name, 0, t.rows, t.cols, t.pitch, t.quant))

    # -- graphs ------------------------------------------------------------------------------

    def _front(self, g, arena, layer, x):
        qm, q, cfg = self.qm, self.qm.quants, self.cfg
        m = x.rows
        gamma, beta = qm.norms[f"l{layer}.ln1"]
        h = g.add(LayerNorm(x, gamma, beta, LAYERNORM_EPSILON,
                            arena.tensor("h", m, cfg.d_model, q[f"l{layer}.ln1"])))
        return [g.add(Linear(h, qm.linears[f"l{layer}.{p}"],
                             arena.tensor(p, m, cfg.d_model, q[f"l{layer}.{p}"])))
                for p in ("q", "k", "v")]

    def _back(self, g, arena, layer, x, qt, rows):
        qm, q, cfg = self.qm, self.qm.quants, self.cfg
        m, hd = x.rows, cfg.head_dim
        attn = arena.tensor("attn", m, cfg.d_model, q[f"l{layer}.attn"])
        # The (row, head) pairs whose rows have one length share a SOFTMAX and a LUT (each
        # instruction loads its 256-entry table first).
        groups = {}
        for r, (_, _, position) in enumerate(rows):
            groups.setdefault(position + 1, []).extend((r, h) for h in range(cfg.heads))
        for length, pairs in groups.items():
            scores = arena.tensor("s", len(pairs), length, q[f"l{layer}.scores"])
            for i, (r, head) in enumerate(pairs):
                keys = self._cache(rows[r][0], layer, "k")
                g.add(MatMul(qt.view(row=r, rows=1, col=head * hd, cols=hd),
                             keys.view(row=head * hd, rows=hd, cols=length),
                             scores.view(row=i, rows=1)))
            probs = g.add(Softmax(scores, arena.tensor("p", len(pairs), length,
                                                       Quant(*SOFTMAX_OUTPUT))))
            probs = g.add(Lut(probs, probability_table(),
                              arena.tensor("p0", len(pairs), length, PROBABILITY)))
            for i, (r, head) in enumerate(pairs):
                values = self._cache(rows[r][0], layer, "v")
                g.add(MatMul(probs.view(row=i, rows=1),
                             values.view(rows=length, col=head * hd, cols=hd),
                             attn.view(row=r, rows=1, col=head * hd, cols=hd)))
        d = cfg.d_model
        proj = g.add(Linear(attn, qm.linears[f"l{layer}.o"],
                            arena.tensor("proj", m, d, q[f"l{layer}.proj"])))
        x1 = g.add(Add(x, proj, arena.tensor("x1", m, d, q[f"l{layer}.resid1"])))
        gamma, beta = qm.norms[f"l{layer}.ln2"]
        h2 = g.add(LayerNorm(x1, gamma, beta, LAYERNORM_EPSILON,
                             arena.tensor("h2", m, d, q[f"l{layer}.ln2"])))
        f1 = g.add(Linear(h2, qm.linears[f"l{layer}.ff1"],
                          arena.tensor("f1", m, cfg.d_ff, q[f"l{layer}.ff1"])))
        act = g.add(Lut(f1, self._gelu[layer],
                        arena.tensor("gelu", m, cfg.d_ff, q[f"l{layer}.gelu"])))
        f2 = g.add(Linear(act, qm.linears[f"l{layer}.ff2"],
                          arena.tensor("f2", m, d, q[f"l{layer}.ff2"])))
        return g.add(Add(x1, f2, arena.tensor("x2", m, d, q[f"l{layer}.resid2"])))

    def _head(self, g, arena, x):
        qm, cfg = self.qm, self.cfg
        gamma, beta = qm.norms["lnf"]
        h = g.add(LayerNorm(x, gamma, beta, LAYERNORM_EPSILON,
                            arena.tensor("hf", x.rows, cfg.d_model, qm.quants["lnf"])))
        return g.add(Linear(h, qm.linears["lm"],
                            arena.tensor("logits", x.rows, cfg.vocab, None, itemsize=4)))

    def _store_kv(self, layer, rows, k, v):
        """Move the step's new keys and values into their sequences' caches."""
        keys, values = self._get(k), self._get(v)
        touched = set()
        for r, (slot, _, position) in enumerate(rows):
            self.keys[slot, layer, :, position] = keys[r]
            touched.add(slot)
            cache = self._cache(slot, layer, "v")
            self._put(cache.view(row=position, rows=1), values[r:r + 1])
        for slot in sorted(touched):
            self._put(self._cache(slot, layer, "k"), self.keys[slot, layer])

    # -- steps -------------------------------------------------------------------------------

    def step(self, rows):
        """Run the model on ``rows``, a list of ``(slot, token, position)``; a slot's rows
        must come in position order and its cache must hold every earlier position.

        Returns
        -------
        ndarray of float64, shape (len(rows), vocab)
            The logits of each row.
        """
        cfg = self.cfg
        if not rows:
            raise ValueError("a step needs at least one row")
        for slot, token, position in rows:
            if not 0 <= slot < self.slots:
                raise ValueError(f"slot {slot} is not in 0..{self.slots - 1}")
            if not 0 <= position < cfg.context:
                raise ValueError(f"position {position} is outside the context of "
                                 f"{cfg.context}")
            if not 0 <= token < cfg.vocab:
                raise ValueError(f"token {token} is not in the vocabulary")
        arena = Arena(self.act_base, PROGRAM_BASE, self.hw.cols)
        m = len(rows)
        x = arena.tensor("x", m, cfg.d_model, self.qm.quants["embed"])
        tokens = [t for _, t, _ in rows]
        self._put(x, self.qm.embed(tokens, [p for _, _, p in rows]))
        g = Graph()
        qkv = self._front(g, arena, 0, x)
        for layer in range(cfg.layers):
            self.session.execute(g)
            self._store_kv(layer, rows, qkv[1], qkv[2])
            g = Graph()
            x = self._back(g, arena, layer, x, qkv[0], rows)
            if layer + 1 < cfg.layers:
                qkv = self._front(g, arena, layer + 1, x)
        logits = self._head(g, arena, x)
        self.session.execute(g)
        acc = self._get(logits).astype(np.float64)
        lm = self.qm.linears["lm"]
        return acc * self.qm.quants["lnf"].scale * lm.scale
