"""The ``fpga`` backend: a Jalapeño board (:mod:`fpga`) over its UART host link
(:mod:`jalapeno.runtime.link`), with pyserial.

Memory moves in requests of up to :data:`~jalapeno.runtime.link.MAX_BURST` bytes, registers
one at a time; a run writes the program and window registers, starts the core and polls
``STATUS`` until the run ends (or ``CYCLES`` passes the limit), then reads the error and
every counter. The board simulation (``verification/tb/test_board.py``) runs this class on a
simulated line.
"""

import itertools
import time

import numpy as np

from jalapeno import csr
from jalapeno.isa import CoreError

from .device import Device, DeviceError, RunResult
from .link import BAUD, MAX_BURST, Command, LinkError, Port, transact

__all__ = ["FpgaDevice"]


class FpgaDevice(Device):
    """A :class:`~jalapeno.runtime.device.Device` on a board.

    Parameters
    ----------
    port : str or :class:`~jalapeno.runtime.link.Port`
        The serial device (``/dev/ttyUSB1``, ``COM3``), opened at ``baud``; or an open line
        (the board simulation passes its own).
    memory_bytes : int
        Bytes of the board's memory, from address 0.
    baud : int
        UART rate, when ``port`` is a name.
    log : callable, optional
        Called with a line of text for each resent request.

    Raises
    ------
    DeviceError
        If the port does not open, or no Jalapeño core answers on it.
    """

    backend = "fpga"

    def __init__(self, port, *, memory_bytes, baud=BAUD, log=None):
        if isinstance(port, str):
            import serial

            try:
                port = serial.Serial(port, baud, timeout=self._timeout(baud))
            except (serial.SerialException, ValueError) as error:
                raise DeviceError(f"fpga: cannot open {port}: {error}") from None
            self._owned = port
        else:
            self._owned = None
        super().__init__(memory_bytes)
        self._port: Port = port
        self._log = log
        self._tags = itertools.cycle(range(256))
        try:
            self._discover()
        except (LinkError, DeviceError) as error:
            self.close()
            raise DeviceError(f"fpga: {error}") from None

    @staticmethod
    def _timeout(baud):
        """Seconds to wait for a response: the longest (a full burst) three times over, and
        at least 50 ms for the host's own latency."""
        return max(0.05, 3 * (MAX_BURST + 16) * 10 / baud)

    def _transact(self, command, addr, count, data=b""):
        try:
            return transact(self._port, command, next(self._tags), addr, count, data,
                            log=self._log)
        except LinkError as error:
            raise DeviceError(f"fpga: {error}") from None

    def _read_span(self, lo, hi):
        parts = [self._transact(Command.MEM_READ, at, min(MAX_BURST, hi - at))
                 for at in range(lo, hi, MAX_BURST)]
        return np.frombuffer(b"".join(parts), np.uint8)

    def _write_span(self, lo, data):
        for at in range(0, len(data), MAX_BURST):
            chunk = data[at:at + MAX_BURST]
            self._transact(Command.MEM_WRITE, lo + at, len(chunk), chunk)

    def _read_register(self, name):
        data = self._transact(Command.CSR_READ, csr.register(name).offset, 4)
        return int.from_bytes(data, "little")

    def _write_register(self, name, value):
        self._transact(Command.CSR_WRITE, csr.register(name).offset, 4,
                       value.to_bytes(4, "little"))

    def _run(self, base, length, window, limit):
        self.write_csr("PROGRAM_BASE", base)
        self.write_csr("PROGRAM_LENGTH", length)
        self.write_csr("WINDOW_BASE", window[0])
        self.write_csr("WINDOW_LIMIT", window[1])
        self.write_csr("IRQ_ENABLE", csr.pack("IRQ_ENABLE", done=1, error=1))
        wall = time.perf_counter()
        self.write_csr("CONTROL", csr.pack("CONTROL", start=1))
        # Polled back to back (each poll is a round trip on the line); the limit is checked
        # against the core's own CYCLES counter, so it holds in simulation as on a board.
        while csr.unpack("STATUS", self.read_csr("STATUS"))["busy"]:
            if self.read_csr("CYCLES") > limit:
                self.write_csr("CONTROL", csr.pack("CONTROL", soft_reset=1))
                self.write_csr("IRQ_STATUS", csr.pack("IRQ_STATUS", done=1, error=1))
                raise TimeoutError(f"fpga: the run did not end within {limit} cycles; the "
                                   "core was soft-reset")
        wall = time.perf_counter() - wall
        code = CoreError(self.read_csr("ERROR_CODE"))
        addr = self.read_csr("ERROR_ADDR")
        counters = {name: self.read_csr(name) for name in csr.counter_names()}
        self.write_csr("IRQ_STATUS", csr.pack("IRQ_STATUS", done=1, error=1))
        return RunResult(code, addr, counters, counters["CYCLES"], wall)

    def _close(self):
        if self._owned is not None:
            self._owned.close()
