"""The lookup-table unit: any int8 -> int8 elementwise function as a 256-entry table."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["LutUnit", "table_write_layout", "lane_tables"]


def table_write_layout(config: JalapenoConfig):
    """Payload of one table write: the entry ``index`` (``x + 128``) and its int8 ``value``."""
    return data.StructLayout({
        "index": unsigned(config.in_width),
        "value": signed(config.in_width),
    })


def lane_tables(m, table, shape, addresses, en):
    """One 256-entry synchronous-read table per lane, all written from the stream ``table``
    (``index``, ``value``; every write goes into every copy, at the edge that takes it).

    Lane ``c`` reads entry ``addresses[c]`` at each edge where ``en`` is high and holds its
    data otherwise, so a stalled pipeline keeps its looked-up values. Returns the lanes' read
    data, one edge behind their addresses. Each lane needs a read port of its own, hence a
    copy per lane.
    """
    data_out = []
    for lane, address in enumerate(addresses):
        mem = memory.Memory(shape=shape, depth=1 << len(table.payload.index), init=[])
        m.submodules[f"table_{lane}"] = mem
        wr = mem.write_port()
        rd = mem.read_port()
        m.d.comb += [
            wr.addr.eq(table.payload.index),
            wr.data.eq(table.payload.value),
            wr.en.eq(table.valid),
            rd.addr.eq(address),
            rd.en.eq(en),
        ]
        data_out.append(rd.data)
    return data_out


class LutUnit(wiring.Component):
    """``cols`` int8 lanes, each looked up in a 256-entry table loaded at run time.

    Lane ``c`` of a lookup vector ``x`` comes out as ``table[x[c] + 128]``, one vector per
    cycle, so the table holds any int8 function (:mod:`verification.models.lut` builds them).
    Every lane needs its own read port, so each lane has its own copy of the table in a
    synchronous-read memory; a write on ``table`` goes into every copy.

    Writes are always accepted and land at the clock edge that accepts them. A lookup reads
    the table at the edge that accepts it, so it sees every write accepted at an earlier edge
    and none accepted at the same or a later one: a lookup accepted in the same cycle as a
    write to its entry gets the old value. Lookups already accepted keep their results
    whatever is written afterwards, so a table may be reloaded from the cycle after the last
    lookup that uses it is accepted.

    The pipeline (the memory read, then ``o``) advances together and stalls only while a result
    is offered and not taken: the read ports are enabled with it, so a stalled result is held
    and backpressure never loses or reorders data; ``i.ready`` is the pipeline enable.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``cols``, ``in_width``).

    Attributes
    ----------
    table : In(stream.Signature(table_write_layout(config)))
        Table writes, one entry per beat into every lane's copy; always ready.
    i : In(stream.Signature(ArrayLayout(signed(8), cols)))
        Lookup vectors.
    o : Out(stream.Signature(ArrayLayout(signed(8), cols)))
        Results, in the order their lookups were accepted.
    busy : Out(1)
        High while an accepted lookup has not had its result taken.
    """

    def __init__(self, config: JalapenoConfig):
        self._config = config
        vector = data.ArrayLayout(signed(config.in_width), config.cols)
        super().__init__({
            "table": In(stream.Signature(table_write_layout(config))),
            "i": In(stream.Signature(vector)),
            "o": Out(stream.Signature(vector)),
            "busy": Out(1),
        })

    @property
    def latency(self):
        """Enabled cycles from accepting a lookup vector to offering its result."""
        return 1

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        en = Signal()
        m.d.comb += [
            en.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(en),
            self.table.ready.eq(1),
            self.busy.eq(self.o.valid),
        ]

        # x + 128 in in_width bits is x with its sign bit flipped.
        flip = 1 << (cfg.in_width - 1)
        results = lane_tables(m, self.table, signed(cfg.in_width),
                              [x.as_unsigned() ^ flip for x in self.i.payload], en)
        m.d.comb += [self.o.payload[lane].eq(result) for lane, result in enumerate(results)]

        with m.If(en):
            m.d.sync += self.o.valid.eq(self.i.valid)
        return m
