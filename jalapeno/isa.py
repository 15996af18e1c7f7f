"""The Jalapeño instruction set: the one definition of the instruction format, the opcodes,
their fields, the vector parameter records and the core's error codes.

The encoder and decoder here, the assembler (:mod:`jalapeno.asm`), the golden ISA simulator
(:mod:`verification.models.core`) and ``docs/isa.md`` are built from the tables in this
module, and the core's RTL decoder is to be built from them too.

Instructions are :data:`INSTRUCTION_BITS` (256) bits, stored little-endian as
:data:`INSTRUCTION_BYTES` consecutive bytes: wide enough for a whole 2-D DMA descriptor in one
instruction, so a LOAD or STORE is one fetch of 32 bytes (four beats of a 64-bit bus). Every
instruction starts with the same :data:`HEADER`: the opcode and four dependency-token flags.
Bits that no field of the opcode uses are reserved and must be zero.

Execution model (as in VTA). The core fetches instructions in order and dispatches each to
one of three queues that run concurrently: LOAD to the load queue, GEMM and VECTOR to the
compute queue, STORE to the store queue, SYNC to the queue its ``queue`` field names. The
queues synchronise only through dependency tokens between neighbours: four counters, one per
direction of the load-compute and compute-store pairs. An instruction with ``pop_prev`` (or
``pop_next``) waits until the counter from its previous (next) queue is nonzero and takes one
token before it starts; one with ``push_prev`` (``push_next``) gives one token to that queue
after it completes. The load queue has no previous queue and the store queue no next one.

A program is well formed only if every pop is matched by a push earlier in program order:
the decoder keeps, per direction, the tokens pushed minus popped by the instructions decoded
so far, and stops with ``TOKEN_UNDERFLOW`` on a pop that would take it below zero and with
``TOKEN_OVERFLOW`` on a push that would take it above :data:`MAX_TOKENS`. This makes the
token errors a property of the program alone, not of timing, and a program that passes can
never deadlock: the earliest unfinished instruction in program order only ever waits for
earlier ones.

Errors are reported for the earliest failing instruction in program order: the decoder
checks each instruction's fields against the configuration before dispatching it, and the
core then completes every instruction before the failing one and none after it is reported.
END completes when all three queues are empty.

A core built without a vector unit (``JalapenoConfig.vector_unit`` false, a matrix-only
design point for small FPGAs; the configuration CSRs say so) runs every other instruction as
above, and stops at a VECTOR with ``NO_VECTOR_UNIT``: the decoder reports it right after the
opcode check, so it is the VECTOR's error whatever its fields hold, and every instruction
before it completes.
"""

import enum
from dataclasses import dataclass

import numpy as np

from rtl.dma.descriptor import LOCAL_WIDTH, ROW_BYTES_WIDTH, ROWS_WIDTH, DmaError
from rtl.vector.unit import VectorOp as _UnitOp

__all__ = [
    "INSTRUCTION_BITS", "INSTRUCTION_BYTES", "MAX_TOKENS", "Opcode", "OPCODE_DOCS", "Queue",
    "VectorOp", "CoreError", "DMA_ERRORS", "ERROR_DOCS", "Field", "HEADER", "FORMATS",
    "RecordField", "RECORDS", "QUEUE_OF", "TOKEN_FLAGS", "encode", "decode", "fields_of",
    "record_layout", "pack_record",
]

#: Width of one instruction.
INSTRUCTION_BITS = 256
#: Bytes of one instruction in memory.
INSTRUCTION_BYTES = INSTRUCTION_BITS // 8
#: Tokens that may wait in one direction, as counted in program order.
MAX_TOKENS = 255


class Opcode(enum.IntEnum):
    """Bits ``[0, 4)`` of every instruction. 0 and 7 to 15 are illegal, so that zeroed memory
    stops the core with ``ILLEGAL_OPCODE``. :data:`OPCODE_DOCS` says what each one does."""

    LOAD = 1
    STORE = 2
    GEMM = 3
    VECTOR = 4
    SYNC = 5
    END = 6


#: What each :class:`Opcode` does.
OPCODE_DOCS = {
    Opcode.LOAD: "A 2-D DMA transfer from external memory into the scratchpad (load queue).",
    Opcode.STORE: "A 2-D DMA transfer from the scratchpad or the accumulator memory to external "
                  "memory (store queue).",
    Opcode.GEMM: "One matrix-unit tile: ``acc[acc_addr + i, :n] (+)= A[i, :k] @ W[:k, :n]`` "
                 "(compute queue).",
    Opcode.VECTOR: "One vector-unit operation over rows (compute queue); ``NO_VECTOR_UNIT`` on "
                   "a core without one.",
    Opcode.SYNC: "Only the dependency tokens, in the queue named by ``queue``.",
    Opcode.END: "Wait for all queues to empty, then raise done and the interrupt.",
}


class Queue(enum.IntEnum):
    """The three instruction queues, in pipeline order."""

    LOAD = 0
    COMPUTE = 1
    STORE = 2


#: The queue of each opcode that has a fixed one (SYNC names its own, END has none).
QUEUE_OF = {Opcode.LOAD: Queue.LOAD, Opcode.GEMM: Queue.COMPUTE,
            Opcode.VECTOR: Queue.COMPUTE, Opcode.STORE: Queue.STORE}


#: The ``op`` field of VECTOR: the vector unit's operations, with the codes of
#: :class:`rtl.vector.unit.VectorOp` (their one definition) as integers; 6 to 15 are a bad
#: field.
VectorOp = enum.IntEnum("VectorOp", {op.name: op.value for op in _UnitOp})


class CoreError(enum.IntEnum):
    """The core's error code (the ``ERROR_CODE`` CSR); the failing instruction's address is
    in ``ERROR_ADDR``. The ``DMA_`` codes are the DMA's for a LOAD or STORE
    (:data:`DMA_ERRORS`). :data:`ERROR_DOCS` says what each one means."""

    NONE = 0
    ILLEGAL_OPCODE = 1
    BAD_FIELD = 2
    LOCAL_RANGE = 3
    ACC_RANGE = 4
    TOKEN_UNDERFLOW = 5
    TOKEN_OVERFLOW = 6
    DMA_MISALIGNED = 7
    DMA_WINDOW = 8
    DMA_SLVERR = 9
    DMA_DECERR = 10
    DMA_LOCAL_RANGE = 11
    VECTOR_PARAM = 12
    FETCH = 13
    PROGRAM_OVERRUN = 14
    NO_VECTOR_UNIT = 15


#: The core's code for each of the DMA's outcomes of a LOAD or STORE.
DMA_ERRORS = {
    DmaError.NONE: CoreError.NONE,
    DmaError.MISALIGNED: CoreError.DMA_MISALIGNED,
    DmaError.WINDOW: CoreError.DMA_WINDOW,
    DmaError.SLVERR: CoreError.DMA_SLVERR,
    DmaError.DECERR: CoreError.DMA_DECERR,
    DmaError.SPAD_RANGE: CoreError.DMA_LOCAL_RANGE,
}


#: What each :class:`CoreError` means.
ERROR_DOCS = {
    CoreError.NONE: "No error.",
    CoreError.ILLEGAL_OPCODE: "The opcode is 0 or 7 to 15.",
    CoreError.BAD_FIELD: "A reserved bit is set, a token flag names a queue the instruction's "
                         "queue does not have, or a field is out of its range for this "
                         "configuration (GEMM ``k > rows`` or ``n > cols``, a VECTOR ``op`` above "
                         "5 or ``length`` outside ``1..max_row``, a SYNC ``queue`` of 3).",
    CoreError.LOCAL_RANGE: "A GEMM or VECTOR operand or parameter record is misaligned or leaves "
                           "its memory (the scratchpad, or for REQUANTIZE's source the "
                           "accumulator memory). Only what the instruction touches is checked: "
                           "nothing of a VECTOR with ``rows`` 0, a GEMM's activations with ``m`` "
                           "0 or its weights with ``k`` 0.",
    CoreError.ACC_RANGE: "A GEMM's ``acc_addr + m`` is above ``acc_depth`` (also with ``m`` 0).",
    CoreError.TOKEN_UNDERFLOW: "A pop with no earlier push left in program order.",
    CoreError.TOKEN_OVERFLOW: "A push that would leave more than :data:`MAX_TOKENS` tokens "
                              "waiting.",
    CoreError.DMA_MISALIGNED: "A LOAD's or STORE's ``ext_addr``, ``ext_stride``, ``local_addr`` "
                              "or ``local_stride`` is not a multiple of the bus width in bytes.",
    CoreError.DMA_WINDOW: "A LOAD's or STORE's burst would leave the external-memory window.",
    CoreError.DMA_SLVERR: "A LOAD or STORE got a SLVERR bus response.",
    CoreError.DMA_DECERR: "A LOAD or STORE got a DECERR bus response.",
    CoreError.DMA_LOCAL_RANGE: "A LOAD's local extent leaves the scratchpad, or a STORE's leaves "
                               "both the scratchpad and the accumulator memory.",
    CoreError.VECTOR_PARAM: "A VECTOR parameter record holds a value the vector unit cannot take "
                            "(a shift outside ``[-31, 30]``, a nonzero multiplier below "
                            "``2**30``, ``act_min > act_max``, a layernorm gamma shift above 23, "
                            "epsilon 0 or a beta outside 24 bits).",
    CoreError.FETCH: "An instruction fetch left the window or got an error response.",
    CoreError.PROGRAM_OVERRUN: "The program's length was reached without an END.",
    CoreError.NO_VECTOR_UNIT: "A VECTOR on a core built without a vector unit "
                              "(``CONFIG_VECTOR.absent`` is 1). Checked right after the opcode, "
                              "before any field.",
}


@dataclass(frozen=True)
class Field:
    """One field of an instruction or a register: ``width`` bits from bit ``lsb``,
    unsigned."""

    name: str
    lsb: int
    width: int
    doc: str

    @property
    def msb(self):
        return self.lsb + self.width - 1

    @property
    def limit(self):
        return 1 << self.width

    @property
    def mask(self):
        """The field's bits in its word."""
        return (self.limit - 1) << self.lsb


def _fields(start, *specs):
    """Fields laid out one after the other from bit ``start``."""
    out = []
    for name, width, doc in specs:
        out.append(Field(name, start, width, doc))
        start += width
    return tuple(out)


#: Every instruction's first 8 bits.
HEADER = _fields(
    0,
    ("opcode", 4, "the :class:`Opcode`"),
    ("pop_prev", 1, "take a token from the previous queue before starting"),
    ("pop_next", 1, "take a token from the next queue before starting"),
    ("push_prev", 1, "give a token to the previous queue when done"),
    ("push_next", 1, "give a token to the next queue when done"),
)
#: The flags of :data:`HEADER`, in order.
TOKEN_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")

_DMA = _fields(
    32,
    ("ext_addr", 32, "external byte address of row 0 (bus-word aligned)"),
    ("local_addr", LOCAL_WIDTH, "local byte address of row 0: the scratchpad from 0; for "
                                "STORE also the accumulator memory from ``acc_base``"),
    ("local_stride", LOCAL_WIDTH, "bytes between row starts in the local space"),
    ("rows", ROWS_WIDTH, "number of rows (0 moves nothing)"),
    ("row_bytes", ROW_BYTES_WIDTH, "bytes per row (0 moves nothing)"),
    ("ext_stride", 32, "bytes between row starts in external memory"),
)

#: The fields after :data:`HEADER` of each opcode.
FORMATS = {
    Opcode.LOAD: _DMA,
    Opcode.STORE: _DMA,
    Opcode.GEMM: _fields(
        32,
        ("act_addr", 24, "scratchpad address of activation vector 0 (``vector_pitch``-aligned); "
                         "vector ``i`` at ``act_addr + i * vector_pitch``, lanes ``>= k`` ignored"),
        ("w_addr", 24, "scratchpad address of weight row 0 (``vector_pitch``-aligned); row "
                       "``j`` at ``w_addr + j * vector_pitch``, lanes ``>= n`` ignored"),
        ("acc_addr", 16, "first accumulator row written"),
        ("m", 16, "activation vectors, and accumulator rows written"),
        ("k", 8, "weight rows, at most ``rows`` (0 writes zeros)"),
        ("n", 8, "result lanes, at most ``cols``"),
        ("accumulate", 1, "add to the rows instead of overwriting them"),
    ),
    Opcode.VECTOR: _fields(
        32,
        ("op", 4, "the :class:`VectorOp`"),
        ("rows", 16, "number of rows (0 does nothing)"),
        ("length", 13, "elements per row, ``1..max_row``; a row is ``ceil(length / cols)`` "
                       "beats"),
        ("src", LOCAL_WIDTH, "local address of row 0's first beat: for REQUANTIZE in the "
                             "accumulator space (a beat is one row, ``acc_row_bytes``), else in "
                             "the scratchpad (a beat is one vector, ``vector_pitch``)"),
        ("src_stride", LOCAL_WIDTH, "bytes between row starts of ``src``"),
        ("src2", LOCAL_WIDTH, "scratchpad address of the second operand's row 0 (ADD only)"),
        ("src2_stride", LOCAL_WIDTH, "bytes between row starts of ``src2``"),
        ("dst", LOCAL_WIDTH, "scratchpad address of the result's row 0"),
        ("dst_stride", LOCAL_WIDTH, "bytes between row starts of ``dst``"),
        ("params", LOCAL_WIDTH, "scratchpad address of the op's parameter record "
                       "(``vector_pitch``-aligned)"),
    ),
    Opcode.SYNC: _fields(32, ("queue", 2, "the :class:`Queue` it runs in")),
    Opcode.END: (),
}


@dataclass(frozen=True)
class RecordField:
    """One field of a VECTOR parameter record: ``count`` little-endian values of ``dtype`` (a
    NumPy type string) from byte ``offset``; a ``count`` of ``"length"`` means one per row
    element, and an ``offset`` of ``None`` the first multiple of the item size after the
    previous field."""

    name: str
    offset: int | None
    dtype: str
    doc: str
    count: int | str = 1


#: The parameter record of each :class:`VectorOp`, in the scratchpad at ``params``.
#: Variable-length arrays come last; a record's extent is checked like any operand's.
RECORDS = {
    VectorOp.REQUANTIZE: (
        RecordField("multiplier", 0, "<u4", "Q0.31 multiplier, 0 or in ``[2**30, 2**31)``"),
        RecordField("shift", 4, "<i1", "power-of-two shift, ``[-31, 30]``"),
        RecordField("zero_point", 5, "<i1", "output zero point"),
        RecordField("act_min", 6, "<i1", "clamp low"),
        RecordField("act_max", 7, "<i1", "clamp high"),
    ),
    VectorOp.LUT: (
        RecordField("table", 0, "<i1", "output for input ``x`` at index ``x + 128``", 256),
    ),
    VectorOp.CLAMP: (
        RecordField("act_min", 0, "<i1", "clamp low"),
        RecordField("act_max", 1, "<i1", "clamp high"),
    ),
    VectorOp.ADD: (
        RecordField("input1_multiplier", 0, "<u4", "rescaling of the shifted first input"),
        RecordField("input2_multiplier", 4, "<u4", "rescaling of the shifted second input"),
        RecordField("output_multiplier", 8, "<u4", "rescaling of the sum"),
        RecordField("input1_shift", 12, "<i1", "shift of the first input's rescaling"),
        RecordField("input2_shift", 13, "<i1", "shift of the second input's rescaling"),
        RecordField("output_shift", 14, "<i1", "shift of the sum's rescaling"),
        RecordField("input1_zero_point", 15, "<i1", "first input zero point"),
        RecordField("input2_zero_point", 16, "<i1", "second input zero point"),
        RecordField("output_zero_point", 17, "<i1", "output zero point"),
        RecordField("act_min", 18, "<i1", "clamp low"),
        RecordField("act_max", 19, "<i1", "clamp high"),
    ),
    VectorOp.SOFTMAX: (
        RecordField("exp_table", 0, "<u4", "Q0.31 exp of ``-k`` for ``k`` in 0..255 "
                                           "(``softmax_exp_table``), each below ``2**31``", 256),
    ),
    VectorOp.LAYERNORM: (
        RecordField("epsilon", 0, "<u8", "epsilon in the variance domain, Q.16, nonzero, "
                                         "below ``2**60``"),
        RecordField("gamma_shift", 8, "<u1", "fraction bits of gamma, 0..23"),
        RecordField("output_zero_point", 9, "<i1", "output zero point"),
        RecordField("gamma", 16, "<i2", "per-element scale", "length"),
        RecordField("beta", None, "<i4", "per-element offset, 24-bit signed", "length"),
    ),
}


def _integer(value):
    """``value`` if it is an integer (an ``IntEnum`` member counts, ``bool`` does not), else
    ``None``."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def record_layout(op, length):
    """``{name: (offset, dtype, count)}`` of ``op``'s parameter record for rows of
    ``length`` elements, and the record's size in bytes.

    Raises
    ------
    ValueError
        If ``op`` is not a :class:`VectorOp` or ``length`` not a non-negative integer.
    """
    try:
        fields = RECORDS[VectorOp(_integer(op))]
    except ValueError:
        raise ValueError(f"op must be one of {[o.name for o in VectorOp]}, not {op!r}") from None
    if _integer(length) is None or length < 0:
        raise ValueError(f"length must be a non-negative integer, not {length!r}")
    layout, end = {}, 0
    for f in fields:
        size = int(f.dtype[2:])
        offset = -(-end // size) * size if f.offset is None else f.offset
        count = length if f.count == "length" else f.count
        layout[f.name] = (offset, f.dtype, count)
        end = max(end, offset + size * count)
    return layout, end


def pack_record(op, length, values):
    """The bytes of ``op``'s parameter record for rows of ``length`` elements, from
    ``{field: value or array}`` (fields not given are 0), as a uint8 array.

    Raises
    ------
    ValueError
        As :func:`record_layout`; or if an array field has the wrong number of values.
    """
    layout, size = record_layout(op, length)
    out = np.zeros(size, np.uint8)
    for name, (offset, dtype, count) in layout.items():
        if name not in values:
            continue
        items = np.atleast_1d(np.asarray(values[name]))
        if items.size != count:
            raise ValueError(f"record field {name} takes {count} values, not {items.size}")
        width = np.dtype(dtype).itemsize
        raw = items.astype(np.int64).astype(dtype).view(np.uint8)
        out[offset:offset + width * count] = raw
    return out


def fields_of(opcode):
    """All fields of ``opcode``'s instructions, header first.

    Raises
    ------
    ValueError
        If ``opcode`` is not an :class:`Opcode`.
    """
    try:
        return HEADER + FORMATS[Opcode(_integer(opcode))]
    except ValueError:
        raise ValueError(f"opcode must be one of {[op.name for op in Opcode]}, "
                         f"not {opcode!r}") from None


def encode(opcode, /, **values):
    """The 256-bit integer of one instruction; fields not given are 0.

    Raises
    ------
    ValueError
        If ``opcode`` is not an :class:`Opcode`, a field does not belong to it, or a value is
        not an integer that fits its field.
    """
    fields = {f.name: f for f in fields_of(opcode)}
    word = int(Opcode(opcode))
    for name, value in values.items():
        field = fields.get(name)
        if field is None or name == "opcode":
            raise ValueError(f"{Opcode(opcode).name} has no field {name!r}")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int) or not 0 <= value < field.limit:
            raise ValueError(f"{Opcode(opcode).name}.{name} must be an integer in "
                             f"[0, {field.limit}), not {value!r}")
        word |= value << field.lsb
    return word


def decode(word):
    """``(opcode, fields, reserved)`` of a 256-bit instruction: the :class:`Opcode` (or the
    raw integer if it is illegal), every field of that opcode as a ``dict`` (only the header
    for an illegal one) and the value of the bits no field covers.

    Raises
    ------
    ValueError
        If ``word`` is not an integer in ``[0, 2**256)``.
    """
    if isinstance(word, bool) or not isinstance(word, int) or not 0 <= word < 1 << INSTRUCTION_BITS:
        raise ValueError(f"an instruction must be an integer in [0, 2**{INSTRUCTION_BITS}), "
                         f"not {word!r}")
    raw = word & 0xF
    try:
        opcode = Opcode(raw)
        fields = fields_of(opcode)
    except ValueError:
        opcode, fields = raw, HEADER
    values = {f.name: word >> f.lsb & (f.limit - 1) for f in fields}
    used = sum((f.limit - 1) << f.lsb for f in fields)
    return opcode, values, word & ~used & ((1 << INSTRUCTION_BITS) - 1)
