# amaranth: UnusedElaboratable=no
# (The components of a connection that must be refused are never elaborated.)

import re

import pytest
from amaranth import Module, Shape, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.bus.axi import (
    BURST_BOUNDARY,
    DATA_WIDTHS,
    MAX_BURST_BEATS,
    AXI4LiteSignature,
    AXI4Signature,
    Burst,
    Resp,
    address_channel,
)
from rtl.bus.stream_sim import simulate

FULL = dict(addr_width=32, data_width=64, id_width=4)
LITE = dict(addr_width=32, data_width=32)


def raises_exactly(error, message):
    return pytest.raises(error, match=f"^{re.escape(message)}$")


def channel(sig, name):
    """Channel ``name`` of ``sig`` as seen from the side that sends on it."""
    member = sig.members[name]
    return member.signature if member.flow == Out else member.signature.flip()


def ports(channel_sig):
    """``{name: (flow, width)}`` of a channel, as seen from its sender."""
    return {name: (member.flow, Shape.cast(member.shape).width)
            for name, member in channel_sig.members.items()}


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"addr_width": True}, TypeError, "addr_width must be an integer, not True"),
    ({"addr_width": 32.0}, TypeError, "addr_width must be an integer, not 32.0"),
    ({"addr_width": "32"}, TypeError, "addr_width must be an integer, not '32'"),
    ({"addr_width": None}, TypeError, "addr_width must be an integer, not None"),
    ({"addr_width": 11}, ValueError, "addr_width must be between 12 and 64, not 11"),
    ({"addr_width": 65}, ValueError, "addr_width must be between 12 and 64, not 65"),
    ({"data_width": 48}, ValueError, "data_width must be one of 32, 64, 128, not 48"),
    ({"data_width": 256}, ValueError, "data_width must be one of 32, 64, 128, not 256"),
    ({"data_width": 16}, ValueError, "data_width must be one of 32, 64, 128, not 16"),
    ({"data_width": True}, ValueError, "data_width must be one of 32, 64, 128, not True"),
    ({"data_width": 64.0}, ValueError, "data_width must be one of 32, 64, 128, not 64.0"),
    ({"data_width": "64"}, ValueError, "data_width must be one of 32, 64, 128, not '64'"),
    ({"id_width": False}, TypeError, "id_width must be an integer, not False"),
    ({"id_width": 4.0}, TypeError, "id_width must be an integer, not 4.0"),
    ({"id_width": 0}, ValueError, "id_width must be between 1 and 16, not 0"),
    ({"id_width": 17}, ValueError, "id_width must be between 1 and 16, not 17"),
])
def test_axi4_bad_parameter(overrides, error, message):
    with raises_exactly(error, message):
        AXI4Signature(**{**FULL, **overrides})


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"addr_width": False}, TypeError, "addr_width must be an integer, not False"),
    ({"addr_width": 1.5}, TypeError, "addr_width must be an integer, not 1.5"),
    ({"addr_width": 0}, ValueError, "addr_width must be between 12 and 64, not 0"),
    ({"addr_width": 100}, ValueError, "addr_width must be between 12 and 64, not 100"),
    ({"data_width": 128}, ValueError, "data_width must be one of 32, 64, not 128"),
    ({"data_width": 8}, ValueError, "data_width must be one of 32, 64, not 8"),
    ({"data_width": True}, ValueError, "data_width must be one of 32, 64, not True"),
    ({"data_width": None}, ValueError, "data_width must be one of 32, 64, not None"),
])
def test_axi4_lite_bad_parameter(overrides, error, message):
    with raises_exactly(error, message):
        AXI4LiteSignature(**{**LITE, **overrides})


def test_checks_in_parameter_order():
    with raises_exactly(TypeError, "addr_width must be an integer, not None"):
        AXI4Signature(addr_width=None, data_width=None, id_width=None)
    with raises_exactly(ValueError, "data_width must be one of 32, 64, 128, not None"):
        AXI4Signature(addr_width=32, data_width=None, id_width=None)


def test_keyword_only():
    with raises_exactly(TypeError,
                        "AXI4Signature.__init__() takes 1 positional argument but 4 were given"):
        AXI4Signature(32, 64, 4)
    with raises_exactly(TypeError,
                        "AXI4LiteSignature.__init__() takes 1 positional argument "
                        "but 2 were given"):
        AXI4LiteSignature(32)


@pytest.mark.parametrize("overrides", [
    {"addr_width": 12, "data_width": 32, "id_width": 1},
    {"addr_width": 64, "data_width": 128, "id_width": 16},
])
def test_axi4_range_limits_accepted(overrides):
    sig = AXI4Signature(**overrides)
    assert (sig.addr_width, sig.data_width, sig.id_width) == tuple(overrides.values())
    assert len(channel(sig, "aw").create().addr) == overrides["addr_width"]


def test_lite_default_data_width():
    sig = AXI4LiteSignature(addr_width=12)
    assert (sig.addr_width, sig.data_width) == (12, 32)


def test_equality():
    assert AXI4Signature(**FULL) == AXI4Signature(**FULL)
    assert not AXI4Signature(**FULL) != AXI4Signature(**FULL)
    for key, value in [("addr_width", 48), ("data_width", 128), ("id_width", 5)]:
        other = AXI4Signature(**{**FULL, key: value})
        assert AXI4Signature(**FULL) != other, key
        assert not AXI4Signature(**FULL) == other, key
    assert AXI4LiteSignature(**LITE) == AXI4LiteSignature(addr_width=32)
    assert AXI4LiteSignature(**LITE) != AXI4LiteSignature(addr_width=32, data_width=64)
    assert AXI4LiteSignature(**LITE) != AXI4LiteSignature(addr_width=31)
    assert AXI4Signature(addr_width=32, data_width=32, id_width=1) != AXI4LiteSignature(**LITE)
    assert AXI4LiteSignature(**LITE) != AXI4Signature(addr_width=32, data_width=32, id_width=1)
    assert AXI4Signature(**FULL).flip() == AXI4Signature(**FULL).flip()
    assert AXI4Signature(**FULL).flip() != AXI4Signature(**FULL)
    assert AXI4Signature(**FULL) != "AXI4Signature"


def test_repr():
    assert repr(AXI4Signature(addr_width=40, data_width=128, id_width=6)) == \
        "AXI4Signature(addr_width=40, data_width=128, id_width=6)"
    assert repr(AXI4LiteSignature(addr_width=16)) == \
        "AXI4LiteSignature(addr_width=16, data_width=32)"
    assert repr(AXI4Signature(**FULL).flip()) == \
        "AXI4Signature(addr_width=32, data_width=64, id_width=4).flip()"


@pytest.mark.parametrize("sig", [AXI4Signature(**FULL), AXI4LiteSignature(**LITE)],
                         ids=["axi4", "lite"])
def test_channel_directions(sig):
    """A master sends on aw, w and ar and receives on b and r; on every channel ``valid`` and
    the fields point from the sender and ``ready`` back."""
    assert {name: member.flow for name, member in sig.members.items()} == \
        {"aw": Out, "w": Out, "b": In, "ar": Out, "r": In}
    for name in sig.members:
        flows = {field: member.flow for field, member in channel(sig, name).members.items()}
        assert flows.pop("ready") == In, name
        assert set(flows.values()) == {Out}, name


def test_axi4_channel_members():
    sig = AXI4Signature(addr_width=40, data_width=128, id_width=6)
    handshake = {"valid": (Out, 1), "ready": (In, 1)}
    address = {**handshake, "id": (Out, 6), "addr": (Out, 40), "len": (Out, 8),
               "size": (Out, 3), "burst": (Out, 2), "lock": (Out, 1), "cache": (Out, 4),
               "prot": (Out, 3)}
    assert ports(channel(sig, "aw")) == address
    assert ports(channel(sig, "ar")) == address
    assert ports(channel(sig, "w")) == {**handshake, "data": (Out, 128), "strb": (Out, 16),
                                        "last": (Out, 1)}
    assert ports(channel(sig, "b")) == {**handshake, "id": (Out, 6), "resp": (Out, 2)}
    assert ports(channel(sig, "r")) == {**handshake, "id": (Out, 6), "data": (Out, 128),
                                        "resp": (Out, 2), "last": (Out, 1)}
    assert channel(sig, "aw").members["burst"].shape is Burst
    assert channel(sig, "b").members["resp"].shape is Resp
    assert channel(sig, "r").members["resp"].shape is Resp
    assert channel(sig, "aw") == address_channel(addr_width=40, id_width=6)


def test_axi4_lite_channel_members():
    sig = AXI4LiteSignature(addr_width=20, data_width=64)
    handshake = {"valid": (Out, 1), "ready": (In, 1)}
    address = {**handshake, "addr": (Out, 20), "prot": (Out, 3)}
    assert ports(channel(sig, "aw")) == address
    assert ports(channel(sig, "ar")) == address
    assert ports(channel(sig, "w")) == {**handshake, "data": (Out, 64), "strb": (Out, 8)}
    assert ports(channel(sig, "b")) == {**handshake, "resp": (Out, 2)}
    assert ports(channel(sig, "r")) == {**handshake, "data": (Out, 64), "resp": (Out, 2)}
    for name in sig.members:
        assert not {"id", "len", "size", "burst", "lock", "cache", "last"} & \
            set(channel(sig, name).members), name


@pytest.mark.parametrize(("data_width", "strb_width"), [(32, 4), (64, 8), (128, 16)])
def test_strobe_and_beat_width(data_width, strb_width):
    sig = AXI4Signature(addr_width=32, data_width=data_width, id_width=1)
    assert Shape.cast(channel(sig, "w").members["strb"].shape) == unsigned(strb_width)
    assert sig.bytes_per_beat == strb_width
    if data_width in (32, 64):
        lite = AXI4LiteSignature(addr_width=32, data_width=data_width)
        assert Shape.cast(channel(lite, "w").members["strb"].shape) == unsigned(strb_width)


def test_encodings_match_amba():
    assert {member.name: member.value for member in Burst} == \
        {"FIXED": 0, "INCR": 1, "WRAP": 2}
    assert {member.name: member.value for member in Resp} == \
        {"OKAY": 0, "EXOKAY": 1, "SLVERR": 2, "DECERR": 3}
    assert Shape.cast(Burst) == unsigned(2)
    assert Shape.cast(Resp) == unsigned(2)


def test_protocol_constants():
    assert DATA_WIDTHS == (32, 64, 128)
    assert MAX_BURST_BEATS == 256 == 1 << len(channel(AXI4Signature(**FULL), "aw").create().len)
    assert BURST_BOUNDARY == 4096


class Master(wiring.Component):
    """Offers one write address and takes read data; shows what it got back."""

    def __init__(self, sig):
        super().__init__({"bus": Out(sig), "r_data": Out(sig.data_width), "r_taken": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.bus.aw.valid.eq(1), self.bus.aw.addr.eq(0x1234), self.bus.aw.prot.eq(0b010),
            self.bus.r.ready.eq(1), self.r_data.eq(self.bus.r.data),
            self.r_taken.eq(self.bus.r.valid & self.bus.r.ready),
        ]
        return m


class Slave(wiring.Component):
    """Takes write addresses and returns fixed read data."""

    def __init__(self, sig):
        super().__init__({"bus": In(sig), "aw_addr": Out(sig.addr_width), "aw_taken": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [
            self.bus.aw.ready.eq(1), self.aw_addr.eq(self.bus.aw.addr),
            self.aw_taken.eq(self.bus.aw.valid & self.bus.aw.ready),
            self.bus.r.valid.eq(1), self.bus.r.data.eq(0xCAFE), self.bus.r.resp.eq(Resp.SLVERR),
        ]
        return m


@pytest.mark.parametrize("sig", [AXI4Signature(**FULL), AXI4LiteSignature(**LITE)],
                         ids=["axi4", "lite"])
def test_master_connects_to_slave(sig):
    top = Module()
    top.submodules.master = master = Master(sig)
    top.submodules.slave = slave = Slave(sig)
    wiring.connect(top, master.bus, slave.bus)
    seen = Signal(2)  # the master's view of RRESP, through the connection
    top.d.comb += seen.eq(master.bus.r.resp)

    async def bench(ctx):
        await ctx.tick()
        assert ctx.get(slave.aw_taken)
        assert ctx.get(slave.aw_addr) == 0x1234
        assert ctx.get(slave.bus.aw.prot) == 0b010
        assert ctx.get(master.r_taken)
        assert ctx.get(master.r_data) == 0xCAFE
        assert ctx.get(seen) == Resp.SLVERR.value

    simulate(top, bench)


@pytest.mark.parametrize(("master_sig", "slave_sig", "reason"), [
    (AXI4Signature(**FULL), AXI4Signature(**{**FULL, "id_width": 5}),
     "'arg1.ar.id' with shape unsigned(5) to the member 'arg0.ar.id' with shape unsigned(4)"),
    (AXI4Signature(**FULL), AXI4Signature(**{**FULL, "data_width": 32}),
     "'arg0.r.data' with shape unsigned(64) to the member 'arg1.r.data' with shape unsigned(32)"),
    (AXI4Signature(addr_width=32, data_width=32, id_width=1), AXI4LiteSignature(**LITE),
     "Member 'ar.burst' is present in 0, but not in 1"),
])
def test_mismatched_ports_refuse_to_connect(master_sig, slave_sig, reason):
    with pytest.raises(wiring.ConnectionError, match=re.escape(reason)):
        wiring.connect(Module(), Master(master_sig).bus, Slave(slave_sig).bus)


def test_two_masters_refuse_to_connect():
    with pytest.raises(wiring.ConnectionError, match="^Cannot connect several output members"):
        wiring.connect(Module(), Master(AXI4Signature(**FULL)).bus,
                       Master(AXI4Signature(**FULL)).bus)
