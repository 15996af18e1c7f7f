# amaranth: UnusedElaboratable=no
"""The VECTOR executor (``rtl/core/vector_exec.py``) on its own, its ports served by models of
the scratchpad's compute port, an accumulator read port and the scratchpad's write port (with
random stalls), against the golden ISA simulator: every op on tiny and default and on
configurations whose vectors are narrower or wider than a bus word or hold their record's
arrays mid-vector, rows not a multiple of ``cols``, strides, every VECTOR_PARAM fault, and the
cycle costs the docstring states."""

from collections import deque

import numpy as np
import pytest
from vector_records import BAD_KINDS, Layout, random_record, vector_word

from jalapeno.isa import INSTRUCTION_BYTES, CoreError, Opcode, VectorOp, decode, encode
from rtl.bus.stream_sim import simulate
from rtl.config import JalapenoConfig, preset
from rtl.core.acc_share import AccReadShare
from rtl.core.vector_exec import VectorExec
from verification.models.core import CoreModel, vector_pitch
from verification.programs import place_program

BASE = 0x100
#: A vector narrower than a bus word (4 of 16 bytes), and one twice as wide (16 of 8).
NARROW = JalapenoConfig(name="narrow", rows=4, cols=3, acc_depth=64, bus_width=128,
                        spad_bytes=8192, max_row=64)
WIDE = JalapenoConfig(name="wide", rows=16, cols=12, acc_depth=64, spad_bytes=8192, max_row=100)
#: 32-byte vectors of 5 lanes: the record's gamma and beta arrays start mid-vector.
TALL = JalapenoConfig(name="tall", rows=32, cols=5, acc_depth=64, spad_bytes=16384, max_row=100)
CUSTOM = {"narrow": NARROW, "wide": WIDE, "tall": TALL}


class ExecBench:
    """One :class:`VectorExec` whose ports are served by Python models of the memories.

    The scratchpad model takes a read with probability ``1 - stall`` while fewer than two are
    unanswered and answers it from the next cycle, with the bytes at the edge that took it;
    the accumulator model answers ``acc_latency`` cycles on, four at most in flight; writes
    are taken with probability ``1 - stall`` and land at the edge that takes them.
    """

    def __init__(self, config, *, seed=0, stall=0.0, acc_latency=2):
        self.config = config
        self.dut = VectorExec(config)
        self.rng = np.random.default_rng(seed)
        self.stall, self.acc_latency = stall, acc_latency
        self.pitch = vector_pitch(config)

    def _go(self):
        return self.rng.random() >= self.stall

    async def run(self, ctx, spad, acc, words):
        """Run VECTOR ``words`` (at ``BASE`` on) until the first error; update ``spad``.

        Returns ``(code, addr, cycles)``: the first error's code and address (``NONE``, 0 if
        none) and each instruction's cycles from taken to done."""
        dut, cfg = self.dut, self.config
        rd_q, acc_q = deque(), deque()
        cycles = []
        cycle = 0
        for index, word in enumerate(words):
            ctx.set(dut.instr.payload.word, word)
            ctx.set(dut.instr.payload.addr, BASE + index * INSTRUCTION_BYTES)
            ctx.set(dut.instr.valid, 1)
            taken_at = None
            while True:
                if rd_q and rd_q[0][0] <= cycle:
                    ctx.set(dut.rd_data.valid, 1)
                    ctx.set(dut.rd_data.payload, rd_q[0][1])
                else:
                    ctx.set(dut.rd_data.valid, 0)
                if acc_q and acc_q[0][0] <= cycle:
                    ctx.set(dut.acc_data.valid, 1)
                    ctx.set(dut.acc_data.payload, acc_q[0][1])
                else:
                    ctx.set(dut.acc_data.valid, 0)
                ctx.set(dut.rd.ready, len(rd_q) < 2 and self._go())
                ctx.set(dut.acc_rd.ready, len(acc_q) < 4 and self._go())
                ctx.set(dut.wr.ready, self._go())
                (_, _, i_ok, rd_v, rd_r, rd_a, rdd_v, rdd_r, acc_v, acc_r, acc_a, accd_v,
                 accd_r, wr_v, wr_r, wr_a, wr_d, wr_s, done, err, err_code, err_addr,
                 unit_error) = await ctx.tick().sample(
                    dut.instr.valid & dut.instr.ready,
                    dut.rd.valid, dut.rd.ready, dut.rd.payload,
                    dut.rd_data.valid, dut.rd_data.ready,
                    dut.acc_rd.valid, dut.acc_rd.ready, dut.acc_rd.payload,
                    dut.acc_data.valid, dut.acc_data.ready,
                    dut.wr.valid, dut.wr.ready, dut.wr.payload.addr, dut.wr.payload.data,
                    dut.wr.payload.strb, dut.done.valid, dut.error.valid,
                    dut.error.payload.code, dut.error.payload.addr, dut.unit_error)
                cycle += 1
                assert not unit_error, "the vector unit flagged an error"
                if i_ok:
                    ctx.set(dut.instr.valid, 0)
                    taken_at = cycle
                if rdd_v and rdd_r:
                    rd_q.popleft()
                if accd_v and accd_r:
                    acc_q.popleft()
                if rd_v and rd_r:
                    at = rd_a
                    assert at % self.pitch == 0, f"misaligned read {at:#x}"
                    rd_q.append((cycle, spad[at:at + self.pitch].view(np.int8).tolist()))
                if acc_v and acc_r:
                    acc_q.append((cycle + self.acc_latency - 1, acc[acc_a].tolist()))
                if wr_v and wr_r:
                    nb = cfg.bus_bytes
                    assert wr_a % nb == 0, f"misaligned write {wr_a:#x}"
                    raw = wr_d.to_bytes(nb, "little")
                    for k in range(nb):
                        if wr_s >> k & 1:
                            spad[wr_a + k] = raw[k]
                if done or err:
                    assert not (done and err)
                    assert not rd_q and not acc_q, "reads left unanswered"
                    cycles.append(cycle - taken_at)
                    if err:
                        return CoreError(err_code), err_addr, cycles
                    break
                assert cycle < 400_000, "no end"
        return CoreError.NONE, 0, cycles


def golden(config, spad, acc, words):
    """The same VECTORs, then END, on the golden model from the same state."""
    memory = np.zeros(BASE + (len(words) + 1) * INSTRUCTION_BYTES, np.uint8)
    place_program(memory, BASE, list(words) + [encode(Opcode.END)])
    model = CoreModel(config, memory)
    model.spad[:] = spad
    model.acc[:] = acc
    result = model.run(BASE, len(words) + 1)
    return result, model.spad


def run_both(config, spad, acc, words, **kwargs):
    """Run ``words`` on the bench and the golden model; check the same outcome and scratchpad.
    Returns the bench's cycles per instruction."""
    want, want_spad = golden(config, spad.copy(), acc, words)
    bench = ExecBench(config, **kwargs)
    got = {}

    async def tb(ctx):
        got["result"] = await bench.run(ctx, spad, acc, words)

    simulate(bench.dut, tb, timeout=500_000)
    code, addr, cycles = got["result"]
    assert (code, addr) == (want.code, want.error_addr)
    if code == CoreError.NONE:
        diff = np.flatnonzero(spad != want_spad)
        assert not len(diff), f"{len(diff)} bytes differ, the first at {diff[0]:#x}: " \
                              f"{spad[diff[0]]} != {want_spad[diff[0]]}"
    return cycles


def state(config, rng):
    spad = rng.integers(0, 256, config.spad_bytes, np.uint8)
    acc = np.zeros((config.acc_depth, config.cols), np.int64)
    return spad, acc


@pytest.mark.parametrize("name", ["tiny", "default", "narrow", "wide", "tall"])
def test_every_op(name):
    """Each op on rows of several lengths (multiples of cols and not, one row and several,
    with gaps between rows), one program after another, with random stalls on every port:
    the golden model's scratchpad."""
    cfg = CUSTOM.get(name) or preset(name)
    rng = np.random.default_rng(5)
    spad, acc = state(cfg, rng)
    layout = Layout(cfg)
    words = []
    for op in VectorOp:
        for length, rows, gap in ((cfg.cols, 2, 0), (2 * cfg.cols + 1, 3, 1), (1, 1, 0)):
            record = random_record(rng, op, length)
            words.append(vector_word(cfg, layout, rng, op, rows, length, record=record, gap=gap,
                                     spad=spad, acc=acc))
    cycles = run_both(cfg, spad, acc, words, seed=1, stall=0.2)
    print(name, sum(cycles), cycles)


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_bad_records(name):
    """Every way a record can be bad, each as the second of two VECTORs: VECTOR_PARAM at its
    address, and the first one's results written."""
    cfg = preset(name)
    rng = np.random.default_rng(7)
    for op in VectorOp:
        for kind in BAD_KINDS[op]:
            spad, acc = state(cfg, rng)
            layout = Layout(cfg)
            length = int(rng.integers(1, 3 * cfg.cols))
            good = vector_word(cfg, layout, rng, VectorOp.CLAMP, 2, length, spad=spad, acc=acc,
                               record=random_record(rng, VectorOp.CLAMP, length))
            bad = vector_word(cfg, layout, rng, op, 2, length, spad=spad, acc=acc,
                              record=random_record(rng, op, length, bad=kind))
            want, _ = golden(cfg, spad.copy(), acc, [good, bad])
            assert (want.code, want.error_addr) == (CoreError.VECTOR_PARAM,
                                                    BASE + INSTRUCTION_BYTES), (op, kind)
            run_both(cfg, spad, acc, [good, bad], seed=int(rng.integers(1000)), stall=0.1)


def test_rows_zero_and_in_place():
    """``rows`` 0 does nothing (not even check its record); in place (``dst == src``) is the
    model's result."""
    cfg = preset("default")
    rng = np.random.default_rng(9)
    spad, acc = state(cfg, rng)
    layout = Layout(cfg)
    length = 20
    bad_record = layout.take(96)
    spad[bad_record:bad_record + 16] = 0  # a layernorm record with epsilon 0
    words = [encode(Opcode.VECTOR, op=VectorOp.LAYERNORM, rows=0, length=length,
                    params=bad_record)]
    for op in (VectorOp.LUT, VectorOp.SOFTMAX, VectorOp.LAYERNORM, VectorOp.ADD):
        word = vector_word(cfg, layout, rng, op, 3, length, spad=spad, acc=acc,
                           record=random_record(rng, op, length))
        _, fields, _ = decode(word)
        fields.update(dst=fields["src"], dst_stride=fields["src_stride"])
        words.append(encode(Opcode.VECTOR, **{k: v for k, v in fields.items() if k != "opcode"}))
    run_both(cfg, spad, acc, words, seed=3, stall=0.3)


def _cycles(cfg, op, rows, length):
    rng = np.random.default_rng(11)
    spad, acc = state(cfg, rng)
    word = vector_word(cfg, Layout(cfg), rng, op, rows, length, spad=spad, acc=acc,
                       record=random_record(rng, op, length))
    (cycles,) = run_both(cfg, spad, acc, [word])
    return cycles


#: Per op on default, rows of 8 beats: (cycles a row, cycles of a one-row instruction less
#: one row), as the VectorExec docstring states them.
COSTS = {"REQUANTIZE": (8, 13), "LUT": (8, 265), "CLAMP": (8, 11), "ADD": (16, 17),
         "SOFTMAX": (40, 268), "LAYERNORM": (86, 51)}


def test_cycle_costs():
    """Without stalls: requantize, LUT and clamp stream one beat a cycle, ADD one per two,
    softmax at the unit's rate; each op's costs are the docstring's (within two cycles)."""
    cfg = preset("default")
    for op in VectorOp:
        one, nine = (_cycles(cfg, op, rows, 8 * cfg.cols) for rows in (1, 9))
        per_row = (nine - one) / 8
        print(op.name, per_row, one - per_row)
        assert per_row == COSTS[op.name][0], op.name
        assert abs(one - per_row - COSTS[op.name][1]) <= 2, op.name


def test_long_rows():
    """Rows of ``max_row`` elements (the widest counters, a beta scan of 4 KiB) on default."""
    cfg = preset("default")
    rng = np.random.default_rng(13)
    spad, acc = state(cfg, rng)
    layout = Layout(cfg)
    words = [vector_word(cfg, layout, rng, op, 1, length, spad=spad, acc=acc,
                         record=random_record(rng, op, length))
             for op, length in ((VectorOp.SOFTMAX, cfg.max_row), (VectorOp.LAYERNORM, 1021),
                                (VectorOp.REQUANTIZE, 8 * cfg.cols - 3))]
    run_both(cfg, spad, acc, words, seed=4, stall=0.1)


def test_acc_share():
    """The accumulator port shared by two readers that ask at random and take their rows at
    random: each gets exactly the rows it asked for, in its own order."""
    cfg = preset("tiny")
    dut = AccReadShare(cfg)
    rng = np.random.default_rng(17)
    asks = {"dma": [int(a) for a in rng.integers(0, cfg.acc_depth, 60)],
            "vector": [int(a) for a in rng.integers(0, cfg.acc_depth, 60)]}

    def row(addr):
        return [addr * 10 + lane for lane in range(cfg.cols)]

    async def reader(ctx, name):
        port, data_port = getattr(dut, name), getattr(dut, f"{name}_data")
        pending = list(asks[name])
        got = []
        while len(got) < len(asks[name]):
            ctx.set(port.valid, bool(pending) and rng.random() < 0.7)
            if pending:
                ctx.set(port.payload, pending[0])
            ctx.set(data_port.ready, rng.random() < 0.6)
            _, _, asked, taken, value = await ctx.tick().sample(
                port.valid & port.ready, data_port.valid & data_port.ready, data_port.payload)
            if asked:
                pending.pop(0)
            if taken:
                got.append([int(v) for v in value])
        ctx.set(port.valid, 0)
        assert got == [row(a) for a in asks[name]], name

    async def memory(ctx):
        flight = deque()
        for _ in range(2000):
            ctx.set(dut.read.ready, len(flight) < cfg.read_fifo_depth and rng.random() < 0.8)
            head = flight and flight[0][0] <= 0
            ctx.set(dut.read_data.valid, bool(head))
            if head:
                ctx.set(dut.read_data.payload, flight[0][1])
            _, _, asked, addr, taken = await ctx.tick().sample(
                dut.read.valid & dut.read.ready, dut.read.payload,
                dut.read_data.valid & dut.read_data.ready)
            if taken:
                flight.popleft()
            flight = deque((wait - 1, data) for wait, data in flight)
            if asked:
                flight.append((int(rng.integers(1, 4)), row(addr)))

    async def dma(ctx):
        await reader(ctx, "dma")

    async def vector(ctx):
        await reader(ctx, "vector")

    simulate(dut, dma, vector, background=[memory], timeout=5000)
