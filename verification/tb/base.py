# amaranth: UnusedElaboratable=no
# (the unit is built only for its signature, to name the ports)
"""What every cocotb testbench class shares: the top, its design point, seeded generators, the
port lookup, and the clock and reset."""

import os
import random
from functools import cached_property

import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from rtl.config import preset
from sim.ports import Ports

__all__ = ["BenchTB"]


class BenchTB:
    """Base of the testbench classes.

    Parameters
    ----------
    dut : cocotb handle
        The top.
    component : callable
        The top's Component class; built for the preset in ``JALAPENO_PRESET`` only for its
        signature, which names the ports.
    top : str
        The top's name, for messages.
    seed : int
        Seeds :attr:`rng` (data) and :attr:`pattern` (idle and backpressure patterns).

    Attributes
    ----------
    config : :class:`rtl.config.JalapenoConfig`
    rng : numpy.random.Generator
    pattern : random.Random
    ports : :class:`sim.ports.Ports`
    busy, error : bool
        The top's ``busy`` and ``error`` outputs, now (for tops that have them).
    """

    def __init__(self, dut, component, top, *, seed):
        self.dut = dut
        self.seed = seed
        self.config = preset(os.environ["JALAPENO_PRESET"])
        self.rng = np.random.default_rng(seed)
        self.pattern = random.Random(seed)
        self.ports = Ports(dut, component(self.config).signature, top=top)

    @cached_property
    def _busy(self):
        return self.ports("busy")

    @cached_property
    def _error(self):
        return self.ports("error")

    @property
    def busy(self):
        return bool(self._busy.value)

    @property
    def error(self):
        return bool(self._error.value)

    async def start(self):
        """Start the clock and reset the top."""
        Clock(self.dut.clk, 10, unit="ns").start()
        await self.reset()

    async def reset(self):
        """Hold reset for two cycles (memories keep their contents)."""
        await RisingEdge(self.dut.clk)  # leave the ReadOnly phase a stream step ends in
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
