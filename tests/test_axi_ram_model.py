"""The cocotb AXI4 slave model's bookkeeping, through fake handles stepped by a Python
master. Its cocotb bench against real RTL is ``verification/tb/test_axi_ram.py``."""

import random
import re
from collections import deque

import pytest
from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from rtl.bus.axi import AXI4Signature, Burst, Resp
from sim.axi_ram import burst_response
from sim.ports import port_name
from verification.axi_ram import AxiRamModel


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


# -- the model's bookkeeping, through fake handles ----------------------------------------------

class FakeValue(int):
    """What a cocotb handle's ``value`` gives, for a resolved value."""

    is_resolvable = True

    def to_unsigned(self):
        return int(self)


class FakeHandle:
    def __init__(self, width):
        self.width = width
        self._value = 0

    def __len__(self):
        return self.width

    @property
    def value(self):
        return FakeValue(self._value)

    @value.setter
    def value(self, value):
        assert 0 <= int(value) < 1 << self.width, (value, self.width)
        self._value = int(value)


class FakePorts:
    """:class:`sim.ports.Ports` over fake handles, one per port of ``signature``."""

    def __init__(self, signature):
        self._signature = signature
        self.handles = {"__".join(map(str, path)): FakeHandle(Shape.cast(member.shape).width)
                        for path, member in signature.members.flatten() if member.is_port}

    def __call__(self, *path):
        return self.handles[port_name(self._signature, *path)]


def fake_bus(data_width=32, addr_width=16, id_width=4):
    signature = wiring.Signature({"bus": Out(AXI4Signature(
        addr_width=addr_width, data_width=data_width, id_width=id_width))})
    return FakePorts(signature)


class FakeMaster:
    """A Python AXI4 master stepped with the model: queued AW/W/AR items (each offered no
    earlier than its ``after`` cycle, with random idle cycles) and B/R collected under random
    backpressure; ``r_ready`` may be forced low."""

    def __init__(self, ports, rng, *, idle=0.0, backpressure=0.0):
        self.h = ports.handles
        self.rng, self.idle, self.backpressure = rng, idle, backpressure
        self.queues = {name: deque() for name in ("aw", "w", "ar")}
        self.offering = dict.fromkeys(self.queues, False)
        self.taking = dict.fromkeys(("b", "r"), False)
        self.hold_r = False
        self.b, self.r = [], []
        self.cycle = 0

    def send(self, channel, fields, after=0):
        self.queues[channel].append((after, fields))

    def drive(self):
        self.cycle += 1
        for name, queue in self.queues.items():
            if (not self.offering[name] and queue and queue[0][0] <= self.cycle
                    and not self.rng.random() < self.idle):
                for field, value in queue[0][1].items():
                    self.h[f"bus__{name}__{field}"].value = value
                self.offering[name] = True
            self.h[f"bus__{name}__valid"].value = int(self.offering[name])
        for name in ("b", "r"):
            self.taking[name] = not self.rng.random() < self.backpressure
            if name == "r" and self.hold_r:
                self.taking[name] = False
            self.h[f"bus__{name}__ready"].value = int(self.taking[name])

    def sample(self):
        for name, queue in self.queues.items():
            if self.offering[name] and self.h[f"bus__{name}__ready"].value:
                queue.popleft()
                self.offering[name] = False
        if self.taking["b"] and self.h["bus__b__valid"].value:
            self.b.append((self.h["bus__b__id"].value, self.h["bus__b__resp"].value))
        if self.taking["r"] and self.h["bus__r__valid"].value:
            self.r.append(tuple(self.h[f"bus__r__{f}"].value for f in ("id", "data", "resp",
                                                                          "last")))


def step(model, master, until, limit=20_000):
    for _ in range(limit):
        model.drive()
        master.drive()
        model.sample()
        master.sample()
        if until():
            return
    raise TimeoutError(f"not done within {limit} cycles")


def address(id_, addr, length, size=2, burst=Burst.INCR):
    return {"id": id_, "addr": addr, "len": length, "size": size, "burst": burst.value
            if isinstance(burst, Burst) else burst}


def random_write(rng, lo, hi, nb):
    """A write inside ``[lo, hi)`` crossing no 4 KiB boundary: (AW fields, beats)."""
    addr = rng.randrange(lo, hi)
    base = addr - addr % nb
    end = min(hi, (addr // 4096 + 1) * 4096)
    beats = min(rng.choice([1, 2, rng.randint(1, 40)]), (end - base) // nb)
    full = (1 << nb) - 1
    data = [(rng.getrandbits(8 * nb), full if rng.random() < 0.5 else rng.getrandbits(nb))
            for _ in range(beats)]
    data[0] = (data[0][0], data[0][1] & full << addr % nb & full)
    return address(rng.getrandbits(4), addr, beats - 1, nb.bit_length() - 1), data


def apply(memory, fields, data, nb):
    base = fields["addr"] // nb * nb
    for index, (value, strb) in enumerate(data):
        for byte in range(nb):
            if strb >> byte & 1:
                memory[base + index * nb + byte] = value >> 8 * byte & 0xFF


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_model_traffic_against_golden(seed):
    """Random writes with random strobes, half of them with their W beats before the AW, then
    random reads several outstanding, under stalls on both sides: B and R answers, memory and
    logs all as a bytearray golden memory says."""
    rng = random.Random(seed)
    nb, size = 8, 1 << 14
    init = bytes(rng.getrandbits(8) for _ in range(size))
    ports = fake_bus(data_width=64)
    model = AxiRamModel(ports, "bus", size=size, rng=random.Random(seed), init=init,
                        read_latency=(0, 6), stall=0.3)
    master = FakeMaster(ports, rng, idle=0.3, backpressure=0.3)
    golden = bytearray(init)
    writes = [random_write(rng, 0, size, nb) for _ in range(30)]
    for fields, data in writes:
        w_first = rng.random() < 0.5 and len(data) <= model.w_buffer
        # A W-first write's AW waits until its beats can all have been taken.
        after = master.cycle + 4 * len(data) + 40 if w_first else 0
        master.send("aw", fields, after=after)
        for index, (value, strb) in enumerate(data):
            master.send("w", {"data": value, "strb": strb, "last": int(index == len(data) - 1)})
        step(model, master, lambda: not master.queues["aw"] and not master.queues["w"])
        apply(golden, fields, data, nb)
    step(model, master, lambda: len(master.b) == len(writes))
    assert master.b == [(f["id"], Resp.OKAY.value) for f, _ in writes], f"seed {seed}"
    assert model.memory == golden, f"seed {seed}"
    assert model.w_before_aw > 0, f"seed {seed}"

    reads = [random_write(rng, 0, size, nb)[0] for _ in range(30)]
    for fields in reads:
        master.send("ar", fields)
    expected = []
    for fields in reads:
        base = fields["addr"] // nb * nb
        expected += [(fields["id"], int.from_bytes(golden[a:a + nb], "little"), 0,
                      int(i == fields["len"]))
                     for i, a in enumerate(range(base, base + (fields["len"] + 1) * nb, nb))]
    step(model, master, lambda: len(master.r) == len(expected))
    assert master.r == expected, f"seed {seed}"
    assert model.max_outstanding >= 2, f"seed {seed}"
    assert [(r.addr, r.len) for r in model.ar_log] == [(f["addr"], f["len"]) for f in reads]
    assert [(r.addr, r.len) for r in model.aw_log] == [(f["addr"], f["len"]) for f, _ in writes]
    assert [(b.data, b.strb) for b in model.w_log] == [beat for _, d in writes for beat in d]
    assert len(model.read_delays) == len(reads) and min(model.read_delays) >= 1
    assert model.idle and not model.problems(window=(0, size)), f"seed {seed}"


@pytest.mark.parametrize(("low", "high"), [(0, 0), (5, 5), (2, 9)])
def test_model_read_latency(low, high):
    """Without stalls, a read's first beat is taken ``1 + latency`` cycles after its AR,
    with the latency drawn from ``[low, high]``."""
    ports = fake_bus()
    model = AxiRamModel(ports, "bus", size=4096, rng=random.Random(low + high),
                        read_latency=(low, high))
    master = FakeMaster(ports, random.Random(0))
    for k in range(40):
        master.send("ar", address(k & 15, 64 * k, 3), after=master.cycle + 30 * k)
    step(model, master, lambda: len(master.r) == 160)
    assert min(model.read_delays) >= low + 1 and max(model.read_delays) <= high + 1
    if low == high:
        assert set(model.read_delays) == {low + 1}
    else:
        assert len(set(model.read_delays)) >= high - low - 1


def test_model_max_reads():
    """With ``r.ready`` held low, exactly ``max_reads`` ARs are accepted; released, they are
    answered in order with their IDs."""
    ports = fake_bus()
    model = AxiRamModel(ports, "bus", size=4096, rng=random.Random(0), max_reads=5,
                        init=bytes(range(256)) * 16)
    master = FakeMaster(ports, random.Random(0))
    master.hold_r = True
    for k in range(8):
        master.send("ar", address(k, 16 * k, 0))
    step(model, master, lambda: master.cycle == 50)
    assert len(model.ar_log) == 5 and len(master.queues["ar"]) == 3
    master.hold_r = False
    step(model, master, lambda: len(master.r) == 8)
    assert [r[:2] for r in master.r] == [(k, int.from_bytes(bytes(range(16 * k, 16 * k + 4)),
                                                             "little")) for k in range(8)]


def test_model_error_regions_and_problems():
    """Every error rule answers as :func:`burst_response` says, error reads return zeros,
    error writes change nothing, and :meth:`problems` lists the bad bursts and the
    misplaced ``w.last``."""
    rng = random.Random(4)
    slverr, decerr = [(0x100, 0x140)], [(0x300, 0x380)]
    ports = fake_bus()
    init = bytes(rng.getrandbits(8) for _ in range(8192))
    model = AxiRamModel(ports, "bus", size=8192, rng=random.Random(4), slverr=slverr,
                        decerr=decerr, init=init, stall=0.2)
    master = FakeMaster(ports, rng, idle=0.2, backpressure=0.2)
    cases = [address(1, 0x0FC, 1), address(2, 0x2FC, 1), address(3, 0x380, 0),
             address(4, 0xFF0, 4), address(5, 0x1FFC, 1), address(6, 0x400, 0, 2, Burst.FIXED),
             address(7, 0x440, 3, 2, Burst.WRAP), address(8, 0x480, 0, 1), address(9, 0x40, 1)]
    expected = [burst_response(f["addr"], f["len"], f["size"], f["burst"], bytes_per_beat=4,
                               memory_size=8192, slverr=slverr, decerr=decerr) for f in cases]
    assert [e.name for e in expected] == ["SLVERR", "DECERR", "OKAY", "SLVERR", "DECERR",
                                          "SLVERR", "SLVERR", "SLVERR", "OKAY"]
    golden = bytearray(init)
    for k, fields in enumerate(cases):
        master.send("aw", fields)
        data = [(rng.getrandbits(32), 0xF) for _ in range(fields["len"] + 1)]
        lasts = [i == fields["len"] for i in range(len(data))]
        if k == len(cases) - 1:
            lasts = [True, True]  # an early w.last: SLVERR, beats still written
        for (value, strb), last in zip(data, lasts, strict=True):
            master.send("w", {"data": value, "strb": strb, "last": int(last)})
        if expected[k] == Resp.OKAY:
            apply(golden, fields, data, 4)
    step(model, master, lambda: len(master.b) == len(cases))
    assert [resp for _, resp in master.b] == [e.value for e in expected[:-1]] + [2]
    assert model.memory == golden
    for fields in cases:
        master.send("ar", fields)
    step(model, master, lambda: len(master.r) == sum(f["len"] + 1 for f in cases))
    beats = iter(master.r)
    for fields, resp in zip(cases, expected, strict=True):
        for index in range(fields["len"] + 1):
            id_, data, got, last = next(beats)
            assert (id_, got, last) == (fields["id"], resp.value, int(index == fields["len"]))
            if resp != Resp.OKAY:
                assert data == 0
    # Each bad AW/AR once as AW and once as AR (cycles vary with the stalls), the w.last once.
    problems = model.problems(window=(0, 0x1000))
    for needle, times in (("addr 0xff0 len 4 size 2 burst 1: crosses a 4096-byte boundary", 2),
                          ("addr 0xff0 len 4 size 2 burst 1: outside [0x0, 0x1000)", 2),
                          ("addr 0x1ffc len 1 size 2 burst 1: crosses a 4096-byte boundary", 2),
                          ("addr 0x1ffc len 1 size 2 burst 1: outside [0x0, 0x1000)", 2),
                          ("addr 0x400 len 0 size 2 burst 0: not an INCR burst", 2),
                          ("addr 0x440 len 3 size 2 burst 2: not an INCR burst", 2),
                          ("addr 0x480 len 0 size 1 burst 1: not of full-width beats", 2),
                          ("addr 0x40 len 1: w.last not on beat 1 alone", 1)):
        assert sum(line.endswith(needle) for line in problems) == times, (needle, problems)
    assert len(problems) == 15, problems


@pytest.mark.parametrize(("changes", "error", "message"), [
    ({"size": 4096.0}, TypeError, "size must be an integer, not 4096.0"),
    ({"size": 3000}, ValueError, "size must be a power of two from 4 to 65536, not 3000"),
    ({"size": 1 << 17}, ValueError, "size must be a power of two from 4 to 65536, not 131072"),
    ({"rng": 5}, TypeError, "rng must be a random.Random, not 5"),
    ({"read_latency": (3, 2)}, ValueError,
     "read_latency must be a pair (min, max) of integers with 0 <= min <= max, not (3, 2)"),
    ({"read_latency": 4}, ValueError,
     "read_latency must be a pair (min, max) of integers with 0 <= min <= max, not 4"),
    ({"stall": 1}, ValueError, "stall must be a number in [0, 1), not 1"),
    ({"stall": {"q": 0.1}}, ValueError, "stall has no channel 'q'; channels are aw, w, b, ar, r"),
    ({"slverr": [(5, 5)]}, ValueError,
     "slverr ranges must be (lo, hi) pairs with 0 <= lo < hi <= 65536, not (5, 5)"),
    ({"max_reads": 0}, ValueError, "max_reads must be a positive integer, not 0"),
    ({"w_buffer": None}, ValueError, "w_buffer must be a positive integer, not None"),
    ({"init": bytes(4097)}, ValueError, "init must be at most 4096 bytes, not 4097"),
])
def test_model_bad_parameters(changes, error, message):
    kwargs = {"size": 4096, "rng": random.Random(0), **changes}
    with raises_exactly(error, message):
        AxiRamModel(fake_bus(), "bus", **kwargs)


# -- a small RTL master, and the cocotb bench that puts the model behind it ---------------------
