"""Seeded random instruction streams for the core: mostly well-formed instructions with small
operands inside the scratchpad, the accumulator and the window, some corrupted, so that every
error code and every clean END is reached. The golden model and the RTL run the same streams.
"""

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

__all__ = ["random_program", "place_program"]

_COMPUTE_OPS = [Opcode.LOAD, Opcode.STORE, Opcode.GEMM, Opcode.VECTOR, Opcode.SYNC]


def _flags(rng, queue, tokens):
    """Random token flags for ``queue``, only those it has; a pop mostly only when an earlier
    push left a token (``tokens``, per direction, updated), so most streams run deep."""
    flags = {}
    for side, step in (("prev", -1), ("next", 1)):
        other = queue + step
        if not Queue.LOAD <= other <= Queue.STORE:
            continue
        if rng.random() < 0.25 and (tokens[(other, queue)] or rng.random() < 0.05):
            flags[f"pop_{side}"] = 1
            tokens[(other, queue)] = max(0, tokens[(other, queue)] - 1)
        if rng.random() < 0.25:
            flags[f"push_{side}"] = 1
            tokens[(queue, other)] += 1
    return flags


def _aligned(rng, lo, hi, step):
    """A multiple of ``step`` in ``[lo, hi)``, or ``lo`` if there is none."""
    count = (hi - lo) // step
    return lo + step * int(rng.integers(count)) if count > 0 else lo


def _instruction(rng, cfg, window, pitch, tokens):
    """One mostly well-formed instruction."""
    opcode = _COMPUTE_OPS[int(rng.integers(len(_COMPUTE_OPS)))]
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
    fields.update(_flags(rng, queue, tokens))
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
                   flood=0.005):
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

    Returns
    -------
    list of int
    """
    if rng.random() < flood:
        return [encode(Opcode.SYNC, queue=Queue.LOAD, push_next=1)] * (MAX_TOKENS + 1)
    pitch = 1 << (max(config.rows, config.cols) - 1).bit_length()
    tokens = {(a, b): 0 for a in Queue for b in Queue if abs(a - b) == 1}
    words = [_instruction(rng, config, window, pitch, tokens) for _ in range(length - 1)]
    words = [_corrupt(rng, w) if rng.random() < corrupt else w for w in words]
    words.append(encode(Opcode.END) if rng.random() < end else
                 _instruction(rng, config, window, pitch, tokens))
    return words


def place_program(memory, base, words):
    """Write instruction ``words`` into ``memory`` (uint8) from byte ``base``."""
    data = to_bytes(words)
    memory[base:base + len(data)] = np.frombuffer(data, np.uint8)
