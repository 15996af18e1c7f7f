"""DMA descriptors and error codes, and the layouts the DMA engines pass between their parts.

These are the one definition of the descriptor format: the core's decoder, the compiler and the
tests all build descriptors from :func:`descriptor_layout` and read outcomes as
:class:`DmaError`.
"""

from amaranth import Cat, Signal, unsigned
from amaranth.lib import data, enum
from amaranth.utils import exact_log2

from ..bus.axi import AXI4Signature
from ..config import JalapenoConfig

__all__ = [
    "DmaError", "ROWS_WIDTH", "ROW_BYTES_WIDTH", "LOCAL_WIDTH", "descriptor_layout",
    "checked_layout", "burst_layout", "check_config", "axi_signature", "beat_shift",
    "registered_window",
]

#: Width of the ``rows`` field of a descriptor.
ROWS_WIDTH = 16
#: Width of the ``row_bytes`` field of a descriptor.
ROW_BYTES_WIDTH = 16
#: Width of the local address and stride fields of a descriptor: above every configuration's
#: ``local_addr_width`` (25 at most), so an instruction's field reaches the check whole and an
#: address past the local space is reported, never wrapped into it.
LOCAL_WIDTH = 26


class DmaError(enum.Enum, shape=3):
    """The outcome of one descriptor, as an engine reports it on ``done``.

    ``MISALIGNED``, ``WINDOW`` and ``SPAD_RANGE`` are found before the descriptor issues any
    burst; ``WINDOW`` also if the window changes under a running descriptor so that its next
    burst would leave it. ``SLVERR`` and ``DECERR`` are bus error responses (``RRESP`` of any
    beat, ``BRESP``).
    """

    NONE = 0
    #: ``ext_addr``, ``ext_stride``, ``spad_addr`` or ``spad_stride`` is not a multiple of
    #: ``bus_bytes``.
    MISALIGNED = 1
    #: A burst would reach outside ``[window_base, window_limit)``.
    WINDOW = 2
    SLVERR = 3
    DECERR = 4
    #: The local extent is not inside the scratchpad (nor, for a STORE, inside the
    #: accumulator memory).
    SPAD_RANGE = 5


def check_config(config):
    """Raise ``TypeError`` unless ``config`` is a :class:`JalapenoConfig`."""
    if not isinstance(config, JalapenoConfig):
        raise TypeError(f"config must be a JalapenoConfig, not {config!r}")


def beat_shift(config: JalapenoConfig):
    """``log2(bus_bytes)``: the ``AxSIZE`` of every burst, and the low address bits that must
    be zero."""
    return exact_log2(config.bus_bytes)


def axi_signature(config: JalapenoConfig):
    """The AXI4 master port of the DMA: ``addr_width`` and ``bus_width`` of ``config``, one
    ID bit (every transaction uses ID 0)."""
    return AXI4Signature(addr_width=config.addr_width, data_width=config.bus_width, id_width=1)


def descriptor_layout(config: JalapenoConfig):
    """One 2-D transfer: ``rows`` rows of ``row_bytes`` bytes each.

    Row ``r`` starts at external byte address ``ext_addr + r * ext_stride`` and at local byte
    address ``spad_addr + r * spad_stride``. Local addresses (:data:`LOCAL_WIDTH` bits) below
    ``acc_base`` are the scratchpad's; a STORE may also read the accumulator memory, from
    ``acc_base`` up (row ``i`` at ``acc_base + i * acc_row_bytes``, little-endian int32
    lanes). Addresses and strides must be multiples of ``bus_bytes``; ``row_bytes`` may be
    anything (the last beat of a row carries partial strobes). Zero ``rows`` or zero
    ``row_bytes`` is a transfer of nothing.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    check_config(config)
    return data.StructLayout({
        "ext_addr": unsigned(config.addr_width),
        "spad_addr": unsigned(LOCAL_WIDTH),
        "rows": unsigned(ROWS_WIDTH),
        "row_bytes": unsigned(ROW_BYTES_WIDTH),
        "ext_stride": unsigned(config.addr_width),
        "spad_stride": unsigned(LOCAL_WIDTH),
    })


def checked_layout(config: JalapenoConfig):
    """A descriptor after :class:`~rtl.dma.check.DescriptorCheck`: the descriptor, its
    up-front ``code`` and whether it moves nothing (``empty``, then ``code`` is ``NONE``)."""
    return data.StructLayout({
        "desc": descriptor_layout(config),
        "code": DmaError,
        "empty": 1,
    })


def burst_layout(config: JalapenoConfig, *, ext=True):
    """One INCR burst of a descriptor: external ``addr`` (left out when ``ext`` is false, for
    the engines' in-flight bookkeeping), ``len`` (``AxLEN``, beats - 1), the local byte
    address ``spad`` of its first beat, ``tail`` (the strobes of its last beat) and ``last``
    (the last burst of its descriptor)."""
    fields = {"addr": unsigned(config.addr_width)} if ext else {}
    fields.update({
        "len": unsigned(8),
        "spad": unsigned(config.local_addr_width),
        "tail": unsigned(config.bus_bytes),
        "last": 1,
    })
    return data.StructLayout(fields)


def registered_window(m, base, limit):
    """``(base, limit, changed)``: the window ``[base, limit)`` of the cycle before, kept in
    ``m`` in registers named ``prev_base`` and ``prev_limit``, and ``changed``, a register
    named ``window_changed``, high in a cycle whose registered window differs from the cycle
    before's.

    The DMA's window checks work on this copy, so the window acts one cycle after it is
    driven (the host sets it only while the core is idle). An outcome registered against the
    copy of the cycle before holds for the current copy exactly while ``changed`` is low, and
    ``changed`` is a flip-flop fed by an equality of flip-flops, so nothing lies between the
    window and the handshakes that use those outcomes.
    """
    prev_base = Signal.like(base, name="prev_base")
    prev_limit = Signal.like(limit, name="prev_limit")
    changed = Signal(name="window_changed")
    m.d.sync += [
        prev_base.eq(base),
        prev_limit.eq(limit),
        changed.eq(Cat(base, limit) != Cat(prev_base, prev_limit)),
    ]
    return prev_base, prev_limit, changed
