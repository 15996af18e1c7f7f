"""Launch the cocotb benches from pytest: every preset on the selected simulator.

``JALAPENO_SIM`` selects the simulator (``make test SIM=icarus``); each (simulator, bench,
preset) build runs in one xdist group so two workers never build the same model at once. On
Icarus, which is an order of magnitude slower, only the verification tests (``run_test_*``)
run: the performance measurements (``run_bench_*``) are cycle counts of the same RTL and run
on Verilator.
"""

import os
import shutil

import pytest

from fpga.boards import board
from rtl.config import PRESETS
from sim.runner import run_bench

SIM = os.environ.get("JALAPENO_SIM", "verilator")
_BINARY = {"verilator": None, "icarus": "iverilog"}
#: Benches and the presets they run on: the units on every preset; the AXI slave model's
#: bench, whose copy master only takes the bus width from the preset, on the default one; the
#: DMA on every preset (32-, 64- and 128-bit buses); the core on its RTL memory on every
#: preset (its 256 x 256 x 256 bench GEMM too, on Verilator), and on the Python AXI RAM on
#: every preset; the board (core, memory, UART bridge, driven by the fpga backend) on the
#: iCEBreaker's design point (``tiny`` without the vector unit, queues of two, 17-bit
#: addresses).
BENCH_PRESETS = {"matrix_unit": PRESETS, "vector_unit": PRESETS, "axi_ram": ("default",),
                 "dma": PRESETS, "core": PRESETS, "core_model_ram": PRESETS,
                 "board": (board("icebreaker").config.name,)}


def _bench_param(bench, preset):
    return pytest.param(bench, preset, id=f"{bench}-{preset}-{SIM}",
                        marks=pytest.mark.xdist_group(f"{SIM}-{bench}-{preset}"))


@pytest.mark.cocotb
@pytest.mark.parametrize(("bench", "preset"),
                         [_bench_param(bench, preset) for bench, presets in BENCH_PRESETS.items()
                          for preset in presets])
def test_bench(bench, preset):
    binary = _BINARY[SIM]
    if binary and shutil.which(binary) is None:
        pytest.skip(f"{binary} is not installed")
    run = run_bench(bench, preset=preset, sim=SIM, quiet=True,
                    test_filter=None if SIM == "verilator" else "run_test_")
    assert run.tests > 0 and run.failed == 0
