"""The ``golden`` backend: the functional ISA simulator
(:class:`verification.models.core.CoreModel`) on a NumPy memory, behind the CSR map.

One :class:`~verification.models.core.CoreModel` lives as long as the device, so its
scratchpad and accumulator memory carry over from run to run as the hardware's do (the
dependency tokens start from zero each run, as ``CONTROL.start`` clears the hardware's).
The registers behave as :mod:`jalapeno.csr` defines them: read-only ones ignore writes,
read-write ones keep the bits the hardware implements, ``IRQ_STATUS`` clears the bits
written, and ``CONTROL.start`` runs the program at ``PROGRAM_BASE`` to its end at once
(``STATUS.busy`` never reads 1). The model has no timing: ``CYCLES`` and the queues' busy
and stall counters are not modelled, and reading them raises ``ValueError``.
"""

import time

import numpy as np

from jalapeno import csr
from jalapeno.isa import CoreError
from rtl.config import JalapenoConfig
from sim.core_system import MEMORY_BYTES
from verification.models.core import COUNTERS, CoreModel

from .device import Device, RunResult

__all__ = ["GoldenDevice"]

#: Counters the model does not keep: the timed ones.
_UNTIMED = frozenset(COUNTERS)
_TIMED = frozenset(name for counter in csr.counter_names() if counter not in _UNTIMED
                   for name in (f"{counter}_LO", f"{counter}_HI"))
#: Registers a start and a soft reset clear.
_CLEARED = ("STATUS", "ERROR_CODE", "ERROR_ADDR_LO", "ERROR_ADDR_HI",
            *(f"{name}_{half}" for name in COUNTERS for half in ("LO", "HI")))


class GoldenDevice(Device):
    """A :class:`~jalapeno.runtime.device.Device` on the golden model.

    Parameters
    ----------
    config : :class:`~rtl.config.JalapenoConfig`
        The design point; its configuration registers are what :attr:`config` is read from.
    memory_bytes : int
        Bytes of memory, zeroed.
    slverr, decerr : sequence of (int, int)
        Byte ranges where the memory answers ``SLVERR`` or ``DECERR`` (none by default; the
        ``rtl`` backend's simulated memory has its own, ``RtlDevice.slverr`` and
        ``.decerr``).

    Attributes
    ----------
    model : :class:`~verification.models.core.CoreModel`
        The core, its memory :attr:`memory`.
    memory : ndarray of uint8
    """

    backend = "golden"

    def __init__(self, config: JalapenoConfig, memory_bytes=MEMORY_BYTES, *, slverr=(),
                 decerr=()):
        if not isinstance(config, JalapenoConfig):
            raise TypeError(f"config must be a JalapenoConfig, not {config!r}")
        if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or \
                memory_bytes < 1:
            raise ValueError(f"memory_bytes must be a positive integer, not {memory_bytes!r}")
        super().__init__(memory_bytes)
        self.memory = np.zeros(memory_bytes, np.uint8)
        self.model = CoreModel(config, self.memory, slverr=slverr, decerr=decerr)
        self._registers = {reg.name: reg.reset or 0 for reg in csr.REGISTERS}
        self._registers.update(csr.config_registers(config))
        self._model_config = config
        self._discover()

    # -- memory ------------------------------------------------------------------------------

    def _read_span(self, lo, hi):
        return self.memory[lo:hi]

    def _write_span(self, lo, data):
        self.memory[lo:lo + len(data)] = np.frombuffer(data, np.uint8)

    # -- CSRs --------------------------------------------------------------------------------

    def _read_register(self, name):
        if name in _TIMED:
            raise ValueError(f"the golden backend does not model {name}: it has no timing")
        return self._registers[name]

    def _write_register(self, name, value):
        reg = csr.register(name)
        if reg.access == csr.Access.RW:
            self._registers[name] = value & csr.implemented_mask(reg, self._model_config)
        elif reg.access == csr.Access.W1C:
            self._registers[name] &= ~value
        elif reg.access == csr.Access.WO:  # CONTROL
            control = csr.unpack(reg, value)
            if control["soft_reset"]:
                for cleared in (*_CLEARED, "IRQ_STATUS"):
                    self._registers[cleared] = 0
            elif control["start"]:
                self._start()

    def _quantity(self, name):
        return csr.join64(self._registers[f"{name}_LO"], self._registers[f"{name}_HI"])

    def _set_quantity(self, name, value):
        self._registers[f"{name}_LO"], self._registers[f"{name}_HI"] = csr.split64(value)

    def _start(self):
        """``CONTROL.start``: run the program the CSRs describe to its end."""
        window = (self._quantity("WINDOW_BASE"), self._quantity("WINDOW_LIMIT"))
        if not 0 <= window[0] <= window[1] <= self.memory_bytes:
            # The hardware would answer DECERR past the memory's end; the model has no
            # addresses there.
            raise ValueError(f"the golden backend's window must lie within its "
                             f"{self.memory_bytes:#x} bytes of memory, not {window}")
        for name in _CLEARED:
            self._registers[name] = 0
        self.model.window = window
        result = self.model.run(self._quantity("PROGRAM_BASE"),
                                self._registers["PROGRAM_LENGTH"])
        failed = result.code != CoreError.NONE
        self._registers["ERROR_CODE"] = csr.pack("ERROR_CODE", code=int(result.code))
        self._set_quantity("ERROR_ADDR", result.error_addr)
        for name, value in result.counters.items():
            self._set_quantity(name, value)
        self._registers["STATUS"] = csr.pack("STATUS", done=not failed, error=failed)
        self._registers["IRQ_STATUS"] |= csr.pack("IRQ_STATUS", done=not failed,
                                                  error=failed)

    # -- runs --------------------------------------------------------------------------------

    def _run(self, base, length, window, limit):
        """As the hardware's host does (:meth:`CoreTB.run`): the program and window CSRs,
        start, then the outcome from the CSRs and the interrupt cleared. ``limit`` does not
        apply: every program stops within its ``length`` instructions."""
        self.write_csr("PROGRAM_BASE", base)
        self.write_csr("PROGRAM_LENGTH", length)
        self.write_csr("WINDOW_BASE", window[0])
        self.write_csr("WINDOW_LIMIT", window[1])
        wall = time.perf_counter()
        self.write_csr("CONTROL", csr.pack("CONTROL", start=1))
        wall = time.perf_counter() - wall
        result = RunResult(CoreError(self.read_csr("ERROR_CODE")), self.read_csr("ERROR_ADDR"),
                           {name: self.read_csr(name) for name in COUNTERS}, None, wall)
        self.write_csr("IRQ_STATUS", csr.pack("IRQ_STATUS", done=1, error=1))
        return result

    def _close(self):
        pass
