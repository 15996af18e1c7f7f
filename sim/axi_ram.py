"""An AXI4 slave RAM in Amaranth, with read latency, random stalls and error regions.

The memory model the DMA engine is verified against in the Amaranth simulator, and the one a
fast system simulation puts behind the DMA's master. The rules for which response a burst
gets live in :func:`burst_response`, shared with the cocotb model
(:mod:`verification.axi_ram`), so the two models and their tests agree on them.
"""

import random
from collections.abc import Mapping

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In
from amaranth.utils import exact_log2

from rtl.bus.axi import BURST_BOUNDARY, AXI4Signature, Burst, Resp

__all__ = ["AXIRam", "CHANNELS", "QUEUE_DEPTH", "W_BUFFER_DEPTH", "MIN_SIZE", "MAX_SIZE",
           "MAX_READ_LATENCY", "burst_response", "stall_fractions", "check_ranges"]

#: The AXI4 channels, in the order of the signature.
CHANNELS = ("aw", "w", "b", "ar", "r")
#: Bursts (AR or AW) the RAM accepts ahead of the one it is working on, and B responses it holds.
QUEUE_DEPTH = 8
#: W beats the RAM accepts before the AW they belong to.
W_BUFFER_DEPTH = 16
#: Smallest and largest memory, in bytes.
MIN_SIZE, MAX_SIZE = 256, 1 << 24
#: Largest ``read_latency``.
MAX_READ_LATENCY = 64


def burst_response(addr, length, size, burst, *, bytes_per_beat, memory_size, slverr=(),
                   decerr=()):
    """The response both RAM models give a burst, from its AW or AR fields.

    The burst covers the bytes from ``addr`` up to the end of its last beat, which is
    ``length + 1`` beats of ``bytes_per_beat`` on from ``addr`` rounded down to a beat.

    * ``DECERR`` if it reaches ``memory_size`` (or past the end of the address space), or
      touches a ``decerr`` range;
    * otherwise ``SLVERR`` if it touches a ``slverr`` range, is not an ``INCR`` burst, has an
      ``AxSIZE`` other than ``log2(bytes_per_beat)``, or crosses a multiple of
      :data:`~rtl.bus.axi.BURST_BOUNDARY` (which AXI4 forbids);
    * otherwise ``OKAY``.

    Parameters
    ----------
    addr, length, size, burst : int
        ``AxADDR``, ``AxLEN``, ``AxSIZE`` and ``AxBURST`` (a :class:`~rtl.bus.axi.Burst` or its
        value).
    bytes_per_beat : int
    memory_size : int
    slverr, decerr : iterable of (lo, hi)
        Byte ranges ``[lo, hi)``.

    Returns
    -------
    :class:`~rtl.bus.axi.Resp`
    """
    shift = exact_log2(bytes_per_beat)
    end = (addr >> shift << shift) + ((length + 1) << shift)

    def touches(ranges):
        return any(addr < hi and end > lo for lo, hi in ranges)

    if end > memory_size or touches(decerr):
        return Resp.DECERR
    if (int(getattr(burst, "value", burst)) != Burst.INCR.value or size != shift
            or touches(slverr) or addr // BURST_BOUNDARY != (end - 1) // BURST_BOUNDARY):
        return Resp.SLVERR
    return Resp.OKAY


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def check_ranges(name, ranges, limit):
    """``ranges`` as a list of ``(lo, hi)`` pairs with ``0 <= lo < hi <= limit``.

    Raises
    ------
    TypeError, ValueError
        If ``ranges`` is not iterable, or a pair is malformed or out of bounds.
    """
    try:
        pairs = [tuple(pair) for pair in ranges]
    except TypeError:
        raise TypeError(f"{name} must be a list of (lo, hi) pairs, not {ranges!r}") from None
    for pair in pairs:
        if not (len(pair) == 2 and all(_is_int(v) for v in pair)
                and 0 <= pair[0] < pair[1] <= limit):
            raise ValueError(f"{name} ranges must be (lo, hi) pairs with "
                             f"0 <= lo < hi <= {limit}, not {pair!r}")
    return pairs


def stall_fractions(stall):
    """``stall`` (a fraction in ``[0, 1)`` or a dict of them by channel) as a dict with every
    channel of :data:`CHANNELS`.

    Raises
    ------
    ValueError
        If a fraction is not a number in ``[0, 1)`` or a key is not a channel.
    """

    def check(name, value):
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 <= value < 1:
            raise ValueError(f"{name} must be a number in [0, 1), not {value!r}")
        return float(value)

    if isinstance(stall, Mapping):
        for channel in stall:
            if channel not in CHANNELS:
                raise ValueError(f"stall has no channel {channel!r}; channels are "
                                 f"{', '.join(CHANNELS)}")
        return {channel: check(f"stall[{channel!r}]", stall.get(channel, 0.0))
                for channel in CHANNELS}
    value = check("stall", stall)
    return dict.fromkeys(CHANNELS, value)


class AXIRam(wiring.Component):
    """An AXI4 slave RAM of ``size`` bytes with a fixed read latency, seeded random stalls on
    every channel and address ranges that answer ``SLVERR`` or ``DECERR``.

    What it models
        * ``INCR`` bursts of 1 to 256 beats of the full bus width, from any start address
          (an unaligned start transfers whole beats from the beat holding it; the strobes say
          which bytes are written); ``w.strb`` honoured per byte.
        * Reads and writes independently of each other, each in the order accepted, whatever
          their IDs; ``b.id`` and ``r.id`` echo the burst's ID.
        * Up to :data:`QUEUE_DEPTH` ARs accepted while an earlier read burst is returning, and
          as many AWs ahead of their data; up to :data:`W_BUFFER_DEPTH` W beats accepted before
          their AW (AXI lets a slave wait for AW; this one does only once that buffer is full).
        * The B of a write once its last W beat is written, a cycle later at the earliest.
        * A read issued after a write's B sees that write.
        * Responses by :func:`burst_response`: a burst reaching ``size`` or touching a
          ``decerr`` range answers ``DECERR``; one touching a ``slverr`` range, crossing 4 KiB,
          of a ``FIXED`` or ``WRAP`` type or of a narrow (or too wide) ``AxSIZE`` answers
          ``SLVERR``: on every R beat of a read (with zero data), on the B of a write. Error
          writes leave memory unchanged. A write whose ``w.last`` is not on its beat
          ``AxLEN`` answers ``SLVERR``, its beats still written (the burst is counted by
          ``AxLEN``).

    What it does not model
        Reordering across IDs, interleaving, exclusive access (``lock`` is ignored, so an
        exclusive access gets ``OKAY``: failed, as AXI allows a slave without monitors),
        ``cache`` and ``prot``, narrow transfers, ``FIXED`` and ``WRAP`` bursts, and any
        ordering between a read and a write in flight together.

    Timing
        With ``stall`` 0 and the read path idle, the first R beat of a burst whose AR is taken
        at clock edge ``n`` is offered from edge ``n + read_latency`` on, so it can be taken at
        edge ``n + read_latency + 1``, and the next beats follow one per cycle. A stall on
        ``aw``, ``w`` or ``ar`` holds ``ready`` low for a cycle; on ``b`` or ``r`` it keeps
        the next response from being offered for a cycle (``valid``, once high, stays high
        until taken, as AXI requires).

    Parameters
    ----------
    addr_width, data_width, id_width : int
        Of :class:`~rtl.bus.axi.AXI4Signature` (checked there).
    size : int
        Bytes of memory, a power of two from :data:`MIN_SIZE` to :data:`MAX_SIZE` and at most
        ``2**addr_width``. Addresses from ``size`` on answer ``DECERR``.
    read_latency : int
        Extra cycles from an AR to its first R beat, 0 to :data:`MAX_READ_LATENCY` (see
        Timing).
    stall : float or dict
        Fraction of cycles, in ``[0, 1)``, each channel is stalled, or a dict of fractions by
        channel name (``"aw"``, ``"w"``, ``"b"``, ``"ar"``, ``"r"``; missing ones 0). Drawn in
        steps of 1/256 from one xorshift generator per channel.
    seed : int
        Seeds the stall generators.
    slverr, decerr : list of (lo, hi)
        Byte address ranges ``[lo, hi)`` that answer ``SLVERR`` and ``DECERR``.
    init : bytes
        Initial contents from address 0, at most ``size`` bytes; the rest is zero.

    Attributes
    ----------
    bus : In(AXI4Signature(addr_width=..., data_width=..., id_width=...))
        The slave port.
    data : :class:`amaranth.hdl.MemoryData`
        The memory, ``size // bytes_per_beat`` words of ``data_width`` bits, little-endian
        bytes; a testbench reads it with ``ctx.get(ram.data[word])`` (see :meth:`contents`).

    Raises
    ------
    TypeError, ValueError
        If a parameter has the wrong type or is out of its range (exact messages, tested).
    """

    def __init__(self, *, addr_width, data_width, id_width, size, read_latency=0, stall=0.0,
                 seed=0, slverr=(), decerr=(), init=b""):
        signature = AXI4Signature(addr_width=addr_width, data_width=data_width,
                                  id_width=id_width)
        if not _is_int(size):
            raise TypeError(f"size must be an integer, not {size!r}")
        largest = min(MAX_SIZE, 1 << addr_width)
        if not MIN_SIZE <= size <= largest or size & (size - 1):
            raise ValueError(f"size must be a power of two from {MIN_SIZE} to {largest}, "
                             f"not {size}")
        if not _is_int(read_latency):
            raise TypeError(f"read_latency must be an integer, not {read_latency!r}")
        if not 0 <= read_latency <= MAX_READ_LATENCY:
            raise ValueError(f"read_latency must be between 0 and {MAX_READ_LATENCY}, "
                             f"not {read_latency}")
        self.stall = stall_fractions(stall)
        if not _is_int(seed):
            raise TypeError(f"seed must be an integer, not {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, not {seed}")
        self.slverr = check_ranges("slverr", slverr, 1 << addr_width)
        self.decerr = check_ranges("decerr", decerr, 1 << addr_width)
        if isinstance(init, int | str):
            raise TypeError(f"init must be bytes, not {init!r}")
        try:
            init = bytes(init)
        except (TypeError, ValueError):
            raise TypeError(f"init must be bytes, not {init!r}") from None
        if len(init) > size:
            raise ValueError(f"init must be at most {size} bytes, not {len(init)}")

        self.size, self.read_latency, self.seed = size, read_latency, seed
        self.bytes_per_beat = signature.bytes_per_beat
        init = init.ljust(size, b"\0")
        step = self.bytes_per_beat
        self.data = memory.MemoryData(
            shape=data_width, depth=size // step,
            init=[int.from_bytes(init[i:i + step], "little") for i in range(0, size, step)])
        super().__init__({"bus": In(signature)})

    def response(self, addr, length, size, burst):
        """:func:`burst_response` with this RAM's geometry and error ranges."""
        return burst_response(addr, length, size, burst, bytes_per_beat=self.bytes_per_beat,
                              memory_size=self.size, slverr=self.slverr, decerr=self.decerr)

    def contents(self, ctx):
        """The whole memory as ``bytes``, read through ``ctx`` (a testbench context)."""
        words = [ctx.get(self.data[i]) for i in range(self.data.depth)]
        return b"".join(w.to_bytes(self.bytes_per_beat, "little") for w in words)

    # -- elaboration ------------------------------------------------------------------------

    def _request_layout(self):
        sig = self.bus.signature
        return data.StructLayout({
            "id": sig.id_width,
            "word": exact_log2(self.data.depth),
            "len": 8,
            "resp": Resp,
        })

    def _request(self, m, channel, name):
        """The request an ``aw`` or ``ar`` channel offers, with its response worked out by the
        rules of :func:`burst_response`."""
        shift = exact_log2(self.bytes_per_beat)
        addr = channel.addr
        end = Signal(len(addr) + 1, name=f"{name}_end")
        m.d.comb += end.eq(Cat(Const(0, shift), addr[shift:]) + ((channel.len + 1) << shift))

        def touches(ranges):
            hit = Const(0)
            for lo, hi in ranges:
                hit = hit | ((addr < hi) & (end > lo))
            return hit

        boundary = exact_log2(BURST_BOUNDARY)
        crosses = addr[boundary:] != (end - 1)[boundary:]
        unsupported = (channel.burst != Burst.INCR) | (channel.size != shift)
        request = Signal(self._request_layout(), name=f"{name}_request")
        m.d.comb += [
            request.id.eq(channel.id),
            request.word.eq(addr[shift:]),
            request.len.eq(channel.len),
        ]
        with m.If((end > self.size) | touches(self.decerr)):
            m.d.comb += request.resp.eq(Resp.DECERR)
        with m.Elif(touches(self.slverr) | unsupported | crosses):
            m.d.comb += request.resp.eq(Resp.SLVERR)
        with m.Else():
            m.d.comb += request.resp.eq(Resp.OKAY)
        return request

    def _stalled(self, m, channel):
        """A signal high in a seeded random ``stall[channel]`` fraction of cycles."""
        threshold = min(255, round(self.stall[channel] * 256))
        if self.stall[channel] and not threshold:
            threshold = 1
        if not threshold:
            return Const(0)
        seed = random.Random(self.seed * len(CHANNELS) + CHANNELS.index(channel))
        state = Signal(32, init=seed.getrandbits(32) | 1, name=f"{channel}_xorshift")
        x = state ^ (state << 13)[:32]
        x = x ^ (x >> 17)
        x = x ^ (x << 5)[:32]
        m.d.sync += state.eq(x)
        return state[24:] < threshold

    def elaborate(self, platform):
        m = Module()
        bus = self.bus
        m.submodules.memory = mem = memory.Memory(data=self.data)
        self._read_path(m, bus, mem)
        self._write_path(m, bus, mem)
        return m

    def _read_path(self, m, bus, mem):
        layout = self._request_layout()
        request = self._request(m, bus.ar, "ar")
        waiting = Signal(range(QUEUE_DEPTH + 1))
        m.d.comb += bus.ar.ready.eq((waiting < QUEUE_DEPTH) & ~self._stalled(m, "ar"))
        accepted = bus.ar.valid & bus.ar.ready

        # A fixed delay line from the AR handshake, then a queue the engine can read through
        # while it is empty; `waiting` counts both, so the queue never overflows.
        arrived, arrival = accepted, request
        for stage in range(self.read_latency):
            valid = Signal(name=f"ar_delay_{stage}_valid")
            payload = Signal(layout, name=f"ar_delay_{stage}")
            m.d.sync += [valid.eq(arrived), payload.eq(arrival)]
            arrived, arrival = valid, payload
        m.submodules.ar_queue = queue = fifo.SyncFIFO(width=layout.size, depth=QUEUE_DEPTH)

        active = Signal()
        burst = Signal(layout)
        source = Signal(layout)
        with m.If(active):
            m.d.comb += source.eq(burst)
        with m.Elif(queue.r_rdy):
            m.d.comb += source.eq(queue.r_data)
        with m.Else():
            m.d.comb += source.eq(arrival)
        r_valid, r_resp = Signal(), Signal(Resp)
        free = ~r_valid | bus.r.ready
        issue = (active | queue.r_rdy | arrived) & free & ~self._stalled(m, "r")
        take = issue & ~active
        m.d.comb += [
            queue.w_data.eq(arrival),
            queue.w_en.eq(arrived & ~(take & ~queue.r_rdy)),
            queue.r_en.eq(take),
        ]
        m.d.sync += waiting.eq(waiting + accepted - take)

        rd = mem.read_port()
        m.d.comb += [rd.addr.eq(source.word), rd.en.eq(issue)]
        with m.If(issue):
            m.d.sync += [
                r_valid.eq(1),
                r_resp.eq(source.resp),
                bus.r.id.eq(source.id),
                bus.r.last.eq(source.len == 0),
                active.eq(source.len != 0),
                burst.eq(source),
                burst.word.eq(source.word + 1),
                burst.len.eq(source.len - 1),
            ]
        with m.Elif(free):
            m.d.sync += r_valid.eq(0)
        m.d.comb += [
            bus.r.valid.eq(r_valid),
            bus.r.resp.eq(r_resp),
            bus.r.data.eq(rd.data & (r_resp == Resp.OKAY).replicate(len(rd.data))),
        ]

    def _write_path(self, m, bus, mem):
        layout = self._request_layout()
        request = self._request(m, bus.aw, "aw")
        m.submodules.aw_queue = aw_queue = fifo.SyncFIFO(width=layout.size, depth=QUEUE_DEPTH)
        m.d.comb += [
            bus.aw.ready.eq(aw_queue.w_rdy & ~self._stalled(m, "aw")),
            aw_queue.w_en.eq(bus.aw.valid & bus.aw.ready),
            aw_queue.w_data.eq(request),
        ]
        beat_layout = data.StructLayout({
            "data": len(bus.w.data), "strb": len(bus.w.strb), "last": 1})
        m.submodules.w_queue = w_queue = fifo.SyncFIFO(width=beat_layout.size,
                                                       depth=W_BUFFER_DEPTH)
        beat = data.View(beat_layout, w_queue.r_data)
        m.d.comb += [
            bus.w.ready.eq(w_queue.w_rdy & ~self._stalled(m, "w")),
            w_queue.w_en.eq(bus.w.valid & bus.w.ready),
            w_queue.w_data.eq(Cat(bus.w.data, bus.w.strb, bus.w.last)),
        ]
        b_layout = data.StructLayout({"id": len(bus.b.id), "resp": Resp})
        m.submodules.b_queue = b_queue = fifo.SyncFIFO(width=b_layout.size, depth=QUEUE_DEPTH)

        active, bad = Signal(), Signal()
        burst, source = Signal(layout), Signal(layout)
        with m.If(active):
            m.d.comb += source.eq(burst)
        with m.Else():
            m.d.comb += source.eq(aw_queue.r_data)
        last = source.len == 0
        step = (active | aw_queue.r_rdy) & w_queue.r_rdy & (~last | b_queue.w_rdy)
        broken = (active & bad) | (beat.last != last)
        wr = mem.write_port(granularity=8)
        m.d.comb += [
            aw_queue.r_en.eq(step & ~active),
            w_queue.r_en.eq(step),
            wr.addr.eq(source.word),
            wr.data.eq(beat.data),
        ]
        with m.If(step & (source.resp == Resp.OKAY)):
            m.d.comb += wr.en.eq(beat.strb)
        b = data.View(b_layout, b_queue.w_data)
        m.d.comb += [b.id.eq(source.id), b.resp.eq(source.resp)]
        with m.If((source.resp == Resp.OKAY) & broken):
            m.d.comb += b.resp.eq(Resp.SLVERR)
        with m.If(step):
            m.d.comb += b_queue.w_en.eq(last)
            m.d.sync += [
                active.eq(~last),
                bad.eq(broken & ~last),
                burst.eq(source),
                burst.word.eq(source.word + 1),
                burst.len.eq(source.len - 1),
            ]

        b_valid = Signal()
        load = b_queue.r_rdy & (~b_valid | bus.b.ready) & ~self._stalled(m, "b")
        out = data.View(b_layout, b_queue.r_data)
        m.d.comb += [b_queue.r_en.eq(load), bus.b.valid.eq(b_valid)]
        with m.If(load):
            m.d.sync += [b_valid.eq(1), bus.b.id.eq(out.id), bus.b.resp.eq(out.resp)]
        with m.Elif(bus.b.ready):
            m.d.sync += b_valid.eq(0)
