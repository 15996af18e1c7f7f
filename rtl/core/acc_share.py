"""One accumulator read port shared by the scratchpad's DMA path and the vector executor."""

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.dma.descriptor import check_config

__all__ = ["AccReadShare"]


class AccReadShare(wiring.Component):
    """Lets two readers share the matrix unit's accumulator read port (``read`` and
    ``read_data``): the scratchpad, for STOREs from the accumulator memory, and the vector
    executor, for REQUANTIZE's sources.

    Requests: a two-way round-robin. While both ``dma`` and ``vector`` are valid they are
    taken in turn, one request per handshake; while only one is, it is taken whenever the
    port can take it. Each request taken puts its reader's number into an order queue.

    Responses come back in request order (the port's own rule), so the head of the order queue
    says whose each one is: it goes to that reader, and waits for that reader alone. A
    reader that takes its responses only when it has asked for them with room to hold them
    (the vector executor) never holds up the other one for long; the scratchpad's may wait for
    the DMA's bus, as they would without the vector executor.

    The order queue has :attr:`depth` entries, ``read_fifo_depth + 1``: the accumulator never
    has more than ``read_fifo_depth`` reads in flight, so it never fills and costs no cycle.
    A request is offered to the port only while it has room, so a full one could never lose
    a response either.

    Parameters
    ----------
    config : :class:`JalapenoConfig`

    Attributes
    ----------
    dma, vector : In(stream.Signature(acc_addr_width))
        The readers' row requests.
    dma_data, vector_data : Out(stream.Signature(ArrayLayout(signed(32), cols)))
        Their rows, in the order each asked.
    read : Out(stream.Signature(acc_addr_width))
    read_data : In(stream.Signature(ArrayLayout(signed(32), cols)))
        The matrix unit's read port.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    def __init__(self, config):
        check_config(config)
        self._config = config
        self.depth = config.read_fifo_depth + 1
        row = data.ArrayLayout(signed(config.acc_width), config.cols)
        addr = config.acc_addr_width
        super().__init__({
            "dma": In(stream.Signature(addr)),
            "dma_data": Out(stream.Signature(row)),
            "vector": In(stream.Signature(addr)),
            "vector_data": Out(stream.Signature(row)),
            "read": Out(stream.Signature(addr)),
            "read_data": In(stream.Signature(row)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.order = order = fifo.SyncFIFO(width=1, depth=self.depth)

        # Round-robin: the reader not taken last wins a tie.
        vector_last = Signal()
        pick_vector = self.vector.valid & (~self.dma.valid | ~vector_last)
        taken = self.read.valid & self.read.ready
        m.d.comb += [
            self.read.valid.eq((self.dma.valid | self.vector.valid) & order.w_rdy),
            self.read.payload.eq(Mux(pick_vector, self.vector.payload, self.dma.payload)),
            self.dma.ready.eq(self.read.ready & order.w_rdy & ~pick_vector),
            self.vector.ready.eq(self.read.ready & order.w_rdy & pick_vector),
            order.w_en.eq(taken),
            order.w_data.eq(pick_vector),
        ]
        with m.If(taken):
            m.d.sync += vector_last.eq(pick_vector)

        # Responses to whoever asked first.
        to_vector = order.r_data[0]
        valid = self.read_data.valid & order.r_rdy
        m.d.comb += [
            self.dma_data.valid.eq(valid & ~to_vector),
            self.vector_data.valid.eq(valid & to_vector),
            self.dma_data.payload.eq(self.read_data.payload),
            self.vector_data.payload.eq(self.read_data.payload),
            self.read_data.ready.eq(order.r_rdy & Mux(to_vector, self.vector_data.ready,
                                                      self.dma_data.ready)),
            order.r_en.eq(self.read_data.valid & self.read_data.ready),
        ]
        return m
