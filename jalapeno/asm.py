"""Jalapeño assembly: a readable text form of programs, and their binary form in memory.

One instruction per line: the lower-case mnemonic (``load``, ``store``, ``gemm``, ``vector``,
``sync``, ``end``), then the token flags it sets as bare words (``pop_prev push_next``), then
``name=value`` for its other fields, in any order; fields not given are 0. Values are decimal
or ``0x`` hexadecimal; ``op`` of ``vector`` and ``queue`` of ``sync`` also take the lower-case
name of a :class:`~jalapeno.isa.VectorOp` or :class:`~jalapeno.isa.Queue`
(``vector op=softmax``, ``sync queue=store``). ``.word`` followed by a number is that
instruction word as it is, so any 256-bit word can be written. ``#`` starts a comment; blank
lines are ignored.

:func:`disassemble` writes the canonical form: the flags in :data:`~jalapeno.isa.TOKEN_FLAGS`
order, then every nonzero field in format order, addresses, strides and operand locations
(fields whose name contains ``addr``, ``stride``, ``src``, ``dst`` or ``params``) in
hexadecimal, the rest in decimal; ``op`` and ``queue`` are written even when 0, by name (a
number if they have none), as they say what the instruction does. A word with an illegal
opcode or a reserved bit set becomes ``.word 0x`` and 64 hex digits, so every word survives
``assemble(disassemble(words))``.
"""

import re

from jalapeno.isa import (
    INSTRUCTION_BITS,
    INSTRUCTION_BYTES,
    TOKEN_FLAGS,
    Opcode,
    Queue,
    VectorOp,
    decode,
    encode,
    fields_of,
)

__all__ = ["AsmError", "ENUM_FIELDS", "assemble", "disassemble", "to_bytes", "from_bytes"]

#: Fields written by the lower-case name of a member of an enum.
ENUM_FIELDS = {"op": VectorOp, "queue": Queue}

_MNEMONICS = {op.name.lower(): op for op in Opcode}
_HEX_PARTS = ("addr", "stride", "src", "dst", "params")
_NUMBER = re.compile(r"-?(?:0x[0-9a-fA-F]+|[0-9]+)")
_NAME = re.compile(r"[A-Za-z_]\w*")


class AsmError(ValueError):
    """A line of assembly that does not assemble; the message starts with ``line N: ``."""


def _number(text, what):
    if not _NUMBER.fullmatch(text):
        raise ValueError(f"bad number {text!r} for {what}")
    return int(text, 16 if "x" in text else 10)


def _value(opcode, name, text):
    """The integer of ``name=text`` in an ``opcode`` instruction (not yet range-checked)."""
    what = f"{opcode.name}.{name}"
    enum = ENUM_FIELDS.get(name)
    if enum is not None and _NAME.fullmatch(text):
        names = {member.name.lower(): member for member in enum}
        if text not in names:
            raise ValueError(f"unknown {enum.__name__} {text!r} for {what}; expected one of "
                             f"{', '.join(names)}")
        return int(names[text])
    return _number(text, what)


def _instruction(tokens):
    """The word of one line's tokens (``=`` already joined to its name and value)."""
    mnemonic, *operands = tokens
    if mnemonic == ".word":
        if len(operands) != 1:
            raise ValueError(f".word takes one value, not {len(operands)}")
        word = _number(operands[0], ".word")
        decode(word)
        return word
    opcode = _MNEMONICS.get(mnemonic)
    if opcode is None:
        raise ValueError(f"unknown mnemonic {mnemonic!r}; expected one of "
                         f"{', '.join(_MNEMONICS)}, .word")
    names = {f.name for f in fields_of(opcode)} - {"opcode"}
    values = {}
    for operand in operands:
        name, equals, text = operand.partition("=")
        if name not in names:
            raise ValueError(f"{opcode.name} has no field {name!r}")
        if name in values:
            raise ValueError(f"{opcode.name}.{name} is given twice")
        if equals:
            values[name] = _value(opcode, name, text)
        elif name in TOKEN_FLAGS:
            values[name] = 1
        else:
            raise ValueError(f"{opcode.name}.{name} needs a value: {name}=<value>")
    return encode(opcode, **values)


def assemble(text):
    """The instruction words of the program ``text``.

    Raises
    ------
    AsmError
        On the first line that does not assemble: an unknown mnemonic, field or enum name, a
        field given twice, a field other than a token flag without a value, a bad number or a
        value out of its field's range.
    """
    words = []
    for number, line in enumerate(text.split("\n"), 1):
        tokens = re.sub(r"\s*=\s*", "=", line.partition("#")[0]).split()
        if tokens:
            try:
                words.append(_instruction(tokens))
            except ValueError as error:
                raise AsmError(f"line {number}: {error}") from None
    return words


def _decoded(index, word):
    try:
        return decode(word)
    except ValueError as error:
        raise ValueError(f"word {index}: {error}") from None


def _field_text(name, value):
    enum = ENUM_FIELDS.get(name)
    if enum is not None and value in set(enum):
        return enum(value).name.lower()
    if any(part in name for part in _HEX_PARTS):
        return f"{value:#x}"
    return str(value)


def disassemble(words):
    """The canonical text of the instruction ``words``, one line each, each ending in a
    newline.

    Raises
    ------
    ValueError
        If a word is not an integer in ``[0, 2**256)``; the message starts with ``word I: ``,
        ``I`` its index.
    """
    lines = []
    for index, word in enumerate(words):
        opcode, values, reserved = _decoded(index, word)
        if not isinstance(opcode, Opcode) or reserved:
            lines.append(f".word {word:#0{INSTRUCTION_BITS // 4 + 2}x}")
            continue
        parts = [opcode.name.lower()]
        parts += [flag for flag in TOKEN_FLAGS if values[flag]]
        parts += [f"{name}={_field_text(name, value)}" for name, value in values.items()
                  if (value or name in ENUM_FIELDS) and name != "opcode"
                  and name not in TOKEN_FLAGS]
        lines.append(" ".join(parts))
    return "".join(line + "\n" for line in lines)


def to_bytes(words):
    """The program ``words`` as it sits in memory: each word :data:`INSTRUCTION_BYTES`
    little-endian bytes, one after the other.

    Raises
    ------
    ValueError
        If a word is not an integer in ``[0, 2**256)``; the message starts with ``word I: ``.
    """
    out = bytearray()
    for index, word in enumerate(words):
        _decoded(index, word)
        out += word.to_bytes(INSTRUCTION_BYTES, "little")
    return bytes(out)


def from_bytes(data):
    """The instruction words of a program in memory, the inverse of :func:`to_bytes`.

    Raises
    ------
    ValueError
        If ``len(data)`` is not a multiple of :data:`INSTRUCTION_BYTES`.
    """
    if len(data) % INSTRUCTION_BYTES:
        raise ValueError(f"a program is a multiple of {INSTRUCTION_BYTES} bytes long, "
                         f"not {len(data)}")
    return [int.from_bytes(data[at:at + INSTRUCTION_BYTES], "little")
            for at in range(0, len(data), INSTRUCTION_BYTES)]
