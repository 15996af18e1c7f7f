# amaranth: UnusedElaboratable=no
"""The RTL AXI4 slave RAM against a bytearray golden memory, driven by a seeded Python master:
random bursts and strobes, W before and after AW, reads outstanding, stalls on both sides,
exact read latency, error regions, parameter checks and Verilog conversion."""

import random
import re
from dataclasses import dataclass, field

import pytest
from amaranth.back import verilog

from rtl.bus.axi import BURST_BOUNDARY, Burst, Resp
from rtl.bus.stream_sim import simulate
from sim.axi_ram import CHANNELS, QUEUE_DEPTH, AXIRam, burst_response


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


# -- a small AXI master for testbenches --------------------------------------------------------

async def idle_cycles(ctx, rng, probability):
    while probability and rng.random() < probability:
        await ctx.tick()


async def wait_until(ctx, condition):
    while not condition():
        await ctx.tick()


def set_fields(ctx, channel, fields):
    for name, value in fields.items():
        ctx.set(getattr(channel, name), value)


async def send(ctx, channel, fields, *, rng, idle=0.0):
    """Offer ``fields`` on ``channel`` (after random idle cycles); return after the handshake."""
    await idle_cycles(ctx, rng, idle)
    set_fields(ctx, channel, fields)
    ctx.set(channel.valid, 1)
    while True:
        _, _, ready = await ctx.tick().sample(channel.ready)
        if ready:
            break
    ctx.set(channel.valid, 0)


async def receive(ctx, channel, names, *, rng, backpressure=0.0):
    """Take one beat from ``channel`` (after random cycles of backpressure); return ``names``."""
    await idle_cycles(ctx, rng, backpressure)
    ctx.set(channel.ready, 1)
    while True:
        _, _, valid, *values = await ctx.tick().sample(
            channel.valid, *(getattr(channel, name) for name in names))
        if valid:
            break
    ctx.set(channel.ready, 0)
    return dict(zip(names, values, strict=True))


@dataclass
class Transfer:
    """One burst: its AW/AR fields, and for a write its beats and which of AW and W go first."""

    id: int
    addr: int
    len: int
    size: int
    burst: Burst = Burst.INCR
    beats: list = field(default_factory=list)  # (data, strb)
    w_first: bool = False
    lead: int = 1  # W beats sent before the AW of a W-first write

    @property
    def fields(self):
        return {"id": self.id, "addr": self.addr, "len": self.len, "size": self.size,
                "burst": self.burst}


def apply_write(memory, transfer, nbytes):
    """Write ``transfer``'s beats into the bytearray ``memory``, strobes byte by byte."""
    base = transfer.addr // nbytes * nbytes
    for index, (value, strb) in enumerate(transfer.beats):
        for byte in range(nbytes):
            if strb >> byte & 1:
                memory[base + index * nbytes + byte] = value >> (8 * byte) & 0xFF


def expected_beats(memory, transfer, nbytes):
    base = transfer.addr // nbytes * nbytes
    return [int.from_bytes(memory[base + i * nbytes:base + (i + 1) * nbytes], "little")
            for i in range(transfer.len + 1)]


def random_length(rng):
    pick = rng.random()
    if pick < 0.5:
        return rng.randrange(4)
    if pick < 0.85:
        return rng.randrange(32)
    return rng.randrange(256)


def random_transfer(rng, ram, lo, hi, *, write):
    """An OKAY INCR burst inside ``[lo, hi)`` that crosses no 4 KiB boundary, often
    unaligned; a write gets random data and strobes (none below an unaligned start)."""
    nbytes = ram.bytes_per_beat
    addr = rng.randrange(lo, hi)
    if rng.random() < 0.7:
        addr -= addr % nbytes
    base = addr - addr % nbytes
    end = min(hi, (addr // BURST_BOUNDARY + 1) * BURST_BOUNDARY)
    beats = min(random_length(rng) + 1, (end - base) // nbytes)
    transfer = Transfer(id=rng.getrandbits(len(ram.bus.ar.id)), addr=addr, len=beats - 1,
                        size=nbytes.bit_length() - 1)
    if write:
        full = (1 << nbytes) - 1
        for index in range(beats):
            strb = full if rng.random() < 0.5 else rng.getrandbits(nbytes)
            if index == 0:
                strb &= full << (addr % nbytes) & full
            transfer.beats.append((rng.getrandbits(8 * nbytes), strb))
        transfer.w_first = rng.random() < 0.5
        transfer.lead = rng.randint(1, min(beats, 8))
    return transfer


@dataclass
class Round:
    """Writes and reads run together; ``expect_write(transfer)`` gives a write's response,
    ``expect_read(transfer)`` a read's response and beats."""

    writes: list
    reads: list
    expect_write: object
    expect_read: object


class Master:
    """Testbenches that run :class:`Round` after round through ``ram``, each round's writes
    and reads concurrently and the next round only once every response of the last is in,
    checking every B and R beat, under seeded idle cycles and backpressure.

    :attr:`outstanding` is the most ARs accepted and not yet fully answered; :attr:`done`
    counts the rounds finished.
    """

    def __init__(self, ram, rng, seed, *, idle=0.0, backpressure=0.0):
        self.ram, self.rng, self.seed = ram, rng, seed
        self.idle, self.backpressure = idle, backpressure
        self.outstanding = 0
        self.b_rounds = self.r_rounds = 0

    @property
    def done(self):
        return min(self.b_rounds, self.r_rounds)

    def testbenches(self, rounds):
        rng, seed, bus = self.rng, self.seed, self.ram.bus

        async def barrier(ctx, number):
            await wait_until(ctx, lambda: self.done >= number)

        async def aw_w(ctx, aw_first):
            # One coroutine per channel; `sent` is shared between the AW and W ones.
            for number, round_ in enumerate(rounds):
                await barrier(ctx, number)
                if aw_first:
                    for k, transfer in enumerate(round_.writes):
                        if transfer.w_first:
                            await wait_until(ctx, lambda n=number, k=k, t=transfer:
                                             self._w_sent[n][k] >= t.lead)
                        await send(ctx, bus.aw, transfer.fields, rng=rng, idle=self.idle)
                        self._aw_sent[number] = k + 1
                else:
                    for k, transfer in enumerate(round_.writes):
                        if not transfer.w_first:
                            await wait_until(ctx, lambda n=number, k=k: self._aw_sent[n] > k)
                        for index, (value, strb) in enumerate(transfer.beats):
                            await send(ctx, bus.w, {"data": value, "strb": strb,
                                                    "last": index == transfer.len},
                                       rng=rng, idle=self.idle)
                            self._w_sent[number][k] = index + 1

        async def aw(ctx):
            await aw_w(ctx, True)

        async def w(ctx):
            await aw_w(ctx, False)

        async def b(ctx):
            for number, round_ in enumerate(rounds):
                for k, transfer in enumerate(round_.writes):
                    got = await receive(ctx, bus.b, ("id", "resp"), rng=rng,
                                        backpressure=self.backpressure)
                    where = f"seed {seed}, round {number}, write {k} {transfer.fields}"
                    assert got == {"id": transfer.id, "resp": round_.expect_write(transfer)}, \
                        where
                self.b_rounds = number + 1

        async def ar(ctx):
            for number, round_ in enumerate(rounds):
                await barrier(ctx, number)
                for transfer in round_.reads:
                    await send(ctx, bus.ar, transfer.fields, rng=rng, idle=self.idle)
                    self._ar_sent += 1
                    self.outstanding = max(self.outstanding, self._ar_sent - self._r_done)

        async def r(ctx):
            for number, round_ in enumerate(rounds):
                for k, transfer in enumerate(round_.reads):
                    resp, beats = round_.expect_read(transfer)
                    for index, value in enumerate(beats):
                        got = await receive(ctx, bus.r, ("id", "data", "resp", "last"),
                                            rng=rng, backpressure=self.backpressure)
                        where = (f"seed {seed}, round {number}, read {k} {transfer.fields}, "
                                 f"beat {index}")
                        assert got == {"id": transfer.id, "data": value, "resp": resp,
                                       "last": index == transfer.len}, where
                    self._r_done += 1
                self.r_rounds = number + 1

        self._aw_sent = [0] * len(rounds)
        self._w_sent = [[0] * len(round_.writes) for round_ in rounds]
        self._ar_sent = self._r_done = 0
        return [aw, w, b, ar, r]


class Monitor:
    """Counts, per channel, the cycles a handshake was held off by the RAM: ``valid`` without
    ``ready`` on ``aw``, ``w``, ``ar``; ``ready`` without ``valid`` inside an R burst."""

    def __init__(self, bus):
        self.bus = bus
        self.held = dict.fromkeys(CHANNELS, 0)

    async def run(self, ctx):
        bus = self.bus
        in_burst = False
        while True:
            sampled = await ctx.tick().sample(
                bus.aw.valid, bus.aw.ready, bus.w.valid, bus.w.ready, bus.ar.valid,
                bus.ar.ready, bus.r.valid, bus.r.ready, bus.r.last)
            for index, channel in enumerate(("aw", "w", "ar")):
                valid, ready = sampled[2 + 2 * index:4 + 2 * index]
                self.held[channel] += valid and not ready
            r_valid, r_ready, r_last = sampled[8:]
            self.held["r"] += in_burst and r_ready and not r_valid
            if r_valid and r_ready:
                in_burst = not r_last


# -- random traffic against the golden memory ---------------------------------------------------

TRAFFIC = [
    pytest.param(dict(data_width=32, read_latency=0, stall=0.0), 0.0, id="w32-lat0"),
    pytest.param(dict(data_width=64, read_latency=3, stall=0.3), 0.3, id="w64-lat3-stall"),
    pytest.param(dict(data_width=128, read_latency=1, stall=0.5), 0.4, id="w128-lat1-stall"),
]


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize(("params", "master_stall"), TRAFFIC)
def test_random_traffic_matches_golden(params, master_stall, seed):
    """Four rounds of random writes to one 4 KiB half while random reads, several
    outstanding, check the other half; every B and R beat checked, and the whole memory equal
    to the golden one, bit for bit, at the end."""
    rng = random.Random(seed)
    size = 8192
    init = bytes(rng.getrandbits(8) for _ in range(size))
    ram = AXIRam(addr_width=16, id_width=4, size=size, seed=seed, init=init, **params)
    golden = bytearray(init)
    nbytes = ram.bytes_per_beat
    master = Master(ram, rng, seed, idle=master_stall, backpressure=master_stall)
    monitor = Monitor(ram.bus)

    rounds = []
    for number in range(4):
        lo = number % 2 * 4096
        read_lo = 4096 - lo
        writes = [random_transfer(rng, ram, lo, lo + 4096, write=True) for _ in range(8)]
        reads = [random_transfer(rng, ram, read_lo, read_lo + 4096, write=False)
                 for _ in range(10)]
        snapshot = bytes(golden)  # the half being read is not written in this round
        for transfer in writes:
            apply_write(golden, transfer, nbytes)
        rounds.append(Round(writes, reads, lambda t: Resp.OKAY,
                            lambda t, s=snapshot: (Resp.OKAY, expected_beats(s, t, nbytes))))

    async def final(ctx):
        await wait_until(ctx, lambda: master.done == len(rounds))
        assert ram.contents(ctx) == golden, f"seed {seed}: memory differs from the golden one"

    simulate(ram, *master.testbenches(rounds), final, background=[monitor.run],
             timeout=40_000)
    assert master.outstanding >= 2, f"seed {seed}: reads never overlapped"
    for channel in ("aw", "w", "ar", "r"):
        if params["stall"]:
            assert monitor.held[channel] > 0, f"seed {seed}: no stall seen on {channel}"
    if not params["stall"]:
        assert monitor.held["r"] == 0, f"seed {seed}: gap inside an R burst without stalls"


# -- timing -------------------------------------------------------------------------------------

@pytest.mark.parametrize("latency", [0, 1, 6, 64])
def test_read_latency_is_exact(latency):
    """Without stalls, the first R beat of a burst whose AR is taken at edge ``n`` is taken at
    edge ``n + read_latency + 1`` (``r.ready`` high), and the beats of bursts queued behind it
    follow one per cycle without a gap."""
    rng = random.Random(latency)
    init = bytes(rng.getrandbits(8) for _ in range(1024))
    ram = AXIRam(addr_width=12, data_width=32, id_width=2, size=1024, read_latency=latency,
                 init=init)
    bus = ram.bus

    async def bench(ctx):
        edge = 0
        ctx.set(bus.r.ready, 1)
        for addr, length in [(0x40, 0), (0x104, 3), (0x3F0, 2), (0x200, 7)]:
            # One burst alone: its first beat exactly read_latency + 1 edges after its AR.
            set_fields(ctx, bus.ar, {"valid": 1, "id": length & 3, "addr": addr, "len": length,
                             "size": 2, "burst": Burst.INCR})
            _, _, ready = await ctx.tick().sample(bus.ar.ready)
            edge += 1
            assert ready
            accepted = edge
            ctx.set(bus.ar.valid, 0)
            beats = []
            while len(beats) <= length:
                _, _, valid, data, last = await ctx.tick().sample(
                    bus.r.valid, bus.r.data, bus.r.last)
                edge += 1
                if valid:
                    beats.append((edge, data, last))
            assert beats[0][0] == accepted + latency + 1
            assert [e for e, _, _ in beats] == list(range(beats[0][0], beats[0][0] + length + 1))
            assert [d for _, d, _ in beats] == [
                int.from_bytes(init[addr + 4 * i:addr + 4 * i + 4], "little")
                for i in range(length + 1)]
            assert [last for _, _, last in beats] == [0] * length + [1]
        # Four ARs on consecutive edges: their 4 x 4 beats come out on 16 consecutive edges.
        first, edges = edge + 1, []
        for k in range(4):
            set_fields(ctx, bus.ar, {"valid": 1, "id": k, "addr": 0x10 * k, "len": 3,
                                     "size": 2, "burst": Burst.INCR})
            _, _, ready, valid = await ctx.tick().sample(bus.ar.ready, bus.r.valid)
            edge += 1
            assert ready
            edges += [edge] * valid
        ctx.set(bus.ar.valid, 0)
        while len(edges) < 16:
            _, _, valid = await ctx.tick().sample(bus.r.valid)
            edge += 1
            edges += [edge] * valid
        assert edges == list(range(first + latency + 1, first + latency + 17))

    simulate(ram, bench, timeout=2000)


def test_reads_outstanding():
    """With ``r.ready`` low, the RAM takes one AR into its read engine and
    :data:`QUEUE_DEPTH` more behind it, then holds ``ar.ready`` low; released, every burst
    comes back in order with its ID."""
    rng = random.Random(7)
    init = bytes(rng.getrandbits(8) for _ in range(512))
    ram = AXIRam(addr_width=12, data_width=64, id_width=4, size=512, read_latency=2, init=init)
    bus = ram.bus
    transfers = [Transfer(id=k, addr=8 * k, len=k % 3, size=3) for k in range(12)]
    accepted = []

    async def ar(ctx):
        for k, transfer in enumerate(transfers):
            set_fields(ctx, bus.ar, {"valid": 1, **transfer.fields})
            for _ in range(20):
                _, _, ready = await ctx.tick().sample(bus.ar.ready)
                if ready:
                    break
            else:
                accepted.append(k)
                break
        ctx.set(bus.ar.valid, 0)

    async def r(ctx):
        await wait_until(ctx, lambda: accepted)
        assert accepted == [QUEUE_DEPTH + 1], "ARs accepted before the RAM stopped taking them"
        for transfer in transfers[:QUEUE_DEPTH + 1]:
            for index, value in enumerate(expected_beats(init, transfer, 8)):
                got = await receive(ctx, bus.r, ("id", "data", "last", "resp"), rng=rng)
                assert got == {"id": transfer.id, "data": value, "last": index == transfer.len,
                               "resp": Resp.OKAY}

    simulate(ram, ar, r, timeout=2000)


def _throughput_cycles(stall):
    """Cycles a master that never stalls needs for 48 one-beat writes and 48 one-beat reads."""
    ram = AXIRam(addr_width=12, data_width=32, id_width=1, size=512, stall=stall, seed=3)
    rng = random.Random(0)
    writes = [Transfer(id=k & 1, addr=4 * k, len=0, size=2, beats=[(k, 0xF)])
              for k in range(48)]
    reads = [Transfer(id=k & 1, addr=256 + 4 * k, len=0, size=2) for k in range(48)]
    master = Master(ram, rng, 0)
    cycles = [0]

    async def clock(ctx):
        while True:
            await ctx.tick()
            cycles[0] += 1

    simulate(ram, *master.testbenches([Round(writes, reads, lambda t: Resp.OKAY,
                                             lambda t: (Resp.OKAY, [0]))]),
             background=[clock], timeout=2000)
    return cycles[0]


@pytest.mark.parametrize("channel", CHANNELS)
def test_stall_on_each_channel_slows_traffic(channel):
    """A stall on any one channel alone slows a master that never stalls."""
    assert _throughput_cycles({channel: 0.5}) > 1.3 * _throughput_cycles(0.0)


# -- error responses ----------------------------------------------------------------------------

SLVERR_RANGES = [(0x100, 0x140), (0x1800, 0x1804)]
DECERR_RANGES = [(0x300, 0x380)]


@pytest.mark.parametrize(("addr", "length", "size", "burst", "resp"), [
    (0x0FC, 0, 2, Burst.INCR, Resp.OKAY),      # ends just below a SLVERR range
    (0x0FC, 1, 2, Burst.INCR, Resp.SLVERR),    # ... and reaches into it
    (0x13F, 0, 2, Burst.INCR, Resp.SLVERR),    # unaligned, inside its last beat
    (0x140, 3, 2, Burst.INCR, Resp.OKAY),
    (0x2FC, 1, 2, Burst.INCR, Resp.DECERR),
    (0x380, 0, 2, Burst.INCR, Resp.OKAY),
    (0x0F0, 255, 2, Burst.INCR, Resp.DECERR),  # DECERR wins over SLVERR
    (0xFF0, 3, 2, Burst.INCR, Resp.OKAY),      # ends at the 4 KiB boundary
    (0xFF0, 4, 2, Burst.INCR, Resp.SLVERR),    # crosses it
    (0x1FFC, 0, 2, Burst.INCR, Resp.OKAY),     # the last word of memory
    (0x1FFC, 1, 2, Burst.INCR, Resp.DECERR),   # past the end
    (0xFFFC, 0, 2, Burst.INCR, Resp.DECERR),   # far past
    (0x400, 0, 2, Burst.FIXED, Resp.SLVERR),
    (0x400, 3, 2, Burst.WRAP, Resp.SLVERR),
    (0x400, 0, 1, Burst.INCR, Resp.SLVERR),    # narrow
    (0x400, 0, 3, Burst.INCR, Resp.SLVERR),    # wider than the bus
    (0x400, 0, 2, 3, Resp.SLVERR),             # reserved AxBURST
])
def test_burst_response_known_answers(addr, length, size, burst, resp):
    assert burst_response(addr, length, size, burst, bytes_per_beat=4, memory_size=8192,
                          slverr=SLVERR_RANGES, decerr=DECERR_RANGES) == resp


def _targeted(rng, addr, length, size=2, burst=Burst.INCR, *, write):
    transfer = Transfer(id=rng.getrandbits(3), addr=addr, len=length, size=size, burst=burst)
    if write:
        transfer.beats = [(rng.getrandbits(32), 0xF) for _ in range(length + 1)]
        transfer.w_first = rng.random() < 0.5
        transfer.lead = min(length + 1, 4)
    return transfer


@pytest.mark.parametrize("seed", [5, 6])
def test_error_regions(seed):
    """Writes, then reads, of random bursts over the whole address space and of bursts at the
    edges of every error rule: each B and every R beat carries :func:`burst_response`'s answer
    (R data zero on errors), and error writes leave memory as it was."""
    rng = random.Random(seed)
    size = 8192
    init = bytes(rng.getrandbits(8) for _ in range(size))
    ram = AXIRam(addr_width=16, data_width=32, id_width=3, size=size, read_latency=2,
                 stall=0.2, seed=seed, slverr=SLVERR_RANGES, decerr=DECERR_RANGES, init=init)
    edges = [(0x0FC, 1), (0x13F, 0), (0x140, 3), (0x2FC, 1), (0x37C, 0), (0x380, 0),
             (0xFF0, 4), (0x1FFC, 1), (0x17F8, 3), (0xFFF0, 2)]
    odd = [(0x400, 0, 2, Burst.FIXED), (0x440, 3, 2, Burst.WRAP), (0x480, 0, 1, Burst.INCR),
           (0x4C0, 1, 3, Burst.INCR)]

    def transfers(write):
        chosen = [_targeted(rng, addr, length, write=write) for addr, length in edges]
        chosen += [_targeted(rng, *fields, write=write) for fields in odd]
        for _ in range(12):
            lo = rng.choice([0, 0x80, 0x280, 0x1780, 0x1F00])
            chosen.append(random_transfer(rng, ram, lo, lo + 0x200, write=write))
        rng.shuffle(chosen)
        return chosen

    def respond(transfer):
        return ram.response(transfer.addr, transfer.len, transfer.size, transfer.burst)

    writes, reads = transfers(True), transfers(False)
    golden = bytearray(init)
    for transfer in writes:
        if respond(transfer) == Resp.OKAY:
            apply_write(golden, transfer, 4)
    assert {respond(t) for t in writes} == {Resp.OKAY, Resp.SLVERR, Resp.DECERR}

    def expect_read(transfer):
        resp = respond(transfer)
        if resp != Resp.OKAY:
            return resp, [0] * (transfer.len + 1)
        return resp, expected_beats(golden, transfer, 4)

    master = Master(ram, rng, seed, idle=0.2, backpressure=0.2)
    rounds = [Round(writes, [], respond, None), Round([], reads, None, expect_read)]

    async def final(ctx):
        await wait_until(ctx, lambda: master.done == len(rounds))
        assert ram.contents(ctx) == golden, f"seed {seed}: memory differs from the golden one"

    simulate(ram, *master.testbenches(rounds), final, timeout=20_000)


def test_wlast_on_the_wrong_beat_answers_slverr():
    """A write whose ``w.last`` comes early or is missing answers SLVERR, its beats written by
    ``AxLEN``; a burst after it is counted from its own AW and answers OKAY."""
    ram = AXIRam(addr_width=12, data_width=32, id_width=2, size=256)
    bus = ram.bus
    rng = random.Random(0)
    # id, addr, len, and the w.last of each beat
    plan = [(1, 0x10, 2, [1, 0, 1]), (2, 0x20, 2, [0, 0, 1]), (3, 0x40, 0, [0])]
    values = [0x11111111 * (k + 1) for k in range(7)]

    async def aw(ctx):
        for burst_id, addr, length, _ in plan:
            await send(ctx, bus.aw, {"id": burst_id, "addr": addr, "len": length, "size": 2,
                                     "burst": Burst.INCR}, rng=rng)

    async def w(ctx):
        lasts = [last for *_, flags in plan for last in flags]
        for value, last in zip(values, lasts, strict=True):
            await send(ctx, bus.w, {"data": value, "strb": 0xF, "last": last}, rng=rng)

    async def b(ctx):
        responses = [await receive(ctx, bus.b, ("id", "resp"), rng=rng) for _ in plan]
        assert responses == [{"id": 1, "resp": Resp.SLVERR}, {"id": 2, "resp": Resp.OKAY},
                             {"id": 3, "resp": Resp.SLVERR}]
        memory = ram.contents(ctx)
        assert [int.from_bytes(memory[a:a + 4], "little")
                for a in (0x10, 0x14, 0x18, 0x20, 0x24, 0x28, 0x40)] == values

    simulate(ram, aw, w, b, timeout=500)


# -- parameters and conversion ------------------------------------------------------------------

GOOD = dict(addr_width=16, data_width=64, id_width=4, size=4096)


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"size": 4096.0}, TypeError, "size must be an integer, not 4096.0"),
    ({"size": 3000}, ValueError, "size must be a power of two from 256 to 65536, not 3000"),
    ({"size": 128}, ValueError, "size must be a power of two from 256 to 65536, not 128"),
    ({"size": 8192, "addr_width": 12}, ValueError,
     "size must be a power of two from 256 to 4096, not 8192"),
    ({"read_latency": True}, TypeError, "read_latency must be an integer, not True"),
    ({"read_latency": 65}, ValueError, "read_latency must be between 0 and 64, not 65"),
    ({"read_latency": -1}, ValueError, "read_latency must be between 0 and 64, not -1"),
    ({"stall": 1.0}, ValueError, "stall must be a number in [0, 1), not 1.0"),
    ({"stall": "0.1"}, ValueError, "stall must be a number in [0, 1), not '0.1'"),
    ({"stall": {"r": -0.5}}, ValueError, "stall['r'] must be a number in [0, 1), not -0.5"),
    ({"stall": {"x": 0.5}}, ValueError, "stall has no channel 'x'; channels are aw, w, b, ar, r"),
    ({"seed": -1}, ValueError, "seed must be non-negative, not -1"),
    ({"seed": 1.5}, TypeError, "seed must be an integer, not 1.5"),
    ({"slverr": [(0x20, 0x10)]}, ValueError,
     "slverr ranges must be (lo, hi) pairs with 0 <= lo < hi <= 65536, not (32, 16)"),
    ({"decerr": [(0, 1 << 16 + 1)]}, ValueError,
     "decerr ranges must be (lo, hi) pairs with 0 <= lo < hi <= 65536, not (0, 131072)"),
    ({"decerr": [(1, 2, 3)]}, ValueError,
     "decerr ranges must be (lo, hi) pairs with 0 <= lo < hi <= 65536, not (1, 2, 3)"),
    ({"slverr": 5}, TypeError, "slverr must be a list of (lo, hi) pairs, not 5"),
    ({"init": 5}, TypeError, "init must be bytes, not 5"),
    ({"init": [256]}, TypeError, "init must be bytes, not [256]"),
    ({"init": bytes(4097)}, ValueError, "init must be at most 4096 bytes, not 4097"),
    ({"data_width": 48}, ValueError, "data_width must be one of 32, 64, 128, not 48"),
    ({"id_width": 0}, ValueError, "id_width must be between 1 and 16, not 0"),
])
def test_bad_parameters_raise_exact_messages(changes, error, message):
    with raises_exactly(error, message):
        AXIRam(**{**GOOD, **changes})


def test_verilog_conversion():
    ram = AXIRam(addr_width=32, data_width=128, id_width=6, size=1 << 16, read_latency=4,
                 stall={"r": 0.25, "aw": 0.1}, slverr=[(0x1000, 0x2000)],
                 decerr=[(0x8000, 0x9000)], init=bytes(range(256)))
    text = verilog.convert(ram, name="axi_ram", emit_src=False)
    assert "module axi_ram" in text
    for port in ("bus__aw__valid", "bus__w__strb", "bus__b__resp", "bus__ar__ready",
                 "bus__r__data"):
        assert re.search(rf"\b(input|output) .*\b{port};", text), port
