"""The ISA definition (jalapeno/isa.py), the assembler (jalapeno/asm.py) and docs/isa.md."""

import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jalapeno import asm, isa, isa_doc
from jalapeno.asm import AsmError, assemble, disassemble, from_bytes, to_bytes
from jalapeno.isa import (
    FORMATS,
    HEADER,
    INSTRUCTION_BITS,
    INSTRUCTION_BYTES,
    RECORDS,
    TOKEN_FLAGS,
    CoreError,
    Opcode,
    Queue,
    VectorOp,
    decode,
    encode,
    fields_of,
    record_layout,
)

SEEDS = range(4)
PER_SEED = 500
ALL_ONES = (1 << INSTRUCTION_BITS) - 1
OPCODE_NAMES = "['LOAD', 'STORE', 'GEMM', 'VECTOR', 'SYNC', 'END']"
OP_NAMES = "['REQUANTIZE', 'LUT', 'CLAMP', 'ADD', 'SOFTMAX', 'LAYERNORM']"


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def random_values(rng, opcode):
    """Every field of ``opcode`` but the opcode, each 0, all ones or uniform in its width."""
    return {f.name: rng.choice([0, f.limit - 1, rng.randrange(f.limit), rng.randrange(f.limit)])
            for f in fields_of(opcode)[1:]}


def random_words(rng, count):
    """Legal instructions of every opcode, and a few arbitrary 256-bit words."""
    words = []
    for i in range(count):
        if rng.random() < 0.1:
            words.append(rng.getrandbits(INSTRUCTION_BITS))
        else:
            opcode = list(Opcode)[i % len(Opcode)]
            words.append(encode(opcode, **random_values(rng, opcode)))
    return words


def bit_mask(lo, hi):
    """Bits ``lo`` to ``hi`` inclusive, one at a time."""
    return sum(1 << bit for bit in range(lo, hi + 1))


# --- the format ---------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_encode_decode_round_trip(seed):
    rng = random.Random(seed)
    for i in range(PER_SEED):
        opcode = list(Opcode)[i % len(Opcode)]
        values = random_values(rng, opcode)
        word = encode(opcode, **values)
        where = f"seed {seed}, instruction {i}: {opcode.name} {values}"
        assert 0 <= word < 1 << INSTRUCTION_BITS, where
        got_opcode, got_values, reserved = decode(word)
        assert got_opcode is opcode, where
        assert got_values == {"opcode": opcode, **values}, where
        assert reserved == 0, where


@pytest.mark.parametrize("opcode", list(Opcode))
def test_each_field_sits_at_its_bits(opcode):
    for f in fields_of(opcode)[1:]:
        assert encode(opcode, **{f.name: f.limit - 1}) ^ opcode == bit_mask(f.lsb, f.msb), f.name
        assert encode(opcode, **{f.name: 1}) ^ opcode == 1 << f.lsb, f.name
    assert encode(opcode) == opcode
    assert HEADER[0].name == "opcode" and (HEADER[0].lsb, HEADER[0].msb) == (0, 3)


@pytest.mark.parametrize("opcode", list(Opcode))
def test_fields_disjoint_and_inside_the_word(opcode):
    fields = fields_of(opcode)
    assert fields[:len(HEADER)] == HEADER
    assert len({f.name for f in fields}) == len(fields)
    taken = 0
    for f in fields:
        assert f.width >= 1 and f.msb == f.lsb + f.width - 1 and f.limit == 1 << f.width, f
        assert 0 <= f.lsb and f.msb < INSTRUCTION_BITS, f
        assert not taken & bit_mask(f.lsb, f.msb), f"{f.name} overlaps an earlier field"
        taken |= bit_mask(f.lsb, f.msb)
    assert decode(opcode | ALL_ONES ^ taken)[2] == ALL_ONES ^ taken


def test_header_and_tables_agree():
    assert [f.name for f in HEADER[1:]] == list(TOKEN_FLAGS)
    assert all(f.width == 1 for f in HEADER[1:])
    assert set(FORMATS) == set(Opcode) == set(isa.OPCODE_DOCS)
    assert set(RECORDS) == set(VectorOp)
    assert set(isa.ERROR_DOCS) == set(CoreError)
    assert all(text.endswith(".") for text in [*isa.ERROR_DOCS.values(),
                                               *isa.OPCODE_DOCS.values()])
    assert isa.QUEUE_OF == {Opcode.LOAD: Queue.LOAD, Opcode.GEMM: Queue.COMPUTE,
                            Opcode.VECTOR: Queue.COMPUTE, Opcode.STORE: Queue.STORE}
    assert INSTRUCTION_BYTES * 8 == INSTRUCTION_BITS
    op_field = next(f for f in FORMATS[Opcode.VECTOR] if f.name == "op")
    queue_field = next(f for f in FORMATS[Opcode.SYNC] if f.name == "queue")
    assert max(VectorOp) < op_field.limit and max(Queue) < queue_field.limit


@pytest.mark.parametrize("opcode", list(Opcode))
def test_reserved_bits_detected(opcode):
    fields = fields_of(opcode)
    used = sum(bit_mask(f.lsb, f.msb) for f in fields)
    base = encode(opcode, pop_prev=1, push_next=1)
    for bit in range(INSTRUCTION_BITS):
        got_opcode, values, reserved = decode(base | 1 << bit)
        if used >> bit & 1:
            assert reserved == 0, bit
        else:
            assert got_opcode is opcode and reserved == 1 << bit, bit
            assert values == decode(base)[1], bit


@pytest.mark.parametrize("code", [0, *range(7, 16)])
def test_illegal_opcode_decodes_to_header(code):
    word = code | 1 << 4 | 1 << 7 | 1 << 100
    assert decode(word) == (code, {"opcode": code, "pop_prev": 1, "pop_next": 0,
                                   "push_prev": 0, "push_next": 1}, 1 << 100)
    assert not isinstance(decode(word)[0], Opcode)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: encode(0), f"opcode must be one of {OPCODE_NAMES}, not 0"),
    (lambda: encode(7, rows=1), f"opcode must be one of {OPCODE_NAMES}, not 7"),
    (lambda: encode("LOAD"), f"opcode must be one of {OPCODE_NAMES}, not 'LOAD'"),
    (lambda: encode(Opcode.LOAD, foo=1), "LOAD has no field 'foo'"),
    (lambda: encode(Opcode.LOAD, opcode=1), "LOAD has no field 'opcode'"),
    (lambda: encode(Opcode.SYNC, rows=1), "SYNC has no field 'rows'"),
    (lambda: encode(Opcode.END, queue=0), "END has no field 'queue'"),
    (lambda: encode(Opcode.GEMM, k=256), "GEMM.k must be an integer in [0, 256), not 256"),
    (lambda: encode(Opcode.GEMM, k=-1), "GEMM.k must be an integer in [0, 256), not -1"),
    (lambda: encode(Opcode.GEMM, k=1.0), "GEMM.k must be an integer in [0, 256), not 1.0"),
    (lambda: encode(Opcode.GEMM, k="1"), "GEMM.k must be an integer in [0, 256), not '1'"),
    (lambda: encode(Opcode.GEMM, k=np.int64(1)),
     "GEMM.k must be an integer in [0, 256), not np.int64(1)"),
    (lambda: encode(Opcode.LOAD, ext_addr=1 << 32),
     "LOAD.ext_addr must be an integer in [0, 4294967296), not 4294967296"),
    (lambda: encode(Opcode.VECTOR, push_prev=2), "VECTOR.push_prev must be an integer in "
                                                 "[0, 2), not 2"),
    (lambda: decode(-1), "an instruction must be an integer in [0, 2**256), not -1"),
    (lambda: decode(1 << 256), "an instruction must be an integer in [0, 2**256), not "
                               f"{1 << 256}"),
    (lambda: decode(True), "an instruction must be an integer in [0, 2**256), not True"),
    (lambda: decode(1.0), "an instruction must be an integer in [0, 2**256), not 1.0"),
    (lambda: decode("1"), "an instruction must be an integer in [0, 2**256), not '1'"),
    (lambda: fields_of(0), f"opcode must be one of {OPCODE_NAMES}, not 0"),
    (lambda: fields_of(None), f"opcode must be one of {OPCODE_NAMES}, not None"),
    (lambda: record_layout(6, 1), f"op must be one of {OP_NAMES}, not 6"),
    (lambda: record_layout("SOFTMAX", 1), f"op must be one of {OP_NAMES}, not 'SOFTMAX'"),
    (lambda: record_layout(True, 1), f"op must be one of {OP_NAMES}, not True"),
    (lambda: record_layout(VectorOp.LAYERNORM, -1), "length must be a non-negative integer, "
                                                    "not -1"),
    (lambda: record_layout(VectorOp.LUT, 1.5), "length must be a non-negative integer, not 1.5"),
    (lambda: fields_of(True), f"opcode must be one of {OPCODE_NAMES}, not True"),
])
def test_error_messages(call, message):
    with raises_exactly(ValueError, message):
        call()


def test_bool_field_values_are_0_and_1():
    assert encode(Opcode.GEMM, accumulate=True) == encode(Opcode.GEMM, accumulate=1)
    assert encode(Opcode.GEMM, accumulate=True) == Opcode.GEMM | 1 << 128
    assert encode(Opcode.LOAD, pop_prev=False, rows=True) == encode(Opcode.LOAD, rows=1)


# --- parameter records --------------------------------------------------------------------------

@pytest.mark.parametrize(("op", "length", "layout", "size"), [
    (VectorOp.REQUANTIZE, 8, {"multiplier": (0, "<u4", 1), "shift": (4, "<i1", 1),
                              "zero_point": (5, "<i1", 1), "act_min": (6, "<i1", 1),
                              "act_max": (7, "<i1", 1)}, 8),
    (VectorOp.LUT, 3, {"table": (0, "<i1", 256)}, 256),
    (VectorOp.CLAMP, 100, {"act_min": (0, "<i1", 1), "act_max": (1, "<i1", 1)}, 2),
    (VectorOp.ADD, 1, {"input1_multiplier": (0, "<u4", 1), "input2_multiplier": (4, "<u4", 1),
                       "output_multiplier": (8, "<u4", 1), "input1_shift": (12, "<i1", 1),
                       "input2_shift": (13, "<i1", 1), "output_shift": (14, "<i1", 1),
                       "input1_zero_point": (15, "<i1", 1),
                       "input2_zero_point": (16, "<i1", 1),
                       "output_zero_point": (17, "<i1", 1), "act_min": (18, "<i1", 1),
                       "act_max": (19, "<i1", 1)}, 20),
    (VectorOp.SOFTMAX, 1024, {"exp_table": (0, "<u4", 256)}, 1024),
    (VectorOp.LAYERNORM, 5, {"epsilon": (0, "<u8", 1), "gamma_shift": (8, "<u1", 1),
                             "output_zero_point": (9, "<i1", 1), "gamma": (16, "<i2", 5),
                             "beta": (28, "<i4", 5)}, 48),
    (VectorOp.LAYERNORM, 4, {"epsilon": (0, "<u8", 1), "gamma_shift": (8, "<u1", 1),
                             "output_zero_point": (9, "<i1", 1), "gamma": (16, "<i2", 4),
                             "beta": (24, "<i4", 4)}, 40),
    (VectorOp.LAYERNORM, 1, {"epsilon": (0, "<u8", 1), "gamma_shift": (8, "<u1", 1),
                             "output_zero_point": (9, "<i1", 1), "gamma": (16, "<i2", 1),
                             "beta": (20, "<i4", 1)}, 24),
])
def test_record_layout(op, length, layout, size):
    assert record_layout(op, length) == (layout, size)
    assert record_layout(int(op), length) == (layout, size)


@pytest.mark.parametrize("op", list(VectorOp))
def test_record_fields_aligned_and_disjoint(op):
    for length in range(1, 70):
        layout, size = record_layout(op, length)
        spans = sorted((offset, offset + np.dtype(dtype).itemsize * count, name)
                       for name, (offset, dtype, count) in layout.items())
        for (_, end, name), (start, _, after) in zip(spans, spans[1:], strict=False):
            assert end <= start, f"length {length}: {name} overlaps {after}"
        for name, (offset, dtype, _) in layout.items():
            assert offset % np.dtype(dtype).itemsize == 0, f"length {length}: {name}"
        assert size == max(end for _, end, _ in spans), f"length {length}"


# --- the assembler ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_assembly_round_trip(seed):
    rng = random.Random(seed)
    words = random_words(rng, PER_SEED)
    text = disassemble(words)
    assert assemble(text) == words, f"seed {seed}"
    assert disassemble(assemble(text)) == text, f"seed {seed}"
    for i, (word, line) in enumerate(zip(words, text.splitlines(), strict=True)):
        opcode, _, reserved = decode(word)
        raw = isinstance(opcode, Opcode) and not reserved
        assert line.startswith(".word ") != raw, f"seed {seed}, word {i}: {line}"
        assert assemble(line) == [word], f"seed {seed}, word {i}: {line}"


@pytest.mark.parametrize(("word", "text"), [
    (encode(Opcode.VECTOR, op=VectorOp.SOFTMAX, rows=2, length=100, src=0x40, pop_prev=1,
            push_next=1),
     "vector pop_prev push_next op=softmax rows=2 length=100 src=0x40"),
    (encode(Opcode.VECTOR, op=9, src2_stride=16, dst=0x100, params=0x20),
     "vector op=9 src2_stride=0x10 dst=0x100 params=0x20"),
    (encode(Opcode.VECTOR, rows=1), "vector op=requantize rows=1"),
    (encode(Opcode.SYNC, queue=Queue.STORE, push_prev=1), "sync push_prev queue=store"),
    (encode(Opcode.SYNC, queue=3), "sync queue=3"),
    (encode(Opcode.SYNC), "sync queue=load"),
    (encode(Opcode.GEMM, act_addr=0x10, w_addr=0x20, acc_addr=32, m=4, k=8, n=8,
            accumulate=1, pop_next=1, push_prev=1),
     "gemm pop_next push_prev act_addr=0x10 w_addr=0x20 acc_addr=0x20 m=4 k=8 n=8 "
     "accumulate=1"),
    (encode(Opcode.STORE, ext_addr=0xFFFFFFFF, local_addr=0x10000, local_stride=32,
            rows=65535, row_bytes=32, ext_stride=64),
     "store ext_addr=0xffffffff local_addr=0x10000 local_stride=0x20 rows=65535 row_bytes=32 "
     "ext_stride=0x40"),
    (encode(Opcode.END), "end"),
    (0, ".word 0x" + "0" * 64),
    (15 | 1 << 200, ".word 0x" + "0" * 13 + "1" + "0" * 49 + "f"),
    (encode(Opcode.END) | 1 << 8, ".word 0x" + "0" * 61 + "106"),
    (ALL_ONES, ".word 0x" + "f" * 64),
])
def test_disassembly(word, text):
    assert disassemble([word]) == text + "\n"
    assert assemble(text) == [word]


def test_disassemble_empty_and_bad_word():
    assert disassemble([]) == "" and assemble("") == []
    with raises_exactly(ValueError, "word 1: an instruction must be an integer in [0, 2**256), "
                                    "not -1"):
        disassemble([0, -1])


def test_assembly_syntax():
    text = """
        # a comment line, then a blank one

        load   ext_addr = 0x1000   rows=4 row_bytes=0x10 # comment after an instruction
    \tgemm push_next pop_prev m=0x0f k = 8\r
    vector op=5 src=0xABC length=0010 rows=1#comment
    sync queue=compute
    .word 0x7
    .word 12
    end"""
    assert assemble(text) == [
        encode(Opcode.LOAD, ext_addr=0x1000, rows=4, row_bytes=16),
        encode(Opcode.GEMM, push_next=1, pop_prev=1, m=15, k=8),
        encode(Opcode.VECTOR, op=VectorOp.LAYERNORM, src=0xABC, length=10, rows=1),
        encode(Opcode.SYNC, queue=Queue.COMPUTE),
        7,
        12,
        encode(Opcode.END),
    ]
    assert assemble("load pop_prev=1 push_next=0") == [encode(Opcode.LOAD, pop_prev=1)]


@pytest.mark.parametrize(("text", "message"), [
    ("lod", "line 1: unknown mnemonic 'lod'; expected one of load, store, gemm, vector, sync, "
            "end, .word"),
    ("end\n\nLOAD rows=1", "line 3: unknown mnemonic 'LOAD'; expected one of load, store, gemm, "
                           "vector, sync, end, .word"),
    ("# x\nword 0", "line 2: unknown mnemonic 'word'; expected one of load, store, gemm, vector, "
                    "sync, end, .word"),
    ("load foo=1", "line 1: LOAD has no field 'foo'"),
    ("load pop_next foo", "line 1: LOAD has no field 'foo'"),
    ("load opcode=1", "line 1: LOAD has no field 'opcode'"),
    ("end\nsync rows=1", "line 2: SYNC has no field 'rows'"),
    ("end queue=0", "line 1: END has no field 'queue'"),
    ("load POP_PREV", "line 1: LOAD has no field 'POP_PREV'"),
    ("load rows=1 rows=2", "line 1: LOAD.rows is given twice"),
    ("load pop_prev pop_prev=1", "line 1: LOAD.pop_prev is given twice"),
    ("load rows", "line 1: LOAD.rows needs a value: rows=<value>"),
    ("load rows=", "line 1: bad number '' for LOAD.rows"),
    ("load rows=0x", "line 1: bad number '0x' for LOAD.rows"),
    ("load rows=1.5", "line 1: bad number '1.5' for LOAD.rows"),
    ("load rows=0b1", "line 1: bad number '0b1' for LOAD.rows"),
    ("load rows=1_000", "line 1: bad number '1_000' for LOAD.rows"),
    ("load rows=0X10", "line 1: bad number '0X10' for LOAD.rows"),
    ("vector op=0xzz", "line 1: bad number '0xzz' for VECTOR.op"),
    ("load rows=65536", "line 1: LOAD.rows must be an integer in [0, 65536), not 65536"),
    ("load rows=-1", "line 1: LOAD.rows must be an integer in [0, 65536), not -1"),
    ("load ext_addr=0x100000000",
     "line 1: LOAD.ext_addr must be an integer in [0, 4294967296), not 4294967296"),
    ("vector length=8192", "line 1: VECTOR.length must be an integer in [0, 8192), not 8192"),
    ("vector op=16", "line 1: VECTOR.op must be an integer in [0, 16), not 16"),
    ("sync queue=4", "line 1: SYNC.queue must be an integer in [0, 4), not 4"),
    ("gemm pop_prev=2", "line 1: GEMM.pop_prev must be an integer in [0, 2), not 2"),
    ("vector op=gelu", "line 1: unknown VectorOp 'gelu' for VECTOR.op; expected one of "
                       "requantize, lut, clamp, add, softmax, layernorm"),
    ("vector op=SOFTMAX", "line 1: unknown VectorOp 'SOFTMAX' for VECTOR.op; expected one of "
                          "requantize, lut, clamp, add, softmax, layernorm"),
    ("sync queue=dma", "line 1: unknown Queue 'dma' for SYNC.queue; expected one of load, "
                       "compute, store"),
    (".word", "line 1: .word takes one value, not 0"),
    (".word 1 2", "line 1: .word takes one value, not 2"),
    (".word x", "line 1: bad number 'x' for .word"),
    (".word -1", "line 1: an instruction must be an integer in [0, 2**256), not -1"),
    (".word 0x1" + "0" * 64,
     f"line 1: an instruction must be an integer in [0, 2**256), not {1 << 256}"),
])
def test_assembly_errors(text, message):
    with raises_exactly(AsmError, message):
        assemble(text)
    assert issubclass(AsmError, ValueError)


def test_first_error_wins():
    with raises_exactly(AsmError, "line 2: LOAD has no field 'x'"):
        assemble("end\nload x=1 rows=99999\nlod")


@pytest.mark.parametrize("seed", SEEDS)
def test_bytes_round_trip(seed):
    rng = random.Random(seed)
    words = random_words(rng, 50)
    data = to_bytes(words)
    assert len(data) == INSTRUCTION_BYTES * len(words), f"seed {seed}"
    assert from_bytes(data) == words, f"seed {seed}"
    assert from_bytes(bytearray(data)) == from_bytes(memoryview(data)) == words, f"seed {seed}"
    for i, word in enumerate(words):
        chunk = data[i * INSTRUCTION_BYTES:(i + 1) * INSTRUCTION_BYTES]
        assert chunk == bytes((word >> 8 * b) & 0xFF for b in range(INSTRUCTION_BYTES)), \
            f"seed {seed}, word {i}"


def test_bytes_layout_and_errors():
    assert to_bytes([]) == b"" and from_bytes(b"") == []
    assert to_bytes([encode(Opcode.END)]) == b"\x06" + bytes(31)
    assert to_bytes([1 << 255]) == bytes(31) + b"\x80"
    for length in (1, 31, 33, 65):
        with raises_exactly(ValueError, f"a program is a multiple of 32 bytes long, "
                                        f"not {length}"):
            from_bytes(bytes(length))
    with raises_exactly(ValueError, "word 2: an instruction must be an integer in "
                                    "[0, 2**256), not None"):
        to_bytes([0, 1, None])


# --- docs/isa.md ---------------------------------------------------------------------------------

def test_isa_doc_up_to_date():
    path = Path(__file__).resolve().parent.parent / "docs" / "isa.md"
    assert isa_doc.DOC_PATH == path
    assert path.exists() and path.read_text() == isa_doc.isa_markdown(), (
        "docs/isa.md is out of date with jalapeno/isa.py: run `python -m jalapeno.isa_doc "
        "--write` and commit the result")


def test_isa_doc_content():
    text = isa_doc.isa_markdown()
    for op in Opcode:
        assert f"### {op.name} ({int(op)})" in text
        assert all(f"| `{f.name}` | [" in text for f in FORMATS[op])
    for error in CoreError:
        assert f"| {int(error)} | {error.name} | " in text
    assert "| `beta` | after `gamma`, aligned to 4 | `<i4` (int32) | `length` |" in text
    assert "`gamma` at 16, `beta` at 28; 48 bytes in all" in text
    assert "| `length` | [64:52] | 13 |" in text
    assert "Reserved, must be zero: [255:180], [31:8]." in text
    assert "Codes 0, 7 to 15 are illegal" in text
    assert ":class:" not in text and "``" not in text.replace("```", "")
    words = assemble(isa_doc.EXAMPLE)
    assert len(words) == 7 and all(f"`{w:064x}`" in text for w in words)
    assert disassemble(words) == "".join(
        line + "\n" for line in isa_doc.EXAMPLE.splitlines() if not line.startswith("#")), (
        "the worked example is not in canonical (disassembled) form")


def test_isa_doc_command_prints_it():
    result = subprocess.run([sys.executable, "-m", "jalapeno.isa_doc"], capture_output=True,
                            text=True, check=True, cwd=Path(asm.__file__).parent.parent)
    assert result.stdout == isa_doc.isa_markdown()
