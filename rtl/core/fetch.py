"""The instruction fetcher: reads a program from external memory, one AXI4 burst per
instruction, and hands the words to the decoder in program order."""

from amaranth import Cat, Const, Module, Signal, unsigned
from amaranth.hdl import ResetInserter
from amaranth.lib import data, enum, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from jalapeno.isa import INSTRUCTION_BITS, INSTRUCTION_BYTES

from ..bus.arbiter import read_signature
from ..bus.axi import Burst, Resp
from ..dma.descriptor import beat_shift, check_config
from ..dma.read_engine import AXI_CACHE, AXI_PROT

__all__ = ["Fetch", "FetchKind", "fetched_layout"]

#: Low address bits of an instruction, always zero: the program base is taken as aligned.
_ALIGN = INSTRUCTION_BYTES.bit_length() - 1


class FetchKind(enum.Enum, shape=2):
    """What one beat of :attr:`Fetch.instr` is."""

    #: A fetched instruction, ``word``, at ``addr``.
    WORD = 0
    #: The instruction at ``addr`` could not be fetched: it is not wholly inside the window,
    #: or a beat of its burst answered other than ``OKAY``. Nothing follows it.
    FAULT = 1
    #: The program's ``length`` was reached: ``addr`` is ``base + 32 * length``. It follows
    #: the last word; nothing follows it.
    OVERRUN = 2


def fetched_layout(config):
    """One beat of :attr:`Fetch.instr`: the instruction ``word`` (:data:`INSTRUCTION_BITS`,
    meaningful for ``WORD`` only), its byte ``addr`` and its ``kind``
    (:class:`FetchKind`).

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """
    check_config(config)
    return data.StructLayout({
        "word": unsigned(INSTRUCTION_BITS),
        "addr": unsigned(config.addr_width),
        "kind": FetchKind,
    })


class Fetch(wiring.Component):
    """Fetches the program of ``length`` instructions at ``base`` and delivers its words on
    ``instr`` in order, ending with a ``FAULT`` or an ``OVERRUN``.

    Each instruction is read by one ``INCR`` burst of :data:`INSTRUCTION_BYTES` bytes
    (``INSTRUCTION_BYTES / bus_bytes`` beats of ``AxSIZE = log2(bus_bytes)``, ID 0, ``AxCACHE``
    and ``AxPROT`` as the DMA's). ``base`` is taken with its low five bits cleared (the
    ``PROGRAM_BASE`` CSR cannot hold them), so no burst crosses 4 KiB.

    Up to :attr:`OUTSTANDING` instructions are held at once, counted from the edge their AR is
    committed until their word is taken on ``instr``: bursts in flight plus words waiting in
    a result buffer of as many entries. A burst is issued only while that count is below
    :attr:`OUTSTANDING`, so its data always has room; ``r.ready`` is therefore always high and
    no R beat ever waits. With ``instr`` always ready and a slave that answers at once, the
    AR of an instruction goes out while the bursts before it are still returning, so words
    come one per ``INSTRUCTION_BYTES / bus_bytes`` cycles, the rate of the R channel.

    Before its AR is issued, each instruction is checked against the window as it is at
    that cycle: it must lie wholly inside ``[window_base, window_limit)``. The first that
    does not is never read; it becomes the ``FAULT`` that follows the words before it. A beat
    answering ``SLVERR``, ``DECERR`` (or ``EXOKAY``) makes its instruction the ``FAULT``
    instead: no more ARs are issued, and that burst's and any later burst's beats are taken
    and dropped. A ``FAULT`` or ``OVERRUN`` is offered only once no burst is in flight and
    every word before it has been taken; its ``addr`` is the address of the next word that
    would have been delivered, so a fault's is its instruction's and an overrun's is
    ``base + 32 * length`` (both modulo ``2**addr_width``). Once it is taken the fetcher is
    idle until the next ``start``.

    ``stop`` abandons the program at once: no AR is committed from that cycle on (an AR
    already offered on ``ar`` stays offered until taken, as AXI requires), the result
    buffer and any pending ``FAULT``/``OVERRUN`` are dropped (``instr.valid`` falls at that
    edge, the one place it falls untaken), and the beats of bursts still in flight are taken
    and dropped. ``busy`` falls when the last of them has arrived.

    Parameters
    ----------
    config : :class:`JalapenoConfig`
        Design point (``addr_width``, ``bus_width``).

    Attributes
    ----------
    start : In(1)
        While not ``busy`` and not ``stop``: take ``base`` and ``length`` and begin. Ignored
        while ``busy``.
    base : In(addr_width)
        Byte address of the first instruction; the low five bits are ignored.
    length : In(32)
        Instructions in the program; zero gives an ``OVERRUN`` at ``base`` at once.
    window_base : In(addr_width), window_limit : In(addr_width + 1)
        Every byte fetched is in ``[window_base, window_limit)``.
    stop : In(1)
        Abandon the program (see above).
    busy : Out(1)
        A program is running, a burst in flight or a beat of ``instr`` waiting.
    ar : Out(AXI4 AR channel), r : In(AXI4 R channel)
        Of :func:`~rtl.bus.arbiter.read_signature` (one ID bit, always 0).
    instr : Out(stream.Signature(fetched_layout(config)))
        The words in program order, then one ``FAULT`` or ``OVERRUN``.

    Raises
    ------
    TypeError
        If ``config`` is not a :class:`JalapenoConfig`.
    """

    #: Instructions held at most: bursts in flight plus words not yet taken on ``instr``.
    OUTSTANDING = 4

    def __init__(self, config):
        check_config(config)
        self._config = config
        axi = read_signature(config)
        super().__init__({
            "start": In(1),
            "base": In(config.addr_width),
            "length": In(32),
            "window_base": In(config.addr_width),
            "window_limit": In(config.addr_width + 1),
            "stop": In(1),
            "busy": Out(1),
            "ar": axi.members["ar"],
            "r": axi.members["r"],
            "instr": Out(stream.Signature(fetched_layout(config))),
        })

    @property
    def beats(self):
        """R beats per instruction."""
        return INSTRUCTION_BYTES // self._config.bus_bytes

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        aw, beats, depth = cfg.addr_width, self.beats, self.OUTSTANDING

        m.submodules.words = words = ResetInserter(self.stop)(
            fifo.SyncFIFO(width=INSTRUCTION_BITS, depth=depth))

        running = Signal()  # instructions may still be issued
        ending = Signal()  # a FAULT or OVERRUN is to follow the words
        kind = Signal(FetchKind)  # which
        dropping = Signal()  # R beats are taken and thrown away
        issue_addr = Signal(aw + 1)  # next to issue; one more bit so it cannot wrap
        remaining = Signal(32)  # instructions not yet issued
        out_addr = Signal(aw)  # of the next beat on instr
        in_flight = Signal(range(depth + 1))
        beat = Signal(range(beats))
        held = Signal(INSTRUCTION_BITS - cfg.bus_width)  # the beats so far, the last on top

        # R: always ready, since every burst in flight has its place in the buffer.
        r = self.r
        bad = r.valid & (r.resp != Resp.OKAY)
        burst_done = r.valid & (beat == beats - 1)
        m.d.comb += [
            r.ready.eq(1),
            words.w_data.eq(Cat(held, r.data)),
            words.w_en.eq(burst_done & ~bad & ~dropping),
        ]
        with m.If(r.valid):
            m.d.sync += [
                held.eq(Cat(held, r.data)[cfg.bus_width:]),
                beat.eq(beat + 1),
            ]
            with m.If(burst_done):
                m.d.sync += beat.eq(0)

        # AR: a register offering one burst, loaded whenever it is empty or being taken.
        inside = ((issue_addr >= self.window_base) &
                  (issue_addr + INSTRUCTION_BYTES <= self.window_limit))
        room = in_flight + words.level < depth
        issue = (running & (remaining != 0) & inside & room & ~self.stop
                 & ~(bad & ~dropping))
        load = ~self.ar.valid | self.ar.ready
        commit = load & issue
        m.d.comb += [
            self.ar.id.eq(0),
            self.ar.len.eq(beats - 1),
            self.ar.size.eq(beat_shift(cfg)),
            self.ar.burst.eq(Burst.INCR),
            self.ar.lock.eq(0),
            self.ar.cache.eq(AXI_CACHE),
            self.ar.prot.eq(AXI_PROT),
        ]
        with m.If(load):
            m.d.sync += self.ar.valid.eq(issue)
            m.d.sync += self.ar.addr.eq(issue_addr[:aw])
        with m.If(commit):
            m.d.sync += [
                issue_addr.eq(issue_addr + INSTRUCTION_BYTES),
                remaining.eq(remaining - 1),
            ]

        in_flight_next = Signal.like(in_flight)
        m.d.comb += in_flight_next.eq(in_flight + commit - burst_done)
        m.d.sync += in_flight.eq(in_flight_next)

        # instr: the buffered words, then the FAULT or OVERRUN once nothing is left before it.
        final = ending & (in_flight == 0) & ~words.r_rdy
        instr = self.instr
        m.d.comb += [
            instr.valid.eq(words.r_rdy | final),
            instr.payload.word.eq(words.r_data),
            instr.payload.addr.eq(out_addr),
            instr.payload.kind.eq(FetchKind.WORD),
            words.r_en.eq(instr.ready),
        ]
        with m.If(~words.r_rdy):
            m.d.comb += instr.payload.kind.eq(kind)
        with m.If(instr.ready & words.r_rdy):
            m.d.sync += out_addr.eq(out_addr + INSTRUCTION_BYTES)
        with m.If(instr.ready & final):
            m.d.sync += ending.eq(0)

        busy = running | ending | (in_flight != 0) | words.r_rdy
        m.d.comb += self.busy.eq(busy)

        # How a program ends; later statements take precedence.
        def end(how):
            return [running.eq(0), ending.eq(1), kind.eq(how)]

        with m.If(running):
            with m.If(remaining == 0):
                m.d.sync += end(FetchKind.OVERRUN)
            with m.Elif(~inside):
                m.d.sync += end(FetchKind.FAULT)
        with m.If(bad & ~dropping):
            # An earlier instruction than any the issue side could be ending on.
            m.d.sync += end(FetchKind.FAULT)
        with m.If(in_flight_next == 0):
            m.d.sync += dropping.eq(0)
        with m.Elif((bad & ~dropping) | self.stop):
            m.d.sync += dropping.eq(1)
        with m.If(self.stop):
            m.d.sync += [running.eq(0), ending.eq(0)]
        with m.Elif(self.start & ~busy):
            first = Cat(Const(0, _ALIGN), self.base[_ALIGN:])
            m.d.sync += [
                running.eq(1),
                issue_addr.eq(first),
                out_addr.eq(first),
                remaining.eq(self.length),
            ]
        return m
