"""The runtime: one :class:`Device` interface to the accelerator (write and read memory, run
a program, read the CSRs and counters) with interchangeable backends. The same program gives
bit-identical memory, error codes and untimed counters on every backend.

* ``golden``: the functional ISA simulator (:mod:`jalapeno.runtime.golden`), no timing.
* ``rtl``: the RTL in a cocotb simulation on Verilator or Icarus (:mod:`jalapeno.runtime.rtl`).

::

    with open_device("rtl", preset="default") as dev:
        dev.write(0x8000, a)
        dev.load_program(0x1000, words)
        result = dev.run(0x1000, len(words))
        c = dev.read(0x18000, nbytes)
"""

from rtl.config import preset as _preset

from .device import DEFAULT_LIMIT, Device, DeviceError, RunResult

__all__ = ["BACKENDS", "DEFAULT_LIMIT", "Device", "DeviceError", "RunResult", "open_device"]

#: The backends :func:`open_device` knows.
BACKENDS = ("golden", "rtl")


def open_device(backend: str, *, preset="default", **options) -> Device:
    """Open a device of ``backend`` for design point ``preset``.

    ``options`` go to the backend: :class:`~jalapeno.runtime.golden.GoldenDevice`'s
    ``memory_bytes``, ``slverr`` and ``decerr``; :class:`~jalapeno.runtime.rtl.RtlDevice`'s
    ``sim``. The ``golden`` device is built for the preset's configuration; the ``rtl``
    device builds the preset's RTL and reads the configuration back from it.

    Raises
    ------
    ValueError
        If the backend or the preset is unknown.
    """
    if backend == "golden":
        from .golden import GoldenDevice

        return GoldenDevice(_preset(preset), **options)
    if backend == "rtl":
        from .rtl import RtlDevice

        return RtlDevice(preset, **options)
    raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
