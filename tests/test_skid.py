# amaranth: UnusedElaboratable=no
# (A SkidBuffer whose constructor raises is never elaborated; Amaranth would warn on collecting it.)

import enum
import random
import re

import pytest
from amaranth import Shape, signed, unsigned
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import AXI4LiteSignature, AXI4Signature, Burst
from rtl.bus.skid import SkidBuffer
from rtl.bus.stream_sim import simulate, stream_get, stream_put

AXI = AXI4Signature(addr_width=32, data_width=64, id_width=4)
AW = AXI.members["aw"].signature
# A channel of an array member and a signed one, to show that every port member is carried.
MIXED = wiring.Signature({
    "valid": Out(1), "ready": In(1), "lanes": Out(4).array(3), "delta": Out(signed(5)),
})


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def fields(interface):
    """The payload port signals of a channel interface, in a fixed order."""
    return [value for path, _, value in interface.signature.flatten(interface)
            if path[0] not in ("valid", "ready")]


def random_beat(rng, interface):
    beat = []
    for path, member, _ in interface.signature.flatten(interface):
        if path[0] in ("valid", "ready"):
            continue
        if isinstance(member.shape, type) and issubclass(member.shape, enum.Enum):
            beat.append(rng.choice(list(member.shape)))
            continue
        shape = Shape.cast(member.shape)
        value = rng.getrandbits(shape.width)
        if shape.signed and value >> (shape.width - 1):
            value -= 1 << shape.width
        beat.append(value)
    return beat


async def stall(ctx, rng, probability):
    while rng.random() < probability:
        await ctx.tick()


async def put(ctx, channel, beat, rng, idle):
    """Offer ``beat`` (one value per payload field) and hold it until the edge that takes it."""
    await stall(ctx, rng, idle)
    for signal, value in zip(fields(channel), beat, strict=True):
        ctx.set(signal, value)
    ctx.set(channel.valid, 1)
    while True:
        _, _, taken = await ctx.tick().sample(channel.ready)
        if taken:
            break
    ctx.set(channel.valid, 0)


async def get(ctx, channel, rng, backpressure):
    """Raise ``ready`` after random backpressure; return the beat taken at the next handshake."""
    await stall(ctx, rng, backpressure)
    ctx.set(channel.ready, 1)
    while True:
        _, _, offered, *beat = await ctx.tick().sample(channel.valid, *fields(channel))
        if offered:
            break
    ctx.set(channel.ready, 0)
    return beat


def monitor(dut, seed, counts):
    """A background testbench checking every edge: ``i.ready`` is high exactly while fewer than
    two beats are held and ``o.valid`` exactly while one is (so throughput is never lost), at
    most two are held, and an offered beat holds ``o.valid`` and its payload until taken."""

    async def bench(ctx):
        held, offered = 0, None
        while True:
            _, _, i_valid, i_ready, o_valid, o_ready, *beat = await ctx.tick().sample(
                dut.i.valid, dut.i.ready, dut.o.valid, dut.o.ready, *fields(dut.o))
            edge = counts["edges"]
            assert i_ready == (held < 2), f"seed {seed}, edge {edge}: i.ready with {held} held"
            assert o_valid == (held > 0), f"seed {seed}, edge {edge}: o.valid with {held} held"
            if offered is not None:
                assert beat == offered, f"seed {seed}, edge {edge}: offered beat changed"
            offered = beat if o_valid and not o_ready else None
            counts["in"] += bool(i_valid and i_ready)
            counts["out"] += bool(o_valid and o_ready)
            counts["edges"] += 1
            held = counts["in"] - counts["out"]
            assert 0 <= held <= 2, f"seed {seed}, edge {edge}: {held} beats held"

    return bench


def check_random(channel, *, seed, count, idle, backpressure):
    dut = SkidBuffer(channel)
    rng = random.Random(seed)
    beats = [random_beat(rng, dut.i) for _ in range(count)]
    in_rng, out_rng = random.Random(rng.getrandbits(32)), random.Random(rng.getrandbits(32))
    counts = {"in": 0, "out": 0, "edges": 0}

    async def drive(ctx):
        for beat in beats:
            await put(ctx, dut.i, beat, in_rng, idle)

    async def check(ctx):
        for index, beat in enumerate(beats):
            got = await get(ctx, dut.o, out_rng, backpressure)
            assert got == beat, f"seed {seed}, beat {index}: {got} != {beat}"
        ctx.set(dut.o.ready, 1)
        for _ in range(4):
            _, _, extra = await ctx.tick().sample(dut.o.valid)
            assert not extra, f"seed {seed}: a beat too many"
        assert counts["in"] == counts["out"] == count, f"seed {seed}: {counts}"

    simulate(dut, drive, check, background=[monitor(dut, seed, counts)], timeout=20 * count)
    return counts


@pytest.mark.parametrize(("seed", "idle", "backpressure"), [
    (1, 0.3, 0.3),
    (2, 0.0, 0.6),
    (3, 0.6, 0.0),
    (4, 0.1, 0.8),
])
def test_random_aw_beats_pass_exactly(seed, idle, backpressure):
    counts = check_random(AW, seed=seed, count=500, idle=idle, backpressure=backpressure)
    assert counts["edges"] > 500


@pytest.mark.parametrize("channel", [
    AXI.members["w"].signature,
    AXI.members["b"].signature.flip(),
    AXI.members["r"].signature.flip(),
    AXI4LiteSignature(addr_width=16).members["ar"].signature,
    AXI4Signature(addr_width=64, data_width=128, id_width=16).members["ar"].signature,
    stream.Signature(unsigned(8)),
    MIXED,
], ids=["w", "b", "r", "lite_ar", "wide_ar", "stream8", "mixed"])
def test_random_beats_pass_on_other_channels(channel):
    check_random(channel, seed=11, count=200, idle=0.4, backpressure=0.4)


def test_stream_helpers_drive_a_stream_buffer():
    """The shared stream helpers work on a buffer of a ``stream.Signature`` as on any stream."""
    seed = 5
    rng = random.Random(seed)
    dut = SkidBuffer(stream.Signature(data.StructLayout({"a": unsigned(3), "b": signed(8)})))
    beats = [{"a": rng.randrange(8), "b": rng.randrange(-128, 128)} for _ in range(300)]
    counts = {"in": 0, "out": 0, "edges": 0}

    async def drive(ctx):
        for beat in beats:
            await stream_put(ctx, dut.i, beat, rng=rng, idle=0.5)

    async def check(ctx):
        for index, beat in enumerate(beats):
            payload = await stream_get(ctx, dut.o, rng=rng, backpressure=0.5)
            got = {"a": payload.a, "b": payload.b}
            assert got == beat, f"seed {seed}, beat {index}: {got} != {beat}"

    simulate(dut, drive, check, background=[monitor(dut, seed, counts)])
    assert counts["in"] == counts["out"] == len(beats)


@pytest.mark.parametrize("channel", [stream.Signature(unsigned(8)), AW], ids=["stream8", "aw"])
def test_one_beat_per_cycle_when_both_sides_always_ready(channel):
    """Back-to-back beats with ``o.ready`` always high: every one taken at consecutive edges
    and offered one edge later, the same beat at each."""
    dut = SkidBuffer(channel)
    rng = random.Random(7)
    beats = [random_beat(rng, dut.i) for _ in range(64)]
    taken, offered = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for edge in range(len(beats) + 3):
            ctx.set(dut.i.valid, edge < len(beats))
            if edge < len(beats):
                for signal, value in zip(fields(dut.i), beats[edge], strict=True):
                    ctx.set(signal, value)
            _, _, i_ready, o_valid, *beat = await ctx.tick().sample(
                dut.i.ready, dut.o.valid, *fields(dut.o))
            if edge < len(beats):
                assert i_ready, f"i.ready low at edge {edge}"
                taken.append(edge)
            if o_valid:
                offered.append((edge, beat))

    simulate(dut, bench)
    assert taken == list(range(len(beats)))
    assert offered == [(edge + 1, beat) for edge, beat in enumerate(beats)]


@pytest.mark.parametrize("seed", [21, 22])
def test_output_never_starves_while_input_offers(seed):
    """With ``i.valid`` always high and random ``o.ready``, a beat leaves at every edge where
    ``o.ready`` is high after the first: the buffer never inserts a bubble."""
    rng = random.Random(seed)
    dut = SkidBuffer(stream.Signature(unsigned(16)))
    ready = [rng.random() < 0.5 for _ in range(400)]
    counts = {"in": 0, "out": 0, "edges": 0}

    async def bench(ctx):
        ctx.set(dut.i.valid, 1)
        for edge, o_ready in enumerate(ready):
            ctx.set(dut.i.payload, edge)
            ctx.set(dut.o.ready, o_ready)
            _, _, o_valid = await ctx.tick().sample(dut.o.valid)
            assert o_valid == (edge > 0), f"seed {seed}, edge {edge}: o.valid {o_valid}"

    simulate(dut, bench, background=[monitor(dut, seed, counts)])
    assert counts["out"] == sum(ready[1:]), f"seed {seed}: {counts}"
    assert counts["in"] - counts["out"] in (1, 2), f"seed {seed}: {counts}"


@pytest.mark.parametrize("channel", [AW, stream.Signature(unsigned(8))], ids=["aw", "stream8"])
def test_handshake_outputs_come_from_flops(channel):
    """Within a cycle, no combination of ``i.valid``, ``i``'s payload and ``o.ready`` changes
    ``i.ready``, ``o.valid`` or ``o``'s payload; they change only at edges. Random traffic
    visits the empty, one-held and full states."""
    seed = 31
    rng = random.Random(seed)
    dut = SkidBuffer(channel)
    states = set()

    async def bench(ctx):
        for edge in range(300):
            before = [ctx.get(dut.i.ready), ctx.get(dut.o.valid), *map(ctx.get, fields(dut.o))]
            for i_valid, o_ready in [(0, 0), (1, 0), (0, 1), (1, 1), (0, 0)]:
                ctx.set(dut.i.valid, i_valid)
                ctx.set(dut.o.ready, o_ready)
                for signal, value in zip(fields(dut.i), random_beat(rng, dut.i), strict=True):
                    ctx.set(signal, value)
                after = [ctx.get(dut.i.ready), ctx.get(dut.o.valid),
                         *map(ctx.get, fields(dut.o))]
                assert after == before, (f"seed {seed}, edge {edge}: changed within the cycle "
                                         f"by i.valid={i_valid}, o.ready={o_ready}")
            states.add((before[0], before[1]))
            ctx.set(dut.i.valid, rng.random() < 0.7)
            ctx.set(dut.o.ready, rng.random() < 0.4)
            await ctx.tick()

    simulate(dut, bench)
    # (i.ready, o.valid): empty, one beat held, two held.
    assert states == {(1, 0), (1, 1), (0, 1)}, f"seed {seed}: visited {states}"


def test_aw_fields_all_carried():
    """One beat with every field distinct from its initial value comes out whole."""
    dut = SkidBuffer(AW)
    beat = {"id": 0xA, "addr": 0xDEADBEEC, "len": 0xF0, "size": 3, "burst": Burst.WRAP,
            "lock": 1, "cache": 0b1011, "prot": 0b101}

    async def bench(ctx):
        names = {path[0] for path, _, _ in dut.o.signature.flatten(dut.o)}
        assert names - {"valid", "ready"} == set(beat)
        for name, value in beat.items():
            ctx.set(getattr(dut.i, name), value)
        ctx.set(dut.i.valid, 1)
        await ctx.tick()
        ctx.set(dut.i.valid, 0)
        assert ctx.get(dut.o.valid)
        assert {name: ctx.get(getattr(dut.o, name)) for name in beat} == beat

    simulate(dut, bench)


def test_ready_with_initial_value_accepted():
    channel = wiring.Signature({"valid": Out(1), "ready": In(1, init=1), "data": Out(8)})
    dut = SkidBuffer(channel)
    assert dut.signature.members["i"].signature.flip() is channel
    assert check_random(channel, seed=41, count=50, idle=0.3, backpressure=0.3)["in"] == 50


SUB = wiring.Signature({"x": Out(1)})


@pytest.mark.parametrize(("channel", "error", "message"), [
    (None, TypeError, "channel must be a wiring.Signature, not None"),
    (8, TypeError, "channel must be a wiring.Signature, not 8"),
    ({"valid": Out(1), "ready": In(1)}, TypeError,
     "channel must be a wiring.Signature, not {'valid': Out(1), 'ready': In(1)}"),
    (wiring.Signature({"ready": In(1), "data": Out(8)}), ValueError,
     "channel has no 'valid' member"),
    (wiring.Signature({"valid": Out(1), "data": Out(8)}), ValueError,
     "channel has no 'ready' member"),
    (AXI, ValueError, "channel has no 'valid' member"),
    (wiring.Signature({"valid": In(1), "ready": In(1)}), ValueError,
     "channel member 'valid' must be Out(1), not In(1)"),
    (wiring.Signature({"valid": Out(2), "ready": In(1)}), ValueError,
     "channel member 'valid' must be Out(1), not Out(2)"),
    (wiring.Signature({"valid": Out(signed(1)), "ready": In(1)}), ValueError,
     "channel member 'valid' must be Out(1), not Out(signed(1))"),
    (wiring.Signature({"valid": Out(1, init=1), "ready": In(1)}), ValueError,
     "channel member 'valid' must be Out(1), not Out(1, init=1)"),
    (wiring.Signature({"valid": Out(1).array(2), "ready": In(1)}), ValueError,
     "channel member 'valid' must be Out(1), not Out(1).array(2)"),
    (wiring.Signature({"valid": Out(SUB), "ready": In(1)}), ValueError,
     "channel member 'valid' must be Out(1), not Out(Signature({'x': Out(1)}))"),
    (AXI.members["b"].signature, ValueError,
     "channel member 'valid' must be Out(1), not In(1)"),
    (wiring.Signature({"valid": Out(1), "ready": Out(1)}), ValueError,
     "channel member 'ready' must be In(1), not Out(1)"),
    (wiring.Signature({"valid": Out(1), "ready": In(3)}), ValueError,
     "channel member 'ready' must be In(1), not In(3)"),
    (wiring.Signature({"valid": Out(1), "ready": In(1).array(2)}), ValueError,
     "channel member 'ready' must be In(1), not In(1).array(2)"),
    (wiring.Signature({"valid": Out(1), "ready": In(1), "data": In(8)}), ValueError,
     "channel member 'data' must be Out, not In(8)"),
    (wiring.Signature({"valid": Out(1), "ready": In(1), "sub": Out(SUB)}), ValueError,
     "channel member 'sub' must be a port, not a signature"),
    (wiring.Signature({"valid": Out(1), "ready": In(1), "sub": In(SUB)}), ValueError,
     "channel member 'sub' must be a port, not a signature"),
    (stream.Signature(8, always_valid=True), ValueError,
     "channel must have both handshakes, not stream.Signature(8, always_valid=True)"),
    (stream.Signature(8, always_ready=True), ValueError,
     "channel must have both handshakes, not stream.Signature(8, always_ready=True)"),
])
def test_bad_channel(channel, error, message):
    with raises_exactly(error, message):
        SkidBuffer(channel)


def test_converts_to_verilog():
    text = verilog.convert(SkidBuffer(AW), name="aw_skid")
    assert "module aw_skid(" in text
    for name in ["id", "addr", "len", "size", "burst", "lock", "cache", "prot", "valid"]:
        assert re.search(rf"\binput \[?[^;]*\bi__{name};", text), name
        assert re.search(rf"\boutput \[?[^;]*\bo__{name};", text), name
    assert re.search(r"\boutput i__ready;", text)
    assert re.search(r"\binput o__ready;", text)
    assert re.search(r"\binput \[31:0\] i__addr;", text)


def test_stream_converts_to_verilog():
    text = verilog.convert(SkidBuffer(stream.Signature(unsigned(8))), name="skid8")
    assert re.search(r"\binput \[7:0\] i__payload;", text)
    assert re.search(r"\boutput \[7:0\] o__payload;", text)
