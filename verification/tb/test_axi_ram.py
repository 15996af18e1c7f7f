"""cocotb bench of the AXI4 slave model (:mod:`verification.axi_ram`): it answers the RTL
copy master :class:`sim.axi_copy.AxiCopy`, with and without stalls, W before AW and after,
and in SLVERR/DECERR regions."""

import random

import cocotb

from rtl.bus.axi import Burst
from sim.axi_copy import AxiCopy
from verification.axi_ram import AxiRamModel

from .base import BenchTB
from .streams import Clocking

BENCH_SIZE = 1 << 16
SRC, DST = 0x1000, 0x8000


class Start:
    """A :class:`Clocking` driver that sets the copy's inputs and pulses ``start`` once."""

    def __init__(self, dut, **inputs):
        self.dut, self.inputs, self.cycles = dut, inputs, 0

    def drive(self):
        self.cycles += 1
        if self.cycles == 1:
            for name, value in self.inputs.items():
                getattr(self.dut, name).value = value
        self.dut.start.value = int(self.cycles == 1)

    def sample(self):
        pass

    def finished(self):
        return self.cycles > 1 and bool(self.dut.done.value)


async def start_bench(dut, seed, **model):
    """Reset the copy master and bind a model RAM to its bus."""
    dut.start.value = 0
    tb = BenchTB(dut, AxiCopy, "axi_copy", seed=seed)
    ram = AxiRamModel(tb.ports, "bus", size=BENCH_SIZE, rng=tb.pattern, **model)
    await tb.start()
    return ram


async def copy(dut, ram, **inputs):
    start = Start(dut, **inputs)
    await Clocking(dut.clk, [start, ram]).run(start.finished, limit=50_000)
    return {name: int(getattr(dut, name).value) for name in ("r_errors", "b_errors",
                                                              "id_errors")}


@cocotb.test()
@cocotb.parametrize(seed=[11, 12], w_first=[False, True], stress=[False, True])
async def run_test_copy(dut, seed, w_first, stress):
    """Eight bursts copied under random latency (and, stressed, stalls on every channel):
    the data arrive, every burst is logged as issued, reads overlap, and with ``w_first``
    the model took W beats before their AW."""
    model = ({"read_latency": (0, 12), "stall": 0.3} if stress
             else {"read_latency": (8, 16)})
    ram = await start_bench(dut, seed, **model)
    rng = random.Random(seed)
    length = 15 if w_first else 31
    nbytes = 8 * 8 * (length + 1)
    ram.write(SRC, bytes(rng.getrandbits(8) for _ in range(nbytes)))
    errors = await copy(dut, ram, src=SRC, dst=DST, count=8, len=length, w_first=w_first)
    where = f"seed {seed}, w_first {w_first}, stress {stress}"
    assert errors == {"r_errors": 0, "b_errors": 0, "id_errors": 0}, where
    assert ram.read(DST, nbytes) == ram.read(SRC, nbytes), where
    stride = 8 * (length + 1)
    for log, base in ((ram.ar_log, SRC), (ram.aw_log, DST)):
        assert [(r.addr, r.len, r.size, r.burst, r.id) for r in log] == [
            (base + k * stride, length, 3, Burst.INCR.value, k) for k in range(8)], where
    assert len(ram.w_log) == 8 * (length + 1) and sum(b.last for b in ram.w_log) == 8, where
    assert ram.problems(window=(SRC, DST + nbytes)) == [], where
    assert ram.max_outstanding >= 2, where
    assert (ram.w_before_aw > 0) == w_first, where
    assert ram.idle, where


@cocotb.test()
@cocotb.parametrize(seed=[13, 14])
async def run_test_error_regions(dut, seed):
    """A DECERR source burst and a SLVERR destination burst are each reported once to the
    master; the SLVERR destination is left unchanged, the DECERR data arrive as zeros; a copy
    running past the end of memory gets DECERR on the burst that does."""
    stride = 64
    ram = await start_bench(dut, seed, read_latency=(0, 5), stall=0.2,
                            decerr=[(SRC + 2 * stride + 16, SRC + 2 * stride + 24)],
                            slverr=[(DST + 3 * stride + 8, DST + 3 * stride + 9)])
    rng = random.Random(seed)
    ram.write(SRC, bytes(rng.getrandbits(8) for _ in range(4 * stride)))
    ram.write(DST, bytes(rng.getrandbits(8) for _ in range(4 * stride)))
    before = ram.read(DST, 4 * stride)
    errors = await copy(dut, ram, src=SRC, dst=DST, count=4, len=7, w_first=0)
    where = f"seed {seed}"
    assert errors == {"r_errors": 1, "b_errors": 1, "id_errors": 0}, where
    assert ram.read(DST, 2 * stride) == ram.read(SRC, 2 * stride), where
    assert ram.read(DST + 2 * stride, stride) == bytes(stride), where
    assert ram.read(DST + 3 * stride, stride) == before[3 * stride:], where
    errors = await copy(dut, ram, src=BENCH_SIZE - 2 * stride, dst=DST, count=3, len=7,
                        w_first=0)
    assert errors == {"r_errors": 1, "b_errors": 0, "id_errors": 0}, where
    assert [r.resp.name for r in ram.ar_log[4:]] == ["OKAY", "OKAY", "DECERR"], where
    assert ram.read(DST, 3 * stride) == ram.read(BENCH_SIZE - 2 * stride, 2 * stride) + bytes(
        stride), where
