"""The cost model (:mod:`jalapeno.compiler.cost`) against cycles measured on the RTL core
(Verilator, the ``core_system`` top, 20 cycles of memory latency): every program of the core's
system tests on every preset, and every program of a short code completion (the demo's kind:
prefill, then decode steps), each predicted within 10 %.

The RTL runs on Verilator only (the cycle counts are the simulator's, the same on Icarus,
which is too slow for them); each preset's test shares the build of the core bench's group.
"""

import numpy as np
import pytest
from core_bench import CoreSession

from fpga.boards import board
from jalapeno.compiler.cost import CostParams, estimate
from jalapeno.models.engine import Engine
from jalapeno.models.generate import Batcher
from jalapeno.models.quantize import INT8_FILE, load_quant
from jalapeno.runtime import open_device
from jalapeno.runtime.session import Session
from rtl.bus.stream_sim import simulate
from rtl.config import PRESETS
from verification.programs import gemm_program, system_gemm_shapes, tiled_gemm

#: Largest error of a prediction, as a fraction of the measured cycles.
TOLERANCE = 0.10


def _check(config, words, measured, what):
    predicted = estimate(config, words).cycles
    error = predicted / measured - 1
    assert abs(error) <= TOLERANCE, \
        f"{config.name}, {what}: predicted {predicted} cycles, measured {measured} " \
        f"({error:+.1%})"
    return error


def _system_programs(config):
    """``(name, words)``: the core's system-test programs (``verification/tb/test_core.py``)
    and, on the default preset, the core bench's 256 x 256 x 256 GEMM."""
    yield "gemm_program", gemm_program(config, 0x4000, 0x8000, 0xC000, 12, 4)
    shapes = system_gemm_shapes(config)
    if config.name == "default":
        shapes.append(("256x256x256", 256, 256, 256, None))
    for name, m, k, n, plan in shapes:
        yield name, tiled_gemm(config, m, k, n, a_at=0x10000, w_at=0x100000, c_at=0x200000,
                               plan=plan)[0]


@pytest.mark.parametrize("name", [pytest.param(
    p, marks=pytest.mark.xdist_group(f"verilator-core-{p}")) for p in PRESETS])
def test_system_test_programs(name):
    """The operands' values do not change the timing: memory is left as it starts."""
    errors = {}
    with open_device("rtl", preset=name) as device:
        for what, words in _system_programs(device.config):
            device.load_program(0x300000, words)
            result = device.run(0x300000, len(words))
            assert result.code.name == "NONE", f"{name}, {what}: {result.code.name}"
            errors[what] = _check(device.config, words, result.cycles, what)
    print(name, {k: f"{v:+.3f}" for k, v in errors.items()})


def test_board_design_point():
    """The iCEBreaker's design point (queues of two, 17-bit addresses) in the Amaranth
    simulation of its core, on a RAM with the model's read latency: the core's system-test
    GEMMs, placed in 64 KiB."""
    cfg = board("icebreaker").config
    session = CoreSession(cfg, np.zeros(1 << 16, np.uint8), latency=CostParams().latency)
    programs = [("gemm_program", gemm_program(cfg, 0x1000, 0x2000, 0x3000, 12, 4))]
    programs += [(name, tiled_gemm(cfg, m, k, n, a_at=0x1000, w_at=0x4000, c_at=0x6000,
                                   plan=plan)[0])
                 for name, m, k, n, plan in system_gemm_shapes(cfg)]
    errors = {}

    async def host(ctx):
        for what, words in programs:
            session.place(ctx, 0xC000, words)
            got = await session.run(ctx, 0xC000, len(words), (0, 1 << 16))
            assert got.code.name == "NONE", f"{what}: {got.code.name}"
            errors[what] = _check(cfg, words, got.counters["CYCLES"], what)

    simulate(session.top, host, timeout=2_000_000)
    assert len(errors) == len(programs)
    print(cfg.name, {k: f"{v:+.3f}" for k, v in errors.items()})


@pytest.mark.xdist_group("verilator-core-default")
def test_completion_programs():
    """A 20-character prompt and three new tokens on the default preset: the prefill step's
    and each decode step's programs."""
    qm = load_quant(INT8_FILE)
    with open_device("rtl", preset="default") as device:
        session = Session(device)
        Batcher(Engine(qm, session, slots=1)).run(["def area(radius):\n  "], 3)
    assert len(session.stats.runs) == 3 * (qm.config.layers + 1)
    for i, (predicted, measured) in enumerate(session.stats.runs):
        error = predicted / measured - 1
        assert abs(error) <= TOLERANCE, \
            f"program {i}: predicted {predicted} cycles, measured {measured} ({error:+.1%})"
