# amaranth: UnusedElaboratable=no
"""The board memory (fpga.memory.AxiMemory on block RAM) against a bytearray: random AXI4
read and write bursts with strobes and backpressure, the host port's reads and writes in the
same cycles, DECERR past the end, with reads in two cycles (the ULX3S's registered block RAM)
and in one (as the iCEBreaker's SPRAMs answer); parameter checks."""

import random
import re

import pytest
from test_axi_ram import receive, send

from fpga.memory import AxiMemory, BlockStorage, SpramStorage
from rtl.bus.axi import Burst, Resp
from rtl.bus.stream_sim import simulate
from rtl.config import preset

SIZE = 4096


def _memory(name="tiny", registered=True):
    cfg = preset(name)
    return cfg, AxiMemory(cfg, BlockStorage(cfg, SIZE, registered=registered))


@pytest.mark.parametrize("registered", [True, False], ids=["two_cycles", "one_cycle"])
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("name", ["tiny", "default"])
def test_bursts_and_host_port_against_a_model(name, seed, registered):
    cfg, dut = _memory(name, registered)
    latency = 2 if registered else 1
    beat = cfg.bus_bytes
    rng = random.Random(seed)
    model = bytearray(SIZE)
    host_words = {}  # host port writes go to their own word range, so the order is free

    async def master(ctx):
        for _ in range(40):
            length = rng.randrange(1, 9)
            addr = rng.randrange(0, SIZE // 2 // beat - length) * beat
            outside = rng.random() < 0.1
            if outside:
                addr = SIZE - beat * (length // 2)
            fields = {"addr": addr, "len": length - 1, "size": beat.bit_length() - 1,
                      "burst": Burst.INCR, "id": rng.randrange(4)}
            if rng.random() < 0.5:
                await send(ctx, dut.bus.aw, fields, rng=rng, idle=0.3)
                for i in range(length):
                    data = rng.getrandbits(8 * beat)
                    strb = rng.getrandbits(beat)
                    await send(ctx, dut.bus.w, {"data": data, "strb": strb,
                                                "last": i == length - 1}, rng=rng, idle=0.2)
                    if not outside:
                        for b in range(beat):
                            if strb >> b & 1:
                                model[addr + i * beat + b] = data >> 8 * b & 0xFF
                got = await receive(ctx, dut.bus.b, ("id", "resp"), rng=rng,
                                    backpressure=0.3)
                want = (fields["id"], Resp.DECERR if outside else Resp.OKAY)
                assert (got["id"], got["resp"]) == want, f"seed {seed}: write at {addr:#x}"
            else:
                await send(ctx, dut.bus.ar, fields, rng=rng, idle=0.3)
                for i in range(length):
                    got = await receive(ctx, dut.bus.r, ("data", "id", "resp", "last"),
                                        rng=rng, backpressure=0.4)
                    want = 0 if outside else int.from_bytes(
                        model[addr + i * beat:addr + (i + 1) * beat], "little")
                    assert tuple(got.values()) == (
                        want, fields["id"], Resp.DECERR if outside else Resp.OKAY,
                        i == length - 1), f"seed {seed}: read beat {i} at {addr:#x}"

    async def host(ctx):
        # The upper half of memory: written and read back through the host port.
        words = SIZE // beat
        for _ in range(60):
            word = rng.randrange(words // 2, words)
            write = rng.random() < 0.6 or word not in host_words
            value = rng.getrandbits(8 * beat)
            ctx.set(dut.host.valid, 1)
            ctx.set(dut.host.write, write)
            ctx.set(dut.host.addr, word)
            ctx.set(dut.host.wdata, value)
            ctx.set(dut.host.wstrb, (1 << beat) - 1)
            while True:
                _, _, ready = await ctx.tick().sample(dut.host.ready)
                if ready:
                    break
            ctx.set(dut.host.valid, 0)
            if write:
                host_words[word] = value
            else:
                for _ in range(latency - 1):
                    assert not ctx.get(dut.host.rvalid), f"seed {seed}: host read early"
                    await ctx.tick()
                assert ctx.get(dut.host.rvalid) and ctx.get(dut.host.rdata) == host_words[word], \
                    f"seed {seed}: host read of word {word}"
            for _ in range(rng.randrange(3)):
                await ctx.tick()

    simulate(dut, master, host, timeout=20_000)


def test_parameters():
    cfg = preset("tiny")
    with pytest.raises(TypeError, match="^config must be a JalapenoConfig, not 'tiny'$"):
        BlockStorage("tiny", SIZE)
    with pytest.raises(ValueError, match=re.escape(
            "size must be a power of two from 4096 to 2**addr_width bytes, not 6144")):
        BlockStorage(cfg, 6144)
    with pytest.raises(ValueError, match=re.escape(
            "262144 bytes at 32 bits a word do not fit the 4 SPRAMs of 16384 x 16 bits")):
        SpramStorage(cfg, 262144)
    with pytest.raises(TypeError, match="^storage must be a BlockStorage or SpramStorage"):
        AxiMemory(cfg, None)
    with pytest.raises(TypeError, match="^registered must be a bool, not 1$"):
        BlockStorage(cfg, SIZE, registered=1)
