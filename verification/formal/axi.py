"""The AXI handshake rule as formal properties, for any valid/ready channel.

AXI (A3.2.1) has the sender of every channel keep ``valid`` high, and the payload unchanged,
from the cycle it raises ``valid`` until the cycle the receiver's ``ready`` takes the beat.
:func:`axi_stable` asserts that rule on a channel the design under test sends on (``aw``,
``w``, ``ar`` of a master, ``o`` of a :class:`~rtl.bus.skid.SkidBuffer`);
:func:`assume_axi_stable` assumes it of the environment on a channel the design receives
(``b`` and ``r`` of a master, ``i`` of a skid buffer). Both take the channel's interface
object, whichever way it is flipped, so a proof of an AXI master applies them to its five
channels::

    for name in ("aw", "w", "ar"):
        axi_stable(m, dut.bus[name])
    for name in ("b", "r"):
        assume_axi_stable(m, dut.bus[name])
"""

from amaranth import Cat, Signal, Value
from amaranth.hdl import Assert, Assume

__all__ = ["channel_name", "payload", "axi_stable", "assume_axi_stable"]


def channel_name(channel):
    """The name of a channel interface: its ``valid`` signal's, without ``__valid``."""
    name = Value.cast(channel.valid).name
    return name.removesuffix("__valid") if name != "valid" else "channel"


def payload(channel):
    """Every payload port of a channel interface (all members but ``valid`` and ``ready``) as
    a :class:`Value`, in signature order."""
    return [Value.cast(value) for path, _, value in channel.signature.flatten(channel)
            if path[0] not in ("valid", "ready")]


def _stable(m, channel, kind, *, domain, name, src_loc_at):
    name = name or channel_name(channel)
    data = Cat(*payload(channel))
    # Registers of `domain`: a reset clears `pending`, so the cycle after a reset is exempt
    # (everything restarts from its initial state, and AXI has every valid low out of reset).
    pending = Signal(name=f"{name}__pending")
    held = Signal(len(data), name=f"{name}__held")
    m.d[domain] += [pending.eq(channel.valid & ~channel.ready), held.eq(data)]
    with m.If(pending):
        m.d.comb += [
            kind(channel.valid, f"{name}: valid dropped before ready",
                 src_loc_at=src_loc_at),
            kind(data == held, f"{name}: payload changed before ready",
                 src_loc_at=src_loc_at),
        ]


def axi_stable(m, channel, *, domain="sync", name=None):
    """Assert the AXI handshake rule on a channel the design under test sends on.

    Once ``valid`` is high and ``ready`` low at a clock edge, the next cycle must have
    ``valid`` high and every payload field unchanged. The check needs no past value before the
    first cycle: it starts disarmed, as after a reset.

    Parameters
    ----------
    m : Module
        The harness the assertions and their two history registers go into.
    channel : interface
        A valid/ready channel as an interface object (``dut.o``, ``dut.bus.aw``), either flow.
    domain : str
        The clock domain of the channel.
    name : str or None
        Prefix of the history registers and of the assertions' messages; by default the
        channel's (``o``, ``bus__aw``).
    """
    _stable(m, channel, Assert, domain=domain, name=name, src_loc_at=2)


def assume_axi_stable(m, channel, *, domain="sync", name=None):
    """Assume the AXI handshake rule of the environment on a channel it sends on.

    The same rule as :func:`axi_stable`, as an assumption on the design's inputs: it refers only
    to this cycle's ``valid`` and payload and to registered history, so it never constrains what
    the design under test does. Parameters as for :func:`axi_stable`.
    """
    _stable(m, channel, Assume, domain=domain, name=name, src_loc_at=2)
