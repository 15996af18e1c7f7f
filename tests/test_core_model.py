"""The golden ISA simulator (``verification/models/core.py``): whole programs against NumPy
references built from the unit models, every error code with its address, and random
instruction streams."""

import dataclasses

import numpy as np
import pytest

from jalapeno.csr import counter_names
from jalapeno.isa import INSTRUCTION_BYTES, MAX_TOKENS, CoreError, Opcode, Queue, VectorOp, encode
from rtl.config import preset
from verification.models.core import COUNTERS, CoreModel, vector_pitch
from verification.models.lut import apply_lut
from verification.models.quant import requantize
from verification.models.softmax import SoftmaxParams, softmax, softmax_exp_table
from verification.programs import place_program, random_program
from verification.stimulus import random_int8

CFG = preset("default")
PITCH = vector_pitch(CFG)
MEMORY = 1 << 16
PROGRAM = 0x100
END = encode(Opcode.END)


def run(words, *, memory=None, config=CFG, **kwargs):
    memory = np.zeros(MEMORY, np.uint8) if memory is None else memory
    place_program(memory, PROGRAM, words)
    core = CoreModel(config, memory, **kwargs)
    return core, core.run(PROGRAM, len(words))


def put(memory, addr, array):
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    memory[addr:addr + len(data)] = data


def load(ext, local, rows, row_bytes, **flags):
    return encode(Opcode.LOAD, ext_addr=ext, local_addr=local, rows=rows, row_bytes=row_bytes,
                  ext_stride=row_bytes, local_stride=row_bytes, **flags)


def store(ext, local, rows, row_bytes, **flags):
    return encode(Opcode.STORE, ext_addr=ext, local_addr=local, rows=rows, row_bytes=row_bytes,
                  ext_stride=row_bytes, local_stride=row_bytes, **flags)


def test_gemm_requantize_lut():
    """A 16 x 8 x 8 GEMM in one tile, requantized and through a LUT, stored: equal to the
    NumPy product through the unit models; counters count it."""
    rng = np.random.default_rng(1)
    memory = np.zeros(MEMORY, np.uint8)
    a, w = random_int8(rng, (16, 8)), random_int8(rng, (8, 8))
    table = random_int8(rng, 256)
    put(memory, 0x2000, a)
    put(memory, 0x2100, w)
    record = np.zeros(8, np.uint8)
    record[:4] = np.frombuffer(np.uint32(1518500250).tobytes(), np.uint8)
    record[4:8] = np.array([-9, 3, -100, 90], np.int8).view(np.uint8)
    put(memory, 0x2200, record)
    put(memory, 0x2300, table)
    program = [
        load(0x2000, 0, 16, 8),
        load(0x2100, 0x100, 8, 8),
        load(0x2200, 0x200, 1, 8),
        load(0x2300, 0x300, 1, 256, push_next=1),
        encode(Opcode.GEMM, act_addr=0, w_addr=0x100, acc_addr=5, m=16, k=8, n=8,
               pop_prev=1),
        encode(Opcode.VECTOR, op=VectorOp.REQUANTIZE, rows=16, length=8,
               src=CFG.acc_base + 5 * CFG.acc_row_bytes, src_stride=CFG.acc_row_bytes,
               dst=0x400, dst_stride=PITCH, params=0x200),
        encode(Opcode.VECTOR, op=VectorOp.LUT, rows=16, length=8, src=0x400, src_stride=PITCH,
               dst=0x800, dst_stride=PITCH, params=0x300, push_next=1),
        store(0x3000, 0x800, 16, 8, pop_prev=1),
        store(0x3400, CFG.acc_base + 5 * CFG.acc_row_bytes, 16, 32),
        END,
    ]
    core, result = run(program, memory=memory)
    assert (result.code, result.error_addr) == (CoreError.NONE, 0)
    acc = a.astype(np.int64) @ w.astype(np.int64)
    expected = apply_lut(requantize(acc, 1518500250, -9, 3, -100, 90), table)
    got = memory[0x3000:0x3000 + 128].view(np.int8).reshape(16, 8)
    assert (got == expected).all()
    assert (memory[0x3400:0x3400 + 512].view("<i4").reshape(16, 8) == acc).all()
    assert result.counters == {"MACS": 16 * 8 * 8, "DMA_READ_BYTES": 128 + 64 + 8 + 256,
                               "DMA_WRITE_BYTES": 128 + 512, "INSTRUCTIONS": 10}


def test_attention_chain():
    """GEMM, requantize, softmax over rows of 24, GEMM with the result: the attention shape;
    equal to the unit models chained in NumPy."""
    rng = np.random.default_rng(2)
    memory = np.zeros(MEMORY, np.uint8)
    q, k_t, v = random_int8(rng, (4, 8)), random_int8(rng, (8, 24)), random_int8(rng, (24, 8))
    params = SoftmaxParams.from_scale(0.05)
    table = softmax_exp_table(params).astype("<u4")
    put(memory, 0x2000, q)
    for block in range(3):  # K^T column blocks of 8
        put(memory, 0x2100 + block * 64, np.ascontiguousarray(k_t[:, block * 8:][:, :8]))
    put(memory, 0x2400, v)
    record = np.zeros(8, np.uint8)
    record[:4] = np.frombuffer(np.uint32(1 << 30).tobytes(), np.uint8)
    record[4:8] = np.array([-3, 0, -128, 127], np.int8).view(np.uint8)
    put(memory, 0x2600, record)
    put(memory, 0x2700, table)
    program = [load(0x2000, 0, 4, 8), load(0x2100, 0x100, 24, 8), load(0x2400, 0x300, 24, 8),
               load(0x2600, 0x500, 1, 8), load(0x2700, 0x600, 1, 1024, push_next=1)]
    for block in range(3):
        program.append(encode(Opcode.GEMM, act_addr=0, w_addr=0x100 + block * 64,
                              acc_addr=block * 4, m=4, k=8, n=8, pop_prev=block == 0))
    # Scores row r: blocks 0..2 of acc rows r, r + 4, r + 8 into 3 consecutive vectors.
    for block in range(3):
        program.append(encode(Opcode.VECTOR, op=VectorOp.REQUANTIZE, rows=4, length=8,
                              src=CFG.acc_base + block * 4 * CFG.acc_row_bytes,
                              src_stride=CFG.acc_row_bytes, dst=0xA00 + block * PITCH,
                              dst_stride=3 * PITCH, params=0x500))
    program += [
        encode(Opcode.VECTOR, op=VectorOp.SOFTMAX, rows=4, length=24, src=0xA00,
               src_stride=3 * PITCH, dst=0xC00, dst_stride=3 * PITCH, params=0x600),
    ]
    # P (4 x 24) @ V (24 x 8) is three K-tiles of 8 that accumulate. Tile j needs vector j of
    # each row of P, which lie 3 vectors apart, and a GEMM reads consecutive vectors: each
    # column block goes out to memory and back in one piece.
    for block in range(3):
        program += [
            encode(Opcode.STORE, ext_addr=0x4000 + block * 32, local_addr=0xC00 + block * PITCH,
                   rows=4, row_bytes=8, ext_stride=8, local_stride=3 * PITCH),
            load(0x4000 + block * 32, 0xE00 + block * 32, 1, 32),
        ]
    for block in range(3):
        program.append(encode(Opcode.GEMM, act_addr=0xE00 + block * 32,
                              w_addr=0x300 + block * 64, acc_addr=16, m=4, k=8, n=8,
                              accumulate=block > 0))
    program += [store(0x5000, CFG.acc_base + 16 * CFG.acc_row_bytes, 4, 32), END]
    core, result = run(program, memory=memory)
    assert result.code == CoreError.NONE
    scores = requantize(q.astype(np.int64) @ k_t.astype(np.int64), 1 << 30, -3, 0)
    probs = softmax(scores, params)
    out = probs.astype(np.int64) @ v.astype(np.int64)
    assert (memory[0x5000:0x5000 + 128].view("<i4").reshape(4, 8) == out).all()


CASES = {
    "zero word": ([0], CoreError.ILLEGAL_OPCODE, 0),
    "opcode 7": ([7], CoreError.ILLEGAL_OPCODE, 0),
    "reserved bit": ([END | 1 << 255], CoreError.BAD_FIELD, 0),
    "pop_prev on LOAD": ([encode(Opcode.LOAD, pop_prev=1)], CoreError.BAD_FIELD, 0),
    "push_next on STORE": ([encode(Opcode.STORE, push_next=1)], CoreError.BAD_FIELD, 0),
    "END with a token": ([encode(Opcode.END, push_next=1)], CoreError.BAD_FIELD, 0),
    "SYNC queue 3": ([encode(Opcode.SYNC, queue=3)], CoreError.BAD_FIELD, 0),
    "GEMM k > rows": ([encode(Opcode.GEMM, k=9)], CoreError.BAD_FIELD, 0),
    "GEMM n > cols": ([encode(Opcode.GEMM, n=9)], CoreError.BAD_FIELD, 0),
    "VECTOR op 6": ([encode(Opcode.VECTOR, op=6, length=1)], CoreError.BAD_FIELD, 0),
    "VECTOR length 0": ([encode(Opcode.VECTOR, op=2)], CoreError.BAD_FIELD, 0),
    "VECTOR length over max_row": ([encode(Opcode.VECTOR, op=2, length=1025)],
                                   CoreError.BAD_FIELD, 0),
    "GEMM activations misaligned": ([encode(Opcode.GEMM, act_addr=4, m=1)],
                                    CoreError.LOCAL_RANGE, 0),
    "GEMM weights past the scratchpad": ([encode(Opcode.GEMM, w_addr=65536 - 8, k=2)],
                                         CoreError.LOCAL_RANGE, 0),
    "GEMM rows past the accumulator": ([encode(Opcode.GEMM, acc_addr=510, m=3)],
                                       CoreError.ACC_RANGE, 0),
    "REQUANTIZE from the scratchpad": ([encode(Opcode.VECTOR, op=0, rows=1, length=8)],
                                       CoreError.LOCAL_RANGE, 0),
    "CLAMP record past the scratchpad": ([encode(Opcode.VECTOR, op=2, rows=1, length=8,
                                                 params=65536)], CoreError.LOCAL_RANGE, 0),
    "token underflow": ([encode(Opcode.GEMM, pop_prev=1)], CoreError.TOKEN_UNDERFLOW, 0),
    "SYNC pops what was pushed": ([encode(Opcode.SYNC, queue=Queue.LOAD, push_next=1),
                                   encode(Opcode.SYNC, queue=Queue.COMPUTE, pop_prev=1), END],
                                  CoreError.NONE, None),
    "token overflow": ([encode(Opcode.SYNC, queue=Queue.STORE, push_prev=1)] * (MAX_TOKENS + 1),
                       CoreError.TOKEN_OVERFLOW, MAX_TOKENS),
    "DMA misaligned": ([load(0x1004, 0, 1, 8)], CoreError.DMA_MISALIGNED, 0),
    "DMA outside the window": ([load(0xF000, 0, 1, 8)], CoreError.DMA_WINDOW, 0),
    "DMA SLVERR": ([encode(Opcode.SYNC), load(0x8000, 0, 1, 8)], CoreError.DMA_SLVERR, 1),
    "DMA DECERR": ([store(0x9000, 0, 1, 8)], CoreError.DMA_DECERR, 0),
    "LOAD into the accumulator": ([load(0x1000, CFG.acc_base, 1, 8)],
                                  CoreError.DMA_LOCAL_RANGE, 0),
    "bad requantize shift": ([load(0x40, 0x40, 1, 8),
                              encode(Opcode.VECTOR, op=0, rows=1, length=8, src=CFG.acc_base,
                                     params=0x40)], CoreError.VECTOR_PARAM, 1),
    "no END": ([encode(Opcode.SYNC)] * 3, CoreError.PROGRAM_OVERRUN, 3),
}


@pytest.mark.parametrize("name", list(CASES))
def test_error_codes(name):
    """Each error stops at its instruction with its own code and address; what came before
    completed (the instructions counted)."""
    words, code, index = CASES[name]
    memory = np.zeros(MEMORY, np.uint8)
    memory[0x40 + 4] = 31  # a requantize record with shift 31 (multiplier 0)
    core = CoreModel(CFG, memory, window=(0, 0xF000), slverr=[(0x8000, 0x8001)],
                     decerr=[(0x9000, 0x9100)])
    place_program(memory, PROGRAM, words)
    result = core.run(PROGRAM, len(words))
    assert result.code == code, name
    if code != CoreError.NONE:
        assert result.error_addr == PROGRAM + index * INSTRUCTION_BYTES, name
        assert result.counters["INSTRUCTIONS"] == index, name


def test_fetch_errors():
    """A program leaving the window, or over an error range, stops with FETCH at the
    instruction that could not be fetched; a misaligned base is refused."""
    memory = np.zeros(MEMORY, np.uint8)
    place_program(memory, PROGRAM, [encode(Opcode.SYNC)] * 4)
    core = CoreModel(CFG, memory, window=(0, PROGRAM + 2 * INSTRUCTION_BYTES))
    result = core.run(PROGRAM, 4)
    assert (result.code, result.error_addr) == (CoreError.FETCH, PROGRAM + 64)
    with pytest.raises(ValueError, match=r"^program base must be a multiple of 32, not 0x108$"):
        core.run(PROGRAM + 8, 1)
    core = CoreModel(CFG, memory, slverr=[(PROGRAM + 40, PROGRAM + 41)])
    assert (core.run(PROGRAM, 4).code, core.run(PROGRAM, 4).error_addr) == \
        (CoreError.FETCH, PROGRAM + 32)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_random_streams(name):
    """10,000 seeded random instruction streams per preset: each ends in END or an error code
    with the failing address inside the program, never more instructions counted than run,
    and no byte outside the window written."""
    cfg = preset(name)
    rng = np.random.default_rng(5)
    window = (0x1000, 0xE000)
    codes = {}
    for seed in range(10_000):
        rng = np.random.default_rng(seed)
        words = random_program(rng, cfg, window, length=int(rng.integers(1, 9)))
        memory = rng.integers(0, 256, MEMORY, np.uint8)
        place_program(memory, 0x1000, words)
        before = memory.copy()
        core = CoreModel(cfg, memory, window=window, slverr=[(0x9000, 0x9040)],
                         decerr=[(0xA000, 0xA040)])
        result = core.run(0x1000, len(words))
        where = f"seed {seed}, preset {name}"
        assert isinstance(result.code, CoreError), where
        outside = np.r_[0:window[0], window[1]:MEMORY]
        assert (memory[outside] == before[outside]).all(), where
        if result.code == CoreError.NONE:
            assert result.counters["INSTRUCTIONS"] <= len(words), where
        else:
            index = (result.error_addr - 0x1000) // INSTRUCTION_BYTES
            assert 0 <= index <= len(words), where
            assert result.counters["INSTRUCTIONS"] == index, where
        codes[result.code] = codes.get(result.code, 0) + 1
    # The streams reach every outcome but FETCH (programs lie inside the window) and
    # NO_VECTOR_UNIT (every preset has a vector unit).
    missing = set(CoreError) - set(codes) - {CoreError.FETCH, CoreError.NO_VECTOR_UNIT}
    assert not missing, f"never reached: {sorted(c.name for c in missing)}; got {codes}"


def test_no_vector_unit():
    """Without a vector unit, a LOAD and a GEMM complete and the VECTOR after them stops the
    core with NO_VECTOR_UNIT at its address, before its fields are checked (an op and a
    length that would be BAD_FIELD); a core with one runs the same VECTOR."""
    cfg = dataclasses.replace(preset("tiny"), name="tiny_novec", vector_unit=False)
    rng = np.random.default_rng(2)
    a, w = random_int8(rng, (4, 4)), random_int8(rng, (4, 4))
    memory = np.zeros(MEMORY, np.uint8)
    put(memory, 0x2000, np.concatenate([a, w]))
    gemm = encode(Opcode.GEMM, act_addr=0, w_addr=16, m=4, k=4, n=4, pop_prev=1)
    clamp = encode(Opcode.VECTOR, op=VectorOp.CLAMP, rows=1, length=4, dst=0x100,
                   params=0x200, push_next=1)
    program = [load(0x2000, 0, 8, 4, push_next=1), gemm, clamp,
               store(0x3000, cfg.acc_base, 4, 16, pop_prev=1), END]
    core, result = run(program, memory=memory.copy(), config=cfg)
    assert (result.code, result.error_addr) == (CoreError.NO_VECTOR_UNIT, PROGRAM + 64)
    assert result.counters == {"MACS": 64, "DMA_READ_BYTES": 32, "DMA_WRITE_BYTES": 0,
                               "INSTRUCTIONS": 2}
    assert (core.acc[:4, :4] == a.astype(np.int64) @ w).all()
    assert run(program, memory=memory.copy(), config=preset("tiny"))[1].code == CoreError.NONE
    bad = encode(Opcode.VECTOR, op=9)
    assert run([bad], config=preset("tiny"))[1].code == CoreError.BAD_FIELD
    assert (run([END, bad], config=cfg)[1].code, run([bad], config=cfg)[1].code) == \
        (CoreError.NONE, CoreError.NO_VECTOR_UNIT)
    assert run([7], config=cfg)[1].code == CoreError.ILLEGAL_OPCODE


def test_counters_are_csrs():
    """Every counter the model keeps is a performance-counter CSR of the same name."""
    assert set(COUNTERS) <= set(counter_names())
