import random
from collections import Counter, deque

import numpy as np
import pytest

from rtl.bus.stream_sim import simulate, stream_get, stream_put
from rtl.config import JalapenoConfig
from rtl.systolic.accumulator import AccumulatorMemory
from verification.models.matrix_unit import wrap_int32

INT32_MIN, INT32_MAX = -2**31, 2**31 - 1
SMALL = JalapenoConfig(rows=1, cols=3, acc_depth=8)
TWO_ROWS = JalapenoConfig(rows=1, cols=1, acc_depth=2, read_fifo_depth=5)
# The cases the forwarding registers exist for, counted by the monitor: an update or read of
# the row an update wrote one or two cycles before (and, for two, the update between did not).
FORWARDING_CASES = [(kind, distance) for kind in ["update", "read"] for distance in [1, 2]]


def update(addr, data, *, accumulate, lanes):
    return {"addr": addr, "data": data, "accumulate": accumulate, "lanes": lanes}


def apply(acc, payload):
    """Apply one update (as sampled from the design) to the NumPy model ``acc`` in place."""
    row = acc[payload.addr]
    for lane, value in enumerate(payload.data):
        if payload.lanes >> lane & 1:
            row[lane] = wrap_int32(int(row[lane]) * payload.accumulate + value)


def random_int32(rng):
    return rng.choice([INT32_MIN, INT32_MAX, -1, rng.randint(-1000, 1000),
                       rng.randint(INT32_MIN, INT32_MAX)])


def random_update(rng, cfg):
    return update(rng.randrange(cfg.acc_depth), [random_int32(rng) for _ in range(cfg.cols)],
                  accumulate=rng.randrange(2), lanes=rng.randrange(1 << cfg.cols))


class Bench:
    """An accumulator with a monitor that keeps a NumPy model in step with every handshake.

    The monitor samples each clock edge: an update taken there changes the model, a read
    taken there records the row the model holds at that moment as the expected response.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self.dut = AccumulatorMemory(cfg)
        self.acc = np.zeros((cfg.acc_depth, cfg.cols), dtype=np.int32)
        self.expected = deque()
        self.coverage = Counter()

    async def monitor(self, ctx):
        dut = self.dut
        # Rows of the updates taken one and two cycles ago (None: no update), the last one last.
        recent = deque([None, None], maxlen=2)

        def count(kind, addr):
            for distance, previous in [(1, recent[1]), (2, recent[0])]:
                if previous == addr:
                    self.coverage[kind, distance] += 1
                    return

        async for _, _, busy, update_valid, update_ready, payload, read_valid, read_ready, \
                addr in ctx.tick().sample(dut.busy, dut.update.valid, dut.update.ready,
                                          dut.update.payload, dut.read.valid, dut.read.ready,
                                          dut.read.payload):
            assert update_ready, "update.ready fell"
            assert busy == (recent != deque([None, None])), \
                "busy is not 'an update is not yet written'"
            if update_valid:
                count("update", payload.addr)
                apply(self.acc, payload)
            if read_valid and read_ready:
                assert not update_valid
                count("read", addr)
                self.expected.append(self.acc[addr].tolist())
            recent.append(payload.addr if update_valid else None)

    async def check_read(self, ctx, what, *, rng=None, backpressure=0.0):
        """Take one response, check it against the model and return it."""
        row = list(await stream_get(ctx, self.dut.read_data, rng=rng, backpressure=backpressure))
        assert row == self.expected.popleft(), what
        return row

    def run(self, *testbenches):
        simulate(self.dut, *testbenches, background=[self.monitor])
        assert not self.expected, "reads accepted but never answered"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("update_idle", "read_idle", "backpressure"), [
    (0.0, 0.0, 0.0),
    (0.3, 0.2, 0.5),
    (0.6, 0.0, 0.8),
])
@pytest.mark.parametrize("cfg", [SMALL, TWO_ROWS], ids=["3x8", "1x2"])
def test_random_against_model(cfg, update_idle, read_idle, backpressure, seed):
    rng = random.Random(seed)
    bench = Bench(cfg)
    updates = [random_update(rng, cfg) for _ in range(150)]
    random_reads = [rng.randrange(cfg.acc_depth) for _ in range(60)]
    updates_done = False

    async def drive_updates(ctx):
        nonlocal updates_done
        for payload in updates:
            await stream_put(ctx, bench.dut.update, payload, rng=rng, idle=update_idle)
        updates_done = True

    async def drive_reads(ctx):
        for addr in random_reads:
            await stream_put(ctx, bench.dut.read, addr, rng=rng, idle=read_idle)
        while not updates_done:
            await ctx.tick()
        for addr in range(cfg.acc_depth):
            await stream_put(ctx, bench.dut.read, addr)

    async def take_reads(ctx):
        for index in range(len(random_reads) + cfg.acc_depth):
            await bench.check_read(ctx, f"seed {seed}, read {index}",
                                   rng=rng, backpressure=backpressure)

    bench.run(drive_updates, drive_reads, take_reads)
    # Reads only get the cycles without an update, so only idle updates let one follow an update.
    for kind, distance in FORWARDING_CASES:
        if kind == "update" or update_idle:
            assert bench.coverage[kind, distance], \
                f"seed {seed}: no {kind} {distance} cycles after an update of its row"


def test_updates_and_reads_one_and_two_cycles_after_an_update_of_their_row():
    """Every forwarding case, one cycle after another: updates and reads of a row an update
    wrote one cycle before, two cycles before (with an idle cycle, a read or an update of
    another row between), and three updates of one row in a row (the newest row wins), with
    masked lanes and int32 wraparound; then a read of a row long written, from memory."""
    bench = Bench(SMALL)
    dut = bench.dut
    schedule = [
        update(5, [INT32_MAX, 10, -4], accumulate=0, lanes=7),
        update(5, [1, 7, 99], accumulate=1, lanes=3),  # 1 after
        update(5, [-1, 0, 1], accumulate=1, lanes=5),  # 1 after, and 2 after an older one
        5,  # read, 1 after
        update(5, [2, 3, 4], accumulate=1, lanes=4),  # 2 after, a read between
        None,
        5,  # read, 2 after, an idle cycle between
        update(2, [5, 5, 5], accumulate=1, lanes=7),
        update(3, [1, 1, 1], accumulate=0, lanes=7),
        update(2, [1, 2, 3], accumulate=1, lanes=7),  # 2 after, another row between
        update(3, [10, 20, 30], accumulate=1, lanes=2),  # 2 after, another row between
        2,  # read, 2 after, another row between
        3,  # read, 2 after, a read between
        None,
        5,  # read from memory
    ]
    rows = [[INT32_MAX, 17, -3], [INT32_MAX, 17, 1], [6, 7, 8], [1, 21, 1], [INT32_MAX, 17, 1]]

    async def drive(ctx):
        for op in schedule:
            if op is None:
                await ctx.tick()
            else:
                await stream_put(ctx, dut.update if isinstance(op, dict) else dut.read, op)

    async def take_reads(ctx):
        for index, row in enumerate(rows):
            assert await bench.check_read(ctx, f"read {index}") == row, f"read {index}"

    bench.run(drive, take_reads)
    assert bench.coverage == {("update", 1): 2, ("update", 2): 3, ("read", 1): 1,
                              ("read", 2): 3}


@pytest.mark.parametrize("seed", range(6))
def test_one_cycle_at_a_time_against_model(seed):
    """Each cycle an update, a read or nothing, drawn at random over two rows, so every order
    of updates and reads of one row within three cycles occurs, while ``read_data`` is taken
    at random: each cycle's request is held until taken, as the stream rules require."""
    rng = random.Random(seed)
    bench = Bench(TWO_ROWS)
    dut = bench.dut
    ops = [rng.choice(["update", "read", None]) for _ in range(300)]
    reads = ops.count("read") + TWO_ROWS.acc_depth

    async def drive(ctx):
        for op in ops:
            if op == "update":
                await stream_put(ctx, dut.update, random_update(rng, TWO_ROWS))
            elif op == "read":
                await stream_put(ctx, dut.read, rng.randrange(TWO_ROWS.acc_depth))
            else:
                await ctx.tick()
        for addr in range(TWO_ROWS.acc_depth):
            await stream_put(ctx, dut.read, addr)

    async def take_reads(ctx):
        for index in range(reads):
            await bench.check_read(ctx, f"seed {seed}, read {index}", rng=rng, backpressure=0.6)

    bench.run(drive, take_reads)
    for kind, distance in FORWARDING_CASES:
        assert bench.coverage[kind, distance], \
            f"seed {seed}: no {kind} {distance} cycles after an update of its row"


def test_full_response_buffer_stops_reads_but_not_updates():
    """Nobody takes responses: reads stop once the buffer is full, every update still goes
    through at once, and the buffered responses come out right afterwards."""
    cfg = SMALL
    bench = Bench(cfg)
    dut = bench.dut
    reads = [(3 + index) % cfg.acc_depth for index in range(cfg.read_fifo_depth + 2)]
    responses_taken = False

    async def drive_reads(ctx):
        for addr in reads:
            await stream_put(ctx, dut.read, addr)

    async def drive_updates(ctx):
        for _ in range(cfg.read_fifo_depth + 4):
            await ctx.tick()
        assert len(bench.expected) == cfg.read_fifo_depth
        assert not ctx.get(dut.read.ready)
        for addr in range(cfg.acc_depth):
            await stream_put(ctx, dut.update, update(addr, [addr, -addr, 1], accumulate=1,
                                                     lanes=7))
        assert not responses_taken

    async def take_reads(ctx):
        nonlocal responses_taken
        for _ in range(cfg.read_fifo_depth + 4 + cfg.acc_depth):
            await ctx.tick()
        responses_taken = True
        for index in range(len(reads)):
            await bench.check_read(ctx, f"read {index}")

    bench.run(drive_reads, drive_updates, take_reads)
