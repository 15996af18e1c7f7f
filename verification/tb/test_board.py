"""The board simulation: the whole board (:class:`~fpga.soc.BoardSoC`: core, memory, UART
host bridge) driven through its UART pins by the ``fpga`` runtime backend itself
(:class:`~jalapeno.runtime.fpga.FpgaDevice`), whose line here is the simulated one.

The backend runs in a thread (cocotb's ``bridge``); each of its reads and writes on the line
resumes the simulation (``resume``) to send the bytes bit by bit on ``rx`` and collect what
comes back on ``tx``. Lines that corrupt or cut short chosen frames check that the bridge
rejects them, the host retries, and memory ends exactly as on the golden backend.
"""

import os
from collections import deque
from dataclasses import replace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from jalapeno.isa import INSTRUCTION_BYTES, CoreError, Opcode, encode
from jalapeno.runtime.fpga import FpgaDevice
from jalapeno.runtime.golden import GoldenDevice
from jalapeno.runtime.link import MAX_BURST, SYNC, Command
from sim.board import SIM_DIVISOR, SIM_MEMORY_BYTES
from sim.verilog import DESIGN_POINTS
from verification.programs import GemmLayout, tiled_gemm
from verification.stimulus import random_int8

#: Byte address of the GEMM program; its operands follow.
PROGRAM_AT = 0x1000
#: Simulated cycles a read on the line waits for its bytes, as the backend's timeout does on
#: a real line: a whole burst three times over.
READ_TIMEOUT_CYCLES = 3 * (MAX_BURST + 16) * 10 * SIM_DIVISOR
#: The counters the golden backend keeps, compared with the board's.
UNTIMED = ("MACS", "DMA_READ_BYTES", "DMA_WRITE_BYTES", "INSTRUCTIONS")


class SimLine:
    """The host's end of the simulated UART, with pyserial's ``write`` and ``read``, for
    the backend's thread.

    Parameters
    ----------
    dut : cocotb handle
        The board top.
    faults : dict of (Command, int) to str, optional
        Requests to damage, by command and index among the requests of that command sent
        (from 0): ``"crc"`` flips a bit of the frame's last payload or header byte,
        ``"cut"`` sends only half the frame, ``"garbage"`` sends noise bytes before it,
        ``"reply"`` flips a bit of the response's first byte.
    """

    timeout = READ_TIMEOUT_CYCLES

    def __init__(self, dut, faults=None):
        self.dut = dut
        self.faults = dict(faults or {})
        self.sent = 0
        self._counts = dict.fromkeys(Command, 0)
        self.received = deque()
        self.damaged = []
        self._reply_fault = False
        cocotb.start_soon(self._receive())

    async def _bit(self):
        await ClockCycles(self.dut.clk, SIM_DIVISOR)

    async def _send_byte(self, byte):
        for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
            self.dut.rx.value = bit
            await self._bit()

    async def _receive(self):
        while True:
            await FallingEdge(self.dut.tx)
            await ClockCycles(self.dut.clk, SIM_DIVISOR // 2)
            byte = 0
            for i in range(8):
                await self._bit()
                byte |= int(self.dut.tx.value) << i
            await self._bit()
            if self._reply_fault:
                byte ^= 0x10
                self._reply_fault = False
            self.received.append(byte)

    async def _write(self, data):
        command = Command(data[1])
        fault = self.faults.pop((command, self._counts[command]), None)
        self._counts[command] += 1
        self.sent += 1
        if fault:
            self.damaged.append((command.name, self._counts[command] - 1, fault))
        if fault == "crc":
            data = data[:-3] + bytes([data[-3] ^ 0x01]) + data[-2:]
        elif fault == "cut":
            data = data[:len(data) // 2]
        elif fault == "garbage":
            data = bytes([0x00, 0xFF, SYNC ^ 0xFF, 0x13]) + data
        elif fault == "reply":
            self._reply_fault = True
        for byte in data:
            await self._send_byte(byte)

    async def _read(self, size):
        waited = 0
        while len(self.received) < size and waited < self.timeout:
            await ClockCycles(self.dut.clk, 10 * SIM_DIVISOR)
            waited += 10 * SIM_DIVISOR
        return bytes(self.received.popleft() for _ in range(min(size, len(self.received))))

    def write(self, data):
        resume(self._write)(bytes(data))
        return len(data)

    def read(self, size):
        return resume(self._read)(size)


async def _start(dut):
    dut.rx.value = 1
    dut.rst.value = 1
    Clock(dut.clk, 10, unit="ns", impl="gpi").start()
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)


def _gemm(config, seed):
    """A GEMM program on random operands, as ``(memory image from 0, program length,
    layout, A, W)``."""
    rng = np.random.default_rng(seed)
    m, k, n = 12, 4 * config.rows, 2 * config.cols
    a, w = random_int8(rng, (m, k)), random_int8(rng, (k, n))
    layout = GemmLayout.packed(config, m, k, n, at=0x2000, align=256)
    words, layout = tiled_gemm(config, m, k, n, a_at=layout.a_at, w_at=layout.w_at,
                               c_at=layout.c_at, plan=layout.plan)
    assert PROGRAM_AT + len(words) * INSTRUCTION_BYTES <= layout.a_at
    assert layout.end <= SIM_MEMORY_BYTES
    image = np.zeros(layout.end, np.uint8)
    layout.place(image, a, w)
    return image, words, layout, a, w


def _run_on(device, image, words, operands_at):
    """Load the operands (``image`` from ``operands_at``; below it, zeros as the memory
    starts) and the program on ``device``, run it; return the result and memory from the
    program to the image's end."""
    device.write(operands_at, image[operands_at:])
    device.load_program(PROGRAM_AT, words)
    result = device.run(PROGRAM_AT, len(words))
    return result, device.read(PROGRAM_AT, len(image) - PROGRAM_AT)


def _board_equals_golden(line, seed, log):
    """Run one GEMM on the board through ``line`` and on the golden backend; check they
    agree bit for bit and the product is NumPy's."""
    config = DESIGN_POINTS[os.environ["JALAPENO_PRESET"]]
    image, words, layout, a, w = _gemm(config, seed)
    resent = []
    with FpgaDevice(line, memory_bytes=SIM_MEMORY_BYTES, log=resent.append) as board:
        assert replace(board.config, name=config.name) == config, \
            f"board reports {board.config}"
        got, memory = _run_on(board, image, words, layout.a_at)
    with GoldenDevice(config, memory_bytes=SIM_MEMORY_BYTES) as golden:
        want, want_memory = _run_on(golden, image, words, layout.a_at)
    where = f"seed {seed}"
    assert got.code == CoreError.NONE == want.code, f"{where}: {got.code!r}, golden {want.code!r}"
    for name in UNTIMED:
        assert got.counters[name] == want.counters[name], \
            f"{where}: {name} {got.counters[name]} on the board, {want.counters[name]} golden"
    assert got.cycles > 0
    diff = np.flatnonzero(memory != want_memory)
    assert diff.size == 0, f"{where}: memory differs from golden at {diff[:8]}"
    c = layout.read_c(np.concatenate([image[:PROGRAM_AT], memory]))
    assert np.array_equal(c, a.astype(np.int64) @ w), f"{where}: C is not A @ W"
    log(f"{where}: {len(words)} instructions, {got.cycles} cycles, {line.sent} requests, "
        f"memory equal to golden; damaged {line.damaged}; resent {len(resent)}")
    return resent


@cocotb.test()
async def run_test_gemm_end_to_end(dut):
    """A tiled GEMM loaded, run and read back over the UART: memory bit-identical to the
    golden backend's, the untimed counters equal, C equal to NumPy's product."""
    await _start(dut)
    resent = await bridge(_board_equals_golden)(SimLine(dut), 1, dut._log.info)
    assert resent == [], f"a clean line needed resends: {resent}"


@cocotb.test()
async def run_test_damaged_frames_are_retried(dut):
    """The same run with a corrupted write frame (payload bit flipped: answered BAD_CRC, not
    written), a frame cut short (dropped after the idle time, unanswered), noise before a
    frame, and a corrupted response: each is resent, and memory still ends equal to the
    golden backend's."""
    await _start(dut)
    faults = {(Command.MEM_WRITE, 1): "crc", (Command.MEM_WRITE, 3): "cut",
              (Command.CSR_READ, 2): "cut", (Command.MEM_WRITE, 4): "garbage",
              (Command.CSR_WRITE, 5): "reply", (Command.MEM_READ, 2): "crc",
              (Command.MEM_READ, 3): "reply"}
    line = SimLine(dut, faults)
    resent = await bridge(_board_equals_golden)(line, 2, dut._log.info)
    assert len(line.damaged) == len(faults), f"damaged {line.damaged}"
    # Noise before a frame costs nothing; every other fault costs one resend.
    assert len(resent) == len(faults) - 1, f"resent {resent} after damaging {line.damaged}"


def _timeout_then_end(line):
    """A long GEMM (on the zeros memory starts with) past a 1000-cycle limit, then END."""
    config = DESIGN_POINTS[os.environ["JALAPENO_PRESET"]]
    layout = GemmLayout.packed(config, 64, 64, 64, at=0x4000, align=256)
    words, _ = tiled_gemm(config, 64, 64, 64, a_at=layout.a_at, w_at=layout.w_at,
                          c_at=layout.c_at, plan=layout.plan)
    with FpgaDevice(line, memory_bytes=SIM_MEMORY_BYTES) as board:
        board.load_program(PROGRAM_AT, words)
        try:
            board.run(PROGRAM_AT, len(words), limit=1000)
        except TimeoutError as error:
            message = str(error)
        else:
            raise AssertionError("a 16,384-cycle GEMM ran within a 1000-cycle limit")
        board.load_program(PROGRAM_AT, [encode(Opcode.END)])
        after = board.run(PROGRAM_AT, 1)
    return message, after


@cocotb.test()
async def run_test_run_past_its_limit(dut):
    """A run past its cycle limit (checked on the core's CYCLES counter while polling)
    raises TimeoutError, the core is soft-reset, and the next run works."""
    await _start(dut)
    message, after = await bridge(_timeout_then_end)(SimLine(dut))
    assert message == "fpga: the run did not end within 1000 cycles; the core was soft-reset"
    assert (after.code, after.counters["INSTRUCTIONS"]) == (CoreError.NONE, 1)
