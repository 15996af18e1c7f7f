"""The server of the ``rtl`` runtime backend (:mod:`jalapeno.runtime.rtl`): one cocotb test
that keeps the ``core_system`` top running and does what the host process asks.

:class:`jalapeno.runtime.rtl.RtlDevice` builds the top, starts the simulator on this module
and listens on ``JALAPENO_DEVICE_ADDRESS`` (``host:port``) with the authentication key in
``JALAPENO_DEVICE_AUTHKEY`` (hex). The test connects, says hello (its process id and the
memory's size), and then serves one request at a time until ``close`` or until the host goes
away: ``(command, *arguments)``, answered ``("ok", value)`` or ``("error", type name,
message)``. Waiting on the connection blocks the simulator, so simulated time stands still
between requests. Memory goes through :class:`~verification.tb.core_tb.StorageMemory` in
zero simulated time, in whole bus words (the host pads); the CSRs and runs through
:class:`~verification.tb.core_tb.CoreTB`, as a host on the AXI4-Lite port would.
"""

import os
from multiprocessing.connection import Client

import cocotb
from cocotb.triggers import ClockCycles

from jalapeno import csr
from sim.core_system import MEMORY_BYTES

from .core_tb import CoreTB

__all__ = ["ADDRESS_ENV", "AUTHKEY_ENV", "COMMANDS"]

#: Environment variables that tell the server where the host listens.
ADDRESS_ENV, AUTHKEY_ENV = "JALAPENO_DEVICE_ADDRESS", "JALAPENO_DEVICE_AUTHKEY"
#: The requests the server takes, besides ``close``.
COMMANDS = ("write", "read", "read_csr", "write_csr", "run")
#: Cycles a soft reset may take to bring the core back to idle.
_RESET_LIMIT = 100_000


class _DeviceTB(CoreTB):
    def where(self):
        return f"rtl device ({self.config.name})"

    async def soft_reset(self):
        """Stop the core (after a run that timed out) and clear its interrupt."""
        await self.write_csr("CONTROL", csr.pack("CONTROL", soft_reset=1))
        for _ in range(_RESET_LIMIT // 16):
            if not csr.unpack("STATUS", await self.read_csr("STATUS"))["busy"]:
                break
            await ClockCycles(self.dut.clk, 16)
        else:
            raise TimeoutError(f"{self.where()}: the core is still busy {_RESET_LIMIT} cycles "
                               "after a soft reset")
        await self.write_csr("IRQ_STATUS", csr.pack("IRQ_STATUS", done=1, error=1))


async def _serve(tb, command, args):
    if command == "write":
        at, data = args
        tb.memory.write(at, data)
        return None
    if command == "read":
        lo, hi = args
        return tb.memory.read(lo, hi).tobytes()
    if command == "read_csr":
        return await tb.read_csr(*args)
    if command == "write_csr":
        await tb.write_csr(*args)
        return None
    base, length, window, limit = args
    try:
        got = await tb.run(base, length, window, limit=limit)
    except TimeoutError as error:
        await tb.soft_reset()
        raise TimeoutError(f"{error}; the core was soft-reset") from None
    return int(got.code), got.addr, got.counters, got.wall


@cocotb.test()
async def serve(dut):
    """Connect to the host and serve its requests until it closes or goes away."""
    if ADDRESS_ENV not in os.environ:
        raise RuntimeError("the device server is started by jalapeno.runtime.rtl.RtlDevice, "
                           f"which sets {ADDRESS_ENV}; it is not a bench to run by itself")
    host, _, port = os.environ[ADDRESS_ENV].rpartition(":")
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ[AUTHKEY_ENV]))
    try:
        tb = _DeviceTB(dut, seed=0, size=MEMORY_BYTES)
        await tb.start()
        conn.send(("hello", os.getpid(), MEMORY_BYTES))
        while True:
            try:
                command, *args = conn.recv()
            except EOFError:
                dut._log.warning("the host went away without closing the device")
                return
            if command == "close":
                conn.send(("ok", None))
                return
            if command not in COMMANDS:
                conn.send(("error", "ValueError", f"unknown device command {command!r}"))
                continue
            try:
                conn.send(("ok", await _serve(tb, command, args)))
            except Exception as error:  # every failure goes back to the host
                conn.send(("error", type(error).__name__, str(error)))
    finally:
        conn.close()
