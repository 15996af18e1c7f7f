# amaranth: UnusedElaboratable=no
"""The core's decoder (``rtl/core/decode.py``) against the golden model's static checks
(``CoreModel._check``): the same instructions dispatched to the same queues in program order,
and the same first error or END, for thousands of seeded programs per preset."""

import dataclasses
import random

import numpy as np
import pytest
from amaranth import Cat, Elaboratable, Module, Signal, Value
from amaranth.back import verilog
from amaranth.sim import Simulator
from test_core_model import CASES

from jalapeno.isa import (
    FORMATS,
    HEADER,
    INSTRUCTION_BITS,
    INSTRUCTION_BYTES,
    MAX_TOKENS,
    QUEUE_OF,
    CoreError,
    Opcode,
    Queue,
    VectorOp,
    decode,
    encode,
    record_layout,
)
from rtl.bus.stream_sim import simulate
from rtl.config import PRESETS, JalapenoConfig, preset
from rtl.core.decode import (
    Decoder,
    _reciprocal,
    ceil_div,
    field,
    field_spec,
    record_bytes,
    reserved_mask,
)
from rtl.core.fetch import FetchKind, fetched_layout
from verification.models.core import _CHANNELS, CoreModel, _Fault, vector_pitch
from verification.programs import random_program, token_flags

#: A configuration whose ``cols`` is not a power of two: ``ceil(length / cols)`` is the
#: reciprocal multiplication, and ``vector_pitch`` (8) exceeds both dimensions.
ODD = JalapenoConfig(name="odd", rows=3, cols=6, acc_depth=64, spad_bytes=4096, max_row=100)
WINDOW = (0x1000, 0xE000)
PORTS = ("load", "compute", "store", "error", "end")
END = encode(Opcode.END)
LOAD1 = encode(Opcode.LOAD, rows=1, row_bytes=8)


# -- the golden static behaviour ------------------------------------------------------------

def golden(model, entries):
    """What the decoder must do with ``entries`` (``(word, addr, kind)``, ending in
    ``OVERRUN``): the ``(queue, word, addr)`` dispatched in order, and ``("error", code,
    addr)`` or ``("end", addr)``."""
    tokens = dict.fromkeys(_CHANNELS, 0)
    out = []
    for word, addr, kind in entries:
        if kind == FetchKind.OVERRUN:
            return out, ("error", CoreError.PROGRAM_OVERRUN, addr)
        if kind != FetchKind.WORD:
            return out, ("error", CoreError.FETCH, addr)
        try:
            opcode, f = model._check(word, tokens)
        except _Fault as fault:
            return out, ("error", fault.code, addr)
        if opcode == Opcode.END:
            return out, ("end", addr)
        out.append((f["queue"] if opcode == Opcode.SYNC else QUEUE_OF[opcode], word, addr))
    raise AssertionError("entries must end in OVERRUN")


def entries_of(words, base, *, fault=None):
    """Kind-0 entries of ``words`` from byte ``base``, a FAULT instead of word ``fault``, and
    the OVERRUN after the last."""
    out = [(w, base + i * INSTRUCTION_BYTES, FetchKind.FAULT if i == fault else FetchKind.WORD)
           for i, w in enumerate(words)]
    return out + [(0, base + len(words) * INSTRUCTION_BYTES, FetchKind.OVERRUN)]


# -- driving the decoder --------------------------------------------------------------------

class Harness(Elaboratable):
    """A :class:`Decoder` with its stream inputs driven by one signal, ``drive`` (``valid``
    of ``instr``, ``ready`` of each of :data:`PORTS`, then the ``instr`` payload), and every
    output gathered in one, ``probe`` (``instr.ready``, ``busy``, the ``valid`` of each of
    :data:`PORTS`, then their payloads): one ``set`` and one sample a cycle keep the
    simulation fast."""

    def __init__(self, cfg):
        self.dut = Decoder(cfg)
        self.ports = [getattr(self.dut, name) for name in PORTS]
        self.in_width = fetched_layout(cfg).size
        self.drive = Signal(1 + len(PORTS) + self.in_width)
        self.widths = [len(Value.cast(port.payload)) for port in self.ports]
        self.probe = Signal(2 + len(PORTS) + sum(self.widths))

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.d.comb += [dut.instr.valid.eq(self.drive[0]),
                     dut.instr.payload.eq(self.drive[1 + len(PORTS):])]
        m.d.comb += [port.ready.eq(self.drive[1 + i]) for i, port in enumerate(self.ports)]
        m.d.comb += self.probe.eq(Cat(dut.instr.ready, dut.busy,
                                      *(port.valid for port in self.ports),
                                      *(port.payload for port in self.ports)))
        return m

    def split(self, raw):
        """``(instr.ready, busy, valids, payloads)`` of a sampled ``probe``."""
        valids = [raw >> (2 + i) & 1 for i in range(len(PORTS))]
        at, payloads = 2 + len(PORTS), []
        for width in self.widths:
            payloads.append(raw >> at & ((1 << width) - 1))
            at += width
        return raw & 1, raw >> 1 & 1, valids, payloads


def run_programs(cfg, programs, *, seed, idle=0.0, backpressure=0.0, timing=None):
    """Feed each of ``programs`` (lists of entries) to one :class:`Decoder` after a ``start``
    pulse, in one simulation, and return per program the ``(queue, word, addr)`` dispatched
    and the ``("error", code, addr)`` or ``("end", addr)`` taken.

    Checked on the way, every cycle: at most one output offered; ``busy`` high until the
    outcome is taken; after it, nothing offered or taken, ``busy`` low. With ``timing`` (a
    list), no idle cycles and every output ready, appends ``(entry, taken edge, offered
    edge)`` for each entry."""
    rng = random.Random(seed)
    harness = Harness(cfg)
    dut = harness.dut
    layout = fetched_layout(cfg)
    addr_at, kind_at = layout["addr"].offset, layout["kind"].offset
    aw = cfg.addr_width
    payload_at = 1 + len(PORTS)
    all_ready = ((1 << len(PORTS)) - 1) << 1
    results = []

    def unpack(index, raw):
        if index < 3:
            return (Queue(index), raw & ((1 << INSTRUCTION_BITS) - 1),
                    raw >> INSTRUCTION_BITS & ((1 << aw) - 1))
        if index == 3:
            return ("error", CoreError(raw & 0xFF), raw >> 8 & ((1 << aw) - 1))
        return ("end", raw)

    async def bench(ctx):
        edge = 0
        for number, entries in enumerate(programs):
            where = f"seed {seed}, program {number}: {entries}"
            ctx.set(harness.drive, 0)
            ctx.set(dut.start, 1)
            await ctx.tick()
            edge += 1
            ctx.set(dut.start, 0)
            got, outcome, index, offering, taken_at = [], None, 0, None, None
            limit = 40 + 20 * len(entries)
            for _ in range(limit):
                if offering is None and index < len(entries) and rng.random() >= idle:
                    word, addr, kind = entries[index]
                    offering = (word | addr << addr_at | kind.value << kind_at) << payload_at | 1
                readies = [rng.random() >= backpressure for _ in PORTS]
                drive = offering or 0
                for i, ready in enumerate(readies):
                    drive |= ready << (1 + i)
                ctx.set(harness.drive, drive)
                _, _, raw = await ctx.tick().sample(harness.probe)
                edge += 1
                ready, busy, valids, payloads = harness.split(raw)
                assert busy, where
                assert sum(valids) <= 1, where
                for i, valid in enumerate(valids):
                    if valid and timing is not None and taken_at is not None:
                        timing.append((entries[index - 1], taken_at, edge))
                        taken_at = None
                    if valid and readies[i]:
                        item = unpack(i, payloads[i])
                        if i < 3:
                            got.append(item)
                        else:
                            outcome = item
                if offering is not None and ready:
                    offering, index, taken_at = None, index + 1, edge
                if outcome is not None:
                    break
            else:
                raise AssertionError(f"no outcome within {limit} cycles; {where}")
            # Stopped: an entry offered is not taken, nothing is offered, busy is low.
            ctx.set(harness.drive, all_ready | 1)
            for _ in range(2):
                _, _, raw = await ctx.tick().sample(harness.probe)
                edge += 1
                ready, busy, valids, _ = harness.split(raw)
                assert not ready and not busy and not any(valids), where
            results.append((got, outcome))

    simulate(harness, bench, timeout=200 * sum(len(p) + 4 for p in programs))
    return results


def check_against_golden(cfg, programs, *, seed, **kwargs):
    """Run ``programs`` and compare with :func:`golden`; return how often each outcome
    (a :class:`CoreError`, or ``"end"``) came."""
    model = CoreModel(cfg, np.zeros(64, np.uint8))
    results = run_programs(cfg, programs, seed=seed, **kwargs)
    outcomes = {}
    for number, (entries, got) in enumerate(zip(programs, results, strict=True)):
        expected = golden(model, entries)
        if got != expected:
            where = f"seed {seed}, preset {cfg.name}, program {number}"
            words = [hex(w) for w, _, _ in entries]
            raise AssertionError(f"{where}: decoder {got}, golden {expected}; words {words}")
        key = "end" if expected[1][0] == "end" else expected[1][1]
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


# -- program sources ------------------------------------------------------------------------

def _pick(rng, *choices):
    return choices[rng.randrange(len(choices))]


def _fit(rng, value, opcode, name):
    """``value`` if it fits the field, else a random value that does."""
    limit = field_spec(opcode, name).limit
    return value if 0 <= value < limit else rng.randrange(limit)


def _edge_vector(rng, cfg):
    """The fields of a VECTOR aimed at the edges of its operands' memories: half of them
    with every operand placed to fit, most exactly up to its memory's end, with up to
    thousands of rows."""
    pitch, spad = vector_pitch(cfg), cfg.spad_bytes
    op = rng.randrange(6) if rng.random() < 0.95 else rng.randrange(16)
    length = _pick(rng, 1, cfg.cols, cfg.cols + 1, cfg.max_row, rng.randint(1, cfg.max_row),
                   rng.randint(1, 4 * cfg.cols)) if rng.random() < 0.95 else \
        _pick(rng, 0, cfg.max_row + 1, rng.randrange(1 << 13))
    fit = rng.random() < 0.5
    bits = rng.randrange(17)
    if fit:
        rows = _pick(rng, 1, 2, 3, rng.randint(2, 2000), 1 << rng.randrange(12), 0xFFFF)
    else:
        rows = _pick(rng, 0, 1, 2, 3, 0xFFFF, rng.randrange(1 << bits), 1 << min(bits, 15),
                     rng.randint(1, 40))
    beats = -(-length // cfg.cols)
    fields = {"op": op, "rows": rows, "length": length}
    for name in ("src", "src2", "dst"):
        acc = name == "src" and op == VectorOp.REQUANTIZE
        step = cfg.acc_row_bytes if acc else pitch
        lo, hi = (cfg.acc_base, cfg.acc_base + cfg.acc_bytes) if acc else (0, spad)
        if fit:
            stride = _pick(rng, 0, beats * step, step * rng.randint(1, 4))
            if (rows - 1) * stride + beats * step > hi - lo:
                stride = 0
        else:
            stride = _pick(rng, 0, beats * step, step * rng.randrange(1 << rng.randrange(1, 20)),
                           rng.randrange(1 << rng.randrange(1, 27)), step * rng.randint(1, 8))
        extent = max(rows - 1, 0) * stride + beats * step
        if fit and rng.random() < 0.9:
            addr = max(lo, hi - extent - step * _pick(rng, 0, 0, 1, rng.randrange(64)))
        else:
            addr = _pick(rng, hi - extent, hi - extent + step, hi - extent - step,
                         hi - extent + 1, lo, lo + step * rng.randrange(64),
                         rng.randrange(1 << 26), lo - step)
        fields[name] = _fit(rng, addr, Opcode.VECTOR, name)
        fields[f"{name}_stride"] = _fit(rng, stride, Opcode.VECTOR, f"{name}_stride")
    size = record_layout(op, length)[1] if op <= max(VectorOp) else 0
    top = spad - -(-size // pitch) * pitch
    params = top - pitch * rng.randrange(3) if fit and rng.random() < 0.9 else \
        _pick(rng, top, top + pitch, top - pitch, top + 1, 0, rng.randrange(0, spad, pitch))
    fields["params"] = _fit(rng, params, Opcode.VECTOR, "params")
    return fields


def _edge_gemm(rng, cfg):
    """The fields of a GEMM aimed at the edges of the scratchpad and the accumulator."""
    pitch, spad, depth = vector_pitch(cfg), cfg.spad_bytes, cfg.acc_depth
    m = _pick(rng, 0, 1, 2, depth, depth + 1, rng.randrange(1 << 16), rng.randint(1, 64))
    k = _pick(rng, 0, 1, cfg.rows, cfg.rows + 1, rng.randint(0, cfg.rows), rng.randrange(256))
    n = _pick(rng, 0, 1, cfg.cols, cfg.cols + 1, rng.randint(0, cfg.cols), rng.randrange(256))

    def addr(count):
        top = spad - count * pitch
        return _pick(rng, 0, top, top + pitch, top - pitch, top + 1,
                     rng.randrange(0, spad, pitch), rng.randrange(1 << 24))

    fields = {"m": m, "k": k, "n": n, "act_addr": addr(m), "w_addr": addr(k),
              "acc_addr": _pick(rng, 0, depth - m, depth - m + 1, rng.randrange(1 << 16)),
              "accumulate": rng.randrange(2)}
    return {name: _fit(rng, v, Opcode.GEMM, name) for name, v in fields.items()}


def edge_program(rng, cfg):
    """Up to 8 instructions of every opcode, GEMM and VECTOR fields at their memories' edges,
    token flags mostly well-formed; END last most of the time."""
    tokens = dict.fromkeys(_CHANNELS, 0)
    words = []
    for _ in range(rng.randint(1, 8)):
        opcode = _pick(rng, *([Opcode.GEMM] * 3 + [Opcode.VECTOR] * 4 +
                              [Opcode.SYNC, Opcode.LOAD, Opcode.STORE]))
        if opcode == Opcode.GEMM:
            fields = _edge_gemm(rng, cfg)
        elif opcode == Opcode.VECTOR:
            fields = _edge_vector(rng, cfg)
        elif opcode == Opcode.SYNC:
            fields = {"queue": rng.randrange(4) if rng.random() < 0.1 else rng.randrange(3)}
        else:
            fields = {"rows": rng.randrange(1 << 16), "local_stride": rng.randrange(1 << 20)}
        queue = Queue(min(fields.get("queue", 0), 2)) if opcode == Opcode.SYNC else \
            QUEUE_OF[opcode]
        fields.update(token_flags(rng, queue, tokens, rate=0.3, orphan=0.1, wrong=0.03))
        words.append(encode(opcode, **fields))
    if rng.random() < 0.7:
        words.append(encode(Opcode.END, **({"pop_next": 1} if rng.random() < 0.05 else {})))
    return words


def raw_program(rng):
    """1 to 4 random 256-bit words; some with a legal opcode, some of those with their
    reserved bits cleared too."""
    words = []
    for _ in range(rng.randint(1, 4)):
        word = rng.getrandbits(INSTRUCTION_BITS)
        if rng.random() < 0.6:
            opcode = Opcode(rng.randint(1, 6))
            word = word & ~0xF | opcode
            if rng.random() < 0.7:
                word &= ~reserved_mask(opcode)
        words.append(word)
    return words


def token_programs():
    """Per direction, SYNCs that fill it to :data:`MAX_TOKENS`, take one, give it back and
    then one too many (``TOKEN_OVERFLOW``); that fill it and then push one more with a pop
    from an empty direction (``TOKEN_UNDERFLOW``: pops first); and that take one more than
    they gave (``TOKEN_UNDERFLOW``)."""
    programs = []
    for a, b in _CHANNELS:
        push = encode(Opcode.SYNC, queue=a, **{"push_next" if b > a else "push_prev": 1})
        pop = encode(Opcode.SYNC, queue=b, **{"pop_prev" if b > a else "pop_next": 1})
        both = encode(Opcode.SYNC, queue=a, **{"push_next" if b > a else "push_prev": 1,
                                               "pop_next" if a < Queue.STORE else "pop_prev": 1})
        programs.append([push] * MAX_TOKENS + [pop, push, push, END])
        programs.append([push] * MAX_TOKENS + [both, END])
        programs.append([push, pop, push, push, pop, pop, pop, END])
    return programs


def mixed_programs(cfg, seed, count):
    """``count`` seeded programs (as entries): the golden model's hand cases, the token runs
    of :func:`token_programs`, then ``random_program`` streams, edge-aimed ones and raw words,
    3 % of them with a FAULT entry."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    programs = [entries_of(words, 0x100) for words, _, _ in CASES.values()]
    programs += [entries_of(words, 0x2000) for words in token_programs()]
    while len(programs) < count:
        kind = rng.random()
        if kind < 0.6:
            words = random_program(nrng, cfg, WINDOW, length=rng.randint(1, 8))
        elif kind < 0.9:
            words = edge_program(rng, cfg)
        else:
            words = raw_program(rng)
        base = rng.randrange(0, (1 << cfg.addr_width) - 300 * INSTRUCTION_BYTES,
                             INSTRUCTION_BYTES)
        fault = rng.randrange(len(words)) if rng.random() < 0.03 else None
        programs.append(entries_of(words, base, fault=fault))
    return programs


# -- the tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny", "default"])
def test_matches_golden_model(name):
    """3,000 seeded programs per preset (``random_program`` streams, edge-aimed GEMMs and
    VECTORs, raw words, token runs to 0 and past 255, the hand cases of
    ``test_core_model``, some FETCH faults), with random idle cycles and backpressure: the
    decoder dispatches exactly the golden model's instructions, to the same queues, in the
    same order, and stops with the same code at the same address or the same END; every
    static outcome is reached."""
    cfg = preset(name)
    seed = 1000 + list(PRESETS).index(name)
    print(f"seed {seed}")
    programs = mixed_programs(cfg, seed, 3000)
    outcomes = check_against_golden(cfg, programs, seed=seed, idle=0.2, backpressure=0.3)
    static = {CoreError.ILLEGAL_OPCODE, CoreError.BAD_FIELD, CoreError.LOCAL_RANGE,
              CoreError.ACC_RANGE, CoreError.TOKEN_UNDERFLOW, CoreError.TOKEN_OVERFLOW,
              CoreError.FETCH, CoreError.PROGRAM_OVERRUN, "end"}
    missing = static - set(outcomes)
    assert not missing, f"seed {seed}: never reached {missing}; got {outcomes}"
    # The token runs overflow 4 times, random_program's floods now and then.
    assert all(outcomes[key] >= (4 if key == CoreError.TOKEN_OVERFLOW else 10)
               for key in static), f"seed {seed}: {outcomes}"


def test_matches_golden_model_odd_shape():
    """A configuration with ``cols`` 6 (no power of two: ``ceil(length / cols)`` by the
    constant reciprocal) and ``vector_pitch`` 8 above ``rows`` and ``cols``: 600 programs
    agree with the golden model."""
    seed = 1100
    print(f"seed {seed}")
    outcomes = check_against_golden(ODD, mixed_programs(ODD, seed, 600), seed=seed,
                                    idle=0.1, backpressure=0.1)
    assert outcomes.get(CoreError.LOCAL_RANGE, 0) >= 10, f"seed {seed}: {outcomes}"


def test_no_vector_unit():
    """Without a vector unit: 300 seeded programs as :func:`test_matches_golden_model`'s go
    as the golden model says, every VECTOR stopping the decoder with NO_VECTOR_UNIT, which
    comes before its fields' checks and is offered two cycles after the VECTOR is taken,
    whatever its rows."""
    cfg = dataclasses.replace(preset("tiny"), name="tiny_novec", vector_unit=False)
    assert Decoder(cfg).max_decode_cycles == 2
    seed = 1200
    outcomes = check_against_golden(cfg, mixed_programs(cfg, seed, 300), seed=seed, idle=0.2,
                                    backpressure=0.3)
    assert outcomes.get(CoreError.NO_VECTOR_UNIT, 0) >= 20, f"seed {seed}: {outcomes}"
    assert outcomes.get("end", 0) >= 10, f"seed {seed}: {outcomes}"
    worst = encode(Opcode.VECTOR, op=9, rows=0xFFFF, pop_prev=1)
    timing = []
    results = run_programs(cfg, [entries_of([LOAD1, worst], 0x1000)], seed=1, timing=timing)
    assert results == [([(Queue.LOAD, LOAD1, 0x1000)],
                        ("error", CoreError.NO_VECTOR_UNIT, 0x1000 + INSTRUCTION_BYTES))]
    assert [offered - taken for _, taken, offered in timing] == [2, 2]


def test_decode_cycles():
    """With every output ready, an instruction is checked at the edge after the one that
    takes it, offered in the cycle after that, and taken by its queue at the next edge while
    the next one is taken; a VECTOR word with ``rows >= 2`` ``bit_length(rows - 1)`` cycles
    later, never more than :attr:`Decoder.max_decode_cycles` (18)."""
    cfg = preset("default")
    assert Decoder(cfg).max_decode_cycles == 18
    vector = dict(op=VectorOp.CLAMP, length=8, src_stride=8, dst_stride=8)
    simple = [encode(Opcode.SYNC, queue=q) for q in (0, 1, 2, 1, 0)]
    simple += [encode(Opcode.LOAD, rows=1, row_bytes=8), encode(Opcode.GEMM, m=1, k=1, n=1)]
    simple += [encode(Opcode.VECTOR, rows=r, **vector) for r in (0, 1, 2, 3, 5, 200)]
    # 65535 rows: the worst case, then LOCAL_RANGE.
    worst = encode(Opcode.VECTOR, rows=0xFFFF, **vector)
    timing = []
    results = run_programs(cfg, [entries_of(simple, 0), entries_of([worst], 0x1000)], seed=1,
                           timing=timing)
    assert [outcome for _, outcome in results] == [
        ("error", CoreError.PROGRAM_OVERRUN, 32 * len(simple)),
        ("error", CoreError.LOCAL_RANGE, 0x1000)]
    assert len(timing) == len(simple) + 2
    for (word, _, kind), taken, offered in timing:
        rows = decode(word)[1]["rows"] if word & 0xF == Opcode.VECTOR else 0
        expected = 2 + max(rows - 1, 0).bit_length() if kind == FetchKind.WORD else 2
        assert offered - taken == expected, hex(word)
    assert max(offered - taken for _, taken, offered in timing) == 18
    # One instruction per two cycles: 40 SYNCs and an END through in 82 cycles (plus the
    # start).
    stream = [encode(Opcode.SYNC, queue=i % 3) for i in range(40)] + [encode(Opcode.END)]
    edges = []

    async def bench(ctx):
        dut_ports = [dut.load, dut.compute, dut.store, dut.end]
        for port in dut_ports:
            ctx.set(port.ready, 1)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        index, edge = 0, 0
        while True:
            ctx.set(dut.instr.valid, 1)
            ctx.set(dut.instr.payload.word, stream[min(index, len(stream) - 1)])
            _, _, ready, end = await ctx.tick().sample(dut.instr.ready, dut.end.valid)
            edge += 1
            if ready:
                index += 1
            if end:
                edges.append(edge)
                break

    dut = Decoder(cfg)
    simulate(dut, bench)
    assert edges == [2 * len(stream) + 1]



@pytest.mark.parametrize("stalled", list(Queue), ids=[q.name for q in Queue])
def test_backpressure_stalls_in_order(stalled):
    """With one queue's output held not ready, its instruction is offered and waits;
    nothing behind it is taken or offered, instructions of the other queues included; once
    ready, everything goes in program order."""
    cfg = preset("default")
    words = [encode(Opcode.SYNC, queue=q) for q in (0, 1, 2)] * 3 + [END]
    dut = Decoder(cfg)
    outs = [dut.load, dut.compute, dut.store]
    got = []

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for q in Queue:
            ctx.set(outs[q].ready, q != stalled)
        ctx.set(dut.end.ready, 1)
        index, edge, done = 0, 0, False
        while not done:
            ctx.set(dut.instr.valid, index < len(words))
            ctx.set(dut.instr.payload.word, words[min(index, len(words) - 1)])
            ctx.set(dut.instr.payload.addr, 32 * index)
            if edge == 30:
                ctx.set(outs[stalled].ready, 1)
            _, _, ready, *sampled = await ctx.tick().sample(
                dut.instr.ready, *(o.valid for o in outs), *(o.payload.addr for o in outs),
                dut.end.valid)
            edge += 1
            valids, addrs, done = sampled[:3], sampled[3:6], sampled[6]
            if 10 <= edge < 30:  # well into the stall: only the stalled queue is offered
                assert valids == [q == stalled for q in Queue]
                assert not ready
            for q in Queue:
                if valids[q] and (q != stalled or edge > 30):
                    got.append((q, addrs[q]))
            if ready and index < len(words):
                index += 1

    simulate(dut, bench)
    assert got == [(Queue(i % 3), 32 * i) for i in range(9)]


def test_start_resets_tokens_and_restarts():
    """After END the decoder takes nothing until ``start``; ``start`` empties the token
    counts (a pop of a token pushed before it underflows) and drops an instruction held
    under backpressure."""
    cfg = preset("tiny")
    push = encode(Opcode.SYNC, queue=Queue.LOAD, push_next=1)
    pop = encode(Opcode.SYNC, queue=Queue.COMPUTE, pop_prev=1)
    results = run_programs(cfg, [entries_of([push, END], 0), entries_of([pop, END], 0x40),
                                 entries_of([push, pop, END], 0x80)], seed=3)
    assert results == [
        ([(Queue.LOAD, push, 0)], ("end", 32)),
        ([], ("error", CoreError.TOKEN_UNDERFLOW, 0x40)),
        ([(Queue.LOAD, push, 0x80), (Queue.COMPUTE, pop, 0xA0)], ("end", 0xC0)),
    ]
    dut = Decoder(cfg)

    async def bench(ctx):
        assert not ctx.get(dut.busy)
        ctx.set(dut.instr.valid, 1)
        ctx.set(dut.instr.payload.word, LOAD1)
        for _ in range(3):  # out of reset: stopped
            _, _, ready = await ctx.tick().sample(dut.instr.ready)
            assert not ready
        ctx.set(dut.start, 1)
        _, _, ready = await ctx.tick().sample(dut.instr.ready)
        assert not ready  # nothing taken in the start cycle
        ctx.set(dut.start, 0)
        _, _, ready = await ctx.tick().sample(dut.instr.ready)
        assert ready and ctx.get(dut.busy)
        ctx.set(dut.instr.payload.word, END)
        _, _, ready, valid = await ctx.tick().sample(dut.instr.ready, dut.load.valid)
        assert not valid and not ready  # the LOAD is being checked
        for _ in range(3):  # the LOAD is held: the load queue is not ready
            _, _, ready, valid = await ctx.tick().sample(dut.instr.ready, dut.load.valid)
            assert valid and not ready
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert not ctx.get(dut.load.valid)  # dropped
        ctx.set(dut.end.ready, 1)
        _, _, ready = await ctx.tick().sample(dut.instr.ready)
        assert ready  # the END taken at once
        _, _, end = await ctx.tick().sample(dut.end.valid)
        assert not end  # being checked
        _, _, end, addr = await ctx.tick().sample(dut.end.valid, dut.end.payload.addr)
        assert end and addr == 0
        _, _, end, busy = await ctx.tick().sample(dut.end.valid, dut.busy)
        assert not end and not busy  # offered once

    simulate(dut, bench)


def test_error_waits_for_ready():
    """An error is offered until taken, with its code and address unchanged, and then
    never again."""
    cfg = preset("tiny")
    dut = Decoder(cfg)

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ctx.set(dut.instr.valid, 1)
        ctx.set(dut.instr.payload.word, 7)
        ctx.set(dut.instr.payload.addr, 0x1234)
        await ctx.tick()
        ctx.set(dut.instr.valid, 0)
        _, _, valid = await ctx.tick().sample(dut.error.valid)
        assert not valid  # being checked
        for _ in range(5):
            _, _, valid, code, addr = await ctx.tick().sample(
                dut.error.valid, dut.error.payload.code, dut.error.payload.addr)
            assert (valid, code, addr) == (1, CoreError.ILLEGAL_OPCODE, 0x1234)
        ctx.set(dut.error.ready, 1)
        _, _, valid = await ctx.tick().sample(dut.error.valid)
        assert valid
        for _ in range(3):
            _, _, valid = await ctx.tick().sample(dut.error.valid)
            assert not valid

    simulate(dut, bench)


def test_record_bytes_matches_record_layout():
    """The record size the decoder computes equals ``record_layout``'s for every op and
    every length from 1 to 4096 (the largest ``max_row``) in the RTL, and for every 13-bit
    length as a Python fold; an op above the last has none."""
    for op in VectorOp:
        for length in range(1 << field_spec(Opcode.VECTOR, "length").width):
            assert record_bytes(op, length) == record_layout(op, length)[1], (op, length)
    op, length = Signal(4), Signal(13)
    size = Signal(17)
    m = Module()
    m.d.comb += size.eq(record_bytes(op, length))
    sim = Simulator(m)
    mismatches = []

    async def bench(ctx):
        for code in range(8):
            for n in range(1, 4097):
                ctx.set(op, code)
                ctx.set(length, n)
                want = record_layout(code, n)[1] if code <= max(VectorOp) else 0
                if ctx.get(size) != want:
                    mismatches.append((code, n))

    sim.add_testbench(bench)
    sim.run()
    assert not mismatches


def test_reciprocal_division_is_exact():
    """``ceil(length / cols)`` for ``cols`` not a power of two: the constant reciprocal
    gives ``x // cols`` for every 14-bit ``x`` and every ``cols`` up to 64."""
    x = np.arange(1 << 14, dtype=np.int64)
    for cols in range(1, 65):
        r, s = _reciprocal(cols, 14)
        assert ((x * r) >> s == x // cols).all(), cols


def test_field_helper():
    """``field`` slices each field where the ISA tables put it (checked against
    ``jalapeno.isa.decode`` in simulation for random words) and refuses unknown names and
    words of the wrong width; ``reserved_mask`` is exactly what ``decode`` calls
    reserved."""
    rng = random.Random(7)
    word = Signal(INSTRUCTION_BITS)
    probes = {}
    m = Module()
    for opcode in Opcode:
        for f in HEADER + FORMATS[opcode]:
            probe = Signal(f.width, name=f"{opcode.name}_{f.name}")
            m.d.comb += probe.eq(field(word, opcode, f.name))
            probes[(opcode, f.name)] = probe
    samples = [rng.getrandbits(INSTRUCTION_BITS) for _ in range(20)]
    sim = Simulator(m)

    async def bench(ctx):
        for value in samples:
            ctx.set(word, value)
            for opcode in Opcode:
                _, expected, reserved = decode(value & ~0xF | opcode)
                assert reserved == value & reserved_mask(opcode)
                for name, v in expected.items():
                    if name != "opcode":
                        assert ctx.get(probes[(opcode, name)]) == v, (opcode, name)

    sim.add_testbench(bench)
    sim.run()
    assert len(field(word, None, "opcode")) == 4
    with pytest.raises(ValueError, match="GEMM has no field 'queue'"):
        field(word, Opcode.GEMM, "queue")
    with pytest.raises(ValueError, match="256 bits, not 8"):
        field(Signal(8), Opcode.SYNC, "queue")


@pytest.mark.parametrize("name", list(PRESETS))
def test_converts_to_verilog(name):
    """Every preset converts, with the ports named by the signature; the decoder's
    ``vector_pitch`` is the golden model's."""
    dut = Decoder(preset(name))
    assert dut.vector_pitch == vector_pitch(preset(name))
    text = verilog.convert(dut, name="decoder")
    for port in ("instr__payload", "load__valid", "compute__payload", "store__ready",
                 "error__payload", "end__valid", "start", "busy"):
        assert port in text, port


def test_rejects_bad_config():
    with pytest.raises(TypeError, match="config must be a JalapenoConfig"):
        Decoder("default")


def test_ceil_div_in_rtl():
    """``ceil_div`` in simulation, for divisors that are no power of two (the reciprocal
    multiplication) and ones that are (a shift): exact for every 13-bit value."""
    value = Signal(13)
    divisors = (1, 3, 6, 7, 8, 48, 63)
    outs = {d: Signal(14, name=f"by_{d}") for d in divisors}
    m = Module()
    m.d.comb += [out.eq(ceil_div(value, d)) for d, out in outs.items()]
    sim = Simulator(m)
    wrong = []

    async def bench(ctx):
        for x in range(1 << 13):
            ctx.set(value, x)
            wrong.extend((x, d) for d, out in outs.items() if ctx.get(out) != -(-x // d))

    sim.add_testbench(bench)
    sim.run()
    assert not wrong, wrong[:5]
