"""The host bridge: the board's end of the host link of :mod:`jalapeno.runtime.link`. Requests
framed on a UART become CSR accesses on an AXI4-Lite master and byte accesses on the board
memory's host port, and each is answered on the UART."""

import functools
import operator

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from jalapeno.runtime.link import CSR_BYTES, IDLE_BYTES, MAX_BURST, SYNC, Command, Status, crc16
from rtl.bus.axi import AXI4LiteSignature, Resp
from rtl.config import JalapenoConfig
from rtl.core.csr import BUS_ADDR_WIDTH
from rtl.dma.descriptor import check_config

from .memory import HostPortSignature
from .uart import BITS_PER_BYTE, UartRx, UartTx, check_divisor

__all__ = ["HostBridge", "header_layout", "crc16_step"]

#: A request after its ``SYNC``, bytes in the order they arrive: ``last`` is the byte count
#: less one.
header_layout = data.StructLayout({"command": 8, "tag": 8, "addr": 32, "last": 16})


def crc16_step(crc, byte):
    """The value of :func:`jalapeno.runtime.link.crc16` after one more ``byte``, from ``crc``.

    The step is linear in the bits of ``crc`` and ``byte``, so each bit of the result is the
    XOR of the input bits whose unit vectors set it under :func:`~jalapeno.runtime.link.crc16`
    itself: one flat XOR per bit, with no chain of eight bit steps.

    Parameters
    ----------
    crc : Value
        16 bits.
    byte : Value
        8 bits.

    Returns
    -------
    Value
        16 bits.
    """
    columns = ([(crc[i], crc16(b"\0", 1 << i)) for i in range(16)]
               + [(byte[i], crc16(bytes([1 << i]), 0)) for i in range(8)])
    return Cat(functools.reduce(operator.xor, [bit for bit, column in columns
                                               if column >> j & 1], Const(0, 1))
               for j in range(16))


def _check_memory_bytes(memory_bytes, bus_bytes):
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int):
        raise TypeError(f"memory_bytes must be an integer, not {memory_bytes!r}")
    if not bus_bytes <= memory_bytes <= 1 << 32 or memory_bytes & (memory_bytes - 1):
        raise ValueError(f"memory_bytes must be a power of two from {bus_bytes} to 2**32, not "
                         f"{memory_bytes}")


class HostBridge(wiring.Component):
    """Answers the requests of :mod:`jalapeno.runtime.link` arriving on ``rx``, on ``tx``.

    **Receiving.** The bridge hunts for ``SYNC``, then takes the eight header bytes. A header
    it cannot act on is dropped with the rest of its frame, unanswered: an unknown command, a
    CSR access that does not move 4 bytes at a multiple of 4 (the only ones
    :func:`~jalapeno.runtime.link.request` makes), or a memory count above
    :data:`~jalapeno.runtime.link.MAX_BURST`. A write's payload goes into a buffer of
    :data:`~jalapeno.runtime.link.MAX_BURST` bytes (one block RAM); a frame whose CRC fails
    is answered ``BAD_CRC`` and nothing else is done. From ``SYNC`` until the CRC, and while
    a dropped frame goes by, :attr:`idle_cycles` without a byte end the frame and the bridge
    hunts for ``SYNC`` again. A dropped header, a failed CRC and such a timeout (of a frame
    not already dropped) each pulse ``error``. A byte the UART drops for a framing error is
    simply missing, so its frame fails the CRC or times out. Bytes that arrive while a request
    is executed or answered are ignored: the host sends the next request only after the
    response.

    **Executing.** A memory range reaching past ``memory_bytes`` and a CSR address from
    ``2**BUS_ADDR_WIDTH`` up are answered ``BUS_ERROR`` without an access. A CSR read or write
    is one AXI4-Lite access (``prot`` 0, all four strobes; ``aw`` and ``w`` offered together);
    any response but ``OKAY`` is answered ``BUS_ERROR``. A memory write goes word by word, the
    bytes of each word that the range covers set in ``wstrb`` and written at once; a memory
    read reads each word once, as its bytes are sent, so its response streams out while the
    reads are done.

    **Retries.** The bridge keeps the tag of the last request it executed or answered
    ``BUS_ERROR`` (not one answered ``BAD_CRC``, nor a dropped one) and whether that was a
    write answered ``OK``. A write with that same tag that follows such a write is answered
    ``OK`` and not executed again. A write answered ``BUS_ERROR`` is executed again when
    repeated, and answers ``BUS_ERROR`` again unless the slave has changed its mind.

    **Size.** The bridge is built to sit beside the core on an iCE40UP5K and to run at
    100 MHz on an ECP5: the buffer is a memory with a synchronous read port, read at the
    address the byte counter takes at the coming edge; one registered CRC with one flat XOR
    network (:func:`crc16_step`) serves the request and then the response; a memory word
    passes through one shift register, so no multiplexer selects a lane; and the idle timer
    is tested by its sign bit.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point: ``bus_width`` is the width of a memory word.
    divisor : int
        Clock cycles per UART bit, at least 4.
    memory_bytes : int
        Bytes of the memory on ``mem``, from byte address 0: a power of two from ``bus_bytes``
        to ``2**32``.

    Attributes
    ----------
    rx : In(1)
        The UART line from the host, asynchronous; idle high.
    tx : Out(1)
        The UART line to the host; idle high.
    csr : Out(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=32))
        The master port to the core's CSRs.
    mem : Out(HostPortSignature(addr_width=log2(memory_bytes / bus_bytes), data_width=bus_width))
        The memory's host port; ``addr`` is a word address.
    active : Out(1)
        From ``SYNC`` until the last byte of the response goes to the UART, or the frame is
        dropped.
    error : Out(1)
        High for one cycle when a frame is dropped or fails its CRC.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`, or ``divisor`` or ``memory_bytes`` not
        an integer.
    ValueError
        If ``divisor`` is below 4, or ``memory_bytes`` not a power of two in its range.
    """

    def __init__(self, config: JalapenoConfig, *, divisor: int, memory_bytes: int):
        check_config(config)
        check_divisor(divisor)
        _check_memory_bytes(memory_bytes, config.bus_bytes)
        self._config, self._divisor, self._memory_bytes = config, divisor, memory_bytes
        super().__init__({
            "rx": In(1),
            "tx": Out(1),
            "csr": Out(AXI4LiteSignature(addr_width=BUS_ADDR_WIDTH, data_width=32)),
            "mem": Out(HostPortSignature(
                addr_width=exact_log2(memory_bytes // config.bus_bytes),
                data_width=config.bus_width)),
            "active": Out(1),
            "error": Out(1),
        })

    @property
    def idle_cycles(self):
        """Cycles without a byte that end a frame: :data:`~jalapeno.runtime.link.IDLE_BYTES`
        byte times."""
        return IDLE_BYTES * BITS_PER_BYTE * self._divisor

    def elaborate(self, platform):
        m = Module()
        lanes = self._config.bus_bytes
        lane_bits = exact_log2(lanes)
        mem_bits = exact_log2(self._memory_bytes)

        m.submodules.uart_rx = uart_rx = UartRx(divisor=self._divisor)
        m.submodules.uart_tx = uart_tx = UartTx(divisor=self._divisor)
        m.d.comb += [uart_rx.rx.eq(self.rx), self.tx.eq(uart_tx.tx)]
        got, byte = uart_rx.o.valid, uart_rx.o.payload
        send = uart_tx.i

        m.submodules.buffer = buffer = memory.Memory(shape=8, depth=MAX_BURST, init=[])
        buffer_w = buffer.write_port()
        buffer_r = buffer.read_port()

        header = Signal(header_layout)
        tag, addr, last = header.tag, header.addr, header.last[:8]
        word_addr = addr[lane_bits:mem_bits]  # counts the words of a memory access
        writes = Signal()  # of the request: CSR_WRITE or MEM_WRITE
        to_memory = Signal()  # MEM_READ or MEM_WRITE
        far = Signal()  # the access lies outside the memory or the CSR space
        status = Signal(Status)

        # The CRC of the request as it arrives, then of the response as it goes.
        crc = Signal(16)
        crc_in = Signal(8)
        crc_next = crc16_step(crc, crc_in)
        crc_low_ok = Signal()
        m.d.comb += crc_in.eq(byte)

        # Bytes of the header, the payload or the access so far. The buffer is read at the
        # address index takes at the coming edge, so its data is that of index in every cycle.
        index = Signal(8)
        index_next = Signal(8)
        at_last = index == last
        m.d.comb += [
            index_next.eq(index),
            buffer_r.addr.eq(index_next),
            buffer_w.addr.eq(index),
            buffer_w.data.eq(byte),
        ]
        m.d.sync += index.eq(index_next)

        # A word of memory on its way: bytes shift in at the top and out at the bottom, so
        # neither side needs a multiplexer over the lanes.
        word = Signal(self._config.bus_width)
        strobes = Signal(lanes)
        lane = Signal(range(lanes))
        skip = Signal(range(lanes))  # lanes before the first byte of the range
        more = Signal()  # bytes of the range remain
        in_range = (skip == 0) & more
        emit = in_range & ~writes  # the byte at the bottom of word is sent

        mem, csr = self.mem, self.csr
        m.d.comb += [
            mem.addr.eq(word_addr),
            mem.write.eq(writes),
            mem.wdata.eq(word),
            mem.wstrb.eq(strobes),
            csr.aw.addr.eq(addr[:BUS_ADDR_WIDTH]),
            csr.ar.addr.eq(addr[:BUS_ADDR_WIDTH]),
            csr.w.data.eq(word[:32]),
            csr.w.strb.eq(0b1111),
        ]

        last_tag = Signal(8)
        last_write = Signal()  # the request of last_tag was a write answered OK
        aw_done, w_done = Signal(), Signal()

        # Counts down from each byte received; negative once the line has been quiet for
        # idle_cycles, so that the test is one bit.
        idle = Signal(range(-1, self.idle_cycles - 1), init=-1)
        quiet = idle < 0
        with m.If(got):
            m.d.sync += idle.eq(self.idle_cycles - 2)
        with m.Elif(~quiet):
            m.d.sync += idle.eq(idle - 1)

        m.d.sync += self.error.eq(0)

        def drop(*, report=True):
            """End the frame: the line went quiet in it."""
            m.next = "HUNT"
            if report:
                m.d.sync += self.error.eq(1)

        def sent(value):
            """Offer ``value`` on ``send``; true at the edge it is taken."""
            m.d.comb += [send.valid.eq(1), send.payload.eq(value), crc_in.eq(value)]
            return send.ready

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(got & (byte == SYNC)):
                    m.d.sync += crc.eq(0xFFFF)
                    m.d.comb += index_next.eq(0)
                    m.next = "HEADER"

            with m.State("HEADER"):
                with m.If(quiet):
                    drop()
                with m.Elif(got):
                    m.d.sync += [header.eq(Cat(header.as_value()[8:], byte)), crc.eq(crc_next)]
                    m.d.comb += index_next.eq(index + 1)
                    with m.If(index == header_layout.size // 8 - 1):
                        m.next = "CHECK"

            with m.State("CHECK"):
                command = header.command
                memory_access = (command == Command.MEM_READ) | (command == Command.MEM_WRITE)
                request_writes = (command == Command.CSR_WRITE) | (command == Command.MEM_WRITE)
                known = (command >= min(Command)) & (command <= max(Command))
                csr_fits = (header.last == CSR_BYTES - 1) & (addr[:exact_log2(CSR_BYTES)] == 0)
                fits = Mux(memory_access, header.last < MAX_BURST, csr_fits)
                end = addr[:mem_bits] + last
                far_memory = (addr[mem_bits:] != 0) | (end[mem_bits:] != 0)
                m.d.sync += [
                    writes.eq(request_writes),
                    to_memory.eq(memory_access),
                    far.eq(Mux(memory_access, far_memory, addr[BUS_ADDR_WIDTH:] != 0)),
                ]
                m.d.comb += index_next.eq(0)
                with m.If(~known | ~fits):
                    m.d.sync += self.error.eq(1)
                    m.next = "DISCARD"
                with m.Elif(request_writes):
                    m.next = "PAYLOAD"
                with m.Else():
                    m.next = "CRC_LOW"

            with m.State("PAYLOAD"):
                with m.If(quiet):
                    drop()
                with m.Elif(got):
                    m.d.comb += [buffer_w.en.eq(1), index_next.eq(index + 1)]
                    m.d.sync += crc.eq(crc_next)
                    with m.If(at_last):
                        m.next = "CRC_LOW"

            with m.State("CRC_LOW"):
                with m.If(quiet):
                    drop()
                with m.Elif(got):
                    m.d.sync += crc_low_ok.eq(byte == crc[:8])
                    m.next = "CRC_HIGH"

            with m.State("CRC_HIGH"):
                with m.If(quiet):
                    drop()
                with m.Elif(got):
                    with m.If(crc_low_ok & (byte == crc[8:])):
                        m.next = "EXECUTE"
                    with m.Else():
                        m.d.sync += [status.eq(Status.BAD_CRC), self.error.eq(1)]
                        m.next = "SEND_SYNC"

            with m.State("DISCARD"):
                with m.If(quiet):
                    drop(report=False)

            with m.State("EXECUTE"):
                m.d.comb += index_next.eq(0)
                m.d.sync += [status.eq(Status.OK), lane.eq(0), more.eq(1), skip.eq(0)]
                with m.If(to_memory):
                    m.d.sync += skip.eq(addr[:lane_bits])
                with m.If(writes & last_write & (tag == last_tag)):
                    m.next = "SEND_SYNC"
                with m.Elif(far):
                    m.d.sync += status.eq(Status.BUS_ERROR)
                    m.next = "SEND_SYNC"
                with m.Elif(writes):
                    m.next = "STEP"
                with m.Elif(to_memory):
                    m.next = "SEND_SYNC"
                with m.Else():
                    m.next = "CSR_READ"

            # One lane of the word: a byte of the range taken from the buffer or sent, or a
            # lane outside the range passed over.
            with m.State("STEP"):
                m.d.comb += [send.valid.eq(emit), send.payload.eq(word[:8]), crc_in.eq(word[:8])]
                with m.If(~emit | send.ready):
                    m.d.sync += [
                        word.eq(Cat(word[8:], buffer_r.data)),
                        strobes.eq(Cat(strobes[1:], in_range)),
                        lane.eq(lane + 1),
                    ]
                    with m.If(skip != 0):
                        m.d.sync += skip.eq(skip - 1)
                    with m.Elif(more):
                        m.d.comb += index_next.eq(index + 1)
                        with m.If(at_last):
                            m.d.sync += more.eq(0)
                    with m.If(emit):
                        m.d.sync += crc.eq(crc_next)
                    with m.If(emit & at_last):
                        m.next = "SEND_CRC_LOW"
                    with m.Elif(lane == lanes - 1):
                        with m.If(~writes):
                            m.next = "FETCH"
                        with m.Elif(to_memory):
                            m.next = "STORE"
                        with m.Else():
                            m.next = "CSR_WRITE"

            with m.State("FETCH"):
                m.d.comb += mem.valid.eq(1)
                with m.If(mem.ready):
                    m.d.sync += word_addr.eq(word_addr + 1)
                    m.next = "LOAD"

            with m.State("LOAD"):
                with m.If(mem.rvalid):
                    m.d.sync += word.eq(mem.rdata)
                    m.next = "STEP"

            with m.State("STORE"):
                m.d.comb += mem.valid.eq(1)
                with m.If(mem.ready):
                    m.d.sync += word_addr.eq(word_addr + 1)
                    with m.If(more):
                        m.next = "STEP"
                    with m.Else():
                        m.next = "SEND_SYNC"

            with m.State("CSR_READ"):
                m.d.comb += csr.ar.valid.eq(1)
                with m.If(csr.ar.ready):
                    m.next = "CSR_R"

            with m.State("CSR_R"):
                m.d.comb += csr.r.ready.eq(1)
                with m.If(csr.r.valid):
                    m.d.sync += word[:32].eq(csr.r.data)
                    with m.If(csr.r.resp != Resp.OKAY):
                        m.d.sync += status.eq(Status.BUS_ERROR)
                    m.next = "SEND_SYNC"

            with m.State("CSR_WRITE"):
                m.d.comb += [csr.aw.valid.eq(~aw_done), csr.w.valid.eq(~w_done)]
                with m.If(csr.aw.ready):
                    m.d.sync += aw_done.eq(1)
                with m.If(csr.w.ready):
                    m.d.sync += w_done.eq(1)
                with m.If((aw_done | csr.aw.ready) & (w_done | csr.w.ready)):
                    m.d.sync += [aw_done.eq(0), w_done.eq(0)]
                    m.next = "CSR_B"

            with m.State("CSR_B"):
                m.d.comb += csr.b.ready.eq(1)
                with m.If(csr.b.valid):
                    with m.If(csr.b.resp != Resp.OKAY):
                        m.d.sync += status.eq(Status.BUS_ERROR)
                    m.next = "SEND_SYNC"

            with m.State("SEND_SYNC"):
                with m.If(sent(SYNC)):
                    m.d.sync += crc.eq(0xFFFF)
                    with m.If(status != Status.BAD_CRC):
                        m.d.sync += [last_tag.eq(tag),
                                     last_write.eq(writes & (status == Status.OK))]
                    m.next = "SEND_STATUS"

            with m.State("SEND_STATUS"):
                with m.If(sent(status)):
                    m.d.sync += crc.eq(crc_next)
                    m.next = "SEND_TAG"

            with m.State("SEND_TAG"):
                with m.If(sent(tag)):
                    m.d.sync += crc.eq(crc_next)
                    with m.If((status != Status.OK) | writes):
                        m.next = "SEND_CRC_LOW"
                    with m.Elif(to_memory):
                        m.next = "FETCH"
                    with m.Else():
                        m.next = "STEP"

            with m.State("SEND_CRC_LOW"):
                with m.If(sent(crc[:8])):
                    m.next = "SEND_CRC_HIGH"

            with m.State("SEND_CRC_HIGH"):
                with m.If(sent(crc[8:])):
                    m.next = "HUNT"

        m.d.comb += self.active.eq(~fsm.ongoing("HUNT"))
        return m
