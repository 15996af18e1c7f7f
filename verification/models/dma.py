"""Golden model of the DMA: descriptors, the bursts they split into, their error codes and the
bytes they move.

The single reference for what the DMA engines do: the Amaranth-simulator tests
(``tests/dma_slave.py``) and the cocotb bench (``verification/tb/dma_tb.py``) both check the
RTL against it. External memory and the scratchpad are NumPy ``uint8`` arrays.
"""

from dataclasses import dataclass

import numpy as np

from rtl.bus.axi import BURST_BOUNDARY, MAX_BURST_BEATS, Burst, Resp
from rtl.dma.descriptor import ROW_BYTES_WIDTH, ROWS_WIDTH, DmaError

__all__ = ["Desc", "RefBurst", "reference_bursts", "span", "expected_code", "acc_range",
           "acc_image", "bus_outcome",
           "copy_bursts", "golden", "random_descs", "first_difference", "KINDS", "REQUIRED"]


def _beats(nbytes, nb):
    return -(-nbytes // nb)


@dataclass(frozen=True)
class Desc:
    """One descriptor (``descriptor_layout``): ``rows`` rows of ``row_bytes`` bytes, row ``r``
    at ``ext_addr + r * ext_stride`` in external memory and ``spad_addr + r * spad_stride`` in
    the scratchpad.

    Attributes
    ----------
    ext_addr, spad_addr : int
        Byte addresses of the first row.
    rows, row_bytes : int
        Shape; either zero makes the descriptor empty.
    ext_stride, spad_stride : int
        Bytes from one row's start to the next one's.
    """

    ext_addr: int
    spad_addr: int
    rows: int
    row_bytes: int
    ext_stride: int
    spad_stride: int

    def __post_init__(self):
        for name, width in (("rows", ROWS_WIDTH), ("row_bytes", ROW_BYTES_WIDTH)):
            if not 0 <= getattr(self, name) < 1 << width:
                raise ValueError(f"{name} must fit in {width} bits, not {getattr(self, name)}")

    @property
    def empty(self):
        """No rows or no bytes: nothing is checked or moved."""
        return self.rows == 0 or self.row_bytes == 0

    def fields(self):
        """The fields as a ``dict``, for ``descriptor_layout(...).const``."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class RefBurst:
    """One INCR burst of a descriptor.

    Attributes
    ----------
    addr : int
        External address of its first beat.
    beats : int
        Its length (``len + 1``).
    spad : int
        Scratchpad address of its first byte.
    nbytes : int
        Bytes it moves: ``beats * bus_bytes``, or fewer at a row's end.
    """

    addr: int
    beats: int
    spad: int
    nbytes: int

    def strobes(self, nb):
        """The byte strobes of each beat on an ``nb``-byte bus: all ones but for the bytes
        past a row's end in its last beat."""
        full = (1 << nb) - 1
        tail = self.nbytes - (self.beats - 1) * nb
        return [full] * (self.beats - 1) + [(1 << tail) - 1]


def reference_bursts(desc, nb):
    """The bursts of ``desc`` on an ``nb``-byte bus, in order.

    Every row is split at 256 beats and at every 4 KiB boundary; no burst spans two rows.

    Parameters
    ----------
    desc : Desc
    nb : int
        Bytes per beat.

    Returns
    -------
    list of RefBurst
        Empty for an empty descriptor.
    """
    out = []
    for row in range(desc.rows if desc.row_bytes else 0):
        addr = desc.ext_addr + row * desc.ext_stride
        spad = desc.spad_addr + row * desc.spad_stride
        left = desc.row_bytes
        while left > 0:
            beats = min(_beats(left, nb), MAX_BURST_BEATS,
                        (BURST_BOUNDARY - addr % BURST_BOUNDARY) // nb)
            nbytes = min(left, beats * nb)
            out.append(RefBurst(addr, beats, spad, nbytes))
            addr, spad, left = addr + beats * nb, spad + beats * nb, left - nbytes
    return out


def span(desc, nb, *, ext=True):
    """``(lo, hi)``: the bytes from the first row's start to the end of the last row's last
    beat, in external memory (``ext``) or the scratchpad; ``(lo, lo)`` when empty."""
    start, stride = ((desc.ext_addr, desc.ext_stride) if ext
                     else (desc.spad_addr, desc.spad_stride))
    if desc.empty:
        return start, start
    return start, start + (desc.rows - 1) * stride + _beats(desc.row_bytes, nb) * nb


def expected_code(desc, nb, window, spad_bytes, *, acc=None):
    """The up-front outcome of ``desc``, as ``rtl/dma/check.py`` decides it.

    In order of precedence: empty, ``NONE``; an address or stride not a multiple of ``nb``,
    ``MISALIGNED``; the external extent (to the end of the last row's last beat) not inside
    ``window``, ``WINDOW``; the local extent (to the last row's last byte) neither inside the
    scratchpad ``[0, spad_bytes)`` nor inside ``acc``, ``SPAD_RANGE``; else ``NONE``.

    Parameters
    ----------
    desc : Desc
    nb : int
        Bytes per beat.
    window : (int, int)
        The external window ``[base, limit)``.
    spad_bytes : int
        Size of the scratchpad.
    acc : (int, int) or None
        The accumulator memory's local range ``[acc_base, acc_base + acc_bytes)``, for a
        STORE; ``None`` for a LOAD, which may not write it.

    Returns
    -------
    DmaError
    """
    if desc.empty:
        return DmaError.NONE
    if any(v % nb for v in (desc.ext_addr, desc.ext_stride, desc.spad_addr, desc.spad_stride)):
        return DmaError.MISALIGNED
    lo, hi = span(desc, nb)
    if lo < window[0] or hi > window[1]:
        return DmaError.WINDOW
    end = desc.spad_addr + (desc.rows - 1) * desc.spad_stride + desc.row_bytes
    in_acc = acc is not None and acc[0] <= desc.spad_addr and end <= acc[1]
    if end > spad_bytes and not in_acc:
        return DmaError.SPAD_RANGE
    return DmaError.NONE


def acc_range(config):
    """``(acc_base, acc_base + acc_bytes)``: where the accumulator memory lies among the
    local addresses of a STORE."""
    return config.acc_base, config.acc_base + config.acc_bytes


def acc_image(acc):
    """The bytes of an accumulator memory ``acc`` (``acc_depth x cols`` int32) as a STORE
    reads them from ``acc_base``: each row little-endian, padded with zeros to
    ``acc_row_bytes``, a power of two."""
    acc = np.asarray(acc, np.int32)
    pitch = 1 << (acc.shape[1] * 4 - 1).bit_length()
    image = np.zeros((acc.shape[0], pitch), np.uint8)
    image[:, :acc.shape[1] * 4] = acc.astype("<i4").view(np.uint8).reshape(acc.shape[0], -1)
    return image.reshape(-1)


def bus_outcome(response, bursts, nb):
    """``(index, code)`` of the first of ``bursts`` the memory answers with an error, or
    ``(len(bursts), NONE)``.

    Parameters
    ----------
    response : callable
        ``response(addr, len, size, burst)`` gives the memory's :class:`Resp` to a burst (the
        ``response`` method of both AXI RAM models).
    bursts : list of RefBurst
    nb : int
        Bytes per beat.
    """
    shift = nb.bit_length() - 1
    for index, burst in enumerate(bursts):
        resp = response(burst.addr, burst.beats - 1, shift, Burst.INCR)
        if resp != Resp.OKAY:
            return index, DmaError.SLVERR if resp == Resp.SLVERR else DmaError.DECERR
    return len(bursts), DmaError.NONE


def copy_bursts(bursts, *, load, memory, spad):
    """Apply ``bursts`` in place: to ``spad`` from ``memory`` (``load``) or to ``memory`` from
    ``spad``; only the strobed bytes (``nbytes``) of each burst move."""
    for b in bursts:
        if load:
            spad[b.spad:b.spad + b.nbytes] = memory[b.addr:b.addr + b.nbytes]
        else:
            memory[b.addr:b.addr + b.nbytes] = spad[b.spad:b.spad + b.nbytes]


def golden(descs, nb, *, load, memory, spad):
    """Copies of ``memory`` and ``spad`` after every one of ``descs`` completes in order."""
    memory, spad = memory.copy(), spad.copy()
    for desc in descs:
        copy_bursts(reference_bursts(desc, nb), load=load, memory=memory, spad=spad)
    return memory, spad


#: The shapes :func:`random_descs` draws, and those every list contains at least once.
KINDS = ("one", "ragged", "beats", "cross", "long", "strided", "zero")
REQUIRED = ("one", "cross", "long", "strided", "zero")


def random_descs(rng, nb, count, *, ext, spad, required=REQUIRED, addr_width=32):
    """Up to ``count`` valid descriptors with disjoint extents, in a random order.

    One of each ``required`` kind comes first (so they find room), then kinds at random while
    they fit. Kinds: ``one`` (1-byte rows), ``ragged`` (1 to 400 bytes), ``beats`` (whole
    beats), ``cross`` (rows starting just short of a 4 KiB boundary and crossing it), ``long``
    (rows of more than 256 beats), ``strided`` (strides many beats longer than the rows),
    ``zero`` (no rows or no bytes, misaligned, the external address 12 bytes short of the top
    of the address space: outside any window, moves nothing). One to three rows; strides at
    least the row's span, often longer. Consecutive extents are one to four beats apart.

    Parameters
    ----------
    rng : numpy.random.Generator
    nb : int
        Bytes per beat.
    count : int
    ext, spad : (int, int)
        The ``nb``-aligned byte ranges ``[lo, hi)`` of external memory and the scratchpad the
        descriptors may touch.
    required : sequence of str
        Kinds every list contains.
    addr_width : int
        External address width, for the ``zero`` kind's address.

    Raises
    ------
    ValueError
        If a required kind does not fit.
    """
    def pick(lo, hi):
        return int(rng.integers(lo, hi + 1))

    def fits(desc):
        return span(desc, nb)[1] + nb <= ext[1] and span(desc, nb, ext=False)[1] + nb <= spad[1]

    zero_ext_addr = (1 << addr_width) - 13
    kinds = list(required) + [KINDS[pick(0, len(KINDS) - 1)]
                              for _ in range(count - len(required))]
    ext_at, spad_at = ext[0], spad[0]
    descs = []
    for index, kind in enumerate(kinds):
        if kind == "zero":
            rows, row_bytes = (0, pick(1, 300)) if pick(0, 1) else (pick(1, 3), 0)
            descs.append(Desc(zero_ext_addr, spad_at + 1, rows, row_bytes, pick(1, 99), 3))
            continue
        rows = pick(1, 3) if kind != "long" else pick(1, 2)
        row_bytes = {"one": 1, "ragged": pick(1, 400), "beats": nb * pick(1, 40),
                     "cross": pick(2 * nb, 64 * nb), "long": MAX_BURST_BEATS * nb + pick(1, 3 * nb),
                     "strided": pick(1, 12 * nb)}[kind]
        row_span = _beats(row_bytes, nb) * nb
        extra = (pick(5, 40), pick(1, 8)) if kind == "strided" else (pick(0, 2), pick(0, 2))
        ext_stride, spad_stride = row_span + nb * extra[0], row_span + nb * extra[1]
        ext_at += nb * pick(1, 4)
        spad_at += nb * pick(1, 4)
        if kind == "cross":  # every row starts a few beats before a 4 KiB boundary
            ext_stride = BURST_BOUNDARY
            page = -(-(ext_at + 4 * nb) // BURST_BOUNDARY) * BURST_BOUNDARY
            ext_at = page - nb * pick(1, min(4, row_span // nb - 1))
        desc = Desc(ext_at, spad_at, rows, row_bytes, ext_stride, spad_stride)
        if not fits(desc):
            desc = Desc(ext_at, spad_at, 1, row_bytes, ext_stride, spad_stride)
        if not fits(desc):
            if index < len(required):
                raise ValueError(f"no room for a {kind!r} descriptor in {ext}, {spad}")
            continue
        descs.append(desc)
        ext_at, spad_at = span(desc, nb)[1], span(desc, nb, ext=False)[1]
    return [descs[k] for k in rng.permutation(len(descs))]


def first_difference(actual, expected, base=0):
    """How two byte arrays differ: how many bytes, and the first (its address ``base`` on)
    with both values; ``"equal"`` if none."""
    where = np.flatnonzero(actual != expected)
    if not len(where):
        return "equal"
    k = where[0]
    return (f"{len(where)} bytes differ, the first at {base + k:#x} (got {actual[k]:#04x}, "
            f"expected {expected[k]:#04x})")
