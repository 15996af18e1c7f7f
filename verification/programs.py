"""Programs for the core: seeded random instruction streams (mostly well-formed instructions
with small operands inside the scratchpad, the accumulator and the window, some corrupted, so
that every error code and every clean END is reached) and hand-built ones: double-buffered
GEMMs, a simple K-tiled one (:func:`gemm_program`) and the tiled one the performance bench
runs (:func:`tiled_gemm`), both built on one pipeline of LOAD, GEMM and STORE steps. The
golden model and the RTL run the same programs.
"""

from dataclasses import dataclass

import numpy as np

from jalapeno.asm import to_bytes
from jalapeno.isa import (
    FORMATS,
    HEADER,
    INSTRUCTION_BITS,
    INSTRUCTION_BYTES,
    MAX_TOKENS,
    QUEUE_OF,
    Opcode,
    Queue,
    VectorOp,
    encode,
    record_layout,
)
from rtl.config import JalapenoConfig
from verification.models.core import vector_pitch

__all__ = ["OPCODES", "token_flags", "random_program", "place_program", "gemm_program", "GemmPlan",
           "GemmLayout", "plan_gemm", "tiled_gemm", "system_gemm_shapes"]

#: The opcodes a stream draws by default (END only comes last).
OPCODES = (Opcode.LOAD, Opcode.STORE, Opcode.GEMM, Opcode.VECTOR, Opcode.SYNC)


def token_flags(rng, queue, tokens, *, rate=0.25, orphan=0.05, wrong=0.0):
    """Random token flags for ``queue`` (a ``dict`` of the flags set, for ``encode``).

    Each flag towards a neighbour is set with probability ``rate``; a pop mostly only when an
    earlier push left a token (``tokens``, per direction ``(from, to)``, updated), else with
    probability ``orphan``, so most streams run deep. With probability ``wrong`` a flag
    towards a queue that ``queue`` does not have is set as well. ``rng`` needs only
    ``random()``: a ``numpy.random.Generator`` or a ``random.Random``.
    """
    flags = {}
    for side, step in (("prev", -1), ("next", 1)):
        other = queue + step
        if not Queue.LOAD <= other <= Queue.STORE:
            if wrong and rng.random() < wrong:
                flags[f"{'pop' if rng.random() < 0.5 else 'push'}_{side}"] = 1
            continue
        if rng.random() < rate and (tokens[(other, queue)] or rng.random() < orphan):
            flags[f"pop_{side}"] = 1
            tokens[(other, queue)] = max(0, tokens[(other, queue)] - 1)
        if rng.random() < rate:
            flags[f"push_{side}"] = 1
            tokens[(queue, other)] += 1
    return flags


def _aligned(rng, lo, hi, step):
    """A multiple of ``step`` in ``[lo, hi)``, or ``lo`` if there is none."""
    count = (hi - lo) // step
    return lo + step * int(rng.integers(count)) if count > 0 else lo


def _instruction(rng, cfg, window, pitch, tokens, opcodes):
    """One mostly well-formed instruction."""
    opcode = opcodes[int(rng.integers(len(opcodes)))]
    spad, nb = cfg.spad_bytes, cfg.bus_bytes
    if opcode in (Opcode.LOAD, Opcode.STORE):
        rows, row_bytes = int(rng.integers(0, 4)), int(rng.integers(0, 6 * nb))
        local_hi = spad if opcode == Opcode.LOAD or rng.random() < 0.5 else \
            cfg.acc_base + cfg.acc_bytes
        local_lo = cfg.acc_base if local_hi > spad else 0
        fields = {
            "ext_addr": _aligned(rng, window[0], window[1] - 512, nb),
            "ext_stride": nb * int(rng.integers(0, 16)),
            "local_addr": _aligned(rng, local_lo, local_hi - 256, nb),
            "local_stride": nb * int(rng.integers(0, 16)),
            "rows": rows, "row_bytes": row_bytes,
        }
    elif opcode == Opcode.GEMM:
        m = int(rng.integers(0, 9))
        fields = {
            "act_addr": _aligned(rng, 0, spad - 16 * pitch, pitch),
            "w_addr": _aligned(rng, 0, spad - cfg.rows * pitch, pitch),
            "acc_addr": int(rng.integers(0, cfg.acc_depth - m + 1)), "m": m,
            "k": int(rng.integers(0, cfg.rows + 1)), "n": int(rng.integers(0, cfg.cols + 1)),
            "accumulate": int(rng.integers(2)),
        }
    elif opcode == Opcode.VECTOR:
        op = VectorOp(int(rng.integers(len(VectorOp))))
        rows, length = int(rng.integers(0, 3)), int(rng.integers(1, 3 * cfg.cols + 1))
        beats = -(-length // cfg.cols)
        span = 3 * beats * pitch
        if op == VectorOp.REQUANTIZE:
            row = cfg.acc_row_bytes
            src = cfg.acc_base + row * int(rng.integers(0, cfg.acc_depth - 3 * beats))
            src_stride = row * beats
        else:
            src, src_stride = _aligned(rng, 0, spad - span, pitch), beats * pitch
        record = -(-record_layout(op, length)[1] // pitch) * pitch
        fields = {
            "op": op, "rows": rows, "length": length, "src": src, "src_stride": src_stride,
            "src2": _aligned(rng, 0, spad - span, pitch), "src2_stride": beats * pitch,
            "dst": _aligned(rng, 0, spad - span, pitch), "dst_stride": beats * pitch,
            "params": _aligned(rng, 0, spad - record, pitch),
        }
    else:
        fields = {"queue": int(rng.integers(0, 3))}
    queue = Queue(fields["queue"]) if opcode == Opcode.SYNC else QUEUE_OF[opcode]
    fields.update(token_flags(rng, queue, tokens))
    return encode(opcode, **fields)


def _corrupt(rng, word):
    """``word`` with one kind of damage: a random bit, a random field's value, the opcode, or
    the whole word."""
    kind = int(rng.integers(4))
    if kind == 0:
        return word ^ (1 << int(rng.integers(INSTRUCTION_BITS)))
    if kind == 1:
        opcode = Opcode(word & 0xF)
        fields = HEADER[1:] + FORMATS[opcode]
        if not fields:
            return word | 1 << 200
        f = fields[int(rng.integers(len(fields)))]
        mask = (f.limit - 1) << f.lsb
        return word & ~mask | (int(rng.integers(f.limit)) << f.lsb)
    if kind == 2:
        return word & ~0xF | int(rng.choice([0, 7, 8, 15]))
    return int.from_bytes(rng.bytes(INSTRUCTION_BYTES), "little")


def random_program(rng, config: JalapenoConfig, window, *, length, corrupt=0.05, end=0.9,
                   flood=0.005, opcodes=OPCODES):
    """A random stream of ``length`` instructions (or fewer: it stops at its END), or with
    probability ``flood`` one of ``MAX_TOKENS + 1`` token pushes (a token overflow).

    Parameters
    ----------
    rng : numpy.random.Generator
    config : JalapenoConfig
    window : (int, int)
        The memory window the DMA fields aim at (a few land outside it).
    length : int
        Instructions, at least 1.
    corrupt : float
        Probability that an instruction is damaged (:func:`_corrupt`).
    end : float
        Probability that the last instruction is END (else the program overruns).
    flood : float
        Probability of the token-overflow stream instead.
    opcodes : sequence of Opcode
        The opcodes drawn (corruption may still make any other).

    Returns
    -------
    list of int
    """
    if rng.random() < flood:
        return [encode(Opcode.SYNC, queue=Queue.LOAD, push_next=1)] * (MAX_TOKENS + 1)
    pitch = vector_pitch(config)
    tokens = {(a, b): 0 for a in Queue for b in Queue if abs(a - b) == 1}
    words = [_instruction(rng, config, window, pitch, tokens, opcodes) for _ in range(length - 1)]
    words = [_corrupt(rng, w) if rng.random() < corrupt else w for w in words]
    words.append(encode(Opcode.END) if rng.random() < end else
                 _instruction(rng, config, window, pitch, tokens, opcodes))
    return words


def place_program(memory, base, words):
    """Write instruction ``words`` into ``memory`` (uint8) from byte ``base``."""
    data = to_bytes(words)
    memory[base:base + len(data)] = np.frombuffer(data, np.uint8)


# -- double-buffered GEMM programs -----------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    """One buffer's worth of a pipelined GEMM program: the LOADs that fill a scratchpad
    buffer, the GEMMs that read it (all into output block ``output``), and, if this is that
    block's last step, the STOREs of the block (else none)."""

    loads: tuple
    gemms: tuple
    output: int
    stores: tuple = ()


def _pipeline(steps):
    """The instructions of ``steps`` (:class:`_Step`, in order), double buffered, and END.

    Steps alternate between two scratchpad buffers and output blocks between two regions of
    the accumulator, so the tokens are:

    * load -> compute: the last LOAD of a step gives one, its first GEMM takes it;
    * compute -> load: the last GEMM of step ``s`` gives one when step ``s + 2`` exists, and
      the first LOAD of step ``s + 2`` (into the same buffer) takes it;
    * compute -> store: the last GEMM of an output block gives one, its first STORE takes it;
    * store -> compute: the last STORE of output block ``o`` gives one when block ``o + 2``
      exists, and the first GEMM of block ``o + 2`` (into the same region) takes it.

    The LOADs of step ``s + 1`` come before the GEMMs of step ``s`` in program order: the
    decoder dispatches in order and a queue holds only a few instructions, so LOADs placed
    after a long run of GEMMs would reach the load queue only as those GEMMs drain, and the
    next buffer would not fill while this one is being multiplied.
    """
    count = len(steps)
    blocks = max(step.output for step in steps) + 1
    first_of = {}
    for s, step in enumerate(steps):
        first_of.setdefault(step.output, s)
        if not step.loads or not step.gemms:
            raise ValueError("every step needs a LOAD and a GEMM")

    def loads(s):
        last = len(steps[s].loads) - 1
        return [encode(Opcode.LOAD, **f, pop_next=int(s >= 2 and i == 0),
                       push_next=int(i == last)) for i, f in enumerate(steps[s].loads)]

    words = loads(0)
    for s, step in enumerate(steps):
        if s + 1 < count:
            words += loads(s + 1)
        last = len(step.gemms) - 1
        starts_block = first_of[step.output] == s and step.output >= 2
        for i, f in enumerate(step.gemms):
            words.append(encode(
                Opcode.GEMM, **f, pop_prev=int(i == 0), pop_next=int(i == 0 and starts_block),
                push_prev=int(i == last and s + 2 < count),
                push_next=int(i == last and bool(step.stores))))
        last = len(step.stores) - 1
        words += [encode(Opcode.STORE, **f, pop_prev=int(i == 0),
                         push_prev=int(i == last and step.output + 2 < blocks))
                  for i, f in enumerate(step.stores)]
    return words + [encode(Opcode.END)]


def _dma(ext_addr, local_addr, rows, row_bytes, ext_stride=0, local_stride=0):
    return {"ext_addr": ext_addr, "local_addr": local_addr, "rows": rows,
            "row_bytes": row_bytes, "ext_stride": ext_stride, "local_stride": local_stride}


def _contiguous(ext_addr, local_addr, nbytes, *, row=4096):
    """DMA fields moving ``nbytes`` contiguous bytes: rows of ``row`` bytes, then the rest."""
    rows, rest = divmod(nbytes, row)
    fields = [_dma(ext_addr, local_addr, rows, row, row, row)] if rows else []
    if rest:
        fields.append(_dma(ext_addr + rows * row, local_addr + rows * row, 1, rest))
    return fields


def gemm_program(cfg, a_at, w_at, out_at, m, k_tiles):
    """``C[m x cols] = A[m x k_tiles*rows] @ W`` in K-tiles that accumulate, double
    buffered: the load queue loads tile ``j + 1`` while the compute queue multiplies tile
    ``j``; the store queue stores the accumulator rows at the end.

    A is row-major at ``a_at`` (``m`` rows of ``k_tiles * rows`` bytes), W row-major at
    ``w_at`` (``k_tiles * rows`` rows of ``cols`` bytes); C goes to ``out_at`` as ``m``
    accumulator rows (``acc_row_bytes`` each, int32 lanes). Each tile is two 2-D LOADs of
    short rows: simple, not fast (:func:`tiled_gemm` is the fast one)."""
    rows, cols, pitch = cfg.rows, cfg.cols, vector_pitch(cfg)
    tile_bytes = (m + rows) * pitch
    steps = []
    for j in range(k_tiles):
        buf = (j % 2) * tile_bytes
        steps.append(_Step(
            loads=(_dma(a_at + j * rows, buf, m, rows, k_tiles * rows, pitch),
                   _dma(w_at + j * rows * cols, buf + m * pitch, rows, cols, cols, pitch)),
            gemms=({"act_addr": buf, "w_addr": buf + m * pitch, "acc_addr": 0, "m": m,
                    "k": rows, "n": cols, "accumulate": int(j > 0)},),
            output=0,
            stores=(_dma(out_at, cfg.acc_base, 1, m * cfg.acc_row_bytes),)
            if j == k_tiles - 1 else ()))
    return _pipeline(steps)


def _round_up(value, step):
    return -(-value // step) * step


def _positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class GemmPlan:
    """How :func:`tiled_gemm` cuts ``C = A @ W`` into instructions.

    Attributes
    ----------
    m_block : int
        Rows of A (and C) per M block: the ``m`` of each GEMM (the last block may be
        shorter).
    n_group : int
        N blocks (``cols`` columns of W and C each) computed together from one load of A:
        each A column block in the scratchpad serves ``n_group`` GEMMs. An output block is
        ``n_group`` N blocks of one M block, ``n_group * m_block`` accumulator rows.
    k_step : int
        K blocks (``rows`` rows of W each) per scratchpad buffer: a step loads ``k_step``
        column blocks of A and ``k_step x n_group`` weight tiles, then runs their
        ``k_step * n_group`` GEMMs.
    """

    m_block: int
    n_group: int
    k_step: int


#: Cycles beyond ``rows + cols`` that a GEMM giving a token costs after its reads (the
#: compute queue waits for the matrix unit to write the tile before giving it), for
#: :func:`plan_gemm`'s estimate.
_DRAIN = 11


def _estimate(cfg, m, k, n, plan):
    """Estimated cycles of :func:`tiled_gemm` with ``plan``: the largest of

    * the compute queue's time: ``m + rows + 1`` cycles a GEMM (its vector reads through the
      scratchpad's one port, and a cycle between GEMMs), and a drain of the matrix unit per
      step (the GEMM giving a token waits for its tile to be written);
    * the accumulator's: it does a row update (a result row of a GEMM) or a STORE's read (one
      per bus word) each cycle, never both;
    * the bus's reads (A, W and the instructions), at 85 % of one beat per cycle.

    The compute queue's time includes the last output block's store, which follows it; the
    accumulator's includes it already. The first K block's load, a short wait with every
    plan, is left out."""
    rows, cols, nb, pitch = cfg.rows, cfg.cols, cfg.bus_bytes, vector_pitch(cfg)
    kb, nbk = k // rows, n // cols
    mbk = -(-m // plan.m_block)
    groups, k_steps = -(-nbk // plan.n_group), -(-kb // plan.k_step)
    steps = mbk * groups * k_steps
    gemms = kb * nbk * mbk
    compute = kb * nbk * (m + mbk * (rows + 1)) + steps * (rows + cols + _DRAIN)
    accumulator = m * nbk * (kb + cfg.acc_row_bytes // min(nb, cfg.acc_row_bytes))
    w_tile = _round_up(rows * pitch, nb)
    instructions = gemms + 2 * steps + 2 * mbk * groups + 1
    read = (groups * m * kb * pitch + mbk * kb * nbk * w_tile
            + instructions * INSTRUCTION_BYTES) / nb / 0.85
    tail = plan.n_group * plan.m_block * cfg.acc_row_bytes / nb
    return max(compute + tail, accumulator, read)


def _balanced(total, limit):
    """The distinct sizes ``ceil(total / parts)`` that are at most ``limit``."""
    return sorted({-(-total // parts) for parts in range(1, total + 1)
                   if -(-total // parts) <= limit})


def _check_plan(cfg, plan):
    """Raise ``ValueError`` unless ``plan`` fits ``cfg``'s accumulator and scratchpad."""
    half = cfg.acc_depth // 2
    pitch, nb = vector_pitch(cfg), cfg.bus_bytes
    unit = max(1, nb // pitch)
    for name in ("m_block", "n_group", "k_step"):
        _positive(name, getattr(plan, name))
    if plan.m_block % unit:
        raise ValueError(f"m_block must be a multiple of {unit} (bus_bytes / vector pitch), "
                         f"not {plan.m_block}")
    if plan.m_block * plan.n_group > half:
        raise ValueError(f"m_block * n_group must be at most {half} (half the accumulator), "
                         f"not {plan.m_block * plan.n_group}")
    w_tile = _round_up(cfg.rows * pitch, nb)
    if plan.n_group * w_tile > 1 << 15:
        raise ValueError(f"n_group must be at most {(1 << 15) // w_tile}, not {plan.n_group}")
    buffer = plan.k_step * (plan.m_block * pitch + plan.n_group * w_tile)
    if 2 * buffer > cfg.spad_bytes:
        raise ValueError(f"two buffers of {plan.k_step} K blocks need {2 * buffer} bytes, "
                         f"more than the scratchpad's {cfg.spad_bytes}")


def plan_gemm(cfg, m, k, n):
    """The :class:`GemmPlan` of ``C = A @ W`` (``m x k`` by ``k x n``) with the fewest
    estimated cycles.

    Larger M blocks cost fewer cycles per MAC (a GEMM reads ``m + rows`` vectors through the
    scratchpad's one port for ``m`` rows of results), but each output block takes
    ``n_group * m_block`` of the ``acc_depth / 2`` accumulator rows of its half, and every
    output block reloads its M block's A: with ``n_group`` 1 the A traffic alone nears one
    bus beat per cycle. :func:`_estimate` weighs these. When the accumulator is what limits
    (its time is the same for every plan), the longest M blocks win, and about eight steps
    per output block: the matrix unit's drains between steps are then cycles the STOREs
    read the accumulator in, and the stores keep up better than with fewer, longer steps
    (measured on the 256 x 256 x 256 bench).
    """
    _check_shape(cfg, m, k, n)
    half = cfg.acc_depth // 2
    pitch, nb = vector_pitch(cfg), cfg.bus_bytes
    unit = max(1, nb // pitch)
    w_tile = _round_up(cfg.rows * pitch, nb)
    best, k_blocks = None, k // cfg.rows
    for m_block in {_round_up(size, unit) for size in _balanced(m, half)}:
        if m_block > half:
            continue
        for n_group in _balanced(n // cfg.cols, min(half // m_block, (1 << 15) // w_tile)):
            per_k = m_block * pitch + n_group * w_tile
            for k_step in _balanced(k_blocks, cfg.spad_bytes // (2 * per_k)):
                plan = GemmPlan(m_block, n_group, k_step)
                cost = (round(_estimate(cfg, m, k, n, plan)), -m_block,
                        abs(k_step - k_blocks / 8))
                if best is None or cost < best[0]:
                    best = cost, plan
    if best is None:
        raise ValueError(f"no plan fits a {cfg.rows}-row vector tile into the scratchpad")
    return best[1]


def _check_shape(cfg, m, k, n):
    for name, value in (("m", m), ("k", k), ("n", n)):
        _positive(name, value)
    if k % cfg.rows:
        raise ValueError(f"k must be a multiple of rows ({cfg.rows}), not {k}")
    if n % cfg.cols:
        raise ValueError(f"n must be a multiple of cols ({cfg.cols}), not {n}")


@dataclass(frozen=True)
class GemmLayout:
    """Where :func:`tiled_gemm` expects A and W and leaves C, and how each is laid out.

    Every vector the array reads is stored as the scratchpad holds it, ``pitch`` bytes (the
    scratchpad's vector pitch) with zeros after its ``rows`` or ``cols`` bytes, so a LOAD is
    a plain copy of long rows:

    * A, at ``a_at``: ``k / rows`` column blocks, block ``j`` at ``a_at + j * a_stride``
      holding A's rows ``[:, j*rows:(j+1)*rows]`` one vector each (row ``i`` at
      ``i * pitch``); an M block of a column block is one contiguous row of a LOAD.
    * W, at ``w_at``: ``rows x cols`` tiles, tile ``(j, q)`` (W's rows ``j*rows...``, columns
      ``q*cols...``) at ``w_at + (j * n / cols + q) * w_tile``, its ``rows`` rows a vector
      each.
    * C, at ``c_at``: the output blocks in program order (M block by M block, N groups in
      turn), each as the STORE leaves it: its N blocks one after the other, each
      ``m_block`` accumulator rows of ``acc_row_bytes`` (``cols`` little-endian int32
      lanes, zero padded). :meth:`read_c` reassembles it.

    Attributes
    ----------
    m, k, n : int
        The GEMM's shape.
    plan : :class:`GemmPlan`
    a_at, w_at, c_at : int
        Byte addresses of the three regions.
    """

    config: JalapenoConfig
    m: int
    k: int
    n: int
    plan: GemmPlan
    a_at: int
    w_at: int
    c_at: int

    @classmethod
    def packed(cls, cfg, m, k, n, *, at, plan=None, align=4096):
        """The layout with A, W and C one after another from ``at``, each starting at a
        multiple of ``align``; ``plan`` is :func:`plan_gemm`'s unless given."""
        plan = plan_gemm(cfg, m, k, n) if plan is None else plan
        layout = cls(cfg, m, k, n, plan, at, at, at)
        w_at = at + _round_up(layout.a_bytes, align)
        c_at = w_at + _round_up(layout.w_bytes, align)
        return cls(cfg, m, k, n, plan, at, w_at, c_at)

    @property
    def end(self):
        """The byte after C."""
        return self.c_at + self.c_bytes

    @property
    def pitch(self):
        return vector_pitch(self.config)

    @property
    def a_stride(self):
        """Bytes from one column block of A to the next."""
        return _round_up(self.m * self.pitch, self.config.bus_bytes)

    @property
    def w_tile(self):
        """Bytes from one weight tile to the next."""
        return _round_up(self.config.rows * self.pitch, self.config.bus_bytes)

    @property
    def a_bytes(self):
        return self.k // self.config.rows * self.a_stride

    @property
    def w_bytes(self):
        return self.k // self.config.rows * self.n // self.config.cols * self.w_tile

    @property
    def c_bytes(self):
        *_, (offset, _, rows, _, count) = self.output_blocks()
        return offset + count * rows * self.config.acc_row_bytes

    def output_blocks(self):
        """``(offset, row, rows, n_block, count)`` of each output block in program order: its
        byte offset from ``c_at`` (a multiple of ``bus_bytes``), its first row of C and
        number of rows, its first N block and number of N blocks."""
        cfg, plan = self.config, self.plan
        blocks, offset = self.n // cfg.cols, 0
        for r0 in range(0, self.m, plan.m_block):
            for q0 in range(0, blocks, plan.n_group):
                rows, count = min(plan.m_block, self.m - r0), min(plan.n_group, blocks - q0)
                yield offset, r0, rows, q0, count
                offset += _round_up(count * rows * cfg.acc_row_bytes, cfg.bus_bytes)

    def a_image(self, a):
        """The bytes of ``a`` (int8, ``m x k``) as laid out at ``a_at``."""
        cfg = self.config
        a = np.asarray(a, np.int8)
        if a.shape != (self.m, self.k):
            raise ValueError(f"a must be {self.m} x {self.k}, not {a.shape}")
        blocks = a.view(np.uint8).reshape(self.m, -1, cfg.rows).transpose(1, 0, 2)
        image = np.zeros((len(blocks), self.a_stride), np.uint8)
        vectors = image[:, :self.m * self.pitch].reshape(len(blocks), self.m, self.pitch)
        vectors[:, :, :cfg.rows] = blocks
        return image.reshape(-1)

    def w_image(self, w):
        """The bytes of ``w`` (int8, ``k x n``) as laid out at ``w_at``."""
        cfg = self.config
        w = np.asarray(w, np.int8)
        if w.shape != (self.k, self.n):
            raise ValueError(f"w must be {self.k} x {self.n}, not {w.shape}")
        tiles = w.view(np.uint8).reshape(-1, cfg.rows, self.n // cfg.cols, cfg.cols)
        tiles = tiles.transpose(0, 2, 1, 3).reshape(-1, cfg.rows, cfg.cols)
        image = np.zeros((len(tiles), self.w_tile), np.uint8)
        vectors = image[:, :cfg.rows * self.pitch].reshape(len(tiles), cfg.rows, self.pitch)
        vectors[:, :, :cfg.cols] = tiles
        return image.reshape(-1)

    def place(self, memory, a, w):
        """Write ``a`` and ``w`` into ``memory`` (uint8, from address 0)."""
        memory[self.a_at:self.a_at + self.a_bytes] = self.a_image(a)
        memory[self.w_at:self.w_at + self.w_bytes] = self.w_image(w)

    def read_c(self, memory):
        """C (int32, ``m x n``) from ``memory`` (uint8 from address 0, or the ``c_bytes``
        from ``c_at``, as a NumPy array or bytes)."""
        cfg = self.config
        memory = np.frombuffer(memory, np.uint8) if isinstance(memory, bytes | bytearray) \
            else np.asarray(memory, np.uint8)
        region = memory[self.c_at:self.c_at + self.c_bytes] \
            if len(memory) > self.c_bytes else memory
        lanes = cfg.acc_row_bytes // 4
        c = np.zeros((self.m, self.n), np.int32)
        for at, r0, rows, q0, count in self.output_blocks():
            size = count * rows * cfg.acc_row_bytes
            block = region[at:at + size].view("<i4").reshape(count, rows, lanes)[:, :, :cfg.cols]
            c[r0:r0 + rows, q0 * cfg.cols:(q0 + count) * cfg.cols] = \
                block.transpose(1, 0, 2).reshape(rows, -1)
        return c


def _k_steps(k_blocks, k_step, *, ramp):
    """``(first K block, K blocks)`` of each step through ``k_blocks`` K blocks: ``k_step``
    at a time, or with ``ramp`` 1, 2, 4... up to ``k_step`` first, so the array starts after
    one K block's load rather than a whole buffer's (each step's load then takes about as
    long as the GEMMs of the step before it)."""
    steps, j0, size = [], 0, 1 if ramp else k_step
    while j0 < k_blocks:
        size = min(size, k_step, k_blocks - j0)
        steps.append((j0, size))
        j0, size = j0 + size, 2 * size
    return steps


def tiled_gemm(cfg, m, k, n, *, a_at, w_at, c_at, plan=None):
    """A double-buffered program computing int32 ``C = A @ W`` for int8 A (``m x k``) and W
    (``k x n``), and the layout of its operands.

    The work is cut by a :class:`GemmPlan` (:func:`plan_gemm`'s unless given): M into blocks
    of ``m_block`` rows, N into groups of ``n_group`` blocks of ``cols`` columns, K into
    steps of ``k_step`` blocks of ``rows`` (the first output block's growing from one, see
    :func:`_k_steps`). For each output block (an M block and an N group,
    in that nesting) and each K step, one step of the pipeline LOADs the step's column blocks
    of the M block of A and its weight tiles into one of two scratchpad buffers, and runs a
    GEMM per K block and N block, accumulating into the output block's accumulator rows
    (except at K block 0). Output blocks alternate between the two halves of the
    accumulator; each is STOREd as soon as its last GEMM is written, while the next one is
    being computed. The tokens are those of :func:`_pipeline`.

    Parameters
    ----------
    cfg : JalapenoConfig
    m, k, n : int
        The shape: any positive ``m``, ``k`` a multiple of ``rows``, ``n`` of ``cols``.
    a_at, w_at, c_at : int
        Byte addresses of A, W and C (:class:`GemmLayout`), multiples of ``bus_bytes``.
    plan : GemmPlan, optional

    Returns
    -------
    words : list of int
        The program, ending with END.
    layout : GemmLayout
        Where it expects A and W (:meth:`GemmLayout.place`) and how to read C back
        (:meth:`GemmLayout.read_c`).

    Raises
    ------
    ValueError
        If a dimension is not a positive integer or not a multiple of ``rows`` (``k``) or
        ``cols`` (``n``), an address is not a non-negative multiple of ``bus_bytes``, or
        ``plan`` does not fit the accumulator or the scratchpad.
    """
    _check_shape(cfg, m, k, n)
    nb = cfg.bus_bytes
    for name, value in (("a_at", a_at), ("w_at", w_at), ("c_at", c_at)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value % nb:
            raise ValueError(f"{name} must be a non-negative multiple of {nb} (bus_bytes), "
                             f"not {value!r}")
    plan = plan_gemm(cfg, m, k, n) if plan is None else plan
    _check_plan(cfg, plan)
    layout = GemmLayout(cfg, m, k, n, plan, a_at, w_at, c_at)
    rows, cols, pitch = cfg.rows, cfg.cols, layout.pitch
    k_blocks, n_blocks = k // rows, n // cols
    a_part = plan.k_step * plan.m_block * pitch
    buffer = a_part + plan.k_step * plan.n_group * layout.w_tile
    half = cfg.acc_depth // 2
    steps = []
    for output, (c_offset, r0, mr, q0, count) in enumerate(layout.output_blocks()):
        acc = (output % 2) * half
        for j0, kr in _k_steps(k_blocks, plan.k_step, ramp=output == 0):
            buf = (len(steps) % 2) * buffer
            w_row = count * layout.w_tile
            loads = (
                _dma(a_at + j0 * layout.a_stride + r0 * pitch, buf, kr, mr * pitch,
                     layout.a_stride, plan.m_block * pitch),
                _dma(w_at + (j0 * n_blocks + q0) * layout.w_tile, buf + a_part, kr, w_row,
                     n_blocks * layout.w_tile, w_row),
            )
            gemms = tuple(
                {"act_addr": buf + j * plan.m_block * pitch,
                 "w_addr": buf + a_part + j * w_row + q * layout.w_tile,
                 "acc_addr": acc + q * mr, "m": mr, "k": rows, "n": cols,
                 "accumulate": int(j0 + j > 0)}
                for j in range(kr) for q in range(count))
            stores = ()
            if j0 + kr == k_blocks:
                stores = tuple(_contiguous(c_at + c_offset,
                                           cfg.acc_base + acc * cfg.acc_row_bytes,
                                           count * mr * cfg.acc_row_bytes))
            steps.append(_Step(loads, gemms, output, stores))
    return _pipeline(steps), layout


def system_gemm_shapes(cfg):
    """``(name, m, k, n, plan)`` of the tiled GEMMs the core's system tests run: 32 x 32 x 32
    as planned, a ragged one, and 32 x 32 x 32 cut into one-block steps and output blocks
    (every token direction used many times)."""
    return [
        ("32x32x32", 32, 32, 32, None),
        ("ragged", 37, 3 * cfg.rows, 5 * cfg.cols, None),
        ("small blocks", 32, 32, 32, GemmPlan(m_block=16, n_group=1, k_step=1)),
    ]
