"""A cocotb AXI4 slave memory for benches, stepped once per cycle with the stream drivers.

:class:`AxiRamModel` answers a DUT's AXI4 master port from a ``bytearray``, with seeded random
read latency and random stalls on every channel, error regions, and a log of every burst and
W beat the DUT issued, so a bench checks both the data the DUT moved and the bursts it moved
it with. It follows the same response rules as the RTL model :class:`sim.axi_ram.AXIRam`
(:func:`sim.axi_ram.burst_response`).

It is a driver of :class:`verification.tb.streams.Clocking`, like ``StreamSource`` and
``StreamSink``: :meth:`~AxiRamModel.drive` after each rising edge, :meth:`~AxiRamModel.sample`
at ``ReadOnly``, so it costs no awaits of its own and behaves the same on Verilator and Icarus.
"""

import random
from collections import deque
from dataclasses import dataclass

from rtl.bus.axi import BURST_BOUNDARY, Burst, Resp
from sim.axi_ram import burst_response, check_ranges, stall_fractions

__all__ = ["AxiRamModel", "BurstRecord", "BeatRecord"]


@dataclass(frozen=True)
class BurstRecord:
    """One accepted AW or AR: the cycle of its handshake, its fields and the response the
    model gives it."""

    cycle: int
    id: int
    addr: int
    len: int
    size: int
    burst: int
    resp: Resp

    @property
    def beats(self):
        return self.len + 1

    @property
    def end(self):
        """The byte after the burst's last beat, by its own ``AxSIZE``."""
        step = 1 << self.size
        return self.addr // step * step + self.beats * step


@dataclass(frozen=True)
class BeatRecord:
    """One accepted W beat."""

    cycle: int
    data: int
    strb: int
    last: bool


def _bit(handle):
    value = handle.value
    return value.is_resolvable and bool(value)


def _uint(handle):
    # int() reads a one-bit port's ``Logic`` as well as a wider port's ``LogicArray``.
    return int(handle.value)


class _Channel:
    """The handles of one AXI channel, by field name."""

    def __init__(self, ports, path, name, fields):
        self.valid = ports(*path, name, "valid")
        self.ready = ports(*path, name, "ready")
        for field in fields:
            setattr(self, field, ports(*path, name, field))


class AxiRamModel:
    """A slave memory on the AXI4 master port at ``path`` of a cocotb top.

    Reads and writes run independently, each in the order accepted whatever the IDs, with IDs
    echoed. W beats are taken before their AW (up to ``w_buffer``), so a DUT may send either
    first. A write is applied beat by beat as its beats meet its AW, and its B is offered from
    the cycle after its last beat was taken. Read data is taken from memory when the beat is
    offered. Each AR gets a latency drawn from ``read_latency``: its first beat is offered
    ``1 + latency`` cycles after the cycle in which the AR was taken at the earliest.

    Responses are :func:`sim.axi_ram.burst_response`'s: ``DECERR`` from ``size`` on and in
    ``decerr`` ranges; ``SLVERR`` in ``slverr`` ranges, across 4 KiB, for ``FIXED``,
    ``WRAP`` and narrow bursts. Error reads return zero data on every beat; error writes
    leave memory unchanged. A write whose ``w.last`` is not on beat ``AxLEN`` answers
    ``SLVERR`` (its beats written, the burst counted by ``AxLEN``) and is listed by
    :meth:`problems`.

    Not modelled: reordering across IDs, exclusive access (``lock`` ignored, so ``OKAY``),
    ``cache``/``prot``, narrow, ``FIXED`` and ``WRAP`` transfers, ordering between a read and
    a write in flight together.

    Parameters
    ----------
    ports : :class:`sim.ports.Ports`
        Port lookup of the top.
    path : str or tuple of str
        Signature path of the AXI4 master port (``"bus"``, or ``("dma", "bus")``).
    size : int
        Bytes of memory from address 0, a power of two of at least one beat.
    rng : random.Random
        Seeded source of latencies and stalls.
    read_latency : (int, int)
        Smallest and largest extra latency of a read, in cycles, drawn uniformly per AR.
    stall : float or dict
        Fraction of cycles, in ``[0, 1)``, each channel is stalled (``ready`` low on ``aw``,
        ``w``, ``ar``; the next response not offered on ``b``, ``r``), or a dict of them by
        channel name.
    slverr, decerr : list of (lo, hi)
        Byte ranges ``[lo, hi)`` that answer ``SLVERR`` and ``DECERR``.
    init : bytes
        Initial contents from address 0.
    max_reads : int
        ARs accepted and not yet fully answered, at most (``ar.ready`` low at the limit).
    w_buffer : int
        W beats accepted ahead of their AW, at most.
    aw_buffer : int
        AWs accepted ahead of their W beats, at most.

    Attributes
    ----------
    memory : bytearray
        The contents; benches fill and check it directly.
    aw_log, ar_log : list of :class:`BurstRecord`
        Every accepted AW and AR, in order.
    w_log : list of :class:`BeatRecord`
        Every accepted W beat, in order.
    read_delays : list of int
        Per read whose first beat was taken, cycles from its AR handshake to that beat's
        handshake (``1 + latency`` with no stalls and ``r.ready`` high).
    max_outstanding : int
        Most reads accepted and not yet fully answered at once.
    w_before_aw : int
        W beats accepted while no AW was waiting for them.
    cycle : int
        Cycles stepped.

    Raises
    ------
    TypeError, ValueError
        If a parameter has the wrong type or is out of its range (exact messages, tested).
    """

    def __init__(self, ports, path="bus", *, size, rng, read_latency=(0, 0), stall=0.0,
                 slverr=(), decerr=(), init=b"", max_reads=8, w_buffer=16, aw_buffer=8):
        path = (path,) if isinstance(path, str) else tuple(path)
        address = ("id", "addr", "len", "size", "burst")
        self._aw = _Channel(ports, path, "aw", address)
        self._w = _Channel(ports, path, "w", ("data", "strb", "last"))
        self._b = _Channel(ports, path, "b", ("id", "resp"))
        self._ar = _Channel(ports, path, "ar", address)
        self._r = _Channel(ports, path, "r", ("id", "data", "resp", "last"))
        self.bytes_per_beat = len(self._w.strb)
        addr_limit = 1 << len(self._aw.addr)

        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"size must be an integer, not {size!r}")
        if not self.bytes_per_beat <= size <= addr_limit or size & (size - 1):
            raise ValueError(f"size must be a power of two from {self.bytes_per_beat} to "
                             f"{addr_limit}, not {size}")
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random, not {rng!r}")
        try:
            low, high = read_latency
        except (TypeError, ValueError):
            low = high = None
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (low, high)) \
                or not 0 <= low <= high:
            raise ValueError(f"read_latency must be a pair (min, max) of integers with "
                             f"0 <= min <= max, not {read_latency!r}")
        for name, value in (("max_reads", max_reads), ("w_buffer", w_buffer),
                            ("aw_buffer", aw_buffer)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        init = bytes(init)
        if len(init) > size:
            raise ValueError(f"init must be at most {size} bytes, not {len(init)}")

        self.size = size
        self.memory = bytearray(init.ljust(size, b"\0"))
        self.rng = rng
        self.read_latency = (low, high)
        self.stall = stall_fractions(stall)
        self.slverr = check_ranges("slverr", slverr, addr_limit)
        self.decerr = check_ranges("decerr", decerr, addr_limit)
        self.max_reads, self.w_buffer, self.aw_buffer = max_reads, w_buffer, aw_buffer

        self.aw_log, self.ar_log, self.w_log = [], [], []
        self.read_delays = []
        self.max_outstanding = 0
        self.w_before_aw = 0
        self.cycle = 0
        self._wlast_errors = []
        self._aws = deque()       # AW records waiting for their beats
        self._beats = deque()     # W beats waiting for their AW
        self._write = None        # [record, next beat, wlast wrong so far]
        self._bs = deque()        # (id, resp) to answer
        self._reads = deque()     # [record, first cycle to offer, next beat]
        self._ready = dict.fromkeys(("aw", "w", "ar"), False)
        self._offered = dict.fromkeys(("b", "r"), False)
        self._fire = dict.fromkeys(("b", "r"), False)
        for channel in (self._aw, self._w, self._ar):
            channel.ready.value = 0
        for channel in (self._b, self._r):
            channel.valid.value = 0

    # -- reading and writing memory ---------------------------------------------------------

    def read(self, addr, length):
        """``length`` bytes of memory from ``addr``."""
        return bytes(self.memory[addr:addr + length])

    def write(self, addr, data):
        """Put ``data`` into memory at ``addr``."""
        self.memory[addr:addr + len(data)] = data

    def response(self, addr, length, size, burst):
        """The response this model gives a burst (:func:`sim.axi_ram.burst_response`)."""
        return burst_response(addr, length, size, burst, bytes_per_beat=self.bytes_per_beat,
                              memory_size=self.size, slverr=self.slverr, decerr=self.decerr)

    # -- checks for benches ---------------------------------------------------------------------

    def problems(self, *, window=None, boundary=BURST_BOUNDARY):
        """What the DUT did that a well-behaved master does not, as one line each: bursts
        that cross a multiple of ``boundary``, fall outside ``window`` (``(lo, hi)``), are
        not ``INCR`` or not of full-width beats, and writes whose ``w.last`` was misplaced.
        Empty if none."""
        found = []
        full = self.bytes_per_beat.bit_length() - 1
        for kind, log in (("AW", self.aw_log), ("AR", self.ar_log)):
            for record in log:
                what = (f"{kind} at cycle {record.cycle}: addr {record.addr:#x} len "
                        f"{record.len} size {record.size} burst {record.burst}")
                if record.burst != Burst.INCR.value:
                    found.append(f"{what}: not an INCR burst")
                if record.size != full:
                    found.append(f"{what}: not of full-width beats")
                if record.addr // boundary != (record.end - 1) // boundary:
                    found.append(f"{what}: crosses a {boundary}-byte boundary")
                if window is not None and not window[0] <= record.addr < record.end <= window[1]:
                    found.append(f"{what}: outside [{window[0]:#x}, {window[1]:#x})")
        found += self._wlast_errors
        return found

    @property
    def idle(self):
        """True when every accepted burst has been answered (counting a response taken at the
        coming edge) and no W beat waits."""
        bs = len(self._bs) - self._fire["b"]
        reads = len(self._reads)
        if reads == 1 and self._fire["r"] and self._reads[0][2] + 1 == self._reads[0][0].beats:
            reads = 0
        return not (self._aws or self._beats or self._write or bs or reads)

    # -- the per-cycle step -----------------------------------------------------------------

    def _stalled(self, channel):
        return self.stall[channel] > 0 and self.rng.random() < self.stall[channel]

    def drive(self):
        self.cycle += 1
        if self._fire["b"]:
            self._bs.popleft()
            self._offered["b"] = False
        if self._fire["r"]:
            self._offered["r"] = False
            read = self._reads[0]
            read[2] += 1
            if read[2] == read[0].beats:
                self._reads.popleft()
        self._apply_writes()

        if not self._offered["b"] and self._bs and not self._stalled("b"):
            self._b.id.value, self._b.resp.value = self._bs[0]
            self._offered["b"] = True
        self._b.valid.value = int(self._offered["b"])

        if (not self._offered["r"] and self._reads and self._reads[0][1] <= self.cycle
                and not self._stalled("r")):
            record, _, index = self._reads[0]
            nb = self.bytes_per_beat
            data = 0
            if record.resp == Resp.OKAY:
                start = record.addr // nb * nb + index * nb
                data = int.from_bytes(self.memory[start:start + nb], "little")
            r = self._r
            r.id.value, r.data.value, r.resp.value = record.id, data, record.resp.value
            r.last.value = int(index == record.len)
            self._offered["r"] = True
        self._r.valid.value = int(self._offered["r"])

        limits = {"aw": len(self._aws) < self.aw_buffer, "w": len(self._beats) < self.w_buffer,
                  "ar": len(self._reads) < self.max_reads}
        for name, channel in (("aw", self._aw), ("w", self._w), ("ar", self._ar)):
            self._ready[name] = limits[name] and not self._stalled(name)
            channel.ready.value = int(self._ready[name])

    def sample(self):
        if self._ready["aw"] and _bit(self._aw.valid):
            record = self._record(self._aw)
            self.aw_log.append(record)
            self._aws.append(record)
        if self._ready["w"] and _bit(self._w.valid):
            beat = BeatRecord(self.cycle, _uint(self._w.data), _uint(self._w.strb),
                              _bit(self._w.last))
            self.w_log.append(beat)
            if not self._aws and self._write is None:
                self.w_before_aw += 1
            self._beats.append(beat)
        if self._ready["ar"] and _bit(self._ar.valid):
            record = self._record(self._ar)
            self.ar_log.append(record)
            low, high = self.read_latency
            self._reads.append([record, self.cycle + 1 + self.rng.randint(low, high), 0])
            self.max_outstanding = max(self.max_outstanding, len(self._reads))
        for name, channel in (("b", self._b), ("r", self._r)):
            self._fire[name] = self._offered[name] and _bit(channel.ready)
        if self._fire["r"] and self._reads[0][2] == 0:
            self.read_delays.append(self.cycle - self._reads[0][0].cycle)

    def _record(self, channel):
        fields = {name: _uint(getattr(channel, name))
                  for name in ("id", "addr", "len", "size", "burst")}
        resp = self.response(fields["addr"], fields["len"], fields["size"], fields["burst"])
        return BurstRecord(cycle=self.cycle, resp=resp, **fields)

    def _apply_writes(self):
        nb = self.bytes_per_beat
        while self._beats and (self._write or self._aws):
            if self._write is None:
                self._write = [self._aws.popleft(), 0, False]
            record, index, wrong = self._write
            beat = self._beats.popleft()
            last = index == record.len
            wrong |= beat.last != last
            if record.resp == Resp.OKAY:
                base = record.addr // nb * nb + index * nb
                for byte in range(nb):
                    if beat.strb >> byte & 1:
                        self.memory[base + byte] = beat.data >> (8 * byte) & 0xFF
            if not last:
                self._write[1:] = [index + 1, wrong]
                continue
            resp = record.resp
            if wrong:
                self._wlast_errors.append(
                    f"AW at cycle {record.cycle}: addr {record.addr:#x} len {record.len}: "
                    f"w.last not on beat {record.len} alone")
                if resp == Resp.OKAY:
                    resp = Resp.SLVERR
            self._bs.append((record.id, resp.value))
            self._write = None
