"""``docs/csr.md``, the register reference, generated from :mod:`jalapeno.csr` so the document
cannot drift from the map the hardware and software are built from.

``python -m jalapeno.csr_doc`` prints it; ``--write`` writes it into the repository.
"""

import argparse
from pathlib import Path

from jalapeno import csr

__all__ = ["DOC_PATH", "csr_markdown", "main"]

#: Where the document lives: ``docs/csr.md`` of the repository holding this package.
DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "csr.md"


def _cell(text):
    """``text`` as one Markdown table cell."""
    return text.replace("|", "\\|")


def _offset(reg):
    return f"`0x{reg.offset:03X}`"


def _reset(reg):
    return "config" if reg.reset is None else f"`0x{reg.reset:08X}`"


def _bits(field):
    return f"[{field.msb}]" if field.width == 1 else f"[{field.msb}:{field.lsb}]"


def csr_markdown():
    """The text of ``docs/csr.md``."""
    major, minor = csr.MAP_VERSION
    lines = [
        "# Control and status registers",
        "",
        "<!-- Generated from jalapeno/csr.py by `python -m jalapeno.csr_doc --write`; "
        "do not edit. -->",
        "",
        f"The core's CSR block is an AXI4-Lite slave of {csr.DATA_BITS}-bit little-endian "
        f"registers at byte offsets that are multiples of 4, in a window of {csr.CSR_BYTES} "
        f"bytes. This is version {major}.{minor} of the map. Offsets no register has, and "
        "bits no field covers (reserved bits), read as zero and ignore writes; every access "
        "gets an `OKAY` response. A register without fields holds one 32-bit value.",
        "",
        "64-bit quantities are two registers, `<NAME>_LO` (bits [31:0]) at a multiple of 8 "
        "and `<NAME>_HI` (bits [63:32]) after it. An address register implements "
        "`addr_width` bits (`WINDOW_LIMIT` and `ERROR_ADDR` one more, so the window can end at "
        "the top of the address space); the bits above read as zero and ignore writes. The "
        "performance "
        "counters count only while `STATUS.busy` is 1 and hold still once the core stops; "
        "while it runs, read `_HI`, `_LO`, `_HI` and read again if the two `_HI` differ.",
        "",
        "Access kinds:",
        "",
        *(f"- **{access.name}**: {access.value}." for access in csr.Access),
        "",
        "## Register map",
        "",
        "| Offset | Name | Access | Reset | Description |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {_offset(reg)} | `{reg.name}` | {reg.access.name} | {_reset(reg)} | "
          f"{_cell(reg.doc)} |" for reg in csr.REGISTERS),
        "",
        "## Fields",
    ]
    for reg in csr.REGISTERS:
        if not reg.fields:
            continue
        lines += [
            "",
            f"### {reg.name} ({_offset(reg)}, {reg.access.name})",
            "",
            reg.doc,
            "",
            "| Bits | Field | Meaning |",
            "| --- | --- | --- |",
            *(f"| {_bits(f)} | `{f.name}` | {_cell(f.doc)} |" for f in reg.fields),
        ]
    lines += [
        "",
        "## Discovering the configuration",
        "",
        f"Software reads `ID` and checks it is `0x{csr.MAGIC:08X}` (\"JLPN\"), reads `VERSION` "
        f"and checks the major version is {major}, then reads the configuration registers "
        f"({', '.join(f'`{name}`' for name in csr.CONFIG_NAMES)}). They hold every parameter "
        "of `rtl.config.JalapenoConfig` but its name, so the host rebuilds the exact design "
        "point it talks to:",
        "",
        "| Parameter | Register and field | Parameter from field |",
        "| --- | --- | --- |",
        *(f"| `{p.param}` | `{p.register}.{p.field}` | "
          f"`{p.formula}` |" for p in csr.CONFIG_PARAMS),
        "",
        "In Python, with `read(offset)` one 32-bit CSR read:",
        "",
        "```python",
        "from jalapeno import csr",
        "",
        "values = {name: read(csr.register(name).offset) for name in csr.CONFIG_NAMES}",
        "config = csr.config_from_registers(values)  # a JalapenoConfig named \"discovered\"",
        "```",
        "",
        "`csr.config_registers(config)` is the inverse: the values the hardware built for "
        "`config` presents.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    """Print :func:`csr_markdown`, or with ``--write`` write it to :data:`DOC_PATH`."""
    parser = argparse.ArgumentParser(prog="python -m jalapeno.csr_doc",
                                     description="Print or write docs/csr.md.")
    parser.add_argument("--write", action="store_true",
                        help=f"write {DOC_PATH.parent.name}/{DOC_PATH.name} instead of printing")
    args = parser.parse_args(argv)
    text = csr_markdown()
    if args.write:
        DOC_PATH.write_text(text)
        print(f"wrote {DOC_PATH}")
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
