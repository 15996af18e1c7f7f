"""``docs/isa.md``, generated from the tables of :mod:`jalapeno.isa`.

``python -m jalapeno.isa_doc`` prints it; ``--write`` writes it to ``docs/isa.md`` of this
repository. ``tests/test_isa.py`` fails when the file and :func:`isa_markdown` differ, so the
document cannot drift from the definition.
"""

import argparse
import inspect
import re
from pathlib import Path

import numpy as np

from jalapeno import asm, isa

__all__ = ["DOC_PATH", "EXAMPLE", "isa_markdown", "main"]

#: Where ``--write`` puts the document: ``docs/isa.md`` of the repository holding this package.
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "isa.md"

#: The worked example: a 4 x 8 by 8 x 8 GEMM, requantized to int8, on the default preset.
EXAMPLE = """\
# x (4 x 8 int8) from 0x1000, w (8 rows of 8 int8) from 0x1100, the requantize record from 0x1200
load ext_addr=0x1000 local_stride=0x8 rows=4 row_bytes=8 ext_stride=0x8
load ext_addr=0x1100 local_addr=0x20 local_stride=0x8 rows=8 row_bytes=8 ext_stride=0x8
load push_next ext_addr=0x1200 local_addr=0x60 rows=1 row_bytes=8
# acc[0:4, :8] = x @ w, then requantized into the scratchpad at 0x80
gemm pop_prev w_addr=0x20 m=4 k=8 n=8
vector push_next op=requantize rows=4 length=8 src=0x10000 src_stride=0x20 dst=0x80 \
dst_stride=0x8 params=0x60
# the int8 result to 0x2000
store pop_prev ext_addr=0x2000 local_addr=0x80 local_stride=0x8 rows=4 row_bytes=8 \
ext_stride=0x8
end
"""


def _md(text):
    """reStructuredText markup of the docstrings and docs as Markdown."""
    text = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_md(str(cell)).replace("|", "\\|") for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def _bits(field):
    return f"[{field.msb}:{field.lsb}]" if field.width > 1 else f"[{field.lsb}]"


def _field_table(fields):
    return _table(("field", "bits", "width", "meaning"),
                  [(f"`{f.name}`", _bits(f), f.width, f.doc) for f in fields])


def _reserved(fields):
    """The bit ranges no field covers, from the top, as ``[msb:lsb]`` strings."""
    used = [False] * isa.INSTRUCTION_BITS
    for f in fields:
        used[f.lsb:f.msb + 1] = [True] * f.width
    ranges, bit = [], isa.INSTRUCTION_BITS - 1
    while bit >= 0:
        if used[bit]:
            bit -= 1
            continue
        top = bit
        while bit >= 0 and not used[bit]:
            bit -= 1
        ranges.append(f"[{top}:{bit + 1}]" if top > bit + 1 else f"[{top}]")
    return ranges


def _record_rows(op):
    rows, previous = [], None
    for f in isa.RECORDS[op]:
        size = np.dtype(f.dtype).itemsize
        offset = (f.offset if f.offset is not None
                  else f"after `{previous}`, aligned to {size}")
        count = "`length`" if f.count == "length" else f.count
        rows.append((f"`{f.name}`", offset, f"`{f.dtype}` ({np.dtype(f.dtype).name})", count,
                     f.doc))
        previous = f.name
    return rows


def _record_size(op, length=5):
    fields = isa.RECORDS[op]
    if all(f.count != "length" for f in fields):
        return f"Size: {isa.record_layout(op, 0)[1]} bytes."
    layout, size = isa.record_layout(op, length)
    arrays = ", ".join(f"`{f.name}` at {layout[f.name][0]}" for f in fields
                       if f.count == "length")
    return f"For rows of `length` = {length}: {arrays}; {size} bytes in all."


def _codes(codes):
    """``0, 7 to 15``: ascending integers as runs."""
    runs = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return ", ".join(str(lo) if lo == hi else f"{lo} to {hi}" for lo, hi in runs)


def _sections():
    yield "# The Jalapeño instruction set"
    yield ("<!-- Generated from jalapeno/isa.py by `python -m jalapeno.isa_doc --write`; "
           "do not edit. -->")
    yield _md(inspect.getdoc(isa))

    yield "## Instruction format"
    yield (f"An instruction is {isa.INSTRUCTION_BITS} bits, {isa.INSTRUCTION_BYTES} bytes in "
           f"memory, least significant byte first; bit `i` is bit `i % 8` of byte `i // 8`. At "
           f"most {isa.MAX_TOKENS} tokens wait in one direction (`MAX_TOKENS`).")
    yield "### Header (every opcode)"
    yield _field_table(isa.HEADER)

    yield "## Opcodes"
    illegal = [code for code in range(1 << isa.HEADER[0].width) if code not in set(isa.Opcode)]
    yield _table(("code", "opcode", "mnemonic", "queue", "does"),
                 [(int(op), op.name, f"`{op.name.lower()}`",
                   isa.QUEUE_OF[op].name if op in isa.QUEUE_OF
                   else "named by `queue`" if op is isa.Opcode.SYNC else "none",
                   isa.OPCODE_DOCS[op]) for op in isa.Opcode])
    yield f"Codes {_codes(illegal)} are illegal (`ILLEGAL_OPCODE`)."
    for op in isa.Opcode:
        yield f"### {op.name} ({int(op)})"
        yield _md(isa.OPCODE_DOCS[op])
        fields = isa.FORMATS[op]
        if fields:
            yield "After the header:\n\n" + _field_table(fields)
        else:
            yield "No fields after the header."
        yield "Reserved, must be zero: " + ", ".join(_reserved(isa.fields_of(op))) + "."

    yield "## Vector operations (`op` of VECTOR)"
    yield _table(("code", "op", "assembly"),
                 [(int(op), op.name, f"`op={op.name.lower()}`") for op in isa.VectorOp])
    yield "## Queues (`queue` of SYNC)"
    yield _table(("code", "queue", "assembly", "runs"),
                 [(int(q), q.name, f"`queue={q.name.lower()}`",
                   ", ".join(op.name for op, of in isa.QUEUE_OF.items() if of is q) + ", SYNC")
                  for q in isa.Queue])

    yield "## Parameter records"
    yield _md("The record of each VECTOR operation is in the scratchpad at ``params``, "
              "little-endian. Variable-length arrays, one value per row element, come last; an "
              "offset after another field is the first multiple of the item size at or past "
              "that field's end.")
    for op in isa.VectorOp:
        yield f"### {op.name} ({int(op)})"
        yield _table(("field", "offset", "type", "count", "meaning"), _record_rows(op))
        yield _record_size(op)

    yield "## Error codes (`ERROR_CODE`)"
    yield _table(("code", "error", "meaning"),
                 [(int(e), e.name, isa.ERROR_DOCS[e]) for e in isa.CoreError])

    yield "## Assembly"
    yield _md(inspect.getdoc(asm))
    yield "## Example"
    yield ("A GEMM of 4 x 8 int8 activations by 8 x 8 int8 weights, requantized to int8 and "
           "stored, on the `default` preset (8 x 8 array, 8-byte vectors and bus words, the "
           "accumulator memory from local address `0x10000`, 32 bytes a row). The three "
           "loads run one after another in the load queue; the last one's token lets the GEMM "
           "start, and the VECTOR's lets the STORE start.")
    yield "```\n" + EXAMPLE + "```"
    words = asm.assemble(EXAMPLE)
    yield "assembles to (each word as one hexadecimal number, most significant digit first):"
    yield _table(("address", "word"),
                 [(f"`{i * isa.INSTRUCTION_BYTES:#06x}`",
                   f"`{w:0{isa.INSTRUCTION_BITS // 4}x}`") for i, w in enumerate(words)])


def isa_markdown():
    """The text of ``docs/isa.md``."""
    return "\n\n".join(_sections()) + "\n"


def main(argv=None):
    """Print :func:`isa_markdown`, or with ``--write`` write it to :data:`DOC_PATH`."""
    parser = argparse.ArgumentParser(prog="python -m jalapeno.isa_doc",
                                     description="Print docs/isa.md, generated from "
                                                 "jalapeno/isa.py.")
    parser.add_argument("--write", action="store_true",
                        help=f"write {DOC_PATH.parent.name}/{DOC_PATH.name} instead of printing")
    args = parser.parse_args(argv)
    if args.write:
        DOC_PATH.write_text(isa_markdown())
        print(f"wrote {DOC_PATH}")
    else:
        print(isa_markdown(), end="")


if __name__ == "__main__":
    main()
