"""The one interface of the runtime to an accelerator: :class:`Device`.

A backend implements a few primitives on whole units of its memory (``_read_span`` /
``_write_span`` on ranges aligned to :attr:`Device._granule` bytes), the 32-bit registers
(``_read_register`` / ``_write_register``), a run (``_run``) and ``_close``. Everything
else, and every check of the caller's arguments, is here, so all backends take the same
arguments and raise the same errors: byte-granular memory access by read-modify-write of
the words at either end, 64-bit CSR pairs by their base name, the default memory window,
and the configuration read from the CSRs.
"""

import abc
import dataclasses
from dataclasses import dataclass, field

import numpy as np

from jalapeno import csr
from jalapeno.asm import to_bytes
from jalapeno.isa import INSTRUCTION_BYTES, CoreError
from rtl.config import PRESETS

__all__ = ["Device", "DeviceError", "RunResult", "DEFAULT_LIMIT"]

#: Cycles a run may take unless the caller says otherwise.
DEFAULT_LIMIT = 50_000_000
#: Register names, against the 64-bit quantities (``<NAME>_LO`` and ``<NAME>_HI``).
_REGISTERS = frozenset(reg.name for reg in csr.REGISTERS)
_WORD = 1 << csr.DATA_BITS


class DeviceError(RuntimeError):
    """The backend itself failed: its simulator died or did not start, or the device is
    closed."""


@dataclass
class RunResult:
    """What a run left.

    Attributes
    ----------
    code : CoreError
        ``ERROR_CODE``: ``NONE`` if the program reached END.
    addr : int
        ``ERROR_ADDR``: the failing instruction's byte address (0 without an error).
    counters : dict
        The performance counters the backend keeps, by name
        (:func:`jalapeno.csr.counter_names`): all of them on hardware, on ``golden`` only
        the untimed ``MACS``, ``DMA_READ_BYTES``, ``DMA_WRITE_BYTES`` and ``INSTRUCTIONS``.
    cycles : int or None
        The ``CYCLES`` counter; ``None`` where the backend has no timing (``golden``).
    wall : float
        Wall-clock seconds the backend took to run the program (on ``rtl`` the simulator's
        from the start to the interrupt, without the host's requests around it).
    """

    code: CoreError
    addr: int
    counters: dict = field(default_factory=dict)
    cycles: int | None = None
    wall: float = 0.0


def _pair(name):
    """The names of the ``_LO`` and ``_HI`` registers of the 64-bit quantity ``name``."""
    lo, hi = f"{name}_LO", f"{name}_HI"
    if not isinstance(name, str) or lo not in _REGISTERS or hi not in _REGISTERS:
        raise ValueError(f"no CSR named {name!r}")
    return lo, hi


def _check_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    return int(value)


def _as_bytes(data):
    """``data`` (bytes-like, or an array whose bytes in C order are meant) as bytes."""
    if isinstance(data, np.ndarray) and not data.dtype.hasobject:
        return np.ascontiguousarray(data).tobytes()
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"data must be bytes or a NumPy array of numbers, not "
                    f"{type(data).__name__}")


class Device(abc.ABC):
    """An accelerator with its memory: write and read memory, run a program, read the CSRs.

    Open one with :func:`jalapeno.runtime.open_device`; use it as a context manager or call
    :meth:`close`. A device serves one caller at a time (it is not thread-safe).

    Attributes
    ----------
    backend : str
        ``"golden"`` or ``"rtl"``.
    config : :class:`~rtl.config.JalapenoConfig`
        The design point, read from the configuration CSRs
        (:func:`jalapeno.csr.config_from_registers`); named after the preset it equals, if
        any, else ``"discovered"``.
    memory_bytes : int
        Bytes of memory, from address 0.

    Raises
    ------
    DeviceError
        From any method once the device is closed, or if the backend fails.
    """

    backend = None
    #: Bytes the primitives move at once; spans they see are aligned to it.
    _granule = 1

    def __init__(self, memory_bytes):
        self.memory_bytes = memory_bytes
        self._closed = False
        self.config = None

    def _discover(self):
        """Check that a Jalapeño core answers and read its configuration."""
        ident, version = self._read_register("ID"), self._read_register("VERSION")
        major = csr.unpack("VERSION", version)["major"]
        if ident != csr.MAGIC or major != csr.MAP_VERSION[0]:
            raise DeviceError(f"{self.backend}: no Jalapeño core of register map "
                              f"{csr.MAP_VERSION[0]}.x answers: ID {ident:#010x}, "
                              f"VERSION {version:#010x}")
        found = csr.config_from_registers(
            {name: self._read_register(name) for name in csr.CONFIG_NAMES})
        self.config = next((p for p in PRESETS.values()
                            if dataclasses.replace(p, name=found.name) == found), found)

    # -- life --------------------------------------------------------------------------------

    def close(self):
        """Release the backend (stop its simulator); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self):
        return self._closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _live(self):
        if self._closed:
            raise DeviceError(f"the {self.backend} device is closed")

    # -- memory ------------------------------------------------------------------------------

    def _check_range(self, addr, length):
        addr, length = _check_int("address", addr), _check_int("length", length)
        if length < 0:
            raise ValueError(f"length must be non-negative, not {length}")
        if addr < 0 or addr + length > self.memory_bytes:
            raise ValueError(f"memory range [{addr:#x}, {addr + length:#x}) is not inside the "
                             f"{self.memory_bytes:#x} bytes of memory")
        return addr, length

    def _span(self, addr, length):
        """The smallest range of whole granules holding ``[addr, addr + length)``."""
        g = self._granule
        return addr // g * g, -(-(addr + length) // g) * g

    def write(self, addr, data):
        """Write ``data`` from byte ``addr``: bytes, or a NumPy array's bytes in C order.

        Raises
        ------
        TypeError
            If ``data`` is neither.
        ValueError
            If the bytes do not all fit in memory.
        """
        self._live()
        data = _as_bytes(data)
        addr, length = self._check_range(addr, len(data))
        if not length:
            return
        lo, hi = self._span(addr, length)
        if (lo, hi) != (addr, addr + length):
            # Keep the bytes of the end granules that are not written.
            g, image = self._granule, bytearray(hi - lo)
            if addr != lo:
                image[:g] = self._read_span(lo, lo + g).tobytes()
            if addr + length != hi and (addr == lo or hi - g > lo):
                image[-g:] = self._read_span(hi - g, hi).tobytes()
            image[addr - lo:addr - lo + length] = data
            data = bytes(image)
        self._write_span(lo, data)

    def read(self, addr, length):
        """Memory bytes ``[addr, addr + length)`` as a uint8 array.

        Raises
        ------
        ValueError
            If the range is not inside memory.
        """
        self._live()
        addr, length = self._check_range(addr, length)
        if not length:
            return np.zeros(0, np.uint8)
        lo, hi = self._span(addr, length)
        return self._read_span(lo, hi)[addr - lo:addr - lo + length].copy()

    def load_program(self, base, words):
        """Write instruction ``words`` (integers, :mod:`jalapeno.isa`) from byte ``base``."""
        self.write(base, to_bytes(words))

    # -- CSRs --------------------------------------------------------------------------------

    def read_csr(self, name):
        """Register ``name``, or the 64-bit quantity ``name`` (``<NAME>_LO`` and ``_HI``).

        Raises
        ------
        ValueError
            If there is no such register or quantity.
        """
        self._live()
        if name in _REGISTERS:
            return self._read_register(name)
        lo, hi = _pair(name)
        return csr.join64(self._read_register(lo), self._read_register(hi))

    def write_csr(self, name, value):
        """Write register ``name``, or both halves of the 64-bit quantity ``name`` (``_LO``
        first). What a write does is the register's (:mod:`jalapeno.csr`): read-only ones
        ignore it.

        Raises
        ------
        ValueError
            If there is no such register or quantity, or ``value`` does not fit it.
        """
        self._live()
        value = _check_int("value", value)
        if name in _REGISTERS:
            if not 0 <= value < _WORD:
                raise ValueError(f"a {name} value must be an integer in [0, 2**32), "
                                 f"not {value!r}")
            self._write_register(name, value)
            return
        lo, hi = _pair(name)
        lo_value, hi_value = csr.split64(value)
        self._write_register(lo, lo_value)
        self._write_register(hi, hi_value)

    # -- runs --------------------------------------------------------------------------------

    def run(self, base, length, *, window=None, limit=DEFAULT_LIMIT):
        """Run the program of ``length`` instructions already in memory at byte ``base``,
        inside the memory window ``window`` (``(base, limit)``, all of memory by default),
        and wait for it to stop.

        Returns
        -------
        RunResult

        Raises
        ------
        ValueError
            If ``base`` is not a multiple of ``INSTRUCTION_BYTES``, ``length`` does not fit
            ``PROGRAM_LENGTH``, the window is not inside memory or ``limit`` is not positive.
        TimeoutError
            If the program does not stop within ``limit`` cycles (backends with timing); the
            core is soft-reset, so the device takes the next run.
        """
        self._live()
        base, length = _check_int("base", base), _check_int("length", length)
        limit = _check_int("limit", limit)
        if base < 0 or base % INSTRUCTION_BYTES:
            raise ValueError(f"program base must be a non-negative multiple of "
                             f"{INSTRUCTION_BYTES}, not {base:#x}")
        if not 0 <= length < _WORD:
            raise ValueError(f"program length must be in [0, 2**32), not {length}")
        window = (0, self.memory_bytes) if window is None else \
            tuple(_check_int("window", w) for w in window)
        if len(window) != 2 or not 0 <= window[0] <= window[1] <= self.memory_bytes:
            raise ValueError(f"window must lie within the {self.memory_bytes:#x} bytes of "
                             f"memory, not {window}")
        if limit < 1:
            raise ValueError(f"limit must be a positive number of cycles, not {limit}")
        return self._run(base, length, window, limit)

    # -- the backend's primitives ------------------------------------------------------------

    @abc.abstractmethod
    def _read_span(self, lo, hi):
        """Bytes ``[lo, hi)``, both multiples of :attr:`_granule`, as a uint8 array."""

    @abc.abstractmethod
    def _write_span(self, lo, data):
        """Write ``data`` (bytes, whole granules) from ``lo``, a multiple of the granule."""

    @abc.abstractmethod
    def _read_register(self, name):
        """The 32-bit register ``name``."""

    @abc.abstractmethod
    def _write_register(self, name, value):
        """Write ``value`` (32 bits) to register ``name``."""

    @abc.abstractmethod
    def _run(self, base, length, window, limit):
        """Run with checked arguments; return a :class:`RunResult`."""

    @abc.abstractmethod
    def _close(self):
        """Release the backend."""
