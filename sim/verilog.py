"""Generate Verilog of every simulation and synthesis top, one file per top and preset."""

import argparse
import hashlib
import itertools
import re
from pathlib import Path

from amaranth.back import verilog

from rtl.config import PRESETS, JalapenoConfig
from rtl.core.core import Core
from rtl.systolic.matrix_unit import MatrixUnit
from rtl.vector.unit import VectorUnit

from .axi_copy import AxiCopy
from .board import BOARD_POINTS, BoardSystem
from .core_system import CoreSystem
from .dma_system import DmaSystem
from .toolchain import BUILD, apply

__all__ = ["TOPS", "DESIGN_POINTS", "make_top", "generate"]

#: Every top that can be simulated or synthesized, by name: a factory taking the config.
TOPS = {
    "matrix_unit": MatrixUnit,
    "vector_unit": VectorUnit,
    "axi_copy": AxiCopy,
    "dma_system": DmaSystem,
    # The core on its RTL memory (read latency 20), and alone for the Python AXI RAM.
    "core_system": CoreSystem,
    "core": Core,
    # The board's core, memory and UART host bridge (fpga.soc), as simulation builds it.
    "board": BoardSystem,
}

#: The design points simulation builds, by name: the presets and the boards' cores.
DESIGN_POINTS = {**PRESETS, **BOARD_POINTS}


def make_top(top: str, config: JalapenoConfig):
    """Elaboratable ``top`` for ``config``.

    Raises
    ------
    ValueError
        If there is no such top; the message lists the ones there are.
    """
    try:
        factory = TOPS[top]
    except KeyError:
        raise ValueError(f"unknown top {top!r}; choose one of {', '.join(TOPS)}") from None
    return factory(config)


# Yosys makes every `always @*` block read a register initialised to 0 in its declaration,
# so that the block runs once at time 0. Icarus applies declaration initialisers before any
# process waits, so no block ever runs until an input changes and combinational outputs
# stay X (amaranth-lang/amaranth#594, #1629). Assigning the register in `initial #0`
# instead raises the event after every process is waiting.
_TIME_ZERO_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S+)\s+= 0;$", re.M)
# Yosys gives no trigger to an `always @*` block of one assignment (a slice of a signal driven
# from another: `always @*\n    payload[67] = bank;`), so on Icarus such a slice stays X until
# its source first changes, which for a register held at its initial value (the matrix unit's
# weight bank) or a constant is never.
_UNTRIGGERED = re.compile(r"^([ \t]*)always @\*\n([ \t]*)(?!begin\b)([^\n]*;)$", re.M)


def icarus_time_zero_fix(text: str) -> str:
    """Verilog ``text`` with Yosys's time-0 triggers made to fire on Icarus, and one added to
    each ``always @*`` block that has none."""
    text = _TIME_ZERO_TRIGGER.sub(
        lambda m: f"{m[1]}reg {m[2]} ;\n{m[1]}initial #0 {m[2]} = 0;", text)
    count = itertools.count()

    def trigger(m):
        name = f"\\$jalapeno_time_zero_{next(count)}"
        return (f"{m[1]}reg {name} ;\n{m[1]}initial #0 {name} = 0;\n"
                f"{m[1]}always @* begin\n{m[2]}if ({name} ) begin end\n{m[2]}{m[3]}\n{m[1]}end")

    return _UNTRIGGERED.sub(trigger, text)


def generate(top: str, preset_name: str, *, sim: str = "verilator",
             out_dir: Path = BUILD / "verilog") -> Path:
    """Write ``<out_dir>/<top>_<preset>.v`` (``.icarus.v`` for Icarus) and return its path.

    The file is rewritten only when its text changes, so simulators that rebuild on file
    time stamps (Verilator's make) do not rebuild for nothing. Hand-written modules a top
    instantiates (its ``verilog_modules`` text, if it has one) follow the generated ones.
    """
    apply()
    elaboratable = make_top(top, DESIGN_POINTS[preset_name])
    text = verilog.convert(elaboratable, name=top, emit_src=False)
    text += getattr(elaboratable, "verilog_modules", "")
    suffix = ".v"
    if sim == "icarus":
        text, suffix = icarus_time_zero_fix(text), ".icarus.v"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{top}_{preset_name}{suffix}"
    digest = hashlib.sha256(text.encode()).digest()
    if not path.exists() or hashlib.sha256(path.read_bytes()).digest() != digest:
        path.write_text(text)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate Verilog of Jalapeño tops.")
    parser.add_argument("--top", choices=list(TOPS), action="append",
                        help="top to generate (default: all)")
    parser.add_argument("--preset", choices=list(DESIGN_POINTS), action="append",
                        help="preset or board design point to generate (default: every "
                             "preset)")
    args = parser.parse_args(argv)
    for top in args.top or TOPS:
        for name in args.preset or PRESETS:
            print(f"verilog  {generate(top, name).relative_to(BUILD.parent)}")


if __name__ == "__main__":
    main()
