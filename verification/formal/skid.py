"""Formal harness of :class:`~rtl.bus.skid.SkidBuffer`.

The environment is AXI-compliant on the input side (:func:`assume_axi_stable` on ``i``),
drives ``o.ready`` freely and may reset at any cycle. The harness asserts, in every reachable
state:

* ``o`` keeps the AXI handshake rule (:func:`axi_stable`);
* no beat is lost or repeated: beats accepted on ``i`` minus beats delivered on ``o`` stay in
  0..2 and equal the occupancy, ``o.valid + ~i.ready``, and ``i.ready`` is low only while two
  beats are held;
* beats come out in input order, every field intact: the harness numbers beats on both sides
  and, for one beat number it picks freely (``AnyConst``), records that beat's payload on
  ``i`` and checks it on ``o``. The solver picks every number, so this holds for each beat.

Numbering beats in the harness rather than tagging them in the payload leaves every payload
bit free on the input.

k-induction needs the invariant on the one register the ports cannot show: when the skid
register holds the tracked beat, it holds its recorded payload. That assertion names the
buffer's internal ``space`` and ``skid__*`` signals (white box, found by name in the elaborated
design); the others are on ports only.

Initial state and reset: every flop, of the buffer and of the harness, starts at its init
value, which Amaranth also resets it to, and ``rst`` is free at every cycle. Nothing needs
``Initial``: the history registers of the handshake rule start disarmed, and a reset returns the
buffer and the harness together to the initial state.
"""

from amaranth import Cat, Fragment, Module, Signal
from amaranth.asserts import AnyConst  # not re-exported by amaranth.hdl in 0.5
from amaranth.hdl import Assert, Cover

from rtl.bus.skid import SkidBuffer

from .axi import assume_axi_stable, axi_stable, payload
from .flow import Harness, component_inputs

__all__ = ["BEAT_NUMBER_BITS", "find_signals", "skid_harness"]

#: Width of the harness's beat numbers; they wrap, far beyond the two beats a buffer holds.
BEAT_NUMBER_BITS = 4


def _signals(fragment):
    """Every signal assigned in ``fragment`` and its subfragments (Amaranth 0.5 internals)."""
    for statements in fragment.statements.values():
        for statement in statements:
            yield from statement._lhs_signals()
    for subfragment, _, _ in fragment.subfragments:
        yield from _signals(subfragment)


def find_signals(fragment, names):
    """The signals driven in ``fragment`` or below it with these names, in order.

    Raises
    ------
    LookupError
        If a name is not driven anywhere, or more than once.
    """
    found = {name: [] for name in names}
    for signal in _signals(fragment):
        same = found.get(signal.name)
        if same is not None and not any(signal is other for other in same):
            same.append(signal)
    for name, signals in found.items():
        if len(signals) != 1:
            raise LookupError(f"{len(signals)} signals named {name!r} in the design, not one")
    return [found[name][0] for name in names]


def skid_harness(channel, *, dut=SkidBuffer):
    """The harness of a skid buffer on ``channel``.

    Parameters
    ----------
    channel : wiring.Signature
        As for :class:`SkidBuffer`.
    dut : callable
        Builds the design under test from ``channel``: :class:`SkidBuffer`, or a variant with
        its ports that contains one (the negative tests' broken buffers).
    """
    buffer = dut(channel)
    fragment = Fragment.get(buffer, None)
    i, o = buffer.i, buffer.o
    skid_names = ["__".join(["skid", *map(str, path)])
                  for path, _, _ in o.signature.flatten(o) if path[0] not in ("valid", "ready")]
    space, *skid = find_signals(fragment, ["space", *skid_names])

    m = Module()
    m.submodules.dut = fragment

    assume_axi_stable(m, i)
    axi_stable(m, o)

    accepted = i.valid & i.ready
    delivered = o.valid & o.ready
    beats_in = Signal(BEAT_NUMBER_BITS)
    beats_out = Signal(BEAT_NUMBER_BITS)
    m.d.sync += [beats_in.eq(beats_in + accepted), beats_out.eq(beats_out + delivered)]
    in_flight = Signal(BEAT_NUMBER_BITS)
    occupancy = Signal(2)
    m.d.comb += [in_flight.eq(beats_in - beats_out), occupancy.eq(o.valid + ~i.ready)]
    m.d.comb += [
        Assert(in_flight <= 2, "more than two beats in flight"),
        Assert(in_flight == occupancy, "beats in flight differ from the occupancy"),
        Assert(i.ready | o.valid, "i.ready low while o holds no beat"),
    ]

    tracked = Signal(BEAT_NUMBER_BITS)
    m.d.comb += tracked.eq(AnyConst(BEAT_NUMBER_BITS))
    recorded = Signal(len(Cat(*payload(i))))
    with m.If(accepted & (beats_in == tracked)):
        m.d.sync += recorded.eq(Cat(*payload(i)))
    with m.If(o.valid & (beats_out == tracked)):
        m.d.comb += Assert(Cat(*payload(o)) == recorded, "o carries another beat than its turn")
    # White box, for k-induction: the skid register, behind the one on offer.
    second = Signal(BEAT_NUMBER_BITS)
    m.d.comb += second.eq(beats_out + 1)
    with m.If(~space & (second == tracked)):
        m.d.comb += Assert(Cat(*skid) == recorded, "the skid register lost its beat")

    m.d.comb += [
        Cover(in_flight == 2, "two beats in flight"),
        Cover(delivered & (beats_out == tracked) & (tracked == 2),
              "the tracked beat delivered, the third"),
    ]
    return Harness(m, component_inputs(buffer))
