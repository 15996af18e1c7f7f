"""Every hardware parameter of Jalapeño in one frozen object, with named presets.

Blocks take a :class:`JalapenoConfig` and read what they need from it, so a design point is
one value that software, simulation and synthesis all agree on.
"""

from dataclasses import dataclass

from amaranth.utils import ceil_log2

__all__ = ["JalapenoConfig", "PRESETS", "preset"]


def _check_int(name, value, *, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, not {value}")


@dataclass(frozen=True, kw_only=True)
class JalapenoConfig:
    """Parameters of one Jalapeño design point.

    Parameters
    ----------
    name : str
        Name of the design point, used for build directories and reports.
    rows : int
        Rows of the systolic array: the reduction (K) dimension of one weight tile.
    cols : int
        Columns of the systolic array: the output (N) dimension of one weight tile, and the
        number of int32 lanes of the accumulator memory.
    acc_depth : int
        Rows of the accumulator memory, a power of two. One GEMM tile writes ``M`` consecutive
        rows, so ``M`` of a single tile is at most ``acc_depth``.
    read_fifo_depth : int
        Entries of the accumulator read-response buffer. A read holds its entry from its
        request through its two pipeline stages until its response is taken, three cycles at
        least, so four (the default) keep one read per cycle flowing; three give three reads in
        four cycles.
    bus_width : int
        Data bits of the AXI4 master the DMA uses: 32, 64 or 128.
    addr_width : int
        Address bits of that master, 16 to 64.
    spad_bytes : int
        Bytes of the scratchpad, a power of two.
    max_row : int
        Longest row, in elements, the vector unit's row operations (softmax, layernorm) take.
        A row is streamed through the unit once per pass, so the limit is set by the widths of
        the row sums, not by a buffer; 4096 is where TFLite's softmax sum would wrap.
    vector_unit : bool
        Whether the core has a vector unit. ``False`` builds a matrix-only core for boards
        the vector unit does not fit (it is the larger part of the core: the requantizer, the
        LUT, softmax and layernorm, and its executor in the compute queue), whose host does
        the nonlinearities: the core then holds no vector logic at all, and a VECTOR
        instruction stops it with ``NO_VECTOR_UNIT`` at the instruction's address, before
        its fields are checked (:class:`jalapeno.isa.CoreError`). ``max_row`` is still
        reported, but no instruction uses it.
    queue_depth : int
        Entries of each of the three instruction queues between the decoder and the
        executors, 2 to 64; it also bounds the transfers a load or store queue has issued
        and not yet seen complete. Each entry holds a whole instruction, so small boards take
        2; deeper queues let the decoder run further ahead of a busy executor.

    Raises
    ------
    TypeError
        If a parameter is not an integer (or ``name`` not a string, ``vector_unit`` not a
        ``bool``).
    ValueError
        If a parameter is outside its range.
    """

    name: str = "custom"
    rows: int
    cols: int
    acc_depth: int
    read_fifo_depth: int = 4
    bus_width: int = 64
    addr_width: int = 32
    spad_bytes: int = 65536
    max_row: int = 1024
    vector_unit: bool = True
    queue_depth: int = 8

    #: Width of weights and activations (TFLite int8).
    in_width = 8
    #: Width of partial sums and accumulators (TFLite int32).
    acc_width = 32
    #: Width of a row-length field: lengths up to 8191, above every ``max_row``, so a length
    #: over the configured maximum reaches the hardware and is flagged there.
    row_length_width = 13

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise TypeError(f"name must be an identifier string, not {self.name!r}")
        _check_int("rows", self.rows, minimum=1, maximum=64)
        _check_int("cols", self.cols, minimum=1, maximum=64)
        _check_int("acc_depth", self.acc_depth, minimum=2, maximum=65536)
        if self.acc_depth & (self.acc_depth - 1):
            raise ValueError(f"acc_depth must be a power of two, not {self.acc_depth}")
        _check_int("read_fifo_depth", self.read_fifo_depth, minimum=3, maximum=16)
        if isinstance(self.bus_width, bool) or self.bus_width not in (32, 64, 128):
            raise ValueError(f"bus_width must be 32, 64 or 128, not {self.bus_width!r}")
        _check_int("addr_width", self.addr_width, minimum=16, maximum=64)
        _check_int("spad_bytes", self.spad_bytes, minimum=1024, maximum=1 << 20)
        if self.spad_bytes & (self.spad_bytes - 1):
            raise ValueError(f"spad_bytes must be a power of two, not {self.spad_bytes}")
        _check_int("max_row", self.max_row, minimum=1, maximum=4096)
        if not isinstance(self.vector_unit, bool):
            raise TypeError(f"vector_unit must be True or False, not {self.vector_unit!r}")
        _check_int("queue_depth", self.queue_depth, minimum=2, maximum=64)

    @property
    def acc_addr_width(self):
        """Width of an accumulator row address."""
        return ceil_log2(self.acc_depth)

    @property
    def spad_addr_width(self):
        """Width of a scratchpad byte address."""
        return ceil_log2(self.spad_bytes)

    @property
    def acc_row_bytes(self):
        """Bytes an accumulator row takes in the DMA's view of the accumulator memory:
        ``cols`` little-endian int32 lanes, rounded up to a power of two (padding reads as
        zeros)."""
        return 1 << ceil_log2(self.cols * self.acc_width // 8)

    @property
    def acc_bytes(self):
        """Bytes of the whole accumulator memory in the DMA's view."""
        return self.acc_depth * self.acc_row_bytes

    @property
    def acc_base(self):
        """Local address of accumulator row 0: the power of two at or above both
        ``spad_bytes`` and ``acc_bytes``, so local addresses below it are the scratchpad's."""
        return 1 << max(self.spad_addr_width, ceil_log2(self.acc_bytes))

    @property
    def local_addr_width(self):
        """Width of a local address, the DMA's side of a transfer: the scratchpad from 0, the
        accumulator memory from ``acc_base``."""
        return ceil_log2(self.acc_base) + 1

    @property
    def bus_bytes(self):
        """Bytes per beat of the AXI4 master."""
        return self.bus_width // 8

    @property
    def macs_per_cycle(self):
        """Multiply-accumulates the array performs per cycle at full utilization."""
        return self.rows * self.cols


#: Named design points. ``tiny`` fits the iCE40UP5K, ``default`` is the simulation target,
#: ``large`` is the ECP5 candidate (its final size is chosen by measured GMAC/s).
PRESETS = {
    "tiny": JalapenoConfig(name="tiny", rows=4, cols=4, acc_depth=256, bus_width=32,
                           spad_bytes=8192),
    "default": JalapenoConfig(name="default", rows=8, cols=8, acc_depth=512),
    "large": JalapenoConfig(name="large", rows=16, cols=16, acc_depth=1024, bus_width=128,
                            spad_bytes=131072),
}


def preset(name):
    """Return the preset called ``name``.

    Raises
    ------
    ValueError
        If there is no such preset; the message lists the ones there are.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(
            f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
