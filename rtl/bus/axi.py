"""AXI4 and AXI4-Lite signatures, from the master's side.

Every channel is a signature of its own: ``valid`` (towards the receiver), ``ready`` (back)
and the AMBA fields under their AMBA names without the channel prefix (``aw.addr`` is
``AWADDR``). A master has ``Out(AXI4Signature(...))``, a slave ``In(...)``; a channel's
``valid`` always points from the side that sends on it.
"""

from amaranth.lib import enum, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "Burst", "Resp", "DATA_WIDTHS", "MAX_BURST_BEATS", "BURST_BOUNDARY",
    "address_channel", "AXI4Signature", "AXI4LiteSignature",
]

#: Data widths of the AXI4 buses the DMA and core use, in bits.
DATA_WIDTHS = (32, 64, 128)
#: Longest INCR burst AXI4 allows, in beats.
MAX_BURST_BEATS = 256
#: No burst may cross an address that is a multiple of this, in bytes.
BURST_BOUNDARY = 4096


class Burst(enum.Enum, shape=2):
    """``AxBURST``."""

    FIXED = 0
    INCR = 1
    WRAP = 2


class Resp(enum.Enum, shape=2):
    """``BRESP`` and ``RRESP``."""

    OKAY = 0
    EXOKAY = 1
    SLVERR = 2
    DECERR = 3


def _check_int(name, value, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, not {value}")


def _check_data_width(value, widths):
    if isinstance(value, bool) or not isinstance(value, int) or value not in widths:
        raise ValueError(f"data_width must be one of {', '.join(map(str, widths))}, "
                         f"not {value!r}")


def address_channel(*, addr_width, id_width):
    """``AW`` or ``AR`` of AXI4: ``id``, ``addr``, ``len`` (beats - 1), ``size`` (log2 of the
    bytes per beat), ``burst``, ``lock``, ``cache``, ``prot``."""
    return wiring.Signature({
        "valid": Out(1), "ready": In(1),
        "id": Out(id_width), "addr": Out(addr_width), "len": Out(8), "size": Out(3),
        "burst": Out(Burst), "lock": Out(1), "cache": Out(4), "prot": Out(3),
    })


class AXI4Signature(wiring.Signature):
    """An AXI4 master port: ``aw``, ``w``, ``b``, ``ar`` and ``r``.

    Parameters
    ----------
    addr_width : int
        Address bits, 12 to 64.
    data_width : int
        Data bits, one of :data:`DATA_WIDTHS`; ``w.strb`` has one bit per byte.
    id_width : int
        Transaction ID bits, 1 to 16.

    Raises
    ------
    TypeError, ValueError
        If a parameter is not an integer or out of its range (exact messages, tested).
    """

    def __init__(self, *, addr_width, data_width, id_width):
        _check_int("addr_width", addr_width, 12, 64)
        _check_data_width(data_width, DATA_WIDTHS)
        _check_int("id_width", id_width, 1, 16)
        self.addr_width, self.data_width, self.id_width = addr_width, data_width, id_width
        address = address_channel(addr_width=addr_width, id_width=id_width)
        super().__init__({
            "aw": Out(address),
            "w": Out(wiring.Signature({
                "valid": Out(1), "ready": In(1),
                "data": Out(data_width), "strb": Out(data_width // 8), "last": Out(1),
            })),
            "b": In(wiring.Signature({
                "valid": Out(1), "ready": In(1), "id": Out(id_width), "resp": Out(Resp),
            })),
            "ar": Out(address),
            "r": In(wiring.Signature({
                "valid": Out(1), "ready": In(1),
                "id": Out(id_width), "data": Out(data_width), "resp": Out(Resp), "last": Out(1),
            })),
        })

    @property
    def bytes_per_beat(self):
        return self.data_width // 8

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width
                and other.data_width == self.data_width and other.id_width == self.id_width)

    def __repr__(self):
        return (f"AXI4Signature(addr_width={self.addr_width}, data_width={self.data_width}, "
                f"id_width={self.id_width})")


class AXI4LiteSignature(wiring.Signature):
    """An AXI4-Lite master port: single-beat ``aw``/``w``/``b``/``ar``/``r`` with ``prot``,
    strobes and responses, no IDs or bursts.

    Parameters
    ----------
    addr_width : int
        Address bits, 12 to 64.
    data_width : int
        32 or 64.

    Raises
    ------
    TypeError, ValueError
        If a parameter is not an integer or out of its range (exact messages, tested).
    """

    def __init__(self, *, addr_width, data_width=32):
        _check_int("addr_width", addr_width, 12, 64)
        _check_data_width(data_width, (32, 64))
        self.addr_width, self.data_width = addr_width, data_width
        address = wiring.Signature({
            "valid": Out(1), "ready": In(1), "addr": Out(addr_width), "prot": Out(3),
        })
        super().__init__({
            "aw": Out(address),
            "w": Out(wiring.Signature({
                "valid": Out(1), "ready": In(1),
                "data": Out(data_width), "strb": Out(data_width // 8),
            })),
            "b": In(wiring.Signature({"valid": Out(1), "ready": In(1), "resp": Out(Resp)})),
            "ar": Out(address),
            "r": In(wiring.Signature({
                "valid": Out(1), "ready": In(1), "data": Out(data_width), "resp": Out(Resp),
            })),
        })

    def __eq__(self, other):
        return (type(other) is type(self) and other.addr_width == self.addr_width
                and other.data_width == self.data_width)

    def __repr__(self):
        return f"AXI4LiteSignature(addr_width={self.addr_width}, data_width={self.data_width})"
