"""The control and status registers (CSRs) of the Jalapeño core: the one definition of their
offsets, access kinds, fields and reset values.

The RTL CSR block, the runtime backends and ``docs/csr.md`` (:mod:`jalapeno.csr_doc`) are all
built from :data:`REGISTERS`. The block is an AXI4-Lite slave of 32-bit little-endian
registers at byte offsets that are multiples of 4, inside a window of :data:`CSR_BYTES`.
Offsets no register has, and bits no field of a register covers (its reserved bits), read as
zero and ignore writes; every access gets an ``OKAY`` response, so probing the map never
faults. A register without fields holds one 32-bit value.

64-bit quantities are two registers, ``<NAME>_LO`` (bits ``[31:0]``) at a multiple of 8 and
``<NAME>_HI`` (bits ``[63:32]``) right after it. An address register implements
``addr_width`` bits (``WINDOW_LIMIT`` and ``ERROR_ADDR`` one more, so the window can end at
the top of the address space and an error just past it is reported exactly); the bits above
read as zero and ignore writes (:func:`implemented_mask`). The performance counters
hold still once the core stops; while it runs, software reads ``_HI``, ``_LO``, ``_HI`` and
reads again if the two ``_HI`` differ.

Software finds out what it is talking to from the read-only registers: ``ID`` and
``VERSION`` first, then the configuration registers, from which :func:`config_from_registers`
rebuilds the :class:`~rtl.config.JalapenoConfig` of the design point.
"""

import enum
from dataclasses import dataclass

from jalapeno.isa import INSTRUCTION_BYTES, CoreError, Field, Queue
from rtl.config import JalapenoConfig

__all__ = [
    "CSR_BYTES", "DATA_BITS", "MAGIC", "MAP_VERSION", "Access", "Register",
    "REGISTERS", "ConfigParam", "CONFIG_PARAMS", "CONFIG_NAMES", "check_map", "register",
    "by_offset", "pack", "unpack", "config_registers", "config_from_registers",
    "counter_names", "split64", "join64", "ADDRESSES", "HELD_WHILE_BUSY", "address_width",
    "implemented_mask",
]

#: Bits of one register.
DATA_BITS = 32
#: Bytes of the CSR window: every offset is below it, so the block decodes 8 address bits.
CSR_BYTES = 256
#: The ``ID`` register's constant: ``"JLPN"`` read as a little-endian 32-bit word.
MAGIC = int.from_bytes(b"JLPN", "little")
#: ``(major, minor)`` of this register map and the programming model it belongs to (the
#: instruction set of :mod:`jalapeno.isa`). ``major`` changes when a register or field moves
#: or changes meaning; ``minor`` when one is added in space that read as zero before.
#: 1.1 added ``CONFIG_VECTOR.absent`` and the error code ``NO_VECTOR_UNIT``; 1.2 added
#: ``CONFIG_CORE``.
MAP_VERSION = (1, 2)

_WORD = 1 << DATA_BITS


class Access(enum.Enum):
    """How the bus may access a register; each member's value says what it means."""

    RO = "read-only: writes are ignored"
    RW = "read-write: reads return the value last written"
    W1C = "write one to clear: a 1 written to a bit clears it, a 0 leaves it"
    WO = "write-only: a 1 written to a bit triggers its action for one cycle; reads return 0"


@dataclass(frozen=True)
class Register:
    """One 32-bit register at byte ``offset``.

    Attributes
    ----------
    name : str
        Upper-snake-case name, unique in the map.
    offset : int
        Byte offset in the CSR window.
    access : Access
    doc : str
        What the register holds and when it changes.
    fields : tuple of Field
        The register's fields; none means one 32-bit value.
    reset : int or None
        Value after reset, or ``None`` for a configuration register, whose value is the
        design point's (:func:`config_registers`).
    """

    name: str
    offset: int
    access: Access
    doc: str
    fields: tuple = ()
    reset: int | None = 0

    @property
    def mask(self):
        """Bits that are not reserved: those of the fields, or all 32 without fields."""
        if not self.fields:
            return _WORD - 1
        return sum(f.mask for f in self.fields)


def _bits(*specs):
    """Fields of one bit each, ``(name, bit, doc)``."""
    return tuple(Field(name, bit, 1, doc) for name, bit, doc in specs)


def _pair(name, offset, access, doc):
    """The ``_LO`` and ``_HI`` registers of a 64-bit quantity at ``offset``, reset to 0."""
    return (Register(f"{name}_LO", offset, access, f"Bits [31:0] of {name}: {doc}"),
            Register(f"{name}_HI", offset + 4, access, f"Bits [63:32] of {name} (see {name}_LO)."))


def split64(value):
    """``(lo, hi)``: the 32-bit halves of a 64-bit value, as its ``_LO`` and ``_HI``
    registers hold it.

    Raises
    ------
    ValueError
        If ``value`` is not an integer in ``[0, 2**64)``.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise ValueError(f"a 64-bit value must be an integer in [0, 2**64), not {value!r}")
    return value & (_WORD - 1), value >> DATA_BITS


def join64(lo, hi):
    """The 64-bit value whose ``_LO`` and ``_HI`` registers read ``lo`` and ``hi``.

    Raises
    ------
    ValueError
        If ``lo`` or ``hi`` is not an integer in ``[0, 2**32)``.
    """
    for name, half in (("lo", lo), ("hi", hi)):
        if isinstance(half, bool) or not isinstance(half, int) or not 0 <= half < _WORD:
            raise ValueError(f"{name} must be an integer in [0, 2**32), not {half!r}")
    return hi << DATA_BITS | lo


_QUEUE_WORK = {
    Queue.LOAD: "LOAD instructions (DMA reads into the scratchpad)",
    Queue.COMPUTE: "GEMM and VECTOR instructions",
    Queue.STORE: "STORE instructions (DMA writes to external memory)",
}

#: The 64-bit performance counters, in offset order: ``(name, doc)``. All are read-only,
#: count only while ``STATUS.busy`` is 1, hold still once the core stops, and are cleared by
#: ``CONTROL.start`` and ``CONTROL.soft_reset``.
_COUNTERS = (
    ("CYCLES", "clock cycles from start until the core stops (STATUS.busy is 1)."),
    *((f"{q.name}_{kind}", doc.format(queue=q.name.lower(), work=_QUEUE_WORK[q]))
      for q in Queue
      for kind, doc in (
          ("BUSY", "cycles the {queue} queue holds or executes one of its {work}: "
                   "waiting for its tokens or for the bus included, so in the other cycles "
                   "the queue is empty."),
          ("STALL", "cycles the {queue} queue holds its next instruction but waits for a "
                    "dependency token (a pop) before starting it; STALL <= BUSY <= CYCLES."),
      )),
    ("MACS", "multiply-accumulates issued to the array: a GEMM adds m * k * n, so "
             "MACS / (CYCLES * rows * cols) is the array's utilization."),
    ("DMA_READ_BYTES", "bytes LOADs moved from external memory into the scratchpad, counted "
                       "as they arrive (rows * row_bytes for a LOAD that completes); "
                       "instruction fetches are not counted."),
    ("DMA_WRITE_BYTES", "bytes STOREs wrote to external memory (the strobed bytes of every "
                        "beat; rows * row_bytes for a STORE that completes)."),
    ("INSTRUCTIONS", "instructions completed, END included; the failing one is not."),
)

_CLEARED = "cleared by CONTROL.start and CONTROL.soft_reset"
#: Address bits below a program's alignment: instructions are aligned to their size.
_ALIGN = INSTRUCTION_BYTES.bit_length() - 1
_WRITABLE_IDLE = "Writes while STATUS.busy is 1 are ignored, so it holds still during a run."

#: Every register, in offset order.
REGISTERS = (
    Register("ID", 0x000, Access.RO, 'Constant "JLPN" (0x4E504C4A): a Jalapeño core answers '
             "here.", reset=MAGIC),
    Register("VERSION", 0x004, Access.RO, "Version of this register map and of the "
             "instruction set it runs.", fields=(
                 Field("minor", 0, 16, "raised when registers or fields are added where "
                                          "reads returned zero"),
                 Field("major", 16, 16, "raised when a register or field moves or changes "
                                           "meaning"),
             ), reset=MAP_VERSION[0] << 16 | MAP_VERSION[1]),
    Register("CONFIG_ARRAY", 0x008, Access.RO, "Configuration of the matrix unit: the array "
             "and its accumulator memory.", fields=(
                 Field("rows", 0, 8, "rows of the systolic array (weight rows, K, of a "
                                        "tile)"),
                 Field("cols", 8, 8, "columns of the array (result lanes, N, of a tile), "
                                        "also the lanes of the vector unit"),
                 Field("acc_depth_log2", 16, 8, "log2 of the rows of the accumulator "
                                                   "memory"),
                 Field("read_fifo_depth", 24, 8, "entries of the accumulator "
                                                    "read-response buffer"),
             ), reset=None),
    Register("CONFIG_MEMORY", 0x00C, Access.RO, "Configuration of the memory system: the "
             "DMA's AXI4 master and the scratchpad.", fields=(
                 Field("bus_bytes", 0, 8, "bytes per beat of the AXI4 master (bus width / "
                                             "8): 4, 8 or 16"),
                 Field("addr_width", 8, 8, "address bits of the AXI4 master, and of the "
                                              "address registers"),
                 Field("spad_bytes_log2", 16, 8, "log2 of the bytes of the scratchpad"),
             ), reset=None),
    Register("CONFIG_VECTOR", 0x010, Access.RO, "Configuration of the vector unit.", fields=(
        Field("max_row", 0, 16, "largest length, in elements, of a row a VECTOR "
                                   "instruction takes (configured but unused when absent "
                                   "is 1)"),
        Field("absent", 16, 1, "1 if the core has no vector unit (a matrix-only design "
                                  "point): a VECTOR stops it with NO_VECTOR_UNIT. 0 if it has "
                                  "one, as every core of map 1.0, which reads 0 here, does"),
    ), reset=None),
    Register("CONFIG_CORE", 0x014, Access.RO, "Configuration of the instruction path.", fields=(
        Field("queue_depth", 0, 8, "entries of each of the three instruction queues (and the "
                                      "transfers a load or store queue keeps in flight); 0 on "
                                      "maps before 1.2, whose queues hold 8"),
    ), reset=None),
    Register("CONTROL", 0x020, Access.WO, "Starts and resets the core.", fields=_bits(
        ("start", 0, "run the program at PROGRAM_BASE: clears STATUS.done and STATUS.error, "
                     "ERROR_CODE, ERROR_ADDR and the counters, and sets STATUS.busy; "
                     "ignored while STATUS.busy is 1"),
        ("soft_reset", 1, "stop the core: abandon the queued instructions, wait for the bus "
                          "transactions already issued to finish, and return to idle with "
                          "STATUS, ERROR_CODE, ERROR_ADDR, IRQ_STATUS and the counters "
                          "cleared; the program, window and IRQ_ENABLE registers keep their "
                          "values. Written together with start, start is ignored"),
    )),
    Register("STATUS", 0x024, Access.RO, "State of the core.", fields=_bits(
        ("busy", 0, "set by CONTROL.start; cleared when the core stops, at END or an error, "
                    "or when a soft reset completes"),
        ("done", 1, f"set when END completes (every queue empty); {_CLEARED}"),
        ("error", 2, f"set when the core stops with ERROR_CODE not NONE; {_CLEARED}"),
        *((f"{q.name.lower()}_busy", 8 + q, f"the {q.name.lower()} queue holds or is "
           "executing an instruction") for q in Queue),
    )),
    Register("ERROR_CODE", 0x028, Access.RO, "Why the core stopped, a jalapeno.isa.CoreError; "
             f"NONE (0) unless STATUS.error is 1; {_CLEARED}.", fields=(
                 Field("code", 0, 8, "the CoreError: " + ", ".join(
                     f"{e.value} {e.name}" for e in CoreError)),
             )),
    *_pair("ERROR_ADDR", 0x030, Access.RO, "byte address of the instruction that failed, "
           "the earliest in program order; for PROGRAM_OVERRUN the address after the last "
           f"one, PROGRAM_BASE + {INSTRUCTION_BYTES} * PROGRAM_LENGTH. 0 unless STATUS.error is 1; "
           f"{_CLEARED}. It implements addr_width + 1 bits, as WINDOW_LIMIT does: with the "
           "window at the top of the address space, a fetch past it fails, and a program "
           "ending there overruns, at 2**addr_width."),
    Register("PROGRAM_BASE_LO", 0x040, Access.RW, "Bits [31:0] of PROGRAM_BASE: byte address "
             "of the program's first instruction. " + _WRITABLE_IDLE, fields=(
                 Field("base", _ALIGN, DATA_BITS - _ALIGN,
                          f"bits [31:{_ALIGN}] of the address; bits [{_ALIGN - 1}:0] are zero, "
                          f"so every instruction is one aligned {INSTRUCTION_BYTES}-byte fetch "
                          "that never crosses a 4 KiB boundary"),
             )),
    Register("PROGRAM_BASE_HI", 0x044, Access.RW, "Bits [63:32] of PROGRAM_BASE. "
             + _WRITABLE_IDLE),
    Register("PROGRAM_LENGTH", 0x048, Access.RW, "Instructions in the program; fetching past "
             "them without an END stops the core with PROGRAM_OVERRUN (at once for 0). "
             + _WRITABLE_IDLE),
    *_pair("WINDOW_BASE", 0x050, Access.RW, "first byte address of the memory window "
           "[WINDOW_BASE, WINDOW_LIMIT) that every instruction fetch and DMA access must stay "
           "inside. " + _WRITABLE_IDLE),
    *_pair("WINDOW_LIMIT", 0x058, Access.RW, "byte address just past the memory window; the "
           "reset value 0 makes the window empty until the host sets it. " + _WRITABLE_IDLE),
    Register("IRQ_ENABLE", 0x060, Access.RW, "Which IRQ_STATUS bits raise the interrupt "
             "line: the line is high while IRQ_STATUS & IRQ_ENABLE is nonzero.", fields=_bits(
                 ("done", 0, "interrupt on IRQ_STATUS.done"),
                 ("error", 1, "interrupt on IRQ_STATUS.error"),
             )),
    Register("IRQ_STATUS", 0x064, Access.W1C, "Events since the host last cleared them, set "
             "whatever IRQ_ENABLE holds. Cleared by writing 1 and by CONTROL.soft_reset, not "
             "by CONTROL.start.", fields=_bits(
                 ("done", 0, "set when the core stops at END, with STATUS.done"),
                 ("error", 1, "set when the core stops with an error, with STATUS.error"),
             )),
    *(reg for index, (name, doc) in enumerate(_COUNTERS)
      for reg in _pair(name, 0x080 + 8 * index, Access.RO, doc)),
)

#: The 64-bit address quantities (each a ``_LO``/``_HI`` pair): the bits the hardware
#: implements of each beyond ``addr_width`` (:func:`address_width`).
ADDRESSES = {"ERROR_ADDR": 1, "PROGRAM_BASE": 0, "WINDOW_BASE": 0, "WINDOW_LIMIT": 1}
#: Names of the registers whose writes are ignored while ``STATUS.busy`` is 1 (their docs, or
#: for a ``_HI`` its ``_LO``'s, say so), so the program and the window hold still during a run.
HELD_WHILE_BUSY = frozenset(
    name for reg in REGISTERS if _WRITABLE_IDLE in reg.doc
    for name in (reg.name, *((reg.name[:-3] + "_HI",) if reg.name.endswith("_LO") else ())))

_BY_NAME = {reg.name: reg for reg in REGISTERS}
_BY_OFFSET = {reg.offset: reg for reg in REGISTERS}


def check_map(registers):
    """Check that ``registers`` is a well-formed register map.

    Raises
    ------
    ValueError
        If a name is repeated or not upper snake case, an offset is not a multiple of 4, not
        above the previous one or not below :data:`CSR_BYTES`, a field leaves the 32 bits,
        overlaps another or repeats a name, or a reset value sets a bit no field covers.
    """
    names, previous = set(), -1
    for reg in registers:
        if not (reg.name.isidentifier() and reg.name == reg.name.upper()):
            raise ValueError(f"CSR name {reg.name!r} is not upper snake case")
        if reg.name in names:
            raise ValueError(f"CSR name {reg.name!r} is repeated")
        names.add(reg.name)
        if reg.offset % 4 or not previous < reg.offset < CSR_BYTES:
            raise ValueError(f"{reg.name} offset {reg.offset:#x} is not a multiple of 4 above the "
                             f"previous CSR's and below {CSR_BYTES:#x}")
        previous = reg.offset
        used, field_names = 0, set()
        for f in reg.fields:
            if f.name in field_names:
                raise ValueError(f"{reg.name}.{f.name} is repeated")
            field_names.add(f.name)
            if f.lsb < 0 or f.width < 1 or f.msb >= DATA_BITS:
                raise ValueError(f"{reg.name}.{f.name} bits [{f.msb}:{f.lsb}] leave the "
                                 f"{DATA_BITS}-bit register")
            if used & f.mask:
                raise ValueError(f"{reg.name}.{f.name} overlaps another field")
            used |= f.mask
        if reg.reset is not None and (not 0 <= reg.reset < _WORD or reg.reset & ~reg.mask):
            raise ValueError(f"{reg.name} reset {reg.reset:#x} does not fit its fields")


check_map(REGISTERS)


def register(name):
    """The register called ``name``.

    Raises
    ------
    ValueError
        If there is none.
    """
    reg = _BY_NAME.get(name) if isinstance(name, str) else None
    if reg is None:
        raise ValueError(f"no CSR named {name!r}")
    return reg


def by_offset(offset):
    """The register at byte ``offset``.

    Raises
    ------
    ValueError
        If there is none.
    """
    is_int = isinstance(offset, int) and not isinstance(offset, bool)
    reg = _BY_OFFSET.get(offset) if is_int else None
    if reg is None:
        raise ValueError(f"no CSR at offset {offset:#x}" if is_int
                         else f"no CSR at offset {offset!r}")
    return reg


def _resolve(reg):
    return reg if isinstance(reg, Register) else register(reg)


def pack(reg, **values):
    """The 32-bit value of register ``reg`` (a :class:`Register` or its name) with the given
    fields; fields not given and reserved bits are 0.

    Raises
    ------
    ValueError
        If there is no such register, a field does not belong to it, or a value is not an
        integer that fits its field.
    """
    reg = _resolve(reg)
    fields = {f.name: f for f in reg.fields}
    word = 0
    for name, value in values.items():
        field = fields.get(name)
        if field is None:
            raise ValueError(f"{reg.name} has no field {name!r}")
        if isinstance(value, bool):
            value = int(value)
        if not isinstance(value, int) or not 0 <= value < field.limit:
            raise ValueError(f"{reg.name}.{name} must be an integer in [0, {field.limit}), "
                             f"not {value!r}")
        word |= value << field.lsb
    return word


def unpack(reg, value):
    """``{field: value}`` of register ``reg`` (a :class:`Register` or its name) reading
    ``value``. Reserved bits are ignored, so software written for one minor version reads a
    later one.

    Raises
    ------
    ValueError
        If there is no such register or ``value`` is not an integer in ``[0, 2**32)``.
    """
    reg = _resolve(reg)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < _WORD:
        raise ValueError(f"a {reg.name} value must be an integer in [0, 2**32), not {value!r}")
    return {f.name: value >> f.lsb & (f.limit - 1) for f in reg.fields}


#: How a parameter is held in a field: parameter to field, field to parameter, and the
#: second as text.
_ENCODINGS = {
    "value": (lambda value: value, lambda field: field, "{field}"),
    "log2": (lambda value: value.bit_length() - 1, lambda field: 1 << field, "1 << {field}"),
    "bytes": (lambda value: value // 8, lambda field: 8 * field, "8 * {field}"),
    "absent": (lambda value: int(not value), lambda field: field == 0, "{field} == 0"),
    "depth": (lambda value: value, lambda field: field or 8, "{field} or 8"),
}


@dataclass(frozen=True)
class ConfigParam:
    """Where one :class:`~rtl.config.JalapenoConfig` parameter is in the configuration
    registers: field ``field`` of ``register`` holds ``param`` as ``encoding`` says.

    Attributes
    ----------
    encoding : str
        ``"value"`` (the parameter itself), ``"log2"`` (its log2, for powers of two),
        ``"bytes"`` (a width in bits, as bytes) or ``"absent"`` (a ``bool`` saying a unit is
        there, as a bit that is 1 when it is not, so that 0, what older maps read there,
        means it is).
    """

    param: str
    register: str
    field: str
    encoding: str

    def encode(self, value):
        """The field's value for parameter value ``value``."""
        return _ENCODINGS[self.encoding][0](value)

    def decode(self, value):
        """The parameter's value for field value ``value``."""
        return _ENCODINGS[self.encoding][1](value)

    @property
    def formula(self):
        """:meth:`decode` as text, for the documentation."""
        return _ENCODINGS[self.encoding][2].format(field=self.field)


#: Every parameter of :class:`~rtl.config.JalapenoConfig` but ``name``, in the configuration
#: registers.
CONFIG_PARAMS = (
    ConfigParam("rows", "CONFIG_ARRAY", "rows", "value"),
    ConfigParam("cols", "CONFIG_ARRAY", "cols", "value"),
    ConfigParam("acc_depth", "CONFIG_ARRAY", "acc_depth_log2", "log2"),
    ConfigParam("read_fifo_depth", "CONFIG_ARRAY", "read_fifo_depth", "value"),
    ConfigParam("bus_width", "CONFIG_MEMORY", "bus_bytes", "bytes"),
    ConfigParam("addr_width", "CONFIG_MEMORY", "addr_width", "value"),
    ConfigParam("spad_bytes", "CONFIG_MEMORY", "spad_bytes_log2", "log2"),
    ConfigParam("max_row", "CONFIG_VECTOR", "max_row", "value"),
    ConfigParam("vector_unit", "CONFIG_VECTOR", "absent", "absent"),
    ConfigParam("queue_depth", "CONFIG_CORE", "queue_depth", "depth"),
)
#: The configuration registers, in offset order.
CONFIG_NAMES = tuple(reg.name for reg in REGISTERS if reg.reset is None)


def config_registers(config):
    """``{name: value}`` of the configuration registers as the hardware built for
    ``config`` presents them."""
    fields = {name: {} for name in CONFIG_NAMES}
    for p in CONFIG_PARAMS:
        fields[p.register][p.field] = p.encode(getattr(config, p.param))
    return {name: pack(name, **values) for name, values in fields.items()}


def config_from_registers(values):
    """The :class:`~rtl.config.JalapenoConfig`, named ``"discovered"``, of the hardware whose
    registers read ``values`` (``{name: value}``, at least the configuration registers;
    others are ignored).

    Raises
    ------
    ValueError
        If a name is not a register's, a configuration register is missing, a value is not an
        integer in ``[0, 2**32)``, or the values describe no valid configuration (the
        message is :class:`~rtl.config.JalapenoConfig`'s).
    """
    for name in values:
        register(name)
    missing = [name for name in CONFIG_NAMES if name not in values]
    if missing:
        raise ValueError(f"missing configuration CSRs: {', '.join(missing)}")
    fields = {name: unpack(name, values[name]) for name in CONFIG_NAMES}
    return JalapenoConfig(name="discovered", **{
        p.param: p.decode(fields[p.register][p.field]) for p in CONFIG_PARAMS})


def counter_names():
    """Names of the 64-bit performance counters, in offset order; counter ``NAME`` is the
    registers ``NAME_LO`` and ``NAME_HI``."""
    return tuple(name for name, _ in _COUNTERS)


def address_width(name, config):
    """Bits of address quantity ``name`` (a key of :data:`ADDRESSES`) the hardware built for
    ``config`` implements: ``addr_width``, one more for ``WINDOW_LIMIT`` and ``ERROR_ADDR``.
    The registers hold at most 64 of them, so with ``addr_width`` 64 the extra bit is lost.

    Raises
    ------
    ValueError
        If ``name`` is not an address quantity.
    """
    if name not in ADDRESSES:
        raise ValueError(f"{name!r} is not an address CSR; choose one of {', '.join(ADDRESSES)}")
    return config.addr_width + ADDRESSES[name]


def implemented_mask(reg, config):
    """The bits of register ``reg`` (a :class:`Register` or its name) that the hardware built
    for ``config`` holds: :attr:`Register.mask`, and for a half of an address quantity only
    those of its bits below :func:`address_width`. The others read as zero and ignore writes.

    Raises
    ------
    ValueError
        If there is no such register.
    """
    reg = _resolve(reg)
    quantity, _, half = reg.name.rpartition("_")
    if quantity not in ADDRESSES or half not in ("LO", "HI"):
        return reg.mask
    width = address_width(quantity, config) - (DATA_BITS if half == "HI" else 0)
    return reg.mask & ((1 << max(0, min(width, DATA_BITS))) - 1)
