"""One AXI4 master port shared by the DMA and the core's instruction fetch."""

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..dma.descriptor import axi_signature, check_config
from .axi import AXI4Signature
from .skid import SkidBuffer

__all__ = ["AxiReadShare", "read_signature", "BUS_ID_WIDTH", "SOURCE_DMA", "SOURCE_FETCH"]

#: ID bits on the shared port: the source's number above the master's own one ID bit.
BUS_ID_WIDTH = 2
#: Top ID bit of the DMA's bursts on the shared port.
SOURCE_DMA = 0
#: Top ID bit of the fetch's bursts on the shared port.
SOURCE_FETCH = 1

_ADDRESS_FIELDS = ("addr", "len", "size", "burst", "lock", "cache", "prot")


def read_signature(config):
    """The read half of an AXI4 master port, ``ar`` and ``r`` of
    :func:`~rtl.dma.descriptor.axi_signature` (one ID bit): the instruction fetch's port.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    check_config(config)
    axi = axi_signature(config)
    return wiring.Signature({"ar": axi.members["ar"], "r": axi.members["r"]})


class AxiReadShare(wiring.Component):
    """Lets the instruction fetch read through the DMA's AXI4 master port.

    The system has one AXI4 master towards memory. The DMA uses all of it; the fetch only
    reads, and only 32 bytes per instruction, so it borrows the read channels rather than
    having a port of its own.

    ``AR``: a two-way round-robin. While both ``dma.ar`` and ``fetch.ar`` are valid they are
    taken in turn, one AR per handshake; while only one is, it is taken at every cycle the
    port can take one. The chosen AR goes out with ID ``{source, id}`` (``source``
    :data:`SOURCE_DMA` or :data:`SOURCE_FETCH`, above the master's own ID bit) through a
    :class:`~rtl.bus.skid.SkidBuffer`, so ``bus.ar.valid`` and its payload come from flops,
    hold until taken, and never depend on ``bus.ar.ready``; a master's ``ar.ready`` is the
    buffer's registered ``ready`` gated by the grant, which looks at the other master's
    ``valid`` (AXI lets ``READY`` wait for ``VALID``).

    ``R``: steered by the top ID bit to its master, which gets the low ID bit back; no beat is
    held, so none is lost or repeated and beats pass one per cycle without a bubble.
    ``bus.r.ready`` is the addressed master's ``ready`` alone, so a master that stalls holds
    up only the beats addressed to it (and, with an in-order slave, the ones behind them).

    ``AW``, ``W`` and ``B``: the DMA's, passed straight through (``bus.aw.id`` is the DMA's ID
    with a zero above it, ``dma.b.id`` the low bit of ``bus.b.id``).

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``addr_width``, ``bus_width``).

    Attributes
    ----------
    dma : In(axi_signature(config))
        The DMA's master port (:func:`~rtl.dma.descriptor.axi_signature`, one ID bit).
    fetch : In(read_signature(config))
        The fetch's ``ar`` and ``r`` (:func:`read_signature`, one ID bit).
    bus : Out(AXI4Signature(addr_width, bus_width, id_width=BUS_ID_WIDTH))
        The shared master port.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        self._config = config
        super().__init__({
            "dma": In(axi_signature(config)),
            "fetch": In(read_signature(config)),
            "bus": Out(AXI4Signature(addr_width=config.addr_width, data_width=config.bus_width,
                                     id_width=BUS_ID_WIDTH)),
        })

    def elaborate(self, platform):
        m = Module()
        dma, fetch, bus = self.dma, self.fetch, self.bus

        # AR: pick one of the two, round-robin, into a skid buffer.
        m.submodules.ar_skid = ar_skid = SkidBuffer(bus.ar.signature)
        wiring.connect(m, ar_skid.o, wiring.flipped(bus.ar))
        fetch_next = Signal()  # the fetch wins if both ask
        grant = Signal()  # high: the fetch's AR is the one offered
        m.d.comb += grant.eq(fetch.ar.valid & (fetch_next | ~dma.ar.valid))
        chosen = ar_skid.i
        with m.If(grant):
            m.d.comb += [getattr(chosen, f).eq(getattr(fetch.ar, f)) for f in _ADDRESS_FIELDS]
            m.d.comb += chosen.id.eq(Cat(fetch.ar.id, Const(SOURCE_FETCH, 1)))
        with m.Else():
            m.d.comb += [getattr(chosen, f).eq(getattr(dma.ar, f)) for f in _ADDRESS_FIELDS]
            m.d.comb += chosen.id.eq(Cat(dma.ar.id, Const(SOURCE_DMA, 1)))
        m.d.comb += [
            chosen.valid.eq(dma.ar.valid | fetch.ar.valid),
            dma.ar.ready.eq(ar_skid.i.ready & ~grant),
            fetch.ar.ready.eq(ar_skid.i.ready & grant),
        ]
        with m.If(chosen.valid & chosen.ready):
            m.d.sync += fetch_next.eq(~grant)

        # R: steered by the source bit, with nothing held.
        to_fetch = bus.r.id[-1]
        for port, mine in ((dma.r, ~to_fetch), (fetch.r, to_fetch)):
            m.d.comb += [
                port.valid.eq(bus.r.valid & mine),
                port.id.eq(bus.r.id[:-1]),
                port.data.eq(bus.r.data),
                port.resp.eq(bus.r.resp),
                port.last.eq(bus.r.last),
            ]
        with m.If(to_fetch):
            m.d.comb += bus.r.ready.eq(fetch.r.ready)
        with m.Else():
            m.d.comb += bus.r.ready.eq(dma.r.ready)

        # AW, W, B: the DMA's alone.
        m.d.comb += [getattr(bus.aw, f).eq(getattr(dma.aw, f)) for f in _ADDRESS_FIELDS]
        m.d.comb += [
            bus.aw.valid.eq(dma.aw.valid),
            bus.aw.id.eq(Cat(dma.aw.id, Const(SOURCE_DMA, 1))),
            dma.aw.ready.eq(bus.aw.ready),
        ]
        wiring.connect(m, wiring.flipped(dma.w), wiring.flipped(bus.w))
        m.d.comb += [
            dma.b.valid.eq(bus.b.valid),
            dma.b.id.eq(bus.b.id[:-1]),
            dma.b.resp.eq(bus.b.resp),
            bus.b.ready.eq(dma.b.ready),
        ]
        return m
