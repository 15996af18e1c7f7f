"""Formal harnesses of the DMA's AXI4 master: the engines' ``ar``/``aw``/``w`` channels and the
burst splitter behind them.

Design under test: the real RTL at :data:`CONFIG`, the smallest representative point (a 32-bit
bus, so 4-byte beats; 16-bit addresses, so there are sixteen 4 KiB pages; a 1 KiB scratchpad).
Descriptors, ``clear``, the window, the scratchpad ports and every AXI field the slave drives
are free inputs, and ``rst`` is free at every cycle (a reset restarts the design and the
harness's registers together, as in :mod:`~verification.formal.skid`).

Properties on the engines' actual AXI outputs (:func:`engine_harness`, :func:`dma_harness`),
asserted in every reachable state:

1. ``ar``, ``aw`` and ``w`` keep the AXI handshake rule: VALID stays high and the payload
   stable until READY (:func:`~verification.formal.axi.axi_stable`).
2. Every burst offered on ``ar``/``aw`` stays inside one 4 KiB page:
   ``(addr & 0xFFF) + (len + 1) * bus_bytes <= 4096``. (Asserted whenever ``valid`` is high,
   so at every handshake.)
3. Every burst offered is ``INCR``, ``AxSIZE = log2(bus_bytes)``, ID 0, ``AxLOCK = 0``,
   ``AxCACHE = 0b0011``, ``AxPROT = 0``, its address a multiple of ``bus_bytes`` (and
   ``len <= 255``, so at most 256 beats, by its 8 bits). And the ``n``-th AR/AW carries the
   address and length of the ``n``-th burst the splitter hands to the datapath, so what
   :func:`splitter_harness` proves of the splitter's bursts holds of the bus.
4. Every burst offered lies in the window: ``[addr, addr + (len + 1) * bus_bytes)`` inside
   ``[window_base, window_limit)``. The engines commit a burst to the ``ar``/``aw`` skid
   buffer only if it is inside the window of the cycle before (the window acts one cycle
   after it is driven: a registered outcome against a registered copy, used only while the
   copy is unchanged: docs/dma.md, "Window checks"), and the skid buffer offers it one cycle
   later at the earliest, so the property needs the window unchanged in every cycle an
   ``ar``/``aw`` burst is offered and in the cycle before it (the one assumption on the
   window; it may change in any other cycle, also while a descriptor runs, which is what
   exercises the per-burst check). With the window free at every cycle
   (``window="free"``), what holds instead is that only the (at most two) bursts the skid
   buffer already held when the window changed may be outside the new window: from the
   third burst offered after a change on, every burst is inside the current window.
5. Every beat is counted once. Read engine: every R beat taken on the bus reaches the
   engine's counter once (those not yet counted are the ones the R skid buffer holds), and
   the engine retires each burst (pops its bookkeeping, which is what ``completed`` and the
   scratchpad addresses follow) exactly at the ``len + 1``-th R beat it takes after the
   previous burst's retirement, ``len`` being the AR's. Write engine, in three steps: the
   ``n``-th AW carries the length queued for the ``n``-th burst's W beats; the engine asks
   the scratchpad for exactly ``len + 1`` words for it and marks the final one ``last``; and
   the ``k``-th W beat on the bus carries the ``last`` of the ``k``-th word asked for. So
   every AW gets exactly ``len + 1`` W beats, ``last`` on the final one only, in AW order.
   :func:`write_bursts_harness` checks that end-to-end statement on the ports alone, by
   bounded model checking.

The burst splitter alone (:func:`splitter_harness`) is compared with a reference of the
documented splitting rule: for one descriptor the solver picks (``AnyConst``), every burst
starts where the previous one ended (row ``r`` at ``ext_addr + r * ext_stride``), is as long
as the first of the end of the row, 256 beats and the next 4 KiB boundary allows, lies inside
its row rounded up to whole beats, carries the row's scratchpad address and its last beat's
strobes, and ``last`` comes with the final beat of the final row. Each row is covered from
its first beat to its last, rows in order: so the beats issued for a descriptor add up to
``rows * ceil(row_bytes / bus_bytes)``. (An explicit multiplication in the harness makes
k-induction time out, so that sum is a consequence, not an assertion.)

Environment assumptions, all of them:

* ``r`` and ``b`` keep the AXI handshake rule (:func:`assume_axi_stable`); their ``ready``
  sides, ``ar``/``aw``/``w`` ``ready``, R and B payloads (data, resp, last, id) and their
  ``valid`` are otherwise free: the slave may even answer what it does not owe.
* The window does not change in a cycle where an ``ar`` or ``aw`` burst is offered, nor in
  the cycle before it (``window="stable"``, the registered proofs but ``dma_window_free``).
* For the splitter alone: its ``checked`` input keeps the contract of
  :class:`~rtl.dma.check.DescriptorCheck`: ``empty`` exactly when ``rows`` or ``row_bytes``
  is zero, and a non-empty descriptor with code ``NONE`` has ``ext_addr``, ``ext_stride``,
  ``spad_addr`` and ``spad_stride`` multiples of ``bus_bytes``. ``drained``, ``flush``, the
  window and ``bursts.ready`` are free.
* Covers only (``covers=True``): the slave sends only what it owes (R beats for the ARs
  taken, a B for an AW and its W burst), so the traces show real transfers.

k-induction needs invariants on registers the ports cannot show. They are asserted as
properties of their own (their messages name the internal part), on internal signals found by
name (white box, as the skid proof does), and kept local: the ``ar``/``aw``/``w``/``r`` skid
buffers (their skid register holds a burst with properties 2-4 whenever it is full, it is
full only while ``o`` offers a beat, and it holds the beats committed and not yet sent), the
splitter (its output register holds a burst with properties 2-3, its registered ``end`` is
that burst's end and its registered ``inside`` that burst against the registered window of
the cycle before; while it splits a row, its next address, row start and stride are
bus-aligned and the beats left in the row and per row are not zero; for the reference proof,
its state equals the reference's), the up-front check (its registered code is the outcome of
the descriptor it holds against the registered window of the cycle before), both blocks'
``window_changed`` (whether their registered window differs from the cycle before's), and the
engines' ``SyncFIFO`` queues (pointers against level, and the tracked entry, read through a
port the harness adds to the FIFO's memory) and beat counters.
"""

from amaranth import Cat, Const, Fragment, Module, Mux, Shape, Signal, Value
from amaranth.asserts import AnyConst  # not re-exported by amaranth.hdl in 0.5
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import data
from amaranth.utils import ceil_log2, exact_log2

from rtl.bus.axi import BURST_BOUNDARY, MAX_BURST_BEATS, Burst
from rtl.config import JalapenoConfig
from rtl.dma.burst import BurstSplitter
from rtl.dma.descriptor import DmaError, beat_shift, burst_layout, descriptor_layout
from rtl.dma.dma import Dma
from rtl.dma.read_engine import AXI_CACHE, AXI_PROT, ReadEngine
from rtl.dma.write_engine import WriteEngine

from .axi import assume_axi_stable, axi_stable, channel_name
from .flow import Harness, component_inputs
from .skid import find_signals

__all__ = ["CONFIG", "WINDOW_MODES", "subfragment", "burst_rules", "burst_inside",
           "engine_harness", "write_bursts_harness", "dma_harness", "splitter_harness"]

#: The design point of every DMA proof.
CONFIG = JalapenoConfig(name="formal", rows=1, cols=1, acc_depth=2, bus_width=32,
                        addr_width=16, spad_bytes=1024)
#: ``"stable"``: the window holds while a burst is offered, and every burst offered is inside
#: it. ``"free"``: the window may change at any cycle; every burst from the third after a
#: change on is inside it. ``"strict"``: the window may change at any cycle, and every burst
#: offered is asserted inside it, which does not hold (the skid buffer's latency; the test
#: suite checks the counterexample).
WINDOW_MODES = ("stable", "free", "strict")
#: The fields of an AXI address channel, as the engines' skid buffers name them.
ADDRESS_FIELDS = ("id", "addr", "len", "size", "burst", "lock", "cache", "prot")
#: Width of the harnesses' burst and descriptor numbers (they wrap).
NUMBER_BITS = 5


def subfragment(fragment, *path):
    """The fragment of the submodule at ``path`` (names as in ``m.submodules``) below
    ``fragment``; its ``origins[0]`` is the elaboratable it came from."""
    for name in path:
        for sub, sub_name, *_ in fragment.subfragments:
            if sub_name == name:
                fragment = sub
                break
        else:
            raise LookupError(f"no submodule {name!r} in {fragment.origins[0]!r}")
    return fragment


def _channel_fields(channel):
    return {name: Value.cast(getattr(channel, name)) for name in ADDRESS_FIELDS}


def _burst_bytes(cfg, length):
    """Bytes of a burst of ``length + 1`` beats (never wraps: Amaranth widens)."""
    return (length + 1) << beat_shift(cfg)


def burst_rules(cfg, burst):
    """``(condition, message)`` of properties 2 and 3 for one address-channel beat given as a
    mapping of :data:`ADDRESS_FIELDS` to values."""
    shift = beat_shift(cfg)
    page = exact_log2(BURST_BOUNDARY)
    return [
        (burst["burst"] == Burst.INCR.value, "burst not INCR"),
        (burst["size"] == shift, "size not log2(bus_bytes)"),
        (burst["id"] == 0, "id not 0"),
        (burst["lock"] == 0, "lock not 0"),
        (burst["cache"] == AXI_CACHE, "cache not 0b0011"),
        (burst["prot"] == AXI_PROT, "prot not 0"),
        (burst["addr"][:shift] == 0, "address not bus-aligned"),
        (burst["addr"][:page] + _burst_bytes(cfg, burst["len"]) <= BURST_BOUNDARY,
         "burst crosses a 4 KiB boundary"),
    ]


def burst_inside(cfg, addr, length, base, limit):
    """The burst of ``length + 1`` beats at ``addr`` lies in ``[base, limit)``."""
    return (addr >= base) & (addr + _burst_bytes(cfg, length) <= limit)


def _window_changed(m, base, limit):
    """Whether the window differs from the cycle before's (never in the first cycle after a
    reset)."""
    window = Cat(base, limit)
    previous = Signal(len(window), name="window__previous")
    armed = Signal(name="window__armed")
    m.d.sync += [previous.eq(window), armed.eq(1)]
    return armed & (window != previous)


def _last(m, value, name):
    """A register holding ``value`` of the cycle before (its reset value after a reset)."""
    last = Signal.like(value, name=name)
    m.d.sync += last.eq(value)
    return last


def _assume_window_stable(m, base, limit, channels):
    """Assume the window holds in every cycle one of ``channels`` offers a burst and in the
    cycle before it: the engines judge a burst against the window of the cycle before
    (:func:`~rtl.dma.descriptor.registered_window`)."""
    changed = _window_changed(m, base, limit)
    before = _last(m, changed, "window__changed_before")
    offered = Cat(*(channel.valid for channel in channels)).any()
    with m.If(offered):
        m.d.comb += Assume(~changed & ~before, "window changed while a burst is offered")


def _registered_window(m, fragment, name):
    """White box: the registered window of the block ``name`` (fragment), ``(base, limit,
    last)`` with ``last`` the registered window of the cycle before, and the invariant that
    the block's ``window_changed`` register says whether the two differ."""
    base, limit, changed = find_signals(fragment, ["prev_base", "prev_limit", "window_changed"])
    last = _last(m, Cat(base, limit), f"{name}__window_before")
    m.d.comb += Assert(changed == (Cat(base, limit) != last),
                       f"{name}: window_changed differs from the registered window's change")
    return base, limit, last


def _splitter_invariants(m, cfg, fragment):
    """White box, for k-induction: the splitter's output register, the registered end and
    window outcome of the burst it holds, and its row state."""
    shift = beat_shift(cfg)
    page = exact_log2(BURST_BOUNDARY)
    active, held, out, addr, row, ext_stride, left, row_beats = find_signals(
        fragment, ["active", "held", "out", "addr", "row", "ext_stride", "left", "row_beats"])
    end, inside = find_signals(fragment, ["end", "inside"])
    _, _, last = _registered_window(m, fragment, "splitter")
    last_base, last_limit = last[:cfg.addr_width], last[cfg.addr_width:]
    out = data.View(burst_layout(cfg), out)
    with m.If(held):
        m.d.comb += [
            Assert(out.addr[:shift] == 0, "splitter: held burst not bus-aligned"),
            Assert(out.addr[:page] + _burst_bytes(cfg, out.len) <= BURST_BOUNDARY,
                   "splitter: held burst crosses a 4 KiB boundary"),
            Assert(end == out.addr + _burst_bytes(cfg, out.len),
                   "splitter: registered end differs from the held burst's"),
            Assert(inside == burst_inside(cfg, out.addr, out.len, last_base, last_limit),
                   "splitter: inside differs from the held burst against the last window"),
        ]
    with m.If(active):
        m.d.comb += [
            Assert(Cat(addr[:shift], row[:shift], ext_stride[:shift]) == 0,
                   "splitter: row state not bus-aligned"),
            Assert((left != 0) & (row_beats != 0), "splitter: no beat left in a row"),
        ]


def _check_invariants(m, cfg, fragment):
    """White box: the up-front check's registered code is the outcome of the descriptor and
    extents it holds against the registered window of the cycle before, so the code it offers
    is the outcome against the current registered window."""
    check = fragment.origins[0]
    desc, held, ext_end, spad_end, code = find_signals(
        fragment, ["desc", "held", "ext_end", "spad_end", "code"])
    base, limit, last = _registered_window(m, fragment, "check")
    last_base, last_limit = last[:cfg.addr_width], last[cfg.addr_width:]
    desc = data.View(descriptor_layout(cfg), desc)
    with m.If(held):
        m.d.comb += Assert(code == check.outcome(desc, ext_end, spad_end, last_base, last_limit),
                           "check: code differs from the held descriptor's against the last "
                           "window")
    with m.If(check.checked.valid):
        m.d.comb += Assert(code == check.outcome(desc, ext_end, spad_end, base, limit),
                           "check: code offered differs from the current descriptor's")


def _address_channel(m, cfg, engine, skid_name, channel, base, limit, window, white_box):
    """Properties 1-4 on one address channel of an engine (fragment ``engine``), and (if
    ``white_box``) the invariants of its skid buffer and splitter."""
    name = channel_name(channel)
    axi_stable(m, channel)
    valid = channel.valid
    bus = _channel_fields(channel)
    for condition, message in burst_rules(cfg, bus):
        with m.If(valid):
            m.d.comb += Assert(condition, f"{name}: {message}")
    bus_inside = burst_inside(cfg, bus["addr"], bus["len"], base, limit)

    if white_box:
        skid_fragment = subfragment(engine, skid_name)
        space, *skid = find_signals(
            skid_fragment, ["space", *(f"skid__{field}" for field in ADDRESS_FIELDS)])
        skid = dict(zip(ADDRESS_FIELDS, skid, strict=True))
        m.d.comb += Assert(space | valid, f"{name} skid: full while nothing is offered")
        for condition, message in burst_rules(cfg, skid):
            with m.If(~space):
                m.d.comb += Assert(condition, f"{name} skid: {message}")
        _splitter_invariants(m, cfg, subfragment(engine, "front", "splitter"))
        _check_invariants(m, cfg, subfragment(engine, "front", "check"))
        skid_inside = burst_inside(cfg, skid["addr"], skid["len"], base, limit)
    else:
        space, skid_inside = Const(1), Const(1)

    if window in ("stable", "strict"):
        with m.If(valid):
            m.d.comb += Assert(bus_inside, f"{name}: burst outside the window")
        with m.If(~space):
            m.d.comb += Assert(skid_inside, f"{name} skid: burst outside the window")
    else:
        # Bursts offered since the window last changed, saturating at 2; after a reset the
        # skid buffer is empty, so every burst it will hold is checked against today's window.
        changed = _window_changed(m, base, limit)
        since = Signal(2, init=2, name=f"{name}__since_window")
        now = Signal(2, name=f"{name}__since_window_now")
        m.d.comb += now.eq(Mux(changed, 0, since))
        m.d.sync += since.eq(Mux(now == 2, 2, now + (valid & channel.ready)))
        with m.If(valid & (now == 2)):
            m.d.comb += Assert(bus_inside,
                               f"{name}: burst outside the window two bursts after a change")
        with m.If(~space & (now != 0)):
            m.d.comb += Assert(skid_inside, f"{name} skid: burst outside the window")


def _peek(memory, name):
    """White box: a read port added to ``memory`` (a ``MemoryInstance`` fragment, Amaranth 0.5
    internals): ``(address, data)``, the word at the address in the same cycle."""
    data = Signal(Shape.cast(memory._data.shape).width, name=name)
    index = Signal(ceil_log2(memory._data.depth), name=f"{name}__addr")
    memory.read_port(domain="comb", addr=index, data=data, en=Const(1), transparent_for=())
    return index, data


def _fifo(m, fragment, name):
    """A ``SyncFIFO`` (fragment) and its pointer invariants (white box); returns the FIFO and
    ``entry(position)``, the word ``position`` places behind its head."""
    fifo = fragment.origins[0]
    depth = fifo.depth
    produce, consume, level = find_signals(fragment, ["produce", "consume", "level"])
    used = Mux(produce >= consume, produce - consume, depth + produce - consume)
    m.d.comb += [
        Assert((produce < depth) & (consume < depth) & (level <= depth),
               f"{name}: pointer out of range"),
        Assert((level == used) | ((level == depth) & (used == 0)),
               f"{name}: level differs from its pointers"),
    ]
    memory = subfragment(fragment, "storage")

    def entry(position, view_name):
        index, data = _peek(memory, f"{name}__{view_name}")
        m.d.comb += index.eq((consume + position)[:len(index)])
        return data
    return fifo, level, entry


def _occupancy(m, skid_fragment, channel, name):
    """Beats a skid buffer holds: ``o`` offering one, plus one in its skid register."""
    space, = find_signals(skid_fragment, ["space"])
    held = Signal(2, name=f"{name}__held_beats")
    m.d.comb += [
        held.eq(channel.valid + ~space),
        Assert(space | channel.valid, f"{name} skid: full while nothing is offered"),
    ]
    return held


def _tracked_address(m, engine, skid_name, channel, commit, length, tracked):
    """For burst number ``tracked`` (counted at ``commit``, when the datapath queues a burst
    with AxLEN ``length`` for its beats): its AR/AW carries that length, and the address and
    length the splitter handed out with it, so the address channel carries the splitter's
    bursts in order, unchanged. White box: a burst enters the skid buffer exactly when it is
    queued, the bursts committed and not issued are the ones the skid buffer holds, and the
    tracked one keeps its address and length there. Returns the number of bursts committed and
    the tracked one's length."""
    name = channel_name(channel)
    skid_fragment = subfragment(engine, skid_name)
    source = skid_fragment.origins[0].i
    commits = Signal(NUMBER_BITS, name="commits")
    issued = Signal(NUMBER_BITS, name=f"{name}__issued")
    recorded = Signal(8, name=f"{name}__tracked_len")
    recorded_addr = Signal(len(source.addr), name=f"{name}__tracked_addr")
    with m.If(commit):
        m.d.sync += commits.eq(commits + 1)
        with m.If(commits == tracked):
            m.d.sync += [recorded.eq(length), recorded_addr.eq(source.addr)]
    with m.If(channel.valid & channel.ready):
        m.d.sync += issued.eq(issued + 1)
    held = _occupancy(m, skid_fragment, channel, name)
    skid_addr, skid_len = find_signals(skid_fragment, ["skid__addr", "skid__len"])
    position = (tracked - issued)[:NUMBER_BITS]
    m.d.comb += [
        Assert(commit == (source.valid & source.ready),
               f"{name}: burst queued without its address, or the other way round"),
        Assert(~commit | (source.len == length), f"{name}: burst queued with another length"),
        Assert((commits - issued)[:NUMBER_BITS] == held,
               f"{name}: bursts committed and not issued differ from the skid buffer"),
    ]
    with m.If(channel.valid & (position == 0) & (held != 0)):
        m.d.comb += [
            Assert(channel.len == recorded,
                   f"{name}: burst of another length than the engine counts"),
            Assert(channel.addr == recorded_addr, f"{name}: burst out of order"),
        ]
    with m.If((position == 1) & (held == 2)):
        m.d.comb += Assert((skid_len == recorded) & (skid_addr == recorded_addr),
                           f"{name} skid: tracked burst changed")
    return commits, recorded


def _read_beats(m, cfg, engine, ar, tracked):
    """Property 5 of the read engine, for the burst number ``tracked``."""
    track, level, entry = _fifo(m, subfragment(engine, "track"), "track")
    layout = burst_layout(cfg, ext=False)
    commit = track.w_en & track.w_rdy
    commits, recorded = _tracked_address(m, engine, "ar_skid", ar, commit,
                                         data.View(layout, track.w_data).len, tracked)
    retired = Signal(NUMBER_BITS, name="track__retired")
    r_skid_fragment = subfragment(engine, "r_skid")
    r_skid = r_skid_fragment.origins[0]
    beat = r_skid.o.valid & r_skid.o.ready  # an R beat the engine takes
    # Every R beat taken on the bus reaches the engine once: the ones taken and not yet
    # counted are the ones the R skid buffer holds.
    r = engine.origins[0].r
    accepted = Signal(NUMBER_BITS, name="r__accepted")
    counted = Signal(NUMBER_BITS, name="r__counted")
    m.d.sync += [accepted.eq(accepted + (r.valid & r.ready)), counted.eq(counted + beat)]
    m.d.comb += Assert((accepted - counted)[:NUMBER_BITS]
                       == _occupancy(m, r_skid_fragment, r_skid.o, "r"),
                       "r: beats taken on the bus and not counted differ from the skid buffer")
    retire = track.r_en & track.r_rdy
    beats = Signal(9, name="r__beats_since_retired")  # taken since the last retirement
    with m.If(beat):
        m.d.sync += beats.eq(Mux(retire, 0, beats + 1))
    with m.If(retire):
        m.d.sync += retired.eq(retired + 1)
    m.d.comb += Assert(~retire | beat, "r: burst retired without a beat")
    with m.If(retire & (retired == tracked)):
        m.d.comb += Assert(beats == recorded, "r: burst retired after other than len + 1 beats")
    with m.If(beat & (retired == tracked)):
        m.d.comb += Assert(beats <= recorded, "r: more than len + 1 beats in a burst")

    # White box, for k-induction: the burst queue and the engine's beat counter.
    counter, = find_signals(engine, ["beat"])
    head = data.View(layout, track.r_data)
    position = (tracked - retired)[:NUMBER_BITS]
    m.d.comb += [
        Assert((commits - retired)[:NUMBER_BITS] == level,
               "track: bursts committed and not retired differ from its level"),
        Assert(beats == counter, "r: the engine's beat count differs"),
        Assert(Mux(track.r_rdy, counter <= head.len, counter == 0),
               "r: beat count past the burst"),
    ]
    queued = data.View(layout, entry(position, "tracked"))
    with m.If(position < level):
        m.d.comb += Assert(queued.len == recorded, "track: tracked burst changed length")


def _write_beats(m, cfg, engine, aw, w, tracked, tracked_word):
    """Property 5 of the write engine, for burst number ``tracked`` and W beat number
    ``tracked_word``, in three steps: (a) the AW of burst ``n`` carries the AxLEN the engine
    queued for its W beats; (b) the engine asks the scratchpad for exactly ``len + 1`` words
    for burst ``n`` and marks the final one ``last``; (c) the ``k``-th W beat on the bus
    carries the ``last`` of the ``k``-th word asked for. So the bus carries, for every AW,
    exactly ``len + 1`` W beats with ``last`` on the final one only, in AW order."""
    bursts, level, entry = _fifo(m, subfragment(engine, "w_bursts"), "w_bursts")
    layout = burst_layout(cfg, ext=False)
    commit = bursts.w_en & bursts.w_rdy
    commits, recorded = _tracked_address(m, engine, "aw_skid", aw, commit,
                                         data.View(layout, bursts.w_data).len, tracked)

    # (b) The words asked for burst `tracked`.
    started = Signal(NUMBER_BITS, name="w_bursts__done")  # bursts whose words were all asked
    spad_r = engine.origins[0].spad_r
    asked = spad_r.valid & spad_r.ready
    meta, meta_level, meta_entry = _fifo(m, subfragment(engine, "meta"), "meta")
    meta_layout = data.StructLayout({"strb": cfg.bus_bytes, "last": 1})
    new = data.View(meta_layout, meta.w_data)
    counter, = find_signals(engine, ["beat"])
    with m.If(bursts.r_en & bursts.r_rdy):
        m.d.sync += started.eq(started + 1)
    with m.If(asked & (started == tracked)):
        m.d.comb += [
            Assert(counter <= recorded, "spad_r: more than len + 1 words for a burst"),
            Assert(new.last == (counter == recorded), "spad_r: last not on the final word"),
        ]
    head = data.View(layout, bursts.r_data)
    position = (tracked - started)[:NUMBER_BITS]
    m.d.comb += [
        Assert((commits - started)[:NUMBER_BITS] == level,
               "w_bursts: bursts committed and not asked differ from its level"),
        Assert(Mux(bursts.r_rdy, counter <= head.len, counter == 0),
               "spad_r: word count past the burst"),
        Assert(~(bursts.r_en & bursts.r_rdy) | (asked & new.last),
               "w_bursts: burst done without its last word"),
    ]
    queued = data.View(layout, entry(position, "tracked"))
    with m.If(position < level):
        m.d.comb += Assert(queued.len == recorded, "w_bursts: tracked burst changed length")

    # (c) Word `tracked_word`: its `last` from the request to the bus.
    words = Signal(NUMBER_BITS, name="spad_r__asked")
    answered = Signal(NUMBER_BITS, name="meta__answered")
    sent = Signal(NUMBER_BITS, name="w__sent")
    last = Signal(name="w__tracked_last")
    with m.If(asked):
        m.d.sync += words.eq(words + 1)
        with m.If(words == tracked_word):
            m.d.sync += last.eq(new.last)
    with m.If(meta.r_en & meta.r_rdy):
        m.d.sync += answered.eq(answered + 1)
    with m.If(w.valid & w.ready):
        m.d.sync += sent.eq(sent + 1)
    with m.If(w.valid & (sent == tracked_word)):
        m.d.comb += Assert(w.last == last, "w: last differs from the word asked for")
    w_skid = subfragment(engine, "w_skid")
    held = _occupancy(m, w_skid, w, "w")
    skid_last, = find_signals(w_skid, ["skid__last"])
    in_meta = (tracked_word - answered)[:NUMBER_BITS]
    in_skid = (tracked_word - sent)[:NUMBER_BITS]
    m.d.comb += [
        Assert((words - answered)[:NUMBER_BITS] == meta_level,
               "meta: words asked and not answered differ from its level"),
        Assert((answered - sent)[:NUMBER_BITS] == held,
               "w: words answered and not sent differ from the skid buffer"),
    ]
    queued_word = data.View(meta_layout, meta_entry(in_meta, "tracked"))
    with m.If(in_meta < meta_level):
        m.d.comb += Assert(queued_word.last == last, "meta: tracked word changed last")
    with m.If((in_skid == 1) & (held == 2)):
        m.d.comb += Assert(skid_last == last, "w skid: tracked word changed last")


def _write_bursts_on_the_bus(m, aw, w):
    """Property 5 of the write engine on its ports alone, for the burst number the solver
    picks: the ``n``-th W burst (ended by ``last``) has as many beats as the ``n``-th AW's
    ``len + 1``, whichever comes first (``bmc``)."""
    tracked = Signal(NUMBER_BITS, name="tracked_burst")
    m.d.comb += tracked.eq(AnyConst(NUMBER_BITS))
    aws = Signal(NUMBER_BITS, name="aw__count")
    aw_len = Signal(8, name="tracked_aw_len")
    aw_seen = Signal(name="tracked_aw_seen")
    with m.If(aw.valid & aw.ready):
        m.d.sync += aws.eq(aws + 1)
        with m.If(aws == tracked):
            m.d.sync += [aw_len.eq(aw.len), aw_seen.eq(1)]
    bursts = Signal(NUMBER_BITS, name="w__bursts")
    beat = Signal(9, name="w__beat")  # beats of the current W burst before this one
    w_len = Signal(9, name="tracked_w_len")
    w_seen = Signal(name="tracked_w_seen")
    sent = w.valid & w.ready
    with m.If(sent):
        m.d.sync += beat.eq(Mux(w.last, 0, beat + 1))
        with m.If(w.last):
            m.d.sync += bursts.eq(bursts + 1)
            with m.If(bursts == tracked):
                m.d.sync += [w_len.eq(beat), w_seen.eq(1)]
    m.d.comb += Assert(~sent | (beat < MAX_BURST_BEATS), "w: more than 256 beats in a burst")
    with m.If(aw_seen & w_seen):
        m.d.comb += Assert(w_len == aw_len, "w: burst of other than len + 1 beats")
    with m.If(sent & (bursts == tracked) & aw_seen):
        m.d.comb += [
            Assert(beat <= aw_len, "w: more than len + 1 beats in a burst"),
            Assert(w.last == (beat == aw_len), "w: last not on the final beat"),
        ]


def _covers(m, cfg, kind, engine, done):
    """Reachability, so the proofs cannot pass vacuously: a row continued past a 4 KiB boundary
    in a new burst, a burst of two beats or more, the per-burst window check withholding a
    burst of a descriptor after an earlier one went out, a burst of two beats or more
    complete (R beats counted, or a W burst with ``last``), and a descriptor completed."""
    ports = engine.origins[0]
    channel = ports.ar if kind == "read" else ports.aw
    name = channel_name(channel)
    taken = channel.valid & channel.ready
    page = exact_log2(BURST_BOUNDARY)
    end = Signal(cfg.addr_width + 1, name=f"{name}__previous_end")
    issued = Signal(name=f"{name}__any_issued")
    with m.If(taken):
        m.d.sync += [end.eq(channel.addr + _burst_bytes(cfg, channel.len)), issued.eq(1)]
    splitter_fragment = subfragment(engine, "front", "splitter")
    splitter = splitter_fragment.origins[0]
    held, = find_signals(splitter_fragment, ["held"])
    # A burst of the descriptor the splitter works on has gone to the datapath.
    split_issued = Signal(name="splitter__issued")
    with m.If(splitter.bursts.valid & splitter.bursts.ready):
        m.d.sync += split_issued.eq(1)
    with m.If(splitter.checked.valid & splitter.checked.ready):
        m.d.sync += split_issued.eq(0)
    report = splitter.report
    m.d.comb += [
        Cover(taken & issued & (channel.addr == end) & (channel.addr[:page] == 0),
              "a row continued past a 4 KiB boundary in a new burst"),
        Cover(taken & (channel.len >= 1), "a burst of two beats or more"),
        Cover(split_issued & held & report.valid & (report.payload == DmaError.WINDOW),
              "the per-burst window check withholds a burst after one went out"),
        Cover(done.valid & done.ready & (done.payload == DmaError.NONE) & issued,
              "a descriptor completed"),
    ]
    if kind == "read":
        track = subfragment(engine, "track").origins[0]
        head = data.View(burst_layout(cfg, ext=False), track.r_data)
        m.d.comb += Cover(track.r_en & track.r_rdy & (head.len >= 1),
                          "an R burst of two beats or more counted")
    else:
        w = ports.w
        beats = Signal(2, name="w__cover_beats")
        with m.If(w.valid & w.ready):
            m.d.sync += beats.eq(Mux(w.last, 0, Mux(beats == 3, 3, beats + 1)))
        m.d.comb += Cover(w.valid & w.ready & w.last & (beats >= 1),
                          "a W burst of two beats or more")


def _check_window(window):
    if window not in WINDOW_MODES:
        raise ValueError(f"window must be one of {', '.join(WINDOW_MODES)}, not {window!r}")


def _assume_compliant_slave(m, engine):
    """For the covers only: the slave answers only what it owes (R beats for ARs taken, a B
    for an AW taken and its W burst's ``last``), so the traces show real transfers."""
    ar, r = engine.ar, engine.r
    if ar is not None:
        owed = Signal(16, name="r__owed")
        m.d.sync += owed.eq(owed + Mux(ar.valid & ar.ready, ar.len + 1, 0)
                            - (r.valid & r.ready))
        m.d.comb += Assume(~r.valid | (owed != 0), "R beat not owed")
    aw, w, b = engine.aw, engine.w, engine.b
    if aw is not None:
        aws, lasts, bs = (Signal(8, name=f"b__{what}") for what in ("aws", "lasts", "bs"))
        m.d.sync += [aws.eq(aws + (aw.valid & aw.ready)),
                     lasts.eq(lasts + (w.valid & w.ready & w.last)),
                     bs.eq(bs + (b.valid & b.ready))]
        m.d.comb += Assume(~b.valid | ((bs < aws) & (bs < lasts)), "B not owed")


class _Ports:
    """The AXI channels of an engine or of :class:`Dma` (``None`` where it has none)."""

    def __init__(self, **channels):
        for name in ("ar", "r", "aw", "w", "b"):
            setattr(self, name, channels.get(name))


def engine_harness(kind, *, window="stable", white_box=True, covers=False, config=CONFIG):
    """The harness of a :class:`ReadEngine` (``kind="read"``) or :class:`WriteEngine`
    (``"write"``).

    Parameters
    ----------
    window : str
        One of :data:`WINDOW_MODES`.
    white_box : bool
        With the invariants on internal signals and property 5 (whose invariants are internal);
        without, only properties 1-4 on the ports, for bounded checks of broken designs.
    covers : bool
        Adds the covers (for ``mode="cover"``), and a slave that answers only what it owes.
    """
    _check_window(window)
    engine = {"read": ReadEngine, "write": WriteEngine}[kind](config)
    fragment = Fragment.get(engine, None)
    m = Module()
    m.submodules.dut = fragment
    base, limit = engine.window_base, engine.window_limit
    if kind == "read":
        ports = _Ports(ar=engine.ar, r=engine.r)
        channel, skid_name = engine.ar, "ar_skid"
        assume_axi_stable(m, engine.r)
    else:
        ports = _Ports(aw=engine.aw, w=engine.w, b=engine.b)
        channel, skid_name = engine.aw, "aw_skid"
        assume_axi_stable(m, engine.b)
        axi_stable(m, engine.w)
    if window == "stable":
        _assume_window_stable(m, base, limit, [channel])
    _address_channel(m, config, fragment, skid_name, channel, base, limit, window, white_box)
    if white_box:
        tracked = Signal(NUMBER_BITS, name="tracked_burst")
        m.d.comb += tracked.eq(AnyConst(NUMBER_BITS))
        if kind == "read":
            _read_beats(m, config, fragment, engine.ar, tracked)
        else:
            tracked_word = Signal(NUMBER_BITS, name="tracked_word")
            m.d.comb += tracked_word.eq(AnyConst(NUMBER_BITS))
            _write_beats(m, config, fragment, engine.aw, engine.w, tracked, tracked_word)
    if covers:
        _assume_compliant_slave(m, ports)
        _covers(m, config, kind, fragment, engine.done)
    return Harness(m, component_inputs(engine))


def write_bursts_harness(*, config=CONFIG):
    """The harness of a :class:`WriteEngine` for property 5 on its ports alone (``bmc``):
    properties 1-4 without white-box invariants, and every W burst as long as its AW."""
    engine = WriteEngine(config)
    m = Module()
    m.submodules.dut = engine
    assume_axi_stable(m, engine.b)
    axi_stable(m, engine.w)
    _assume_window_stable(m, engine.window_base, engine.window_limit, [engine.aw])
    _address_channel(m, config, None, "aw_skid", engine.aw, engine.window_base,
                     engine.window_limit, "stable", white_box=False)
    _write_bursts_on_the_bus(m, engine.aw, engine.w)
    return Harness(m, component_inputs(engine))


def dma_harness(*, window="stable", config=CONFIG):
    """The harness of :class:`Dma`: properties 1-4 on ``bus.ar``, ``bus.aw`` and ``bus.w``,
    the window assumed stable (``window="stable"``) while either address channel offers a
    burst."""
    _check_window(window)
    dma = Dma(config)
    fragment = Fragment.get(dma, None)
    m = Module()
    m.submodules.dut = fragment
    base, limit = dma.window_base, dma.window_limit
    bus = dma.bus
    assume_axi_stable(m, bus.r)
    assume_axi_stable(m, bus.b)
    axi_stable(m, bus.w)
    if window == "stable":
        _assume_window_stable(m, base, limit, [bus.ar, bus.aw])
    for engine, skid_name, channel in (("reader", "ar_skid", bus.ar),
                                       ("writer", "aw_skid", bus.aw)):
        _address_channel(m, config, subfragment(fragment, engine), skid_name, channel,
                         base, limit, window, white_box=True)
    return Harness(m, component_inputs(dma))


def _all_strobes(cfg):
    return Const((1 << cfg.bus_bytes) - 1, cfg.bus_bytes)


def _tail(cfg, row_bytes):
    """The strobes of a row's last beat: its ``row_bytes % bus_bytes`` bytes, all if 0."""
    rem = row_bytes[:beat_shift(cfg)]
    return Mux(rem == 0, _all_strobes(cfg), (Const(1, cfg.bus_bytes + 1) << rem) - 1)


def _advance(cfg, state, params, beats):
    """The reference's state after a burst of ``beats`` beats at ``state["addr"]``."""
    shift = beat_shift(cfg)
    row_end = beats == state["left"]
    next_row = state["row"] + params["stride"]
    next_spad_row = state["spad_row"] + params["spad_stride"]
    return {
        "row": Mux(row_end, next_row, state["row"])[:cfg.addr_width],
        "addr": Mux(row_end, next_row, state["addr"] + (beats << shift))[:cfg.addr_width],
        "left": Mux(row_end, params["row_beats"], state["left"] - beats)[:len(state["left"])],
        "rows": Mux(row_end, state["rows"] - 1, state["rows"])[:len(state["rows"])],
        "spad_row": Mux(row_end, next_spad_row,
                        state["spad_row"])[:cfg.local_addr_width],
        "spad": Mux(row_end, next_spad_row,
                    state["spad"] + (beats << shift))[:cfg.local_addr_width],
    }


def _expected_burst(m, cfg, state, params, burst, where):
    """Assert that ``burst`` (a :func:`burst_layout` view) is the next burst of the reference
    in ``state``; ``where`` prefixes the messages."""
    shift = beat_shift(cfg)
    page = exact_log2(BURST_BOUNDARY)
    beats = burst.len + 1
    nbytes = beats << shift
    row_end = beats == state["left"]
    offset = (burst.addr - state["row"])[:cfg.addr_width]
    m.d.comb += [
        Assert(burst.addr == state["addr"],
               f"{where}: burst does not start where the previous one ended"),
        Assert(beats <= state["left"], f"{where}: burst runs past the end of its row"),
        Assert(offset + nbytes <= params["row_beats"] << shift,
               f"{where}: burst outside its row"),
        Assert(burst.addr[:page] + nbytes <= BURST_BOUNDARY,
               f"{where}: burst crosses a 4 KiB boundary"),
        Assert(row_end | (beats == MAX_BURST_BEATS) | ((burst.addr + nbytes)[:page] == 0),
               f"{where}: burst ends before the row, 256 beats or 4 KiB"),
        Assert(burst.spad == state["spad"], f"{where}: wrong local address"),
        Assert(burst.tail == Mux(row_end, params["tail"], _all_strobes(cfg)),
               f"{where}: wrong last-beat strobes"),
        Assert(burst.last == (row_end & (state["rows"] == 1)),
               f"{where}: last not on the final burst of the descriptor"),
    ]


def splitter_harness(*, dut=BurstSplitter, config=CONFIG):
    """The harness of a :class:`BurstSplitter` alone against the reference (see the module
    docstring).

    Parameters
    ----------
    dut : callable
        Builds the splitter from ``config``: :class:`BurstSplitter`, or a broken variant for
        the negative tests.
    """
    cfg = config
    shift = beat_shift(cfg)
    splitter = dut(cfg)
    fragment = Fragment.get(splitter, None)
    m = Module()
    m.submodules.dut = fragment

    # DescriptorCheck's contract on `checked`.
    c = splitter.checked.payload
    d = c.desc
    with m.If(splitter.checked.valid):
        m.d.comb += Assume(c.empty == ((d.rows == 0) | (d.row_bytes == 0)),
                           "checked: empty is not rows or row_bytes zero")
        with m.If(~c.empty & (c.code == DmaError.NONE)):
            m.d.comb += Assume(Cat(d.ext_addr[:shift], d.ext_stride[:shift],
                                   d.spad_addr[:shift], d.spad_stride[:shift]) == 0,
                               "checked: NONE but misaligned")

    bursts = splitter.bursts
    burst = bursts.payload
    sent = bursts.valid & bursts.ready
    take = (splitter.checked.valid & splitter.checked.ready & ~c.empty
            & (c.code == DmaError.NONE))
    flush = splitter.flush
    # The splitter judges bursts against the window of the cycle before.
    window = _last(m, Cat(splitter.window_base, splitter.window_limit), "window__before")
    m.d.comb += Assert(~bursts.valid | burst_inside(cfg, burst.addr, burst.len,
                                                    window[:cfg.addr_width],
                                                    window[cfg.addr_width:]),
                       "bursts: burst outside the window")
    _splitter_invariants(m, cfg, fragment)

    # Descriptor numbers: `taken` descriptors that issue bursts have been taken; the next
    # burst on `bursts` belongs to number `current`.
    taken = Signal(NUMBER_BITS, name="taken")
    current = Signal(NUMBER_BITS, name="current")
    with m.If(take):
        m.d.sync += taken.eq(taken + 1)
    with m.If(sent & burst.last):
        m.d.sync += current.eq(current + 1)
    with m.If(flush):
        m.d.sync += current.eq(taken)

    # The reference, for the descriptor number the solver picks.
    tracked = Signal(NUMBER_BITS, name="tracked")
    m.d.comb += tracked.eq(AnyConst(NUMBER_BITS))
    tracking = Signal(name="tracking")
    params = {
        "stride": Signal(cfg.addr_width, name="ref_stride"),
        "spad_stride": Signal(cfg.local_addr_width, name="ref_spad_stride"),
        "row_beats": Signal(16, name="ref_row_beats"),
        "tail": Signal(cfg.bus_bytes, name="ref_tail"),
    }
    state = {
        "row": Signal(cfg.addr_width, name="ref_row"),
        "addr": Signal(cfg.addr_width, name="ref_addr"),
        "left": Signal(16, name="ref_left"),
        "rows": Signal(16, name="ref_rows"),
        "spad_row": Signal(cfg.local_addr_width, name="ref_spad_row"),
        "spad": Signal(cfg.local_addr_width, name="ref_spad"),
    }
    row_beats = (d.row_bytes + cfg.bus_bytes - 1) >> shift
    with m.If(take & (taken == tracked)):
        m.d.sync += [
            tracking.eq(1),
            params["stride"].eq(d.ext_stride),
            params["spad_stride"].eq(d.spad_stride),
            params["row_beats"].eq(row_beats),
            params["tail"].eq(_tail(cfg, d.row_bytes)),
            state["row"].eq(d.ext_addr),
            state["addr"].eq(d.ext_addr),
            state["left"].eq(row_beats),
            state["rows"].eq(d.rows),
            state["spad_row"].eq(d.spad_addr),
            state["spad"].eq(d.spad_addr),
        ]
    held_ours = Signal(name="held_tracked")
    active, held, out_raw = find_signals(fragment, ["active", "held", "out"])
    out = data.View(burst_layout(cfg), out_raw)
    m.d.comb += held_ours.eq(held & (current == tracked))
    with m.If(held_ours):
        _expected_burst(m, cfg, state, params, out, "bursts")
    after = _advance(cfg, state, params, out.len + 1)
    with m.If(sent & (current == tracked) & tracking):
        m.d.sync += [state[name].eq(after[name]) for name in state]
        with m.If(burst.last):
            m.d.sync += tracking.eq(0)
    with m.If(flush):
        m.d.sync += tracking.eq(0)

    # White box, for k-induction: the splitter's state against the reference.
    names = {"row": "row", "addr": "addr", "left": "left", "rows": "rows_left",
             "spad_row": "spad_row", "spad": "spad"}
    inner = dict(zip(names, find_signals(fragment, list(names.values())), strict=True))
    inner_params = dict(zip(params, find_signals(
        fragment, ["ext_stride", "spad_stride", "row_beats", "tail"]), strict=True))
    on_tracked = active & ((taken - 1)[:NUMBER_BITS] == tracked)
    m.d.comb += [
        Assert(tracking == (on_tracked | held_ours), "reference: tracking out of step"),
        Assert(~held | out.last | (active & (current == (taken - 1)[:NUMBER_BITS])),
               "reference: numbers out of step while a burst is held"),
        Assert(~held | ~out.last
               | (~active & (current == (taken - 1)[:NUMBER_BITS]))
               | (active & (current == (taken - 2)[:NUMBER_BITS])),
               "reference: numbers out of step while a last burst is held"),
        Assert(held | ~active | (current == (taken - 1)[:NUMBER_BITS]),
               "reference: numbers out of step while splitting"),
        Assert(held | active | (current == taken), "reference: numbers out of step idle"),
    ]
    with m.If(tracking):
        m.d.comb += [
            Assert((state["left"] != 0) & (state["rows"] != 0) & (params["row_beats"] != 0),
                   "reference: nothing left"),
            Assert(Cat(state["addr"][:shift], state["row"][:shift],
                       params["stride"][:shift]) == 0, "reference: not bus-aligned"),
            Assert(state["left"] <= params["row_beats"], "reference: more left than a row"),
            Assert((state["addr"] - state["row"])[:cfg.addr_width]
                   == ((params["row_beats"] - state["left"]) << shift)[:cfg.addr_width],
                   "reference: address not as far into the row as the beats taken"),
        ]
    with m.If(on_tracked):
        m.d.comb += [Assert(inner_params[name] == params[name],
                            f"splitter: {name} differs from the reference") for name in params]
        expect = {name: Mux(held_ours, after[name], state[name]) for name in state}
        m.d.comb += [Assert(inner[name] == expect[name],
                            f"splitter: {name} differs from the reference") for name in state]
    inputs = [value for value in component_inputs(splitter) if not isinstance(value, Const)]
    return Harness(m, inputs)
