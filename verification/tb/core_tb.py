# amaranth: UnusedElaboratable=no
# (the core is built only for its signature, to name the ports)
"""The core testbench: a host that loads a memory image, writes the CSRs, starts the core,
waits for its interrupt and reads back the error, the counters and memory.

Two tops (:mod:`sim.core_system`): ``core_system``, the core on its RTL memory, where a run
costs no Python per cycle (the clock is the simulator's, :class:`StorageMemory` reads and
writes the memory array through the simulator's handles, and the host awaits only the rising
edge of ``irq`` or a timeout); and ``core``, the core alone with the Python AXI RAM
(:class:`ModelMemory`, stepped every cycle) on its bus, for runs with random latency and
stalls. The host's side is the same on both.
"""

import time
from dataclasses import dataclass, field

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.handle import Immediate
from cocotb.simtime import get_sim_time
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer

from jalapeno import csr
from jalapeno.isa import INSTRUCTION_BYTES, CoreError
from rtl.bus.axi import Resp
from rtl.core.core import Core
from sim.core_system import storage_handle
from verification.axi_ram import AxiRamModel
from verification.models.core import CoreModel
from verification.programs import place_program

from .base import BenchTB
from .streams import Clocking

__all__ = ["CoreTB", "RunResult", "StorageMemory", "ModelMemory", "PERIOD_NS", "Golden",
           "golden_run", "check_run"]

#: Clock period of the benches, in ns.
PERIOD_NS = 10
#: Cycles a CSR access may take before the host gives up.
_CSR_LIMIT = 64
#: Names of the registers (the others :meth:`CoreTB.write_csr` takes are 64-bit pairs).
_REGISTERS = frozenset(reg.name for reg in csr.REGISTERS)


@dataclass
class RunResult:
    """What a run left.

    Attributes
    ----------
    code : CoreError
        ``ERROR_CODE``.
    addr : int
        ``ERROR_ADDR``.
    counters : dict
        Every performance counter (:func:`jalapeno.csr.counter_names`) by name.
    cycles : int
        Simulated cycles from the start write's handshake to the interrupt.
    wall : float
        Wall-clock seconds the simulator took for them.
    """

    code: CoreError
    addr: int
    counters: dict = field(default_factory=dict)
    cycles: int = 0
    wall: float = 0.0

    @property
    def sim_cycles_per_second(self):
        return self.cycles / self.wall if self.wall else 0.0


class StorageMemory:
    """The ``core_system`` top's RTL memory, read and written word by word through the
    simulator's handle of its array (:func:`sim.core_system.storage_handle`), in zero
    simulated time. Writes are immediate, so they are seen by the next evaluation.

    Parameters
    ----------
    dut : cocotb handle
        The ``core_system`` top.
    bus_bytes : int
        Bytes per word.
    size : int
        Bytes of memory.
    """

    def __init__(self, dut, *, bus_bytes, size):
        self._array = storage_handle(dut)
        self.nb, self.size = bus_bytes, size

    def _span(self, lo, hi):
        if lo % self.nb or hi % self.nb or not 0 <= lo <= hi <= self.size:
            raise ValueError(f"memory range [{lo:#x}, {hi:#x}) must be whole {self.nb}-byte "
                             f"words inside the {self.size:#x} bytes")
        return range(lo // self.nb, hi // self.nb)

    def write(self, at, data):
        """Write ``data`` (bytes, a whole number of words) from byte ``at``."""
        data = bytes(data)
        words = np.frombuffer(data, f"<u{self.nb}") if self.nb <= 8 else None
        for k, index in enumerate(self._span(at, at + len(data))):
            value = int(words[k]) if words is not None else \
                int.from_bytes(data[k * self.nb:(k + 1) * self.nb], "little")
            self._array[index].set(Immediate(value))

    def read(self, lo, hi):
        """Bytes ``[lo, hi)`` as a uint8 array."""
        words = [self._array[i].value.to_unsigned() for i in self._span(lo, hi)]
        return np.frombuffer(b"".join(w.to_bytes(self.nb, "little") for w in words), np.uint8)

    def start(self):
        pass


class ModelMemory:
    """The Python AXI RAM (:class:`verification.axi_ram.AxiRamModel`) on the ``core`` top's
    ``bus``, stepped every cycle by a coroutine of its own from :meth:`start` on.

    Parameters
    ----------
    tb : :class:`CoreTB`
    size : int
        Bytes of memory.
    read_latency, stall, slverr, decerr
        As :class:`~verification.axi_ram.AxiRamModel`'s.
    """

    def __init__(self, tb, *, size, read_latency=(0, 0), stall=0.0, slverr=(), decerr=()):
        self.ram = AxiRamModel(tb.ports, "bus", size=size, rng=tb.pattern,
                               read_latency=read_latency, stall=stall, slverr=slverr,
                               decerr=decerr)
        self._clocking = Clocking(tb.dut.clk, [self.ram])
        self.nb, self.size = tb.config.bus_bytes, size

    def write(self, at, data):
        self.ram.memory[at:at + len(data)] = bytes(data)

    def read(self, lo, hi):
        return np.frombuffer(bytes(self.ram.memory[lo:hi]), np.uint8)

    def start(self):
        cocotb.start_soon(self._clocking.run(lambda: False, limit=1 << 62))


class CoreTB(BenchTB):
    """Drives a ``core_system`` or ``core`` top as a host would.

    Parameters
    ----------
    dut : cocotb handle
        The top.
    seed : int
        Seeds :attr:`rng` (data) and :attr:`pattern` (the Python RAM's latency and stalls).
    memory : callable, optional
        ``memory(tb)`` makes the memory backend: :class:`StorageMemory` of ``size`` bytes by
        default (the ``core_system`` top); for the ``core`` top a :class:`ModelMemory`.
    size : int
        Bytes of memory of the default backend.
    """

    def __init__(self, dut, *, seed, size, memory=None):
        super().__init__(dut, Core, "core", seed=seed)
        self.memory = memory(self) if memory else \
            StorageMemory(dut, bus_bytes=self.config.bus_bytes, size=size)
        self.irq = self.ports("irq")
        self._csr = {ch: {f: self.ports("csr", ch, f) for f in fields} for ch, fields in {
            "aw": ("valid", "ready", "addr", "prot"), "w": ("valid", "ready", "data", "strb"),
            "b": ("valid", "ready", "resp"), "ar": ("valid", "ready", "addr", "prot"),
            "r": ("valid", "ready", "data", "resp")}.items()}

    def where(self):
        return f"seed {self.seed}, preset {self.config.name}"

    async def start(self):
        """Idle the CSR port, start the clock (the simulator's own, so waiting costs no
        Python per cycle), reset, and start the memory backend."""
        for ch, signals in self._csr.items():
            for name, handle in signals.items():
                if (ch in ("aw", "w", "ar")) != (name == "ready"):  # the host's outputs
                    handle.value = 0
        self.dut.rst.value = 1
        Clock(self.dut.clk, PERIOD_NS, unit="ns", impl="gpi").start()
        await self.reset()
        self.memory.start()

    # -- memory ----------------------------------------------------------------------------

    def load_image(self, data, at=0):
        """Write ``data`` (bytes or a uint8 array) into memory from byte ``at``."""
        if not isinstance(data, bytes | bytearray):
            data = np.asarray(data, np.uint8).tobytes()
        self.memory.write(at, data)

    def read_image(self, lo, hi):
        """Memory bytes ``[lo, hi)`` as a uint8 array."""
        return self.memory.read(lo, hi)

    def load_program(self, base, words):
        """Write instruction ``words`` from ``base``, padded with zeros to whole words."""
        nbytes = -(-len(words) * INSTRUCTION_BYTES // self.memory.nb) * self.memory.nb
        image = np.zeros(nbytes, np.uint8)
        place_program(image, 0, words)
        self.load_image(image, base)

    # -- the CSR port ------------------------------------------------------------------------

    async def _access(self, drive, channels, response):
        """Offer ``drive`` (``{handle: value}``) with ``valid`` on ``channels``, hold each until
        its handshake, take the one beat of ``response`` and return its channel's values."""
        await RisingEdge(self.dut.clk)
        for handle, value in drive.items():
            handle.value = value
        pending = [self._csr[ch] for ch in channels]
        for ch in pending:
            ch["valid"].value = 1
        resp = self._csr[response]
        resp["ready"].value = 1
        for _ in range(_CSR_LIMIT):
            await ReadOnly()
            taken = [ch for ch in pending if ch["ready"].value]
            answer = {name: h.value.to_unsigned() for name, h in resp.items()
                      if name not in ("valid", "ready")} if resp["valid"].value else None
            await RisingEdge(self.dut.clk)
            for ch in taken:
                ch["valid"].value = 0
                pending.remove(ch)
            if answer is not None:
                resp["ready"].value = 0
                if answer["resp"] != Resp.OKAY.value:
                    raise AssertionError(f"{self.where()}: CSR access answered "
                                         f"{Resp(answer['resp']).name}")
                return answer
        raise TimeoutError(f"{self.where()}: no CSR response within {_CSR_LIMIT} cycles")

    async def _write(self, offset, value):
        aw, w = self._csr["aw"], self._csr["w"]
        await self._access({aw["addr"]: offset, aw["prot"]: 0, w["data"]: value, w["strb"]: 0xF},
                           ("aw", "w"), "b")

    async def _read(self, offset):
        ar = self._csr["ar"]
        return (await self._access({ar["addr"]: offset, ar["prot"]: 0}, ("ar",), "r"))["data"]

    async def write_csr(self, name, value):
        """Write register ``name``, or both halves of the 64-bit quantity ``name`` (``LO``
        first)."""
        if name in _REGISTERS:
            await self._write(csr.register(name).offset, value)
            return
        lo, hi = csr.split64(value)
        await self._write(csr.register(f"{name}_LO").offset, lo)
        await self._write(csr.register(f"{name}_HI").offset, hi)

    async def read_csr(self, name):
        """Register ``name``, or the 64-bit quantity ``name`` from its two halves."""
        if name in _REGISTERS:
            return await self._read(csr.register(name).offset)
        lo = await self._read(csr.register(f"{name}_LO").offset)
        return csr.join64(lo, await self._read(csr.register(f"{name}_HI").offset))

    # -- runs --------------------------------------------------------------------------------

    async def run(self, base, length, window, *, limit):
        """Run the program of ``length`` instructions at ``base`` with the memory window
        ``window``: write the program, window and interrupt-enable CSRs, start, await the
        interrupt (at most ``limit`` cycles: a hang fails, it never stalls the run), then read
        the error, the counters and ``STATUS``, and clear the interrupt.

        Returns
        -------
        RunResult

        Raises
        ------
        TimeoutError
            If the interrupt does not come within ``limit`` cycles.
        AssertionError
            If ``STATUS`` does not say done or error as ``ERROR_CODE`` does.
        """
        await self.write_csr("PROGRAM_BASE", base)
        await self.write_csr("PROGRAM_LENGTH", length)
        await self.write_csr("WINDOW_BASE", window[0])
        await self.write_csr("WINDOW_LIMIT", window[1])
        await self.write_csr("IRQ_ENABLE", csr.pack("IRQ_ENABLE", done=1, error=1))
        start = get_sim_time("ns")
        wall = time.perf_counter()
        await self.write_csr("CONTROL", csr.pack("CONTROL", start=1))
        if not self.irq.value:
            await First(RisingEdge(self.irq), Timer(limit * PERIOD_NS, "ns"))
        wall = time.perf_counter() - wall
        cycles = round((get_sim_time("ns") - start) / PERIOD_NS)
        if not self.irq.value:
            raise TimeoutError(f"{self.where()}: no interrupt within {limit} cycles")
        code = CoreError(await self.read_csr("ERROR_CODE"))
        addr = await self.read_csr("ERROR_ADDR")
        counters = {name: await self.read_csr(name) for name in csr.counter_names()}
        status = csr.unpack("STATUS", await self.read_csr("STATUS"))
        failed = code != CoreError.NONE
        assert (status["busy"], status["done"], status["error"]) == (0, not failed, failed), \
            f"{self.where()}: STATUS {status} after a run ending with {code.name}"
        await self.write_csr("IRQ_STATUS", csr.pack("IRQ_STATUS", done=1, error=1))
        return RunResult(code, addr, counters, cycles, wall)



@dataclass
class Golden:
    """The golden model's outcome of a run: code, address, its counters and all of memory."""

    code: CoreError
    addr: int
    counters: dict
    memory: np.ndarray


def golden_run(config, image, words, *, base, window, size, slverr=(), decerr=()):
    """Run ``words`` at ``base`` on the golden model, its memory ``size`` bytes holding
    ``image`` from address 0 (zeros after it) and the program.

    Returns
    -------
    Golden
    """
    memory = np.zeros(size, np.uint8)
    memory[:len(image)] = image
    place_program(memory, base, words)
    model = CoreModel(config, memory, window=window, slverr=slverr, decerr=decerr)
    result = model.run(base, len(words))
    return Golden(result.code, result.error_addr, result.counters, memory)


async def check_run(tb, image, words, golden, *, base, window, limit, what, unchecked=()):
    """Load ``image`` from address 0 and the program, run it and require the golden
    outcome: the same code and address, the same value of each counter the model keeps
    (but those named in ``unchecked``), and the same bytes in all of ``[0, len(image))``.

    Returns
    -------
    RunResult
    """
    tb.load_image(image, 0)
    tb.load_program(base, words)
    got = await tb.run(base, len(words), window, limit=limit)
    where = f"{tb.where()}, {what}"
    assert (got.code, got.addr) == (golden.code, golden.addr), \
        f"{where}: stopped with {got.code.name} at {got.addr:#x}, the golden model with " \
        f"{golden.code.name} at {golden.addr:#x}"
    for name, value in golden.counters.items():
        assert name in unchecked or got.counters[name] == value, \
            f"{where}: {name} is {got.counters[name]}, the golden model's {value}"
    memory = tb.read_image(0, len(image))
    diff = np.flatnonzero(memory != golden.memory[:len(image)])
    assert not len(diff), f"{where}: {len(diff)} bytes of memory differ from the golden " \
        f"model's, the first at {diff[0]:#x}"
    return got
