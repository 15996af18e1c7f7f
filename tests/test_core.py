# amaranth: UnusedElaboratable=no
"""The core RTL (``rtl/core/core.py``) against the golden ISA simulator: whole programs give
the same memory and counters, every error the same code and address, random instruction
streams the same outcome, and the host's view through the CSRs."""

import dataclasses
import random
import re

import numpy as np
import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.back import rtlil
from core_bench import CoreSession, read_csr, run_core, run_golden, write_csr
from vector_records import BAD_KINDS, Layout, random_record, vector_word

from fpga.boards import board
from jalapeno import csr
from jalapeno.compiler import (
    Arena,
    ConstPool,
    Graph,
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
from jalapeno.isa import (
    HEADER,
    INSTRUCTION_BYTES,
    CoreError,
    Opcode,
    Queue,
    VectorOp,
    decode,
    encode,
    fields_of,
    pack_record,
    record_layout,
)
from jalapeno.models.engine import PROBABILITY, probability_table
from rtl.bus.stream_sim import simulate
from rtl.config import preset
from rtl.core.core import Core, _earliest
from rtl.core.decode import error_layout
from verification.models.core import CoreModel, vector_pitch
from verification.models.softmax import SOFTMAX_OUTPUT
from verification.programs import gemm_program, place_program, random_program
from verification.stimulus import random_int8

MEMORY = 1 << 16
BASE = 0x100
WINDOW = (0, MEMORY)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_double_buffered_gemm(name):
    """A K-tiled, double-buffered GEMM: identical memory and counters on RTL and golden, and
    equal to NumPy's product."""
    cfg = preset(name)
    rng = np.random.default_rng(3)
    m, k_tiles = 12, 4
    a = random_int8(rng, (m, k_tiles * cfg.rows))
    w = random_int8(rng, (k_tiles * cfg.rows, cfg.cols))
    memory = np.zeros(MEMORY, np.uint8)
    memory[0x2000:0x2000 + a.size] = a.view(np.uint8).reshape(-1)
    memory[0x3000:0x3000 + w.size] = w.view(np.uint8).reshape(-1)
    words = gemm_program(cfg, 0x2000, 0x3000, 0x4000, m, k_tiles)
    golden = run_golden(cfg, memory, words, base=BASE, window=WINDOW)
    rtl = run_core(cfg, memory, words, base=BASE, window=WINDOW, latency=3, stall=0.2, seed=3)
    assert golden.code == rtl.code == CoreError.NONE
    out = golden.memory[0x4000:0x4000 + m * cfg.acc_row_bytes].view("<i4")
    assert (out.reshape(m, -1)[:, :cfg.cols] == a.astype(np.int64) @ w).all()
    diff = np.flatnonzero(rtl.memory != golden.memory)
    assert not len(diff), f"{len(diff)} bytes differ, the first at {diff[0]:#x}"
    for counter in golden.counters:
        assert rtl.counters[counter] == golden.counters[counter], counter
    print(f"{name}: {rtl.cycles} cycles, {rtl.counters}")


ERRORS = {
    "illegal opcode": ([0], CoreError.ILLEGAL_OPCODE, 0),
    "reserved bit": ([encode(Opcode.END) | 1 << 255], CoreError.BAD_FIELD, 0),
    "GEMM k > rows": ([encode(Opcode.SYNC), encode(Opcode.GEMM, k=99)], CoreError.BAD_FIELD, 1),
    "GEMM past the accumulator": ([encode(Opcode.GEMM, acc_addr=255, m=2)],
                                  CoreError.ACC_RANGE, 0),
    "token underflow": ([encode(Opcode.STORE, pop_prev=1)], CoreError.TOKEN_UNDERFLOW, 0),
    "DMA window": ([encode(Opcode.LOAD, ext_addr=0xF000, rows=1, row_bytes=4)],
                   CoreError.DMA_WINDOW, 0),
    "DMA misaligned": ([encode(Opcode.STORE, ext_addr=0x1002, rows=1, row_bytes=4)],
                       CoreError.DMA_MISALIGNED, 0),
    "DMA SLVERR after a good load": ([encode(Opcode.LOAD, ext_addr=0x1000, rows=1, row_bytes=8),
                                      encode(Opcode.LOAD, ext_addr=0x8000, rows=1, row_bytes=8)],
                                     CoreError.DMA_SLVERR, 1),
    "DMA DECERR on a store": ([encode(Opcode.STORE, ext_addr=0x9000, rows=1, row_bytes=8)],
                              CoreError.DMA_DECERR, 0),
    "load into the accumulator": ([encode(Opcode.LOAD, ext_addr=0x1000, rows=1, row_bytes=4,
                                          local_addr=8192)], CoreError.DMA_LOCAL_RANGE, 0),
    "program overrun": ([encode(Opcode.SYNC, queue=Queue.STORE)] * 2,
                        CoreError.PROGRAM_OVERRUN, 2),
    "fetch outside the window": ([encode(Opcode.SYNC)] * 3 + [encode(Opcode.END)],
                                 CoreError.FETCH, 2),
    "earliest of two failures": ([encode(Opcode.LOAD, ext_addr=0x8000, rows=1, row_bytes=8),
                                  encode(Opcode.GEMM, k=99)], CoreError.DMA_SLVERR, 0),
    # A long LOAD that fails on its last row, with nine LOADs behind it: seven more fill the
    # load executor's queue_depth (8) of descriptors in the engine, the next waits in its
    # descriptor buffer, and when the failure is known (the engine then takes nothing) it is
    # dropped there; kept, it would hold the run open.
    "loads behind a failing load": (
        [encode(Opcode.LOAD, ext_addr=0x8000 - 63 * 8, ext_stride=8, rows=64, row_bytes=8,
                local_stride=8)] +
        [encode(Opcode.LOAD, ext_addr=0x1000 + 8 * k, rows=1, row_bytes=8) for k in range(9)],
        CoreError.DMA_SLVERR, 0),
}


async def _ends_as_expected(ctx, session, name, words, code, index, window, **kinds):
    """Run ``words`` from ``BASE`` on ``session``'s core and on a fresh golden model with
    the same ``window`` and faulting regions (``kinds``): both end with ``code`` at
    instruction ``index`` (address 0 when ``code`` is NONE)."""
    session.place(ctx, BASE, words)
    got = await session.run(ctx, BASE, len(words), window, limit=5000)
    model = CoreModel(session.config, np.zeros(MEMORY, np.uint8), window=window, **kinds)
    place_program(model.memory, BASE, words)
    want = model.run(BASE, len(words))
    assert (got.code, got.addr) == (want.code, want.error_addr), name
    addr = BASE + index * INSTRUCTION_BYTES if code != CoreError.NONE else 0
    assert (got.code, got.addr) == (code, addr), name


def test_errors_match_the_golden_model():
    """Each error, one program after another on one core: the code and address the golden
    model gives, done never set, and the next program still runs (the last is a good one)."""
    cfg = preset("tiny")
    memory = np.zeros(MEMORY, np.uint8)
    window = (0, BASE + 2 * INSTRUCTION_BYTES)
    kinds = dict(slverr=[(0x8000, 0x8008)], decerr=[(0x9000, 0x9008)])
    session = CoreSession(cfg, memory, **kinds)
    cases = list(ERRORS.items()) + [("good", ([encode(Opcode.END)], CoreError.NONE, 0))]

    async def host(ctx):
        for name, (words, code, index) in cases:
            win = window if name == "fetch outside the window" else (0, 0xF000)
            await _ends_as_expected(ctx, session, name, words, code, index, win, **kinds)
            status = csr.unpack("STATUS", await read_csr(ctx, session.core.csr, "STATUS"))
            assert (status["done"], status["error"]) == (code == CoreError.NONE,
                                                         code != CoreError.NONE), name

    simulate(session.top, host, timeout=200_000)


def _dma(opcode, ext, local, nbytes, **flags):
    """One LOAD or STORE of ``nbytes`` contiguous bytes."""
    return encode(opcode, ext_addr=ext, local_addr=local, rows=1, row_bytes=nbytes, **flags)


def _flag(name):
    """The bit of the header flag ``name`` in an instruction word."""
    (f,) = [f for f in HEADER if f.name == name]
    return 1 << f.lsb


def _same(cfg, memory, words, *, code=CoreError.NONE, **kwargs):
    """Run ``words`` on the golden model and the RTL: the same code (``code``), address,
    memory image and counters. Returns the RTL's outcome."""
    golden = run_golden(cfg, memory, words, base=BASE, window=WINDOW)
    assert golden.code == code
    rtl = run_core(cfg, memory, words, base=BASE, window=WINDOW, **kwargs)
    assert (rtl.code, rtl.addr) == (golden.code, golden.addr)
    diff = np.flatnonzero(rtl.memory != golden.memory)
    assert not len(diff), f"{len(diff)} bytes differ, the first at {diff[0]:#x}"
    for counter in golden.counters:
        assert rtl.counters[counter] == golden.counters[counter], counter
    return rtl


def _image_program(cfg, spad, used, vectors, *, out=0x8000, extra=0):
    """LOAD ``spad[:used]`` from 0x4000, run ``vectors`` (the first takes the LOAD's token,
    the last gives the STORE one), STORE ``spad[:used]`` to ``out``, END.

    With ``extra`` bytes, a second LOAD (of random bytes from 0x6000 to just past ``used``)
    runs while the VECTORs before the last one do, so its writes to the scratchpad meet
    theirs; the last VECTOR waits for it, and the STORE covers it too."""
    memory = np.zeros(MEMORY, np.uint8)
    memory[0x4000:0x4000 + used] = spad[:used]
    memory[0x6000:0x6000 + extra] = np.random.default_rng(0).integers(0, 256, extra)
    vectors = list(vectors)
    vectors[0] |= _flag("pop_prev")
    vectors[-1] |= _flag("push_next") | _flag("pop_prev") * bool(extra)
    loads = [_dma(Opcode.LOAD, 0x4000, 0, used, push_next=1)]
    if extra:
        loads.append(_dma(Opcode.LOAD, 0x6000, used, extra, push_next=1))
    words = [*loads, *vectors, _dma(Opcode.STORE, out, 0, used + extra, pop_prev=1),
             encode(Opcode.END)]
    return memory, words


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_vector_ops(name):
    """CLAMP, ADD, LUT, SOFTMAX and LAYERNORM, each on rows of ``2 cols + 1`` with a spare
    vector between rows and on one row of one element, between a LOAD of their inputs and
    records and a STORE of the scratchpad, while another LOAD writes the scratchpad: the
    golden model's memory and counters."""
    cfg = preset(name)
    rng = np.random.default_rng(21)
    spad = np.zeros(cfg.spad_bytes, np.uint8)
    layout = Layout(cfg)
    vectors = []
    for op in (VectorOp.CLAMP, VectorOp.ADD, VectorOp.LUT, VectorOp.SOFTMAX,
               VectorOp.LAYERNORM):
        for rows, length, gap in ((2, 2 * cfg.cols + 1, 1), (1, 1, 0)):
            vectors.append(vector_word(cfg, layout, rng, op, rows, length, gap=gap, spad=spad,
                                       record=random_record(rng, op, length)))
    memory, words = _image_program(cfg, spad, layout.next, vectors, extra=2048)
    rtl = _same(cfg, memory, words)
    print(f"{name}: {rtl.cycles} cycles")


def _put(memory, addr, array):
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    memory[addr:addr + len(data)] = data


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_gemm_requantize_lut(name):
    """A GEMM tiled over K (two tiles that accumulate), requantized (rows shorter than
    ``cols``; rows of two accumulator rows, strided) and through a LUT activation, the int8
    results and the accumulators stored, the latter while the VECTORs run (both read the
    accumulator memory): the golden model's memory and counters."""
    cfg = preset(name)
    rows, cols, pitch, rb = cfg.rows, cfg.cols, vector_pitch(cfg), cfg.acc_row_bytes
    rng = np.random.default_rng(23)
    m = 10
    a = random_int8(rng, (m, 2 * rows))
    w = random_int8(rng, (2 * rows, cols))
    spad = np.zeros(cfg.spad_bytes, np.uint8)
    layout = Layout(cfg)
    act = [layout.take(m * pitch) for _ in range(2)]
    wgt = [layout.take(rows * pitch) for _ in range(2)]
    for t in range(2):
        for i in range(m):
            _put(spad, act[t] + i * pitch, a[i, t * rows:(t + 1) * rows])
        for j in range(rows):
            _put(spad, wgt[t] + j * pitch, w[t * rows + j])
    requant = layout.take(8)
    spad[requant:requant + 8] = pack_record(VectorOp.REQUANTIZE, 1, {
        "multiplier": 1518500250, "shift": -6, "zero_point": 3, "act_min": -100,
        "act_max": 90})
    table = layout.take(256)
    spad[table:table + 256] = random_record(rng, VectorOp.LUT, 1)
    q1, q2, out = (layout.take(m * 2 * pitch) for _ in range(3))
    acc0 = cfg.acc_base + 3 * rb
    vectors = [
        encode(Opcode.GEMM, act_addr=act[t], w_addr=wgt[t], acc_addr=3, m=m, k=rows, n=cols,
               accumulate=t) for t in range(2)]
    vectors[-1] |= _flag("push_next")  # the accumulators' STORE runs with the VECTORs
    vectors += [
        encode(Opcode.VECTOR, op=VectorOp.REQUANTIZE, rows=m, length=cols - 1, src=acc0,
               src_stride=rb, dst=q1, dst_stride=pitch, params=requant),
        encode(Opcode.VECTOR, op=VectorOp.REQUANTIZE, rows=m // 2, length=2 * cols - 1,
               src=acc0, src_stride=2 * rb, dst=q2, dst_stride=2 * pitch, params=requant),
        encode(Opcode.VECTOR, op=VectorOp.LUT, rows=m, length=cols - 1, src=q1,
               src_stride=pitch, dst=out, dst_stride=pitch, params=table),
    ]
    memory, words = _image_program(cfg, spad, layout.next, vectors)
    words.insert(-3, _dma(Opcode.STORE, 0xC000, acc0, m * rb, pop_prev=1))
    rtl = _same(cfg, memory, words)
    acc = a.astype(np.int64) @ w.astype(np.int64)
    stored = rtl.memory[0xC000:0xC000 + m * rb].view("<i4").reshape(m, -1)[:, :cols]
    assert (stored == acc).all()
    print(f"{name}: {rtl.cycles} cycles")


def test_attention_chain():
    """An attention head compiled (:mod:`jalapeno.compiler`): ``q K^T`` over 24 keys (the
    cache blocked by the array's width), SOFTMAX, the LUT to zero point 0, ``P V``, four
    query rows. On the RTL, where the queues run concurrently and only the compiler's tokens
    order them: the golden model's memory and counters, and the graph's reference result."""
    cfg = preset("default")
    rng = np.random.default_rng(2)
    memory = np.zeros(MEMORY, np.uint8)
    new = Arena(0x1000, 0x4000, cfg.cols).tensor
    q = new("q", 4, 8, Quant(0.05))
    keys = Tensor("k", 0x4000, 8, 24, cfg.cols, Quant(0.05), cfg.cols, 8 * cfg.cols)
    values = new("v", 24, 8, Quant(0.04))
    for t in (q, keys, values):
        write_tensor(memory, t, random_int8(rng, (t.rows, t.cols)))
    g = Graph()
    scores = g.add(MatMul(q, keys, new("s", 4, 24, Quant(0.3))))
    probs = g.add(Softmax(scores, new("p", 4, 24, Quant(*SOFTMAX_OUTPUT))))
    probs = g.add(Lut(probs, probability_table(), new("p0", 4, 24, PROBABILITY)))
    out = g.add(MatMul(probs, values, new("o", 4, 8, Quant(0.02))))
    consts = ConstPool(0x5000, 0x8000)
    words = compile_graph(g, cfg, consts).words
    for addr, data in consts.take():
        memory[addr:addr + len(data)] = data
    rtl = _same(cfg, memory, words)
    reference = evaluate(g, memory.copy())
    assert np.array_equal(read_tensor(rtl.memory, out), read_tensor(reference, out))
    print(f"{rtl.cycles} cycles")


def test_vector_param_errors():
    """Every way a record can be bad, for each op, as the second VECTOR of a program on one
    core: VECTOR_PARAM at its address, as the golden model says, and a good program after
    them all still runs."""
    cfg = preset("tiny")
    rng = np.random.default_rng(29)
    programs = []
    cases = [(op, kind) for op in VectorOp for kind in BAD_KINDS[op]]
    for op, kind in cases + [(VectorOp.LAYERNORM, None)]:
        spad = np.zeros(cfg.spad_bytes, np.uint8)
        layout = Layout(cfg)
        length = int(rng.integers(1, 3 * cfg.cols))
        vectors = [vector_word(cfg, layout, rng, VectorOp.CLAMP, 2, length, spad=spad,
                               record=random_record(rng, VectorOp.CLAMP, length)),
                   vector_word(cfg, layout, rng, op if op != VectorOp.REQUANTIZE else
                               VectorOp.CLAMP, 2, length, spad=spad,
                               record=random_record(rng, op, length, bad=kind))]
        if op == VectorOp.REQUANTIZE:  # its source is the accumulator
            _, fields, _ = decode(vectors[1])
            del fields["opcode"]
            fields.update(op=op, src=cfg.acc_base, src_stride=0)
            vectors[1] = encode(Opcode.VECTOR, **fields)
        programs.append(_image_program(cfg, spad, layout.next, vectors))
    session = CoreSession(cfg, np.zeros(MEMORY, np.uint8))
    seen = []

    async def host(ctx):
        for memory, words in programs:
            for k in range(0x4000, 0x8000, cfg.bus_bytes):  # the image
                ctx.set(session.ram.data[k // cfg.bus_bytes],
                        int.from_bytes(memory[k:k + cfg.bus_bytes].tobytes(), "little"))
            session.place(ctx, BASE, words)
            before = session.memory(ctx)
            got = await session.run(ctx, BASE, len(words), WINDOW, limit=20_000)
            model = CoreModel(cfg, before)
            place_program(model.memory, BASE, words)
            want = model.run(BASE, len(words))
            assert (got.code, got.addr) == (want.code, want.error_addr)
            seen.append((got.code, got.addr - BASE))

    simulate(session.top, host, timeout=1_000_000)
    bad_at = 2 * INSTRUCTION_BYTES  # after the LOAD and the good VECTOR
    assert seen[:-1] == [(CoreError.VECTOR_PARAM, bad_at)] * (len(seen) - 1), seen
    assert seen[-1] == (CoreError.NONE, -BASE)


def _set_field(word, opcode, name, value):
    """``word`` with field ``name`` of ``opcode`` set to ``value``, every other bit kept."""
    (f,) = [f for f in fields_of(opcode) if f.name == name]
    return word & ~f.mask | value << f.lsb


def _race_free(cfg, words, rng, zone, program):
    """``words`` with no VECTOR parameter record that anything could be writing, and no
    STORE over the program's own instructions (``program``, a byte range).

    A VECTOR's outcome depends on its record's contents, so a record that a LOAD of the load
    queue (which runs concurrently) or a previous program may have written makes the RTL and
    the golden model (which starts from an empty scratchpad) disagree legitimately. Here
    every VECTOR's record lies in ``zone``, whose contents are loaded once and then never
    written: a LOAD or VECTOR that would write into it moves nothing (``rows`` 0). Likewise
    the RTL fetches ahead, so a STORE into the program's later instructions races with their
    fetch (the golden model fetches each after the previous one completes)."""
    pitch = vector_pitch(cfg)
    out = []
    for word in words:
        opcode, f, _ = decode(word)
        if opcode in (Opcode.LOAD, Opcode.STORE) and f["rows"] and f["row_bytes"]:
            local = f["local_addr"], f["local_addr"] + (f["rows"] - 1) * f["local_stride"] + \
                f["row_bytes"]
            ext = f["ext_addr"], f["ext_addr"] + (f["rows"] - 1) * f["ext_stride"] + \
                f["row_bytes"]
            hit = (local, zone) if opcode == Opcode.LOAD else (ext, program)
            if hit[0][0] < hit[1][1] and hit[0][1] > hit[1][0]:
                word = _set_field(word, opcode, "rows", 0)
        elif opcode == Opcode.VECTOR and f["op"] <= max(VectorOp) and \
                1 <= f["length"] <= cfg.max_row:
            beats = -(-f["length"] // cfg.cols)
            end = f["dst"] + (f["rows"] - 1) * f["dst_stride"] + beats * pitch if f["rows"] else 0
            if f["dst"] < zone[1] and end > zone[0]:
                word = _set_field(word, opcode, "rows", 0)
            size = record_layout(f["op"], f["length"])[1]
            slots = (zone[1] - zone[0] - size) // pitch + 1
            word = _set_field(word, opcode, "params", zone[0] + pitch * int(rng.integers(slots)))
        out.append(word)
    return out


#: ``tiny`` with the iCEBreaker's queues of two entries.
SHALLOW = dataclasses.replace(preset("tiny"), name="tiny_shallow", queue_depth=2, addr_width=16)


#: Programs with an external address or stride wider than ``SHALLOW``'s 16-bit addresses,
#: which the DMA queue, not the engine, must catch: (words, code, index of the failure).
TOO_WIDE = {
    "address": ([_dma(Opcode.LOAD, 1 << 20, 0, 8)], CoreError.DMA_WINDOW, 0),
    "stride, after a good load": (
        [_dma(Opcode.LOAD, 0x1000, 0, 8),
         encode(Opcode.STORE, ext_addr=0x1000, ext_stride=1 << 20, rows=2, row_bytes=8)],
        CoreError.DMA_WINDOW, 1),
    "stride of a single row": (
        [encode(Opcode.LOAD, ext_addr=0x1000, ext_stride=1 << 20, rows=1, row_bytes=8),
         encode(Opcode.END)], CoreError.NONE, 0),
    "misaligned first": ([_dma(Opcode.LOAD, (1 << 20) + 2, 0, 8)], CoreError.DMA_MISALIGNED, 0),
    "empty": ([_dma(Opcode.STORE, 1 << 20, 0, 0), encode(Opcode.END)], CoreError.NONE, 0),
}


def test_fields_wider_than_the_addresses():
    """On a core with 16-bit addresses, a LOAD or STORE whose external address or stride has
    bits above them ends the run as the golden model's does: WINDOW after the misalignment
    check, nothing for an empty transfer or a single row's stride."""
    memory = np.zeros(MEMORY, np.uint8)
    session = CoreSession(SHALLOW, memory)
    window = (0, 0xF000)

    async def host(ctx):
        for name, (words, code, index) in TOO_WIDE.items():
            await _ends_as_expected(ctx, session, name, words, code, index, window)

    simulate(session.top, host, timeout=100_000)


@pytest.mark.parametrize("cfg", [preset("tiny"), preset("default"), SHALLOW], ids=lambda c: c.name)
def test_random_streams(cfg):
    """60 seeded random instruction streams, VECTORs included, one after another on one core:
    each ends with the golden model's code and address within a bounded number of cycles, and
    no byte outside the window changes. The VECTOR records are made race-free
    (:func:`_race_free`): 2 KiB at the top of the scratchpad, loaded once with records that
    are good or bad at random, hold them all."""
    rng = np.random.default_rng(11)
    memory = rng.integers(0, 256, MEMORY, np.uint8)
    window = (0x1000, 0xE000)
    zone = (cfg.spad_bytes - 2048, cfg.spad_bytes)
    # The zone's contents, outside the window: half the 32-bit words zero, so that records of
    # every op are sometimes good and sometimes bad.
    records = rng.integers(0, 256, 2048, np.uint8)
    records.view("<u4")[rng.random(512) < 0.5] = 0
    memory[0xE000:0xE800] = records
    kinds = dict(slverr=[(0x9000, 0x9040)], decerr=[(0xA000, 0xA040)])
    session = CoreSession(cfg, memory, **kinds)
    programs = []
    while len(programs) < 60:
        words = random_program(rng, cfg, window, length=int(rng.integers(1, 7)), flood=0.02)
        base = window[0] if len(words) < 64 else window[1] - len(words) * INSTRUCTION_BYTES
        programs.append(_race_free(cfg, words, rng, zone,
                                   (base, base + len(words) * INSTRUCTION_BYTES)))
    outside = np.r_[0:window[0], window[1]:MEMORY]
    seen = {}

    async def host(ctx):
        setup = [_dma(Opcode.LOAD, 0xE000, zone[0], 2048), encode(Opcode.END)]
        session.place(ctx, BASE, setup)
        got = await session.run(ctx, BASE, len(setup), (0, MEMORY), limit=20_000)
        assert got.code == CoreError.NONE
        for index, words in enumerate(programs):
            base = window[0] if len(words) < 64 else window[1] - len(words) * INSTRUCTION_BYTES
            session.place(ctx, base, words)
            before = session.memory(ctx)
            got = await session.run(ctx, base, len(words), window, limit=20_000)
            model = CoreModel(cfg, before.copy(), window=window, **kinds)
            model.spad[zone[0]:zone[1]] = records
            want = model.run(base, len(words))
            where = f"program {index} (seed 11): {[hex(w) for w in words[:4]]}"
            assert (got.code, got.addr) == (want.code, want.error_addr), where
            after = session.memory(ctx)
            assert (after[outside] == before[outside]).all(), f"{where}: wrote outside"
            seen[got.code] = seen.get(got.code, 0) + 1

    simulate(session.top, host, timeout=2_000_000)
    print({code.name: count for code, count in seen.items()})
    assert len(seen) >= 6, seen
    assert seen.get(CoreError.VECTOR_PARAM), seen


def test_soft_reset_stops_a_run():
    """A soft reset during a long program: no interrupt, STATUS idle with no error, and the
    next start runs a program to done."""
    cfg = preset("tiny")
    memory = np.zeros(MEMORY, np.uint8)
    session = CoreSession(cfg, memory)
    long = [encode(Opcode.LOAD, ext_addr=0x2000, rows=16, row_bytes=256, ext_stride=256,
                   local_stride=256)] * 8 + [encode(Opcode.END)]

    async def host(ctx):
        bus = session.core.csr
        session.place(ctx, BASE, long)
        await write_csr(ctx, bus, "PROGRAM_BASE", BASE)
        await write_csr(ctx, bus, "PROGRAM_LENGTH", len(long))
        await write_csr(ctx, bus, "WINDOW_LIMIT", MEMORY)
        await write_csr(ctx, bus, "IRQ_ENABLE", 0b11)
        await write_csr(ctx, bus, "CONTROL", csr.pack("CONTROL", start=1))
        for _ in range(50):
            await ctx.tick()
        await write_csr(ctx, bus, "CONTROL", csr.pack("CONTROL", soft_reset=1))
        for _ in range(3000):
            await ctx.tick()
            if not csr.unpack("STATUS", await read_csr(ctx, bus, "STATUS"))["busy"]:
                break
        status = csr.unpack("STATUS", await read_csr(ctx, bus, "STATUS"))
        assert (status["busy"], status["done"], status["error"]) == (0, 0, 0), status
        assert not ctx.get(session.core.irq)
        session.place(ctx, BASE, [encode(Opcode.END)])
        got = await session.run(ctx, BASE, 1, (0, MEMORY), limit=2000)
        assert got.code == CoreError.NONE

    simulate(session.top, host, timeout=100_000)


#: The iCEBreaker's design point: no vector unit, queues of two, 17-bit addresses.
NO_VECTOR = board("icebreaker").config


def test_no_vector_unit_has_no_vector_logic():
    """Built without a vector unit, the core's netlist has no vector module at all (built with
    one, it has the executor, the unit and its softmax and layernorm)."""
    def vector_modules(cfg):
        text = rtlil.convert(Core(cfg))
        return [name for name in re.findall(r"^module (\S+)$", text, re.M)
                if re.search("vector|softmax|layernorm", name, re.I)]

    assert vector_modules(NO_VECTOR) == []
    assert {r"\top.compute.vector", r"\top.compute.vector.unit.softmax",
            r"\top.compute.vector.unit.layernorm"} <= set(vector_modules(preset("tiny")))


def test_no_vector_unit():
    """On a core without a vector unit, one core running one program after another, each the
    same as on the golden model (code, address, counters, memory): a LOAD and a GEMM complete
    and the VECTOR after them stops the core with NO_VECTOR_UNIT at its address, with
    STATUS.error; a STORE then finds the GEMM's rows in the accumulator; a double-buffered
    GEMM-only program runs to END."""
    cfg = NO_VECTOR
    rng = np.random.default_rng(11)
    m, k_tiles = 8, 2
    a = random_int8(rng, (m, k_tiles * cfg.rows))
    w = random_int8(rng, (k_tiles * cfg.rows, cfg.cols))
    memory = np.zeros(MEMORY, np.uint8)
    memory[0x2000:0x2000 + a.size] = a.view(np.uint8).reshape(-1)
    memory[0x3000:0x3000 + w.size] = w.view(np.uint8).reshape(-1)
    pitch = vector_pitch(cfg)
    # a[:, :rows] to vectors 0..m-1 and w[:rows] after them.
    first = [encode(Opcode.LOAD, ext_addr=0x2000, rows=m, row_bytes=cfg.rows,
                    ext_stride=k_tiles * cfg.rows, local_stride=pitch),
             _dma(Opcode.LOAD, 0x3000, m * pitch, cfg.rows * cfg.cols, push_next=1),
             encode(Opcode.GEMM, act_addr=0, w_addr=m * pitch, m=m, k=cfg.rows, n=cfg.cols,
                    pop_prev=1),
             encode(Opcode.VECTOR, op=VectorOp.CLAMP, rows=1, length=4),
             encode(Opcode.END)]
    acc_rows = m * cfg.acc_row_bytes
    programs = [
        (first, CoreError.NO_VECTOR_UNIT, BASE + 3 * INSTRUCTION_BYTES),
        ([_dma(Opcode.STORE, 0x5000, cfg.acc_base, acc_rows), encode(Opcode.END)],
         CoreError.NONE, 0),
        (gemm_program(cfg, 0x2000, 0x3000, 0x6000, m, k_tiles), CoreError.NONE, 0),
    ]
    session = CoreSession(cfg, memory, latency=2, stall=0.2, seed=11)
    model = CoreModel(cfg, memory.copy(), window=WINDOW)

    async def host(ctx):
        for index, (words, code, addr) in enumerate(programs):
            session.place(ctx, BASE, words)
            place_program(model.memory, BASE, words)
            got = await session.run(ctx, BASE, len(words), WINDOW, limit=20_000)
            want = model.run(BASE, len(words))
            assert (got.code, got.addr) == (want.code, want.error_addr) == (code, addr), index
            for counter in want.counters:
                assert got.counters[counter] == want.counters[counter], (index, counter)
            status = csr.unpack("STATUS", await read_csr(ctx, session.core.csr, "STATUS"))
            assert (status["done"], status["error"]) == (code == CoreError.NONE,
                                                         code != CoreError.NONE), index
            diff = np.flatnonzero(session.memory(ctx) != model.memory)
            assert not len(diff), f"{len(diff)} bytes differ, the first at {diff[0]:#x}"
        config = csr.unpack("CONFIG_VECTOR", await read_csr(ctx, session.core.csr,
                                                            "CONFIG_VECTOR"))
        assert config == {"max_row": cfg.max_row, "absent": 1}

    simulate(session.top, host, timeout=100_000)
    stored = model.memory[0x5000:0x5000 + acc_rows].view("<i4").reshape(m, -1)[:, :cfg.cols]
    assert (stored == a[:, :cfg.rows].astype(np.int64) @ w[:cfg.rows]).all()
    product = model.memory[0x6000:0x6000 + acc_rows].view("<i4").reshape(m, -1)[:, :cfg.cols]
    assert (product == a.astype(np.int64) @ w).all()


def test_earliest_failure_merge():
    """The core's earliest-failure merge (all pairs compared at once) picks what keeping the
    best so far in order picks: the valid candidate with the lowest address, the first
    listed among equals; seeded, with many ties and invalid candidates."""
    cfg = preset("tiny")
    count = 5

    class Merge(Elaboratable):
        def __init__(self):
            self.valid = Signal(count)
            self.failures = [Signal(error_layout(cfg), name=f"f{k}") for k in range(count)]
            self.any = Signal()
            self.best = Signal(error_layout(cfg))

        def elaborate(self, platform):
            m = Module()
            any_valid, best = _earliest(m, list(zip(self.valid, self.failures, strict=True)))
            m.d.comb += [self.any.eq(any_valid), self.best.eq(best)]
            return m

    dut = Merge()
    seed = 2026
    rng = random.Random(seed)

    async def bench(ctx):
        for trial in range(2000):
            valid = [rng.random() < 0.5 for _ in range(count)]
            failures = [(rng.randrange(1, 256), rng.choice([0, 32, 64, rng.randrange(1 << 17)]))
                        for _ in range(count)]
            ctx.set(dut.valid, sum(v << k for k, v in enumerate(valid)))
            for signal, (code, addr) in zip(dut.failures, failures, strict=True):
                ctx.set(signal.code, code)
                ctx.set(signal.addr, addr)
            expected = None
            for v, failure in zip(valid, failures, strict=True):
                if v and (expected is None or failure[1] < expected[1]):
                    expected = failure
            assert ctx.get(dut.any) == (expected is not None), f"seed {seed}, trial {trial}"
            if expected is not None:
                got = (ctx.get(dut.best.code), ctx.get(dut.best.addr))
                assert got == expected, f"seed {seed}, trial {trial}: {valid} {failures}"

    simulate(dut, bench)
