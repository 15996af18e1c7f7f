"""The lookup-table unit: any int8 -> int8 elementwise function as a 256-entry table."""

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import JalapenoConfig

__all__ = ["LutUnit", "table_write_layout"]


def table_write_layout(config: JalapenoConfig):
    """Payload of one table write: the entry ``index`` (``x + 128``) and its int8 ``value``."""
    return data.StructLayout({
        "index": unsigned(config.in_width),
        "value": signed(config.in_width),
    })


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

        for lane in range(cfg.cols):
            mem = memory.Memory(shape=signed(cfg.in_width), depth=1 << cfg.in_width, init=[])
            m.submodules[f"table_{lane}"] = mem
            wr = mem.write_port()
            rd = mem.read_port()
            m.d.comb += [
                wr.addr.eq(self.table.payload.index),
                wr.data.eq(self.table.payload.value),
                wr.en.eq(self.table.valid),
                # x + 128 in in_width bits is x with its sign bit flipped.
                rd.addr.eq(self.i.payload[lane].as_unsigned() ^ (1 << (cfg.in_width - 1))),
                rd.en.eq(en),
                self.o.payload[lane].eq(rd.data),
            ]

        with m.If(en):
            m.d.sync += self.o.valid.eq(self.i.valid)
        return m
