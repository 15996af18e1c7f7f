"""The vector unit: every vector operation behind one input stream and one output stream."""

from amaranth import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In

from ..config import JalapenoConfig
from .add import ElementwiseAdd, add_in_layout
from .clamp import Clamp, clamp_in_layout
from .layernorm import LayerNorm, layernorm_in_layout
from .lut import LutUnit
from .pipeline import block_ports
from .requantizer import Requantizer, requant_in_layout
from .softmax import Softmax, softmax_in_layout

__all__ = ["VectorOp", "TableSelect", "BLOCKS", "VectorUnit", "vector_in_layout",
           "vector_table_layout"]


class VectorOp(enum.Enum, shape=3):
    """The operation a beat on :attr:`VectorUnit.i` is for; codes 6 and 7 are invalid."""

    REQUANTIZE = 0
    LUT = 1
    CLAMP = 2
    ADD = 3
    SOFTMAX = 4
    LAYERNORM = 5

    @property
    def field(self):
        """Name of the operation's member of the ``args`` union."""
        return self.name.lower()


class TableSelect(enum.Enum, shape=1):
    """The table a write on :attr:`VectorUnit.table` goes to."""

    LUT = 0  #: the LUT unit's int8 table (``value`` holds the int8 entry in its low bits)
    EXP = 1  #: softmax's Q0.31 exp table


def _lookup_layout(config):
    return data.ArrayLayout(signed(config.in_width), config.cols)


#: Each operation's block.
BLOCKS = {
    VectorOp.REQUANTIZE: Requantizer,
    VectorOp.LUT: LutUnit,
    VectorOp.CLAMP: Clamp,
    VectorOp.ADD: ElementwiseAdd,
    VectorOp.SOFTMAX: Softmax,
    VectorOp.LAYERNORM: LayerNorm,
}
#: The payload layout of each operation's input.
_LAYOUTS = {
    VectorOp.REQUANTIZE: requant_in_layout,
    VectorOp.LUT: _lookup_layout,
    VectorOp.CLAMP: clamp_in_layout,
    VectorOp.ADD: add_in_layout,
    VectorOp.SOFTMAX: softmax_in_layout,
    VectorOp.LAYERNORM: layernorm_in_layout,
}


def vector_in_layout(config: JalapenoConfig):
    """Payload of :attr:`VectorUnit.i`: the operation and, in a union, its block's input."""
    return data.StructLayout({
        "op": VectorOp,
        "args": data.UnionLayout({op.field: layout(config) for op, layout in _LAYOUTS.items()}),
    })


def vector_table_layout(config: JalapenoConfig):
    """Payload of :attr:`VectorUnit.table`: one entry of the LUT or of the exp table."""
    return data.StructLayout({
        "select": TableSelect,
        "index": unsigned(config.in_width),
        "value": unsigned(config.acc_width - 1),
    })


class VectorUnit(wiring.Component):
    """The requantizer, LUT, clamp, elementwise add, softmax and layernorm of ``cols`` lanes,
    composed behind one tagged input stream and one int8 output stream.

    Each beat on ``i`` names its operation and goes to that block; outputs come out in the
    order their inputs went in. Blocks have different latencies, so the unit moves from one
    operation to another only once the block in use is idle (nothing in flight, no row half
    done): a beat for another operation waits until then, which costs that block's pipeline
    depth once per change of operation and never reorders results. Softmax rows are streamed
    three times and layernorm rows twice, as those blocks document.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``max_row`` and the widths).

    Attributes
    ----------
    table : In(stream.Signature(vector_table_layout(config)))
        Writes into the LUT table or the softmax exp table; always ready.
    i : In(stream.Signature(vector_in_layout(config)))
        Operations and their inputs.
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        int8 results.
    error : Out(1)
        Set, until reset, when a block flags bad parameters or a beat names an invalid
        operation (that beat is dropped).
    busy : Out(1)
        High while any block has work in flight.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config: JalapenoConfig):
        ports = block_ports(config, vector_in_layout)
        super().__init__({"table": In(stream.Signature(vector_table_layout(config))), **ports})
        self._config = config

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        blocks = {op: block(cfg) for op, block in BLOCKS.items()}
        for op, block in blocks.items():
            m.submodules[op.field] = block

        op = self.i.payload.op
        current = Signal(VectorOp)
        idle = Signal()
        m.d.comb += [
            idle.eq(~Cat(block.busy for block in blocks.values()).any()),
            self.busy.eq(~idle),
        ]
        for code, block in blocks.items():
            taken = (op == code) & ((current == code) | idle)
            m.d.comb += [
                block.i.valid.eq(self.i.valid & taken),
                block.i.payload.eq(self.i.payload.args[code.field]),
                block.o.ready.eq(self.o.ready & (current == code)),
            ]
            with m.If(taken):
                m.d.comb += self.i.ready.eq(block.i.ready)
            with m.If(current == code):
                m.d.comb += [self.o.valid.eq(block.o.valid), self.o.payload.eq(block.o.payload)]
            with m.If(self.i.valid & taken & block.i.ready):
                m.d.sync += current.eq(code)

        invalid_op = op.as_value() >= len(VectorOp)
        bad_op_seen = Signal()
        with m.If(invalid_op):
            m.d.comb += self.i.ready.eq(1)
            with m.If(self.i.valid):
                m.d.sync += bad_op_seen.eq(1)
        m.d.comb += self.error.eq(bad_op_seen | Cat(
            block.error for block in blocks.values() if "error" in block.signature.members).any())

        table = self.table.payload
        lut, exp = blocks[VectorOp.LUT].table, blocks[VectorOp.SOFTMAX].table
        m.d.comb += [
            self.table.ready.eq(1),
            lut.valid.eq(self.table.valid & (table.select == TableSelect.LUT)),
            lut.payload.index.eq(table.index),
            lut.payload.value.eq(table.value[:cfg.in_width]),
            exp.valid.eq(self.table.valid & (table.select == TableSelect.EXP)),
            exp.payload.index.eq(table.index),
            exp.payload.value.eq(table.value),
        ]
        return m
