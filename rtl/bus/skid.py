"""A two-entry skid buffer (register slice) for any valid/ready channel."""

from amaranth import Module, Shape, ShapeCastable, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


def _is_bit(member, flow):
    return (member.is_port and member.flow == flow and not member.dimensions
            and not isinstance(member.shape, ShapeCastable)
            and Shape.cast(member.shape) == unsigned(1))


def _check_channel(channel):
    if not isinstance(channel, wiring.Signature):
        raise TypeError(f"channel must be a wiring.Signature, not {channel!r}")
    members = channel.members
    for name in ("valid", "ready"):
        if name not in members:
            raise ValueError(f"channel has no {name!r} member")
    valid, ready = members["valid"], members["ready"]
    # o.valid comes out of reset from the member's init, so it must start low.
    if not _is_bit(valid, Out) or valid.init not in (None, 0):
        raise ValueError(f"channel member 'valid' must be Out(1), not {valid!r}")
    if not _is_bit(ready, In):
        raise ValueError(f"channel member 'ready' must be In(1), not {ready!r}")
    for name, member in members.items():
        if name in ("valid", "ready"):
            continue
        if not member.is_port:
            raise ValueError(f"channel member {name!r} must be a port, not a signature")
        if member.flow != Out:
            raise ValueError(f"channel member {name!r} must be Out, not {member!r}")
    if isinstance(channel, stream.Signature) and (channel.always_valid or channel.always_ready):
        raise ValueError(f"channel must have both handshakes, not {channel!r}")


class SkidBuffer(wiring.Component):
    """A register slice for one valid/ready channel: two entries, full throughput, and no
    combinational path through it in either direction.

    Between the DMA and the interconnect, an AXI channel's ``valid`` and payload run one way
    and its ``ready`` the other, each through logic on both sides; a long bus closes timing
    only if those paths are cut. A plain pipeline register cuts ``valid`` and the payload but
    passes ``ready`` back combinationally, and one register whose ``ready`` is registered too
    can take only every other beat. This buffer registers all three: ``o.valid``, every payload
    field of ``o`` and ``i.ready`` come straight from flops, so nothing on ``i`` reaches ``o``
    and nothing on ``o`` reaches ``i`` within a cycle, at the cost of a second entry.

    The output register holds the beat on offer; the skid register catches the one beat that
    arrives in a cycle where ``o`` stalls, while the registered ``i.ready`` is still high.
    ``i.ready`` is low exactly while both registers hold a beat and ``o.valid`` high exactly
    while at least one does, so beats pass one per cycle while ``o.ready`` stays high (latency
    one cycle), in order, none lost or repeated. ``o`` keeps to the AXI rules: once ``o.valid``
    is raised, it and the payload hold until the beat is taken.

    Parameters
    ----------
    channel : :class:`wiring.Signature`
        The channel as seen from its sender: ``valid: Out(1)`` (initially low), ``ready: In(1)``
        and any number of other ``Out`` port members, which are carried as the payload (an AXI
        channel such as ``AXI4Signature(...).members["aw"].signature``, or a
        :class:`stream.Signature` that is neither always valid nor always ready). For a channel
        a master receives on (``b``, ``r``), ``members["b"].signature`` is the master's view,
        flipped; pass ``.flip()`` of it.

    Attributes
    ----------
    i : In(channel)
        The upstream side: beats are accepted here.
    o : Out(channel)
        The downstream side: the same beats, in order, one cycle after acceptance at the
        earliest.

    Raises
    ------
    TypeError
        If ``channel`` is not a :class:`wiring.Signature`.
    ValueError
        If ``channel`` has no ``valid`` or ``ready`` member, if ``valid`` is not ``Out(1)`` with
        a zero initial value or ``ready`` not ``In(1)``, if another member is a signature or an
        ``In`` port, or if it is an always-valid or always-ready :class:`stream.Signature`.
    """

    def __init__(self, channel):
        _check_channel(channel)
        super().__init__({"i": In(channel), "o": Out(channel)})

    @staticmethod
    def _payload(interface):
        """``(path, member, signal)`` of every payload port of a channel interface, in order."""
        return [(path, member, value)
                for path, member, value in interface.signature.flatten(interface)
                if path[0] not in ("valid", "ready")]

    def elaborate(self, platform):
        m = Module()
        i_fields = [value for _, _, value in self._payload(self.i)]
        o_ports = self._payload(self.o)
        o_fields = [value for _, _, value in o_ports]
        skid = [Signal(member.shape, init=member.init, name="__".join(["skid", *map(str, path)]))
                for path, member, _ in o_ports]

        def load(targets, sources):
            return [target.eq(source) for target, source in zip(targets, sources, strict=True)]

        # High while the skid register is empty; i.ready is this flop and nothing else.
        space = Signal(init=1)
        m.d.comb += self.i.ready.eq(space)

        with m.If(space):
            # While empty, the skid register follows i's payload, so its enable is the flop
            # `space` alone and none of o's handshake: it holds the beat accepted at an edge
            # where o stalls, and what it took at other edges is never used.
            m.d.sync += load(skid, i_fields)
            with m.If(~self.o.valid | self.o.ready):
                m.d.sync += self.o.valid.eq(self.i.valid)
                with m.If(self.i.valid):
                    m.d.sync += load(o_fields, i_fields)
            with m.Elif(self.i.valid):
                # o is full and stalled: the beat accepted at this edge waits in the skid.
                m.d.sync += space.eq(0)
        with m.Elif(self.o.ready):
            m.d.sync += load(o_fields, skid)
            m.d.sync += space.eq(1)
        return m
