# amaranth: UnusedElaboratable=no
# (A HostBridge, UartRx or UartTx whose constructor raises is never elaborated.)
"""The UART and the host bridge in simulation. The bridge is driven bit by bit on its ``rx``
pin with frames of :mod:`jalapeno.runtime.link` and its ``tx`` pin is decoded back into bytes;
behind it sit a bytearray memory on the host port (seeded random ``ready``) and an AXI4-Lite
register model on the CSR port (seeded random ``ready`` on ``aw``, ``w`` and ``ar``)."""

import itertools
import random
import re
from collections import Counter, deque

import pytest
from amaranth import Cat, Module, Shape, Signal
from amaranth.back import rtlil
from amaranth.lib import wiring

from fpga.bridge import HostBridge, crc16_step
from fpga.uart import UartRx, UartTx
from jalapeno.runtime import link
from jalapeno.runtime.link import MAX_BURST, SYNC, Command, Status
from rtl.bus.axi import AXI4LiteSignature, Resp
from rtl.bus.stream_sim import simulate
from rtl.config import PRESETS

#: Clock cycles per UART bit in these benches.
DIVISOR = 4
#: Bytes of the model memory.
MEMORY = 1024
#: CSR addresses of the register model that answer SLVERR and DECERR.
SLVERR_AT, DECERR_AT = 0x40, 0x44
#: The register model's registers at reset; everything else reads 0.
REGISTERS = {0x0: 0x4A41_4C41, 0x4: 0x0001_0000, 0x10: 0, 0x14: 0xFFFF_0000}
#: Simulation cycles any one bench may take.
TIMEOUT = 200_000


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def line_levels(data, divisor=DIVISOR):
    """The line sending ``data`` as 8N1, one level per clock cycle."""
    levels = []
    for byte in data:
        for bit in [0, *(byte >> i & 1 for i in range(8)), 1]:
            levels += [bit] * divisor
    return levels


def frame(body):
    """A frame of any ``body`` (the bytes between ``SYNC`` and the CRC), valid or not."""
    return bytes([SYNC, *body]) + link.crc16(body).to_bytes(2, "little")


class LineDecoder:
    """Bytes from an 8N1 line sampled once a cycle, each bit in its middle counted from the
    falling edge that starts it; a high start bit or a low stop bit is recorded as a fault."""

    def __init__(self, divisor):
        self.divisor = divisor
        self.count = None  # cycles since the start bit began, while a byte is on the line
        self.value = 0
        self.bytes = bytearray()
        self.faults = 0

    def feed(self, level):
        if self.count is None:
            if not level:
                self.count, self.value = 0, 0
            return
        self.count += 1
        bit, phase = divmod(self.count, self.divisor)
        if phase != self.divisor // 2:
            return
        if bit == 0:
            self.faults += level
        elif bit <= 8:
            self.value |= level << (bit - 1)
        else:
            self.faults += not level
            self.bytes.append(self.value)
            self.count = None


class Board:
    """A :class:`HostBridge` with the host's end of its line, a memory on its host port and a
    register model on its CSR port, stepped one cycle at a time by :meth:`cycle`.

    A port's ``ready`` is drawn at random in each cycle its ``valid`` is high (the bridge's
    ``valid`` and fields never depend on a ``ready`` within the cycle, so they are read before
    it is set). The memory's ``rdata`` is noise except in the cycle ``latency`` cycles after
    a read, when ``rvalid`` is high and it holds the word. The register model performs a
    write once it holds both its ``aw`` and its ``w`` beat, and checks that the bridge keeps
    every ``valid`` up, with its fields unchanged, until taken.
    """

    def __init__(self, *, seed, config=PRESETS["tiny"], memory_bytes=MEMORY, ready=0.5,
                 latency=1):
        self.seed = seed
        self.latency = latency
        self.rng = random.Random(seed)
        self.dut = dut = HostBridge(config, divisor=DIVISOR, memory_bytes=memory_bytes)
        self.lanes = config.bus_bytes
        self.ready = ready
        self.memory = bytearray(self.rng.randbytes(memory_bytes))
        self.registers = dict(REGISTERS)
        self.csr_reads, self.csr_writes = Counter(), Counter()
        self.memory_writes = 0
        self.line = deque()
        self.decoder = LineDecoder(DIVISOR)
        self.errors = 0
        self.active_cycles = 0
        self.cycles = 0
        # Every 1-bit output the bench looks at each cycle, read at once.
        self._flags = Cat(dut.tx, dut.error, dut.active, dut.mem.valid, dut.csr.aw.valid,
                          dut.csr.w.valid, dut.csr.ar.valid, dut.csr.b.ready, dut.csr.r.ready)
        self._rx = 1
        self._rdata = None  # (cycles to wait, word) of the read on its way
        self._noise = False  # rdata still holds a word read
        self._aw, self._w = deque(), deque()
        self._b = self._r = None
        self._offered = {}

    @property
    def where(self):
        return f"seed {self.seed}"

    def _resp(self, addr):
        return {SLVERR_AT: Resp.SLVERR, DECERR_AT: Resp.DECERR}.get(addr, Resp.OKAY)

    def _draw(self, ctx, ready):
        taken = self.rng.random() < self.ready
        ctx.set(ready, taken)
        return taken

    def _held(self, name, valid, taken, fields):
        offered = self._offered.pop(name, None)
        if offered is not None:
            assert valid and fields == offered, (f"{self.where}: csr.{name} changed before it "
                                                 f"was taken, cycle {self.cycles}")
        if valid and not taken:
            self._offered[name] = fields

    async def cycle(self, ctx):
        """One clock cycle: drive the inputs, look at the outputs, update the models at the
        edge."""
        dut = self.dut
        mem, csr = dut.mem, dut.csr
        level = self.line.popleft() if self.line else 1
        if level != self._rx:
            ctx.set(dut.rx, level)
            self._rx = level
        if self._rdata is not None and self._rdata[0] == 0:
            ctx.set(mem.rdata, self._rdata[1])
            ctx.set(mem.rvalid, 1)
            self._rdata, self._noise = None, True
        elif self._noise:
            ctx.set(mem.rdata, self.rng.getrandbits(8 * self.lanes))
            ctx.set(mem.rvalid, 0)
            self._noise = False
        if self._rdata is not None:
            self._rdata = (self._rdata[0] - 1, self._rdata[1])
        flags = ctx.get(self._flags)
        tx, error, active, m_valid, aw_valid, w_valid, ar_valid, b_ready, r_ready = (
            flags >> i & 1 for i in range(9))
        self.decoder.feed(tx)
        self.errors += error
        self.active_cycles += active

        if m_valid and self._draw(ctx, mem.ready):
            base = ctx.get(mem.addr) * self.lanes
            if ctx.get(mem.write):
                wdata, wstrb = ctx.get(mem.wdata), ctx.get(mem.wstrb)
                assert wstrb, f"{self.where}: a memory write without strobes"
                self.memory_writes += 1
                for lane in range(self.lanes):
                    if wstrb >> lane & 1:
                        self.memory[base + lane] = wdata >> 8 * lane & 0xFF
            else:
                self._rdata = (self.latency - 1,
                               int.from_bytes(self.memory[base:base + self.lanes], "little"))

        b_done = self._b is not None and b_ready
        r_done = self._r is not None and r_ready
        r_new = False
        if aw_valid or self._offered.get("aw"):
            taken = aw_valid and self._draw(ctx, csr.aw.ready)
            fields = (ctx.get(csr.aw.addr), ctx.get(csr.aw.prot))
            self._held("aw", aw_valid, taken, fields)
            if taken:
                assert fields[1] == 0, f"{self.where}: aw.prot {fields[1]}"
                self._aw.append(fields[0])
        if w_valid or self._offered.get("w"):
            taken = w_valid and self._draw(ctx, csr.w.ready)
            fields = (ctx.get(csr.w.data), ctx.get(csr.w.strb))
            self._held("w", w_valid, taken, fields)
            if taken:
                assert fields[1] == 0b1111, f"{self.where}: w.strb {fields[1]:#b}"
                self._w.append(fields[0])
        if ar_valid or self._offered.get("ar"):
            taken = ar_valid and self._r is None and self._draw(ctx, csr.ar.ready)
            if ar_valid and self._r is not None:
                ctx.set(csr.ar.ready, 0)
            fields = (ctx.get(csr.ar.addr), ctx.get(csr.ar.prot))
            self._held("ar", ar_valid, taken, fields)
            if taken:
                assert fields[1] == 0, f"{self.where}: ar.prot {fields[1]}"
                self.csr_reads[fields[0]] += 1
                self._r = (self.registers.get(fields[0], 0), self._resp(fields[0]))
                r_new = True

        await ctx.tick()
        self.cycles += 1

        # The slave's side of the edge: responses taken, new ones offered from the next cycle.
        if b_done:
            self._b = None
            ctx.set(csr.b.valid, 0)
        if r_done:
            self._r = None
            ctx.set(csr.r.valid, 0)
        if self._aw and self._w and self._b is None:
            addr, data = self._aw.popleft(), self._w.popleft()
            self.csr_writes[addr] += 1
            self._b = self._resp(addr)
            if self._b == Resp.OKAY:
                self.registers[addr] = data
            ctx.set(csr.b.valid, 1)
            ctx.set(csr.b.resp, self._b)
        if r_new:
            ctx.set(csr.r.valid, 1)
            ctx.set(csr.r.data, self._r[0])
            ctx.set(csr.r.resp, self._r[1])

    async def run(self, ctx, cycles):
        for _ in range(cycles):
            await self.cycle(ctx)

    def send(self, data):
        """Queue ``data`` on the line, after whatever is queued."""
        self.line.extend(line_levels(data))

    async def silence(self, ctx, cycles):
        """Run ``cycles`` (after the queued line has gone out) and require no byte back."""
        await self.run(ctx, len(self.line) + cycles)
        assert not self.decoder.bytes, (f"{self.where}: unexpected response "
                                        f"{bytes(self.decoder.bytes).hex()}")

    async def response(self, ctx, command, tag, count):
        """``(status, payload)`` of the response to the request sent, which must come whole
        and alone, with the bridge idle after it."""
        received = self.decoder.bytes
        limit = self.cycles + len(self.line) + (MAX_BURST + 20) * 10 * DIVISOR
        while True:
            if len(received) >= link.RESPONSE_HEADER_BYTES:
                try:
                    status = Status(received[1])
                except ValueError:
                    status = Status.OK
                if len(received) >= link.response_bytes(command, count, status):
                    break
            assert self.cycles < limit, (f"{self.where}: no whole response to {command.name}, "
                                         f"got {bytes(received).hex()}")
            await self.cycle(ctx)
        await self.run(ctx, 12 * DIVISOR)
        answer = bytes(received)
        received.clear()
        assert not self.decoder.faults, f"{self.where}: the bridge sent a broken byte"
        assert not ctx.get(self.dut.active), f"{self.where}: still active after its response"
        return link.parse_response(answer, command, tag, count)

    async def transact(self, ctx, command, tag, addr, count, data=b""):
        self.send(link.request(command, tag, addr, count, data))
        return await self.response(ctx, command, tag, count)

    def simulate(self, bench):
        simulate(self.dut, bench, timeout=TIMEOUT)


# -- the UART ----------------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_round_trip(divisor):
    """Bytes from UartTx reach UartRx in order, back to back, at 10 bit times each."""
    seed = divisor
    data = random.Random(seed).randbytes(24) + b"\x00\xff"
    top = Module()
    top.submodules.tx = tx = UartTx(divisor=divisor)
    top.submodules.rx = rx = UartRx(divisor=divisor)
    top.d.comb += rx.rx.eq(tx.tx)
    received, taken = [], []

    async def bench(ctx):
        assert ctx.get(tx.tx) == 1
        edge = 0
        pending = list(data)
        while len(received) < len(data):
            ctx.set(tx.i.valid, bool(pending))
            ctx.set(tx.i.payload, pending[0] if pending else 0)
            _, _, ready, valid, payload, error = await ctx.tick().sample(
                tx.i.ready, rx.o.valid, rx.o.payload, rx.error)
            if pending and ready:
                taken.append(edge)
                pending.pop(0)
            if valid:
                received.append(payload)
            assert not error, f"seed {seed}: framing error at edge {edge}"
            edge += 1
            assert edge < 12 * divisor * len(data), f"seed {seed}: too slow"
        for _ in range(3 * divisor):
            _, _, line, valid = await ctx.tick().sample(tx.tx, rx.o.valid)
            assert line == 1 and not valid

    simulate(top, bench, timeout=20 * divisor * len(data))
    assert bytes(received) == data, f"seed {seed}"
    assert [b - a for a, b in itertools.pairwise(taken)] == [10 * divisor] * (len(data) - 1)


def test_uart_rx_framing_error_and_glitch():
    """A low stop bit drops the byte and pulses error; a low pulse shorter than half a bit
    is no start bit; the bytes after both arrive."""
    rx = UartRx(divisor=DIVISOR)
    bad = line_levels(b"\x3c")
    bad[-DIVISOR:] = [0] * DIVISOR  # the stop bit
    levels = ([1] * 8 + bad + [1] * 4 * DIVISOR + line_levels(b"\xa7")
              + [0] * (DIVISOR // 2 - 1) + [1] * 4 * DIVISOR + line_levels(b"\x01\x80"))
    seen = []

    async def bench(ctx):
        for level in levels + [1] * 4 * DIVISOR:
            ctx.set(rx.rx, level)
            _, _, valid, payload, error = await ctx.tick().sample(
                rx.o.valid, rx.o.payload, rx.error)
            if valid:
                seen.append(payload)
            if error:
                seen.append("error")

    simulate(rx, bench, timeout=len(levels) + 100)
    assert seen == ["error", 0xA7, 0x01, 0x80]


@pytest.mark.parametrize("component", [UartRx, UartTx])
@pytest.mark.parametrize(("divisor", "error", "message"), [
    (3, ValueError, "divisor must be at least 4, not 3"),
    (-8, ValueError, "divisor must be at least 4, not -8"),
    (8.0, TypeError, "divisor must be an integer, not 8.0"),
    ("8", TypeError, "divisor must be an integer, not '8'"),
    (True, TypeError, "divisor must be an integer, not True"),
])
def test_uart_bad_divisor(component, divisor, error, message):
    with raises_exactly(error, message):
        component(divisor=divisor)


def test_uart_ports():
    assert UartRx(divisor=4).signature.members["o"].signature.always_ready
    assert UartTx(divisor=4).signature.members["tx"].flow == wiring.Out


# -- the CRC -----------------------------------------------------------------------------------

def test_crc16_step_matches_link():
    crc, byte = Signal(16), Signal(8)
    top = Module()
    top.d.comb += (result := Signal(16)).eq(crc16_step(crc, byte))
    rng = random.Random(5)
    cases = [(0xFFFF, 0x00), (0, 0), (0x1234, 0xFF)] + [
        (rng.getrandbits(16), rng.getrandbits(8)) for _ in range(60)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(result) == link.crc16(bytes([b]), c), f"crc {c:#06x}, byte {b:#04x}"

    simulate(top, bench)


# -- the bridge --------------------------------------------------------------------------------

def test_csr_read_write():
    board = Board(seed=1)

    async def bench(ctx):
        assert await board.transact(ctx, Command.CSR_READ, 1, 0x0, 4) == (
            Status.OK, REGISTERS[0x0].to_bytes(4, "little"))
        assert await board.transact(ctx, Command.CSR_WRITE, 2, 0x10, 4,
                                    bytes([0x11, 0x22, 0x33, 0xC4])) == (Status.OK, b"")
        assert board.registers[0x10] == 0xC4332211
        assert await board.transact(ctx, Command.CSR_READ, 3, 0x10, 4) == (
            Status.OK, bytes([0x11, 0x22, 0x33, 0xC4]))
        assert await board.transact(ctx, Command.CSR_READ, 4, 0xFFC, 4) == (
            Status.OK, bytes(4))
        assert await board.transact(ctx, Command.CSR_READ, 5, 0x14, 4) == (
            Status.OK, REGISTERS[0x14].to_bytes(4, "little"))

    board.simulate(bench)
    assert board.csr_writes == {0x10: 1}
    assert board.csr_reads == {0x0: 1, 0x10: 1, 0xFFC: 1, 0x14: 1}
    assert board.memory_writes == 0 and board.errors == 0
    assert board.active_cycles > 0


@pytest.mark.parametrize(("preset", "seed", "latency"),
                         [("tiny", 1, 1), ("default", 2, 2), ("large", 3, 1), ("tiny", 11, 2)])
def test_memory_write_then_read(preset, seed, latency):
    """Writes of unaligned ranges change exactly those bytes; reads return the model's, from
    a memory whose reads take one cycle (the iCEBreaker's SPRAMs) or two (block RAM with its
    request registered)."""
    board = Board(seed=seed, config=PRESETS[preset], latency=latency)
    rng = random.Random(seed + 100)
    ranges = [(0x1, 1), (0x23, 3), (0x3D, 5), (0x6F, 17), (0x80, 8), (0x3FF, 1),
              (0x2F3, MAX_BURST)]
    expected = bytearray(board.memory)

    async def bench(ctx):
        for tag, (addr, count) in enumerate(ranges):
            data = rng.randbytes(count)
            assert await board.transact(ctx, Command.MEM_WRITE, tag, addr, count, data) == (
                Status.OK, b""), f"seed {seed}: write {count} at {addr:#x}"
            expected[addr:addr + count] = data
            assert board.memory == expected, f"seed {seed}: write {count} at {addr:#x}"
        for tag, (addr, count) in enumerate([*ranges, (0x101, 2), (0x0, MAX_BURST)], 100):
            status, payload = await board.transact(ctx, Command.MEM_READ, tag, addr, count)
            assert (status, payload) == (Status.OK, expected[addr:addr + count]), (
                f"seed {seed}: read {count} at {addr:#x}")

    board.simulate(bench)
    assert board.errors == 0 and not board.csr_writes and not board.csr_reads


def test_bad_crc_changes_nothing():
    """A frame whose CRC fails is answered BAD_CRC and not executed, and does not count as
    the write a retry repeats: the same frame, intact, is executed."""
    board = Board(seed=4)
    data = bytes(range(1, 11))
    good = link.request(Command.MEM_WRITE, 33, 0x105, len(data), data)
    corrupt_payload = bytearray(good)
    corrupt_payload[12] ^= 0x08
    corrupt_crc = bytearray(link.request(Command.CSR_WRITE, 34, 0x10, 4, b"\1\2\3\4"))
    corrupt_crc[-1] ^= 0x80
    before = bytes(board.memory)

    async def bench(ctx):
        board.send(corrupt_payload)
        assert await board.response(ctx, Command.MEM_WRITE, 33, len(data)) == (
            Status.BAD_CRC, b"")
        board.send(corrupt_crc)
        assert await board.response(ctx, Command.CSR_WRITE, 34, 4) == (Status.BAD_CRC, b"")
        assert board.memory == before and not board.csr_writes and board.memory_writes == 0
        assert board.errors == 2
        board.send(good)
        assert await board.response(ctx, Command.MEM_WRITE, 33, len(data)) == (Status.OK, b"")
        assert board.memory[0x105:0x105 + len(data)] == data

    board.simulate(bench)


@pytest.mark.parametrize(("body", "why"), [
    # Unknown commands, with counts and addresses a CSR access could have.
    (bytes([0, 1, 0, 0, 0, 0, 3, 0]), "command 0"),
    (bytes([5, 1, 0x10, 0, 0, 0, 3, 0, 1, 2, 3, 4]), "command 5"),
    (bytes([0x83, 1, 0, 0, 0, 0, 3, 0]), "command 0x83"),
    (bytes([Command.MEM_READ, 1, 0, 0, 0, 0, 0, 1]), "count 257"),
    (bytes([Command.MEM_WRITE, 1, 0, 0, 0, 0, 0, 0x80, 9, 9, 9]), "count 0x8001"),
    (bytes([Command.CSR_READ, 1, 0, 0, 0, 0, 7, 0]), "CSR count 8"),
    (bytes([Command.CSR_WRITE, 1, 0x12, 0, 0, 0, 3, 0, 1, 2, 3, 4]), "CSR address 0x12"),
])
def test_bad_header_dropped_until_idle(body, why):
    """A header the bridge cannot act on is not answered, nor is a good frame right behind
    it; once the line has been idle, a good frame is executed."""
    board = Board(seed=5)
    count_write = link.request(Command.CSR_WRITE, 2, 0x10, 4, b"\xaa\xbb\xcc\xdd")

    async def bench(ctx):
        board.send(frame(body) + count_write)
        await board.silence(ctx, board.dut.idle_cycles + 40 * DIVISOR)
        assert board.errors == 1, why
        assert not board.csr_writes and not board.csr_reads and board.memory_writes == 0, why
        board.send(count_write)
        assert await board.response(ctx, Command.CSR_WRITE, 2, 4) == (Status.OK, b""), why
        assert board.csr_writes == {0x10: 1}, why

    board.simulate(bench)
    assert board.errors == 1, why


@pytest.mark.parametrize("cut", [4, 9, 15, -2, -1])
def test_truncated_frame_dropped(cut):
    """A frame the line goes quiet in is dropped unanswered after idle_cycles, memory
    unchanged; a pause shorter than that is no truncation."""
    board = Board(seed=6)
    data = bytes(range(0x40, 0x50))
    request = link.request(Command.MEM_WRITE, 9, 0x31, len(data), data)
    before = bytes(board.memory)

    async def bench(ctx):
        board.send(request[:cut])
        await board.silence(ctx, board.dut.idle_cycles + 20 * DIVISOR)
        assert board.errors == 1 and board.memory == before and board.memory_writes == 0
        # The same frame with a pause just short of idle_cycles in the same place.
        board.send(request[:cut])
        await board.silence(ctx, board.dut.idle_cycles - 20 * DIVISOR)
        board.send(request[cut:])
        assert await board.response(ctx, Command.MEM_WRITE, 9, len(data)) == (Status.OK, b"")
        assert board.memory[0x31:0x31 + len(data)] == data

    board.simulate(bench)
    assert board.errors == 1, f"cut at {cut}"


def test_garbage_before_sync_skipped():
    board = Board(seed=7)

    async def bench(ctx):
        board.send(bytes([0x00, 0xFF, SYNC ^ 0xFF, 0x13, 0xA5]))
        assert await board.transact(ctx, Command.CSR_READ, 77, 0x4, 4) == (
            Status.OK, REGISTERS[0x4].to_bytes(4, "little"))
        board.send(b"\x01\x02")
        assert await board.transact(ctx, Command.MEM_READ, 78, 0x10, 3) == (
            Status.OK, board.memory[0x10:0x13])

    board.simulate(bench)
    assert board.errors == 0


def test_repeated_write_not_executed_twice():
    """A write with the tag of the write executed just before it is answered OK and not
    executed again, however often it comes and whatever BAD_CRC frames come between; any
    other request executed in between, or a new tag, executes it."""
    board = Board(seed=8)
    csr_write = link.request(Command.CSR_WRITE, 7, 0x10, 4, b"\x01\x00\x00\x00")
    mem_write = link.request(Command.MEM_WRITE, 9, 0x200, 2, b"\xab\xcd")

    async def bench(ctx):
        for _ in range(3):
            board.send(csr_write)
            assert await board.response(ctx, Command.CSR_WRITE, 7, 4) == (Status.OK, b"")
            assert board.csr_writes == {0x10: 1}
        # A retry that arrives corrupt changes nothing about the next.
        board.send(csr_write[:-1] + bytes([csr_write[-1] ^ 1]))
        assert await board.response(ctx, Command.CSR_WRITE, 7, 4) == (Status.BAD_CRC, b"")
        board.send(csr_write)
        assert await board.response(ctx, Command.CSR_WRITE, 7, 4) == (Status.OK, b"")
        assert board.csr_writes == {0x10: 1}
        assert await board.transact(ctx, Command.CSR_READ, 7, 0x10, 4) == (
            Status.OK, b"\x01\x00\x00\x00")
        board.send(csr_write)
        assert await board.response(ctx, Command.CSR_WRITE, 7, 4) == (Status.OK, b"")
        assert board.csr_writes == {0x10: 2}

        board.send(mem_write)
        assert await board.response(ctx, Command.MEM_WRITE, 9, 2) == (Status.OK, b"")
        board.memory[0x200:0x202] = b"\x00\x00"  # the core, say, changes it
        board.send(mem_write)
        assert await board.response(ctx, Command.MEM_WRITE, 9, 2) == (Status.OK, b"")
        assert board.memory[0x200:0x202] == b"\x00\x00"
        assert await board.transact(ctx, Command.MEM_WRITE, 10, 0x200, 2, b"\xab\xcd") == (
            Status.OK, b"")
        assert board.memory[0x200:0x202] == b"\xab\xcd"

    board.simulate(bench)
    assert board.memory_writes == 2


def test_bus_errors():
    """Memory ranges past the end and CSR addresses past the port are answered BUS_ERROR
    without an access; SLVERR and DECERR are answered BUS_ERROR, and a write so answered is
    executed again when repeated."""
    board = Board(seed=9)
    before = bytes(board.memory)

    async def bench(ctx):
        bus_error = (Status.BUS_ERROR, b"")
        assert await board.transact(ctx, Command.MEM_WRITE, 1, MEMORY - 2, 3, b"xyz") \
            == bus_error
        assert await board.transact(ctx, Command.MEM_READ, 2, MEMORY - 1, 2) == bus_error
        assert await board.transact(ctx, Command.MEM_READ, 3, 0x8000_0000, 1) == bus_error
        assert await board.transact(ctx, Command.MEM_READ, 4, MEMORY + 1, 1) == bus_error
        assert await board.transact(ctx, Command.MEM_WRITE, 5, (1 << 32) - 1, 1, b"q") \
            == bus_error
        assert board.memory == before and board.memory_writes == 0
        assert await board.transact(ctx, Command.MEM_READ, 6, MEMORY - 4, 4) == (
            Status.OK, before[-4:])
        assert await board.transact(ctx, Command.MEM_READ, 7, MEMORY - MAX_BURST,
                                    MAX_BURST) == (Status.OK, before[-MAX_BURST:])
        assert await board.transact(ctx, Command.CSR_READ, 8, 0x1000, 4) == bus_error
        assert await board.transact(ctx, Command.CSR_WRITE, 9, 0xFFFF_FFFC, 4, b"abcd") \
            == bus_error
        assert not board.csr_reads and not board.csr_writes
        assert await board.transact(ctx, Command.CSR_READ, 10, SLVERR_AT, 4) == bus_error
        assert await board.transact(ctx, Command.CSR_READ, 11, DECERR_AT, 4) == bus_error
        for _ in range(2):
            assert await board.transact(ctx, Command.CSR_WRITE, 12, SLVERR_AT, 4,
                                        b"abcd") == bus_error
        assert await board.transact(ctx, Command.CSR_WRITE, 13, DECERR_AT, 4, b"abcd") \
            == bus_error
        assert await board.transact(ctx, Command.CSR_READ, 14, 0x0, 4) == (
            Status.OK, REGISTERS[0x0].to_bytes(4, "little"))

    board.simulate(bench)
    assert board.csr_reads == {SLVERR_AT: 1, DECERR_AT: 1, 0x0: 1}
    assert board.csr_writes == {SLVERR_AT: 2, DECERR_AT: 1}
    assert board.errors == 0


def test_memory_smaller_than_a_burst():
    """The range check of a memory smaller than MAX_BURST: the count reaches above the
    address bits."""
    board = Board(seed=10, memory_bytes=64)

    async def bench(ctx):
        assert await board.transact(ctx, Command.MEM_READ, 1, 0, 64) == (
            Status.OK, board.memory[:64])
        assert await board.transact(ctx, Command.MEM_WRITE, 2, 63, 1, b"z") == (Status.OK, b"")
        for tag, (addr, count) in enumerate([(0, 65), (1, 64), (64, 1), (0, MAX_BURST)], 3):
            assert await board.transact(ctx, Command.MEM_READ, tag, addr, count) == (
                Status.BUS_ERROR, b""), f"{count} at {addr}"

    board.simulate(bench)
    assert board.memory[63] == ord("z") and board.memory_writes == 1


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"config": None}, TypeError, "config must be a JalapenoConfig, not None"),
    ({"divisor": 3}, ValueError, "divisor must be at least 4, not 3"),
    ({"divisor": "115200"}, TypeError, "divisor must be an integer, not '115200'"),
    ({"memory_bytes": 1000}, ValueError,
     "memory_bytes must be a power of two from 4 to 2**32, not 1000"),
    ({"memory_bytes": 2}, ValueError,
     "memory_bytes must be a power of two from 4 to 2**32, not 2"),
    ({"memory_bytes": 1 << 33}, ValueError,
     "memory_bytes must be a power of two from 4 to 2**32, not 8589934592"),
    ({"memory_bytes": 8.0}, TypeError, "memory_bytes must be an integer, not 8.0"),
    ({"memory_bytes": True}, TypeError, "memory_bytes must be an integer, not True"),
    ({"config": PRESETS["large"], "memory_bytes": 8}, ValueError,
     "memory_bytes must be a power of two from 16 to 2**32, not 8"),
])
def test_bad_parameters(kwargs, error, message):
    args = {"config": PRESETS["tiny"], "divisor": 8, "memory_bytes": 4096, **kwargs}
    config = args.pop("config")
    with raises_exactly(error, message):
        HostBridge(config, **args)


@pytest.mark.parametrize(("preset", "memory_bytes", "addr_width"), [
    ("tiny", 4096, 10), ("default", 65536, 13), ("large", 1 << 32, 28), ("tiny", 4, 0),
])
def test_ports(preset, memory_bytes, addr_width):
    config = PRESETS[preset]
    dut = HostBridge(config, divisor=868, memory_bytes=memory_bytes)
    members = dut.signature.members
    mem, csr = members["mem"].signature, members["csr"].signature
    assert Shape.cast(mem.members["addr"].shape).width == addr_width
    assert Shape.cast(mem.members["wdata"].shape).width == config.bus_width
    assert csr == AXI4LiteSignature(addr_width=12, data_width=32)
    assert {name: members[name].flow for name in ("rx", "tx", "active", "error")} == {
        "rx": wiring.In, "tx": wiring.Out, "active": wiring.Out, "error": wiring.Out}
    assert dut.idle_cycles == link.IDLE_BYTES * 10 * 868
    rtlil.convert(dut)
